"""Contract models: what they accept, what they refuse, and that errors never echo input values."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from pydantic import ValidationError

from schemas import AccessEvent, Agreement, issues_from_validation_error
from tests.factories import event_dict, make_agreement, make_event


def test_event_round_trips_through_json() -> None:
    event = make_event(pupil_refs=["P0001", "P0002"], onward_recipients=["org-b"])
    assert AccessEvent.model_validate_json(event.model_dump_json()) == event


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"recod_count": 5}, "$"),  # an unknown field is reported at its parent: its name is input
        ({"occurred_at": "2026-03-10T10:15:00"}, "occurred_at"),
        ({"record_count": "5000"}, "record_count"),
        ({"record_count": 5.0}, "record_count"),
        ({"record_count": -1}, "record_count"),
        ({"actor": {"country": "gb"}}, "actor.country"),
        ({"actor": {"ip": "999.1.1.1"}}, "actor.ip"),
        ({"recipient": {"org_type": "gang"}}, "recipient.org_type"),
        ({"recipient": {"extra": 1}}, "recipient"),
        ({"fields": ["upn", "upn"]}, "fields"),
        ({"channel": "fax"}, "channel"),
        ({"pupil_refs": ["P"] * 10_001}, "pupil_refs"),
        ({"event_id": ""}, "event_id"),
        ({"evidence_attestation": "yes"}, "evidence_attestation"),
    ],
)
def test_event_refuses_bad_values(overrides: dict[str, object], loc: str) -> None:
    with pytest.raises(ValidationError) as info:
        AccessEvent.model_validate_json(json.dumps(event_dict(**overrides)))
    assert loc in {i.loc for i in issues_from_validation_error(info.value)}


def test_validation_issues_never_echo_the_input() -> None:
    secret = "PUPIL-SECRET-REF-42"
    with pytest.raises(ValidationError) as info:
        AccessEvent.model_validate_json(json.dumps(event_dict(pupil_refs=[secret + " bad"], record_count=secret)))
    rendered = json.dumps([i.model_dump() for i in issues_from_validation_error(info.value)])
    assert secret not in rendered


@pytest.mark.parametrize(
    ("where", "loc"),
    [("top", "$"), ("recipient", "recipient"), ("actor", "actor")],
)
def test_an_unknown_field_named_with_a_pupil_reference_is_reported_without_its_name(where: str, loc: str) -> None:
    name = "A123456789012"  # shaped like a UPN
    doc = event_dict()
    target = doc if where == "top" else doc[where]
    assert isinstance(target, dict)
    target[name] = 1
    with pytest.raises(ValidationError) as info:
        AccessEvent.model_validate_json(json.dumps(doc))
    issues = issues_from_validation_error(info.value)
    assert [(loc, "extra_forbidden")] == [(i.loc, i.type) for i in issues]
    assert name not in json.dumps([i.model_dump() for i in issues])
    assert f"{len(name)} characters" in issues[0].message


def test_an_unknown_field_close_to_a_contract_field_is_named_as_that_field() -> None:
    with pytest.raises(ValidationError) as info:
        AccessEvent.model_validate_json(json.dumps(event_dict(recod_count=5)))
    [issue] = issues_from_validation_error(info.value)
    assert "did you mean 'record_count'?" in issue.message
    assert "recod_count" not in issue.message + issue.loc


def test_the_contract_has_no_free_form_mapping_so_only_unknown_field_names_come_from_the_input() -> None:
    # schemas/errors.py relies on it: a dict-typed field would put its keys (input) into issue locations.
    from typing import get_origin

    from pydantic import BaseModel

    from schemas.export import MODELS

    todo: list[type[BaseModel]] = list(MODELS.values())
    mappings: list[str] = []
    while todo:
        model = todo.pop()
        for name, info in model.model_fields.items():
            stack: list[object] = [info.annotation]
            while stack:
                ann = stack.pop()
                if get_origin(ann) in (dict, Mapping) or ann is dict:
                    mappings.append(f"{model.__name__}.{name}")
                if isinstance(ann, type) and issubclass(ann, BaseModel):
                    todo.append(ann)
                stack.extend(getattr(ann, "__args__", ()))
    assert [] == mappings


def test_agreement_period_must_not_end_before_it_starts() -> None:
    with pytest.raises(ValidationError, match="before valid_from"):
        make_agreement(valid_from="2025-01-01", valid_until="2024-01-01")


@pytest.mark.parametrize(
    ("status", "day", "active"),
    [
        ("approved", "2026-03-10", True),
        ("approved", "2027-12-31", True),
        ("approved", "2028-01-01", False),
        ("approved", "2022-12-31", False),
        ("suspended", "2026-03-10", False),
        ("revoked", "2026-03-10", False),
    ],
)
def test_agreement_active_on_a_day(status: str, day: str, active: bool) -> None:
    import datetime as dt

    assert make_agreement(status=status).active_on(dt.date.fromisoformat(day)) is active


def test_agreement_round_trips_through_json() -> None:
    agreement = make_agreement()
    assert Agreement.model_validate_json(agreement.model_dump_json()) == agreement
