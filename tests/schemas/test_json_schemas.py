"""The committed JSON Schemas are exactly what the models export, and they agree with the models."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from schemas import AccessEvent
from schemas.export import MODELS, json_schemas, render
from tests.factories import event_dict

JSON_DIR = Path(__file__).parents[2] / "schemas" / "json"


@pytest.mark.parametrize("stem", sorted(MODELS))
def test_committed_schema_matches_the_model(stem: str) -> None:
    committed = (JSON_DIR / f"{stem}.json").read_text(encoding="utf-8")
    assert render(json_schemas()[stem]) == committed, f"run `python -m schemas` to regenerate {stem}.json"


def test_no_stray_schema_files() -> None:
    assert sorted(p.stem for p in JSON_DIR.glob("*.json")) == sorted(MODELS)


@pytest.mark.parametrize("stem", sorted(MODELS))
def test_schema_is_valid_draft_2020_12(stem: str) -> None:
    jsonschema.Draft202012Validator.check_schema(json_schemas()[stem])


def test_a_valid_event_passes_the_json_schema() -> None:
    validator = jsonschema.Draft202012Validator(json_schemas()["access_event.v1"])
    assert list(validator.iter_errors(event_dict())) == []


@pytest.mark.parametrize(
    "bad",
    [
        event_dict(surprise="field"),
        event_dict(record_count=-1),
        event_dict(action="delete"),
        event_dict(datasets=[]),
        event_dict(schema_version="2"),
    ],
    ids=["unknown-field", "negative-count", "bad-action", "no-datasets", "wrong-version"],
)
def test_schema_and_model_both_refuse(bad: dict[str, object]) -> None:
    validator = jsonschema.Draft202012Validator(json_schemas()["access_event.v1"])
    assert list(validator.iter_errors(bad)) != []
    with pytest.raises(ValidationError):
        AccessEvent.model_validate_json(json.dumps(bad))
