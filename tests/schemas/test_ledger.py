"""The decision ledger: every alteration, removal and reordering is caught at the right place."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules import load_engine
from schemas import Decision, Verdict
from schemas.ledger import GENESIS, LedgerState, canonical_hash, canonical_json, link, link_json, verify_partition
from streams.offline.audit import verify_export
from tests.factories import make_agreement, make_event


def chain(n: int, partition: int = 0) -> list[bytes]:
    engine = load_engine()
    state = LedgerState()
    out = []
    for i in range(n):
        event = make_event(event_id=f"led-{i}", record_count=100 + i)
        decision = engine.evaluate(event, make_agreement(), evaluated_at=dt.datetime(2026, 3, 10, tzinfo=dt.UTC))
        linked, state = link(decision, partition, state)
        out.append(linked.model_dump_json(exclude_none=True).encode())
    return out


def records(raw: list[bytes]) -> list[tuple[int, bytes]]:
    return list(enumerate(raw))


def test_an_untouched_chain_verifies() -> None:
    report = verify_partition(0, records(chain(6)))
    assert report.ok
    assert report.records == 6


def test_the_first_link_starts_from_genesis_and_hashes_are_reproducible() -> None:
    first = Decision.model_validate_json(chain(1)[0])
    assert first.ledger is not None
    assert first.ledger.prev_hash == GENESIS
    assert canonical_hash(first) == first.ledger.hash


def test_the_wire_link_the_worker_uses_gives_the_same_chain_as_link() -> None:
    engine = load_engine()
    by_model, by_wire = LedgerState(), LedgerState()
    for i in range(4):
        event = make_event(event_id=f"wire-{i}", record_count=10 + i, purpose="marketing" if i % 2 else "research")
        decision = engine.evaluate(event, make_agreement(), evaluated_at=dt.datetime(2026, 3, 10, tzinfo=dt.UTC))
        linked, by_model = link(decision, 3, by_model)
        wire, by_wire = link_json(decision, 3, by_wire)
        assert by_wire == by_model
        assert Decision.model_validate_json(wire) == linked
        keys = list(json.loads(wire))
        assert keys == sorted(keys)  # the canonical text with the hash spliced in, not a second dump


# What a Decision can hold once dumped in JSON mode: text (any code point but lone surrogates, which
# UTF-8 cannot carry), integers, booleans, lists and objects.
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(_text, _json_values, max_size=6))
def test_the_canonical_text_is_what_a_verifier_in_any_language_gets_from_sorted_compact_json(doc: dict) -> None:
    expected = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert canonical_json(doc) == expected


def test_an_altered_decision_is_caught_at_its_offset() -> None:
    raw = chain(5)
    doc = json.loads(raw[2])
    doc["verdict"] = "violation"  # someone rewrites history
    raw[2] = json.dumps(doc).encode()
    report = verify_partition(0, records(raw))
    assert [(b.offset, b.kind) for b in report.breaks] == [(2, "altered")]


def test_a_removed_decision_is_a_gap_at_the_next_offset() -> None:
    raw = chain(5)
    del raw[2]
    report = verify_partition(0, records(raw))
    assert [(b.offset, b.kind) for b in report.breaks] == [(2, "gap")]


def test_swapped_decisions_are_reported_as_reordered() -> None:
    raw = chain(5)
    raw[1], raw[3] = raw[3], raw[1]
    report = verify_partition(0, records(raw))
    assert report.breaks[0].offset == 1
    assert {b.kind for b in report.breaks} >= {"gap", "reordered"}


def test_a_forged_decision_with_a_valid_own_hash_breaks_the_link() -> None:
    raw = chain(4)
    forged = Decision.model_validate_json(raw[2])
    assert forged.ledger is not None
    relinked, _ = link(
        forged.model_copy(update={"verdict": Verdict.COMPLIANT, "violations": ()}),
        0,
        LedgerState(seq=forged.ledger.seq, last_hash="f" * 64),
    )
    raw[2] = relinked.model_dump_json(exclude_none=True).encode()
    report = verify_partition(0, records(raw))
    assert [(b.offset, b.kind) for b in report.breaks] == [(2, "relinked"), (3, "relinked")]


@pytest.mark.parametrize("bad", [b"{oops", b'{"schema_version": "1"}'])
def test_garbage_in_the_topic_is_reported_not_skipped(bad: bytes) -> None:
    raw = chain(3)
    raw.insert(1, bad)
    report = verify_partition(0, records(raw))
    assert report.breaks[0].offset == 1
    assert report.breaks[0].kind == "invalid"


def test_an_export_is_verified_per_partition_with_line_numbers() -> None:
    a, b = chain(3, partition=0), chain(3, partition=1)
    lines = [a[0], b[0], a[1], b[1], b[2], a[2]]
    assert all(r.ok for r in verify_export(lines))
    lines[4] = lines[4].replace(b'"record_count":102', b'"record_count":999')
    reports = {r.partition: r for r in verify_export(lines)}
    assert reports[0].ok
    assert [(x.offset, x.kind) for x in reports[1].breaks] == [(5, "altered")]
