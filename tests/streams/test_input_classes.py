"""Input classes decided on purpose: NaN/Infinity are not JSON; a UTF-8 byte-order mark is ignored.

RFC 8259 has no NaN or Infinity (section 6), though Python's and pydantic's parsers accept them: a
message using them is `not_json`, whatever it would have become after parsing. The same RFC (8.1)
forbids sending a byte-order mark but lets a parser ignore one; Windows producers add it, so the event
behind it is judged as if it were absent (its dead letter, if any, keeps the original bytes).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest

from rules import load_engine
from schemas import MessageRef
from streams.cli.main import main
from streams.worker.processing import UTF8_BOM, Processor
from tests.factories import event_dict, make_agreement

REF = MessageRef(topic="npd.access.v1", partition=0, offset=3)
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def processor() -> Processor:
    register = {make_agreement().agreement_id: make_agreement()}
    return Processor(load_engine(), register.get, clock=lambda: NOW)


@pytest.mark.parametrize(
    "raw",
    [
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"[NaN]",
        json.dumps(event_dict(record_count=float("nan"))).encode(),
        json.dumps(event_dict(min_cell_count=float("inf"))).encode(),
        json.dumps(event_dict(extra=float("-inf"))).encode(),
    ],
    ids=["nan", "infinity", "minus-infinity", "nan-in-array", "nan-count", "infinite-cells", "unknown-field"],
)
def test_nan_and_infinity_are_not_json(processor: Processor, raw: bytes) -> None:
    outcome = processor.process(raw, None, REF)
    assert outcome.dead_letter is not None
    assert "not_json" == outcome.dead_letter.reason.value
    assert ["NaN, Infinity and -Infinity are not JSON (RFC 8259)"] == [e.message for e in outcome.dead_letter.errors]


def test_the_word_nan_inside_a_string_is_just_text(processor: Processor) -> None:
    outcome = processor.process(json.dumps(event_dict(source_system="NaN-Infinity-gw")).encode(), None, REF)
    assert outcome.decision is not None
    assert "compliant" == outcome.decision.verdict.value


def test_an_event_behind_a_byte_order_mark_is_judged_as_without_it(processor: Processor) -> None:
    raw = json.dumps(event_dict(event_id="bom-1")).encode()
    with_bom = processor.process(UTF8_BOM + raw, None, REF)
    without = processor.process(raw, None, REF)
    assert with_bom.decision is not None
    assert without.decision is not None
    assert ("bom-1", "compliant") == (with_bom.decision.event_id, with_bom.decision.verdict.value)
    assert without.decision == with_bom.decision


def test_an_invalid_message_behind_a_byte_order_mark_keeps_its_bytes_and_its_true_reason(
    processor: Processor,
) -> None:
    raw = UTF8_BOM + json.dumps(event_dict(record_count=-1)).encode()
    outcome = processor.process(raw, None, REF)
    assert outcome.dead_letter is not None
    assert "schema_violation" == outcome.dead_letter.reason.value
    assert raw == base64.b64decode(outcome.dead_letter.value_b64)


def test_check_agrees_with_the_worker_on_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(UTF8_BOM + json.dumps(event_dict(event_id="bom-2")).encode() + b"\nNaN\n")
    register = tmp_path / "agreements.json"
    register.write_text(json.dumps([make_agreement().model_dump(mode="json")]), encoding="utf-8")
    main(["check", str(events), "--agreements", str(register)])
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [("bom-2", "compliant"), (None, "invalid")] == [(d.get("event_id"), d["verdict"]) for d in out]
    assert "not_json" == out[1]["errors"][0]["type"]
