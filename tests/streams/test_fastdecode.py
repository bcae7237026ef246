"""The msgspec decoder agrees with the pydantic contract: it accepts only what pydantic accepts, as the same value."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import AccessEvent, AccessEventBatch, Actor, Recipient
from streams.worker import fastdecode
from streams.worker.fastdecode import decode_batch, decode_event, validate_event_json
from tests.factories import event_dict
from tests.strategies import access_events, hostile_inputs, mutated_events

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pydantic_event(raw: bytes) -> AccessEvent | None:
    try:
        return AccessEvent.model_validate_json(raw)
    except ValidationError:
        return None


def assert_same(fast: AccessEvent, slow: AccessEvent) -> None:
    assert slow == fast
    assert slow.model_dump_json() == fast.model_dump_json()
    assert slow.model_dump_json(exclude_unset=True) == fast.model_dump_json(exclude_unset=True)
    assert slow.occurred_at.utcoffset() == fast.occurred_at.utcoffset()


@FAST
@given(access_events(with_pupils=True))
def test_every_valid_event_is_accepted_by_both_paths_as_the_same_value(event: dict[str, object]) -> None:
    raw = json.dumps(event).encode()

    fast, slow = decode_event(raw), pydantic_event(raw)

    assert slow is not None
    assert fast is not None
    assert_same(fast, slow)


@FAST
@given(mutated_events())
def test_a_mutated_event_is_accepted_by_both_paths_or_rejected_by_both(pair: tuple[dict[str, object], bytes]) -> None:
    _, raw = pair

    fast, slow = decode_event(raw), pydantic_event(raw)

    if fast is None and slow is not None:
        # msgspec judges each value as it reads it, pydantic only the last of a repeated key: declining
        # is harmless (pydantic then decides), and only a repeated key may make the two differ.
        assert has_repeated_keys(raw)
    else:
        assert (slow is None) == (fast is None)
    if fast is not None and slow is not None:
        assert_same(fast, slow)


def has_repeated_keys(raw: bytes) -> bool:
    repeated = False

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        nonlocal repeated
        repeated = repeated or len({k for k, _ in items}) < len(items)
        return dict(items)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except ValueError:
        return False
    return repeated


def test_a_repeated_key_whose_first_value_is_invalid_is_declined_by_the_fast_path_and_decided_by_pydantic() -> None:
    raw = json.dumps(event_dict()).encode().replace(b'"org_type": "', b'"org_type": "nonsense", "org_type": "', 1)

    assert has_repeated_keys(raw)
    assert decode_event(raw) is None
    assert pydantic_event(raw) is not None  # the last value wins, as in every JSON reader the project uses


@FAST
@given(hostile_inputs())
def test_the_fast_path_never_accepts_what_pydantic_rejects(raw: bytes) -> None:
    fast, slow = decode_event(raw), pydantic_event(raw)

    if fast is not None:
        assert slow is not None
        assert_same(fast, slow)


@FAST
@given(st.lists(access_events(with_pupils=True), min_size=1, max_size=5))
def test_a_batch_decodes_to_the_same_events_on_both_paths(events: list[dict[str, object]]) -> None:
    raw = json.dumps({"schema_version": "1", "events": events}).encode()

    fast = decode_batch(raw)

    assert fast is not None
    assert AccessEventBatch.model_validate_json(raw) == fast


@FAST
@given(access_events(with_pupils=True))
def test_a_decision_built_from_either_decoding_serialises_to_the_same_bytes(event: dict[str, object]) -> None:
    from rules import load_engine

    raw = json.dumps(event).encode()
    fast, slow = decode_event(raw), AccessEvent.model_validate_json(raw)
    assert fast is not None
    engine = load_engine()
    at = slow.occurred_at

    by_fast = engine.evaluate(fast, None, evaluated_at=at).model_dump_json()
    by_slow = engine.evaluate(slow, None, evaluated_at=at).model_dump_json()

    assert by_slow == by_fast


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        ({"event_id": "E-1\n"}, "Python's $ matches before a final newline; the contract's pattern does not"),
        ({"occurred_at": "2025-03-01 10:00:00+00:00"}, "a space for the T: read by pydantic, left to it here"),
        ({"occurred_at": "2025-03-01T10:00:00"}, "no offset: not an aware time"),
        ({"occurred_at": "2025-03-01T10:00:00.1234567Z"}, "more than microseconds"),
        ({"occurred_at": "\u0662025-03-01T10:00:00Z"}, "a digit of another script"),
        ({"occurred_at": "2025-02-30T10:00:00Z"}, "no such day"),
        ({"actor": {"user_id": "u1", "org_id": "DFE", "ip": "10.0.0.256"}}, "not an IP address"),
        ({"actor": {"user_id": "u1", "org_id": "DFE", "country": "gb"}}, "a lower-case country code"),
        ({"pupil_refs": ["P-1", "P 2"]}, "a space in a pupil reference"),
        ({"fields": ["upn", "upn"]}, "a repeated field code"),
        ({"record_count": True}, "a boolean is not a count"),
        ({"record_count": 1.0}, "a float is not a count"),
    ],
)
def test_edge_inputs_are_judged_as_pydantic_judges_them(edit: dict[str, object], why: str) -> None:
    event = {**_valid(), **edit}
    raw = json.dumps(event).encode()

    slow = pydantic_event(raw)
    fast = decode_event(raw)

    if fast is not None:  # the fast path may decline; it must never accept what pydantic rejects
        assert slow is not None, why
        assert_same(fast, slow)


def test_an_unaccepted_event_gets_exactly_pydantics_error() -> None:
    raw = json.dumps({**_valid(), "record_count": -1}).encode()

    with pytest.raises(ValidationError) as fast_path:
        validate_event_json(raw)
    with pytest.raises(ValidationError) as contract:
        AccessEvent.model_validate_json(raw)

    assert contract.value.errors() == fast_path.value.errors()


def test_the_structs_declare_the_models_fields_in_their_order() -> None:
    pairs = [(AccessEvent, fastdecode._Event), (Actor, fastdecode._Actor), (Recipient, fastdecode._Recipient)]

    assert [tuple(m.model_fields) for m, _ in pairs] == [s.__struct_fields__ for _, s in pairs]
    assert ["schema_version", "events"] == list(AccessEventBatch.model_fields)


def test_the_models_have_only_the_validators_the_fast_path_repeats() -> None:
    # A validator added to the contract must be repeated in streams/worker/fastdecode.py (_check), then listed here.
    def validators(model: type) -> set[str]:
        decorators = model.__pydantic_decorators__  # type: ignore[attr-defined]
        return {*decorators.field_validators, *decorators.model_validators}

    assert [{"_no_duplicates"}, {"_ip_address"}, set(), set()] == [
        validators(AccessEvent),
        validators(Actor),
        validators(Recipient),
        validators(AccessEventBatch),
    ]


def _valid() -> dict[str, object]:
    return {
        "schema_version": "1",
        "event_id": "E-1",
        "occurred_at": "2025-03-01T10:00:00+01:00",
        "source_system": "npd-extract",
        "action": "extract",
        "actor": {"user_id": "u1", "org_id": "DFE", "ip": "10.0.0.1"},
        "recipient": {"org_id": "ORG-1", "org_type": "research_academic"},
        "datasets": ["npd"],
        "fields": ["upn"],
        "record_count": 10,
        "channel": "sftp",
    }


def test_the_sample_event_of_the_edge_cases_is_accepted_by_both_paths() -> None:
    raw = json.dumps(_valid()).encode()

    fast = decode_event(raw)

    assert fast is not None
    assert_same(fast, AccessEvent.model_validate_json(raw))


@pytest.mark.parametrize("zone", ["+00:80", "-0560", "+01:60"])
def test_an_offset_with_minutes_past_59_is_refused_by_both_paths(zone: str) -> None:
    raw = json.dumps(event_dict(occurred_at=f"2015-01-01T00:00:00{zone}")).encode()  # Hypothesis found +00:80

    assert (None, None) == (decode_event(raw), pydantic_event(raw))
    valid = json.dumps(event_dict(occurred_at="2015-01-01T00:00:00+01:59")).encode()
    assert None not in (decode_event(valid), pydantic_event(valid))
