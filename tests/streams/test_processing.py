"""Processor: every consumed message becomes exactly one decision or one dead letter, with metrics."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from rules import Engine, load_engine
from schemas import Agreement, MessageRef
from streams.metrics import Metrics
from streams.worker.processing import AgreementCache, Processor
from tests.factories import event_dict, make_agreement

REF = MessageRef(topic="npd.access.v1", partition=2, offset=41)
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return load_engine()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def processor(engine: Engine, registry: CollectorRegistry) -> Processor:
    agreement = make_agreement()
    register: dict[str, Agreement] = {agreement.agreement_id: agreement}
    metrics = Metrics(registry, gateways=engine.catalogue.gateways, purposes=engine.catalogue.purposes)
    return Processor(engine, register.get, metrics, max_message_bytes=64 * 1024, clock=lambda: NOW)


def encode(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_compliant_event_gets_a_compliant_decision_and_no_alert(
    processor: Processor, registry: CollectorRegistry
) -> None:
    outcome = processor.process(encode(event_dict()), b"uni-northbridge", REF)
    assert outcome.dead_letter is None
    assert outcome.decision is not None
    assert outcome.decision.verdict.value == "compliant"
    assert outcome.decision.source == REF
    assert outcome.alerts == []
    assert registry.get_sample_value("gatewatch_decisions_total", {"verdict": "compliant"}) == 1.0
    labels = {"recipient_type": "research_academic", "gateway": "DEA2017-s64", "purpose": "research", "tier": "4"}
    assert registry.get_sample_value("gatewatch_records_disclosed_total", labels) == 5000.0


def test_violation_gets_alerts_and_one_log_line_per_violation(processor: Processor) -> None:
    with capture_logs() as logs:
        outcome = processor.process(encode(event_dict(fields=["pmr", "nationality"])), None, REF)
    assert outcome.decision is not None
    assert outcome.decision.verdict.value == "violation"
    categories = {v.category.value for v in outcome.decision.violations}
    assert "prohibited_field" in categories
    assert {a.category.value for a in outcome.alerts} == categories
    lines = [entry for entry in logs if entry["event"] == "violation"]
    assert len(lines) == len(outcome.decision.violations)
    assert all(entry["event_id"] == "evt-0001" for entry in lines)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not_json"),
        (b"\xff\xfe\x00\x01", "not_utf8"),
        (b"[1, 2]", "not_an_object"),
        (b"", "not_json"),
        (b"[" * 5000 + b"]" * 5000, "too_deep"),
        (encode(event_dict(schema_version="2")), "unsupported_version"),
        (encode(event_dict(record_count=-3)), "schema_violation"),
        (encode(event_dict(extra_field=True)), "schema_violation"),
        (encode(event_dict(occurred_at="2026-03-11T12:00:00+00:00")), "future_timestamp"),
        (b'{"pad": "' + b"x" * 70_000 + b'"}', "too_large"),
    ],
    ids=["not-json", "not-utf8", "array", "empty", "deep", "version", "negative", "unknown-field", "future", "large"],
)
def test_bad_input_becomes_a_dead_letter_with_its_reason(
    processor: Processor, registry: CollectorRegistry, raw: bytes, reason: str
) -> None:
    outcome = processor.process(raw, b"k", REF)
    assert outcome.decision is None
    assert outcome.dead_letter is not None
    assert outcome.dead_letter.reason.value == reason
    assert base64.b64decode(outcome.dead_letter.value_b64) == raw
    assert outcome.dead_letter.source == REF
    assert registry.get_sample_value("gatewatch_dead_letters_total", {"topic": "access", "reason": reason}) == 1.0


def test_dead_letter_reasons_never_echo_pupil_references(processor: Processor) -> None:
    secret = "PSECRET00042"
    raw = encode(event_dict(pupil_refs=[secret, secret + " with space"], record_count=-1))
    with capture_logs() as logs:
        outcome = processor.process(raw, None, REF)
    assert outcome.dead_letter is not None
    assert secret not in json.dumps([e.model_dump() for e in outcome.dead_letter.errors])
    assert secret not in json.dumps(logs, default=str)


def test_pupil_references_never_reach_decisions_or_alerts(processor: Processor) -> None:
    secret = "PSECRET00077"
    raw = encode(event_dict(pupil_refs=[secret], fields=["pmr", "nationality"]))
    with capture_logs() as logs:
        outcome = processor.process(raw, None, REF)
    assert outcome.decision is not None
    assert secret not in outcome.decision.model_dump_json()
    assert all(secret not in a.model_dump_json() for a in outcome.alerts)
    assert secret not in json.dumps(logs, default=str)


def test_unknown_gateway_codes_become_other_in_metric_labels(processor: Processor, registry: CollectorRegistry) -> None:
    processor.process(encode(event_dict(legal_gateway="MADE-UP-99")), None, REF)
    assert (
        registry.get_sample_value(
            "gatewatch_events_total",
            {
                "action": "query",
                "recipient_type": "research_academic",
                "gateway": "other",
                "purpose": "research",
                "verdict": "violation",
            },
        )
        == 1.0
    )


def test_agreement_cache_reparses_only_when_the_register_entry_changes() -> None:
    agreement = make_agreement()
    source = {agreement.agreement_id: agreement.model_dump_json()}
    cache = AgreementCache(source)
    first = cache(agreement.agreement_id)
    assert first == agreement
    assert cache(agreement.agreement_id) is first
    source[agreement.agreement_id] = make_agreement(status="suspended").model_dump_json()
    assert cache(agreement.agreement_id).status.value == "suspended"  # type: ignore[union-attr]
    assert cache("unknown") is None


def batch(*events: dict[str, object]) -> bytes:
    return json.dumps({"schema_version": "1", "events": list(events)}).encode()


def test_a_batch_gives_one_decision_per_event_with_its_index(processor: Processor) -> None:
    outcomes = processor.process_message(
        batch(event_dict(event_id="b1"), event_dict(event_id="b2", fields=["pmr", "nationality"])), b"k", REF
    )
    assert [o.decision.event_id for o in outcomes if o.decision] == ["b1", "b2"]
    assert [o.decision.source.index for o in outcomes if o.decision and o.decision.source] == [0, 1]
    assert [o.decision.verdict.value for o in outcomes if o.decision] == ["compliant", "violation"]


def test_an_invalid_event_in_a_batch_is_dead_lettered_alone(processor: Processor) -> None:
    outcomes = processor.process_message(
        batch(event_dict(event_id="b1"), event_dict(event_id="b2", record_count=-1), event_dict(event_id="b3")),
        b"k",
        REF,
    )
    assert [o.decision.event_id if o.decision else "dead" for o in outcomes] == ["b1", "dead", "b3"]
    dead = outcomes[1].dead_letter
    assert dead is not None
    assert dead.source.index == 1
    assert json.loads(base64.b64decode(dead.value_b64))["event_id"] == "b2"


def test_a_batch_mixing_recipients_is_refused_whole(processor: Processor) -> None:
    other = event_dict(event_id="b2", recipient={"org_id": "someone-else"})
    [outcome] = processor.process_message(batch(event_dict(event_id="b1"), other), b"k", REF)
    assert outcome.dead_letter is not None
    assert outcome.dead_letter.errors[0].type == "mixed_recipients"


def test_a_single_event_mentioning_events_is_still_a_single_event(processor: Processor) -> None:
    [outcome] = processor.process_message(encode(event_dict(source_system="events")), b"k", REF)
    assert outcome.decision is not None
    assert outcome.decision.verdict.value == "compliant"
