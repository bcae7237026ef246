"""Property-based tests without a broker: contracts round-trip, and no input makes Processor.process raise or leak."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from structlog.testing import capture_logs

from rules import WindowState, load_engine
from schemas import AccessEvent, Alert, DeadLetter, Decision, MessageRef
from streams.metrics import Metrics
from streams.offline.simulate import load_agreements
from streams.worker.processing import Outcome, Processor
from tests.factories import make_agreement
from tests.strategies import PUPIL_PREFIX, access_events, garbage, hostile_inputs, mutated_events

REF = MessageRef(topic="npd.access.v1", partition=1, offset=7)
NOW = dt.datetime(2026, 1, 2, 12, 0, tzinfo=dt.UTC)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def processor() -> Processor:
    engine = load_engine()
    register = {a.agreement_id: a for a in load_agreements()}
    metrics = Metrics(CollectorRegistry(), gateways=engine.catalogue.gateways, purposes=engine.catalogue.purposes)
    return Processor(engine, register.get, metrics, max_message_bytes=64 * 1024, clock=lambda: NOW)


def run(processor: Processor, raw: bytes | None) -> tuple[Outcome, list[dict[str, Any]]]:
    state = WindowState({})  # a fresh partition state each time: examples must not depend on each other
    with capture_logs() as logs:
        outcome = processor.process(raw, b"key", REF, state=state)
    return outcome, logs


def outputs_text(outcome: Outcome, logs: list[dict[str, Any]]) -> str:
    """Everything the worker would write about this input, except the dead letter's kept original bytes."""
    parts = [json.dumps(logs, default=str)]
    if outcome.decision is not None:
        parts.append(outcome.decision.model_dump_json())
    parts += [a.model_dump_json() for a in outcome.alerts]
    if outcome.dead_letter is not None:
        parts.append(json.dumps([i.model_dump() for i in outcome.dead_letter.errors]))
        parts.append(outcome.dead_letter.model_dump_json(exclude={"value_b64"}))
    parts += [lookup.model_dump_json() for lookup in outcome.pupil_lookups]
    return "\n".join(parts)


def exactly_one(outcome: Outcome) -> bool:
    return (outcome.decision is None) != (outcome.dead_letter is None)


def round_trips(model: BaseModel) -> bool:
    return type(model).model_validate_json(model.model_dump_json()) == model


# --- (a) JSON round-trip of every contract model ------------------------------------------------------


@FAST
@given(access_events())
def test_access_event_round_trips_through_json(doc: dict[str, Any]) -> None:
    event = AccessEvent.model_validate_json(json.dumps(doc))
    assert round_trips(event)


@FAST
@given(
    st.fixed_dictionaries(
        {
            "monthly_record_cap": st.none() | st.integers(0, 10**8),
            "per_event_record_cap": st.none() | st.integers(0, 10**8),
            "status": st.sampled_from(["approved", "suspended", "revoked", "rejected"]),
            "access_route": st.sampled_from(["srs_only", "direct_allowed"]),
            "valid_until": st.dates(dt.date(2023, 1, 1), dt.date(2035, 1, 1)).map(str),
        }
    )
)
def test_agreement_round_trips_through_json(overrides: dict[str, Any]) -> None:
    assert round_trips(make_agreement(**overrides))


def test_every_sample_agreement_round_trips_through_json() -> None:
    assert all(round_trips(a) for a in load_agreements())


@FAST
@given(access_events())
def test_decisions_and_alerts_round_trip_through_json(processor: Processor, doc: dict[str, Any]) -> None:
    outcome, _ = run(processor, json.dumps(doc).encode())
    assert outcome.decision is not None, outcome.dead_letter
    assert round_trips(outcome.decision)
    assert all(isinstance(a, Alert) and round_trips(a) for a in outcome.alerts)
    assert isinstance(outcome.decision, Decision)


@FAST
@given(garbage)
def test_dead_letters_round_trip_through_json(processor: Processor, raw: bytes) -> None:
    outcome, _ = run(processor, raw)
    if outcome.dead_letter is not None:
        assert isinstance(outcome.dead_letter, DeadLetter)
        assert round_trips(outcome.dead_letter)


# --- (b) process never raises; exactly one of decision / dead letter ------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048) | hostile_inputs())
def test_process_never_raises_and_gives_exactly_one_outcome(processor: Processor, raw: bytes) -> None:
    outcome, _ = run(processor, raw)
    assert exactly_one(outcome)
    if outcome.dead_letter is not None:
        assert outcome.dead_letter.errors, "a dead letter names why"


def test_tombstone_gives_a_dead_letter(processor: Processor) -> None:
    outcome, _ = run(processor, None)
    assert outcome.dead_letter is not None
    assert outcome.dead_letter.reason.value == "not_json"


# --- (c) no pupil reference that went in comes out -------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_events())
def test_no_pupil_reference_appears_in_any_output(processor: Processor, pair: tuple[dict[str, Any], bytes]) -> None:
    original, raw = pair
    outcome, logs = run(processor, raw)
    assert exactly_one(outcome)
    text = outputs_text(outcome, logs)
    refs = set(original.get("pupil_refs", ()))
    if outcome.event is not None:
        refs |= set(outcome.event.pupil_refs or ())
    leaked = sorted(r for r in refs if r in text)
    assert not leaked, (leaked, text[:2000])


@FAST
@given(access_events(with_pupils=True))
def test_valid_events_with_pupils_never_show_the_marker(processor: Processor, doc: dict[str, Any]) -> None:
    outcome, logs = run(processor, json.dumps(doc).encode())
    assert outcome.decision is not None
    assert PUPIL_PREFIX not in outputs_text(outcome, logs)
