"""Hostile input on the live worker: every malformed class is dead-lettered with its reason, counted, survived."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.cli.runner import WorkerProcess
from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests.conftest import isolated_settings
from tests.factories import event_dict, make_agreement
from tests.reliability.support import Accounts, Tail, metric_samples

pytestmark = pytest.mark.integration

MAX_BYTES = 256 * 1024


def doc(**overrides: object) -> bytes:
    return json.dumps(event_dict(**overrides)).encode()


# (case, value, expected reason); each event_id is unique so a dead letter can be matched to its case.
CASES: list[tuple[str, bytes | None, str]] = [
    ("not_json", b"{not json", "not_json"),
    ("invalid_utf8", b'{"event_id": "bad-\xff\xfe"}', "not_utf8"),
    ("binary", b"\xff\xfe\x00binary", "not_utf8"),
    ("wrong_type", doc(event_id="h-wrong-type", record_count="5000"), "schema_violation"),
    ("unknown_field", doc(event_id="h-unknown", recod_count=5), "schema_violation"),
    ("missing_field", doc(event_id="h-missing", recipient=...), "schema_violation"),
    ("negative_count", doc(event_id="h-negative", record_count=-1), "schema_violation"),
    ("absurd_count", doc(event_id="h-absurd-count", record_count=10**30), "schema_violation"),
    ("too_many_pupils", doc(event_id="h-pupils", pupil_refs=[f"P{i}" for i in range(10_001)]), "schema_violation"),
    ("over_max_bytes", doc(event_id="h-large", source_system="x" * (MAX_BYTES + 1)), "too_large"),
    ("two_megabytes", doc(event_id="h-2mb", source_system="x" * 2 * 1024 * 1024), "too_large"),
    ("deep_nesting", b"[" * 100_000, "too_deep"),
    ("deep_nesting_in_object", b'{"event_id": "h-deep", "fields": ' + b"[" * 50_000, "too_deep"),
    ("far_future", doc(event_id="h-future", occurred_at="2999-01-01T00:00:00+00:00"), "future_timestamp"),
    ("naive_timestamp", doc(event_id="h-naive", occurred_at="2026-03-10T10:15:00"), "schema_violation"),
    ("wrong_schema_version", doc(event_id="h-v2", schema_version="2"), "unsupported_version"),
    ("json_array", b"[1, 2, 3]", "not_an_object"),
    ("json_string", b'"an event"', "not_an_object"),
    ("json_null", b"null", "not_an_object"),
    ("json_nan", b"NaN", "not_json"),  # RFC 8259: NaN and Infinity are not JSON, whatever parsers accept
    ("nan_in_event", doc(event_id="h-nan", record_count=float("nan")), "not_json"),
    ("empty_value", b"", "not_json"),
    ("tombstone", None, "not_json"),
]
VALID_AFTER = event_dict(event_id="h-valid-after")


@pytest.fixture(scope="module")
def hostile_run(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Accounts, str]]:
    data = tmp_path_factory.mktemp("hostile")
    # Dead letters are bounded by the producer's batch size, set here to the input limit: every dead
    # letter must then fit a topic whose max.message.bytes is GATEWATCH_MAX_MESSAGE_BYTES.
    settings = isolated_settings(broker, data, max_message_bytes=MAX_BYTES, producer_batch_bytes=MAX_BYTES)
    ensure_topics(settings)
    worker = WorkerProcess(settings, log_file=Path(data) / "worker.log").start()
    try:
        with Publisher(settings, max_request_size=4 * 1024 * 1024) as pub:
            pub.publish_agreements([make_agreement()])
            worker.wait_ready(1, timeout=120)
            # one key per case, so each case lands in a known place and a poison message cannot hide behind another
            for case, value, _ in CASES:
                pub.publish_raw(value, key=case.encode())
            pub.flush()
            pub.publish_event(VALID_AFTER)
        accounts = Accounts(settings)
        t = settings.topics
        with Tail(settings, [t.decisions, t.deadletter]) as tail:
            accounts.wait_for(tail, {"h-valid-after"}, timeout=120, dead=len(CASES))
        alive = worker.proc is not None and worker.proc.poll() is None
        yield settings, accounts, worker.metrics_text() if alive else ""
    finally:
        worker.stop()


def test_the_worker_survives_and_decides_the_next_valid_event(hostile_run: tuple[Settings, Accounts, str]) -> None:
    _, accounts, metrics = hostile_run
    assert metrics, "the worker died"
    assert accounts.decisions["h-valid-after"] == 1


@pytest.mark.parametrize(("case", "value", "reason"), CASES, ids=[c[0] for c in CASES])
def test_each_malformed_message_becomes_one_dead_letter_with_its_reason(
    hostile_run: tuple[Settings, Accounts, str], case: str, value: bytes | None, reason: str
) -> None:
    settings, accounts, _ = hostile_run
    mine = [d for d in accounts.dead_letters if d.get("key_b64") == base64.b64encode(case.encode()).decode()]
    assert [d["reason"] for d in mine] == [reason]
    kept = base64.b64decode(mine[0]["value_b64"])
    if mine[0].get("truncated"):  # too big to keep whole: its start, its length and its sha256
        assert (value or b"")[: len(kept)] == kept
        assert [len(value or b""), hashlib.sha256(value or b"").hexdigest()] == [
            mine[0]["value_length"],
            mine[0]["value_sha256"],
        ]
    else:
        assert kept == (value or b"")
    assert mine[0]["source"]["topic"] == settings.topics.access
    assert mine[0]["errors"], "a dead letter says why"


def test_every_dead_letter_fits_the_message_size_limit(hostile_run: tuple[Settings, Accounts, str]) -> None:
    _, accounts, _ = hostile_run
    sizes = {d["source"]["offset"]: len(json.dumps(d, separators=(",", ":"))) for d in accounts.dead_letters}
    assert {} == {offset: size for offset, size in sizes.items() if size > MAX_BYTES}
    too_large = [d for d in accounts.dead_letters if d["reason"] == "too_large"]
    assert [True, True] == [d.get("truncated", False) for d in too_large]


def test_dead_letter_counter_matches_the_dead_letters(hostile_run: tuple[Settings, Accounts, str]) -> None:
    _, accounts, metrics = hostile_run
    samples = metric_samples(metrics)
    expected = Counter(reason for _, _, reason in CASES)
    counted = {
        reason: samples.get(f'gatewatch_dead_letters_total{{reason="{reason}",topic="access"}}', 0.0)
        for reason in expected
    }
    assert {r: float(n) for r, n in expected.items()} == counted
    assert Counter(d["reason"] for d in accounts.dead_letters) == expected
