"""No validator's message carries input: every custom validator of the contract, fed a sentinel value.

A message travels into dead letters' errors, `check`'s decisions, register-file errors and the worker's
log; the value may be a pupil reference sent in the wrong field. (The dead letter keeps the original
bytes on purpose; its `errors` and the log line must not repeat them.)
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from schemas import AccessEvent, Agreement, MessageRef, issues_from_validation_error
from schemas._common import Contract
from streams.exceptions import ConfigError
from streams.offline.register_file import load_agreements_file
from streams.worker.processing import Processor
from tests.factories import BASE_AGREEMENT, event_dict

SENTINEL = "UPN-K801200001015"  # shaped like a unique pupil number


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _custom_validators() -> set[str]:
    found = set()
    for model in _subclasses(Contract):
        decorators = model.__pydantic_decorators__  # type: ignore[attr-defined]
        for name in (*decorators.field_validators, *decorators.model_validators, *decorators.validators):
            found.add(f"{model.__name__}.{name}")
    return found


#: validator -> (model, a document that trips it with SENTINEL in the offending value, the loc expected)
CASES: dict[str, tuple[type[Contract], dict[str, Any], str]] = {
    "Actor._ip_address": (AccessEvent, event_dict(actor={"ip": SENTINEL}), "actor.ip"),
    "AccessEvent._no_duplicates[datasets]": (AccessEvent, event_dict(datasets=[SENTINEL, SENTINEL]), "datasets"),
    "AccessEvent._no_duplicates[fields]": (AccessEvent, event_dict(fields=["pmr", SENTINEL, SENTINEL]), "fields"),
    "AccessEvent._no_duplicates[onward_recipients]": (
        AccessEvent,
        event_dict(onward_recipients=[SENTINEL, SENTINEL]),
        "onward_recipients",
    ),
    # The period check sees dates; the sentinel is a date no other part of a message would name.
    "Agreement._valid_period": (
        Agreement,
        {**BASE_AGREEMENT, "valid_from": "2031-07-19", "valid_until": "2030-02-11"},
        "$",
    ),
}
DATE_SENTINELS = ("2031-07-19", "2030-02-11")


def _sentinels(name: str) -> tuple[str, ...]:
    return DATE_SENTINELS if name.startswith("Agreement.") else (SENTINEL,)


def test_every_custom_validator_of_the_contract_has_a_sentinel_case() -> None:
    assert {name.split("[")[0] for name in CASES} == _custom_validators()


@pytest.mark.parametrize("name", sorted(CASES))
def test_validator_message_does_not_carry_the_value(name: str) -> None:
    model, doc, loc = CASES[name]
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(json.dumps(doc))
    issues = issues_from_validation_error(info.value)
    rendered = json.dumps([i.model_dump() for i in issues])
    assert [loc] == [i.loc for i in issues]
    for sentinel in _sentinels(name):
        assert sentinel not in rendered


@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n][0] is AccessEvent))
def test_dead_letter_errors_and_log_line_do_not_carry_the_value(name: str) -> None:
    _, doc, loc = CASES[name]
    processor = Processor(_engine(), lambda _id: None, clock=lambda: dt.datetime(2026, 3, 11, tzinfo=dt.UTC))
    with structlog.testing.capture_logs() as logs:
        outcome = processor.process(json.dumps(doc).encode(), None, MessageRef(topic="t", partition=0, offset=0))
    assert outcome.dead_letter is not None
    assert [loc] == [e.loc for e in outcome.dead_letter.errors]
    assert SENTINEL not in json.dumps([e.model_dump() for e in outcome.dead_letter.errors])
    assert SENTINEL not in json.dumps(logs, default=str)


def test_register_file_error_does_not_carry_the_dates(tmp_path: Path) -> None:
    _, doc, _ = CASES["Agreement._valid_period"]
    path = tmp_path / "register.json"
    path.write_text(json.dumps([doc]), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_agreements_file(path)
    assert "valid_until is before valid_from" in str(info.value)
    for sentinel in DATE_SENTINELS:
        assert sentinel not in str(info.value)


def test_a_message_that_quotes_its_value_is_withheld_whatever_the_validator() -> None:
    from pydantic import BaseModel, field_validator

    class Quoting(BaseModel):  # not a Contract: the census of the contract's validators must not see it
        ref: str

        @field_validator("ref")
        @classmethod
        def _quote(cls, value: str) -> str:
            raise ValueError(f"{value!r} is not allowed")

    with pytest.raises(ValidationError) as info:
        Quoting.model_validate_json(json.dumps({"ref": SENTINEL}))
    issues = issues_from_validation_error(info.value)
    assert ["ref"] == [i.loc for i in issues]
    assert SENTINEL not in issues[0].message


@functools.cache
def _engine() -> Any:
    from rules import load_engine

    return load_engine()
