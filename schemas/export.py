"""JSON Schema export of the contract models, for producers written in other languages."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from schemas.agreement import Agreement
from schemas.agreement_decision import AgreementDecision
from schemas.decision import Alert, DeadLetter, Decision
from schemas.event import AccessEvent, AccessEventBatch

__all__ = ["MODELS", "json_schemas", "render"]

#: file stem -> model; the stem is the file name under schemas/json/ (e.g. access_event.v1.json).
MODELS: dict[str, type[BaseModel]] = {
    "access_event.v1": AccessEvent,
    "access_event_batch.v1": AccessEventBatch,
    "agreement.v1": Agreement,
    "decision.v1": Decision,
    "agreement_decision.v1": AgreementDecision,
    "alert.v1": Alert,
    "dead_letter.v1": DeadLetter,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema (draft 2020-12) of every contract model, keyed by file stem."""
    out: dict[str, dict[str, Any]] = {}
    for stem, model in MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://gatewatch.invalid/schemas/{stem}.json"
        out[stem] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    """Stable text form of a schema, as committed under schemas/json/."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
