"""Shared fixtures for the rule-engine tests: the engine, a compliant event and its agreement."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from rules import Engine, load_engine
from schemas import AccessEvent, Agreement


@pytest.fixture(scope="session")
def engine() -> Engine:
    return load_engine()


BASE_EVENT: dict[str, Any] = {
    "schema_version": "1",
    "event_id": "ev-0001",
    "occurred_at": "2024-03-05T10:15:00+00:00",
    "source_system": "npd-srs",
    "action": "extract",
    "actor": {"user_id": "u-ucl-17", "org_id": "uni-ucl", "country": "GB"},
    "recipient": {"org_id": "uni-ucl", "org_type": "research_academic", "ico_registration": "Z6364106"},
    "agreement_id": "AG-RES-UCL",
    "legal_gateway": "DEA2017-s64",
    "purpose": "research",
    "datasets": ["npd"],
    "fields": ["pmr", "attainment", "fsm", "gender"],
    "record_count": 250000,
    "pupil_refs": ["SECRET-PUPIL-REF-1", "SECRET-PUPIL-REF-2"],
    "channel": "srs",
}

BASE_AGREEMENT: dict[str, Any] = {
    "agreement_id": "AG-RES-UCL",
    "recipient_org_id": "uni-ucl",
    "recipient_org_type": "research_academic",
    "status": "approved",
    "approver": "dsap",
    "valid_from": "2023-01-01",
    "valid_until": "2026-12-31",
    "legal_gateways": ["DEA2017-s64", "EA1996-s537A"],
    "purposes": ["research", "statistics"],
    "fields_allowed": ["pmr", "attainment", "fsm", "gender", "ethnicity_major", "cin"],
    "datasets_allowed": ["npd", "hesa"],
    "access_route": "srs_only",
    "per_event_record_cap": 1000000,
    "dpia_ref": "DPIA-1",
    "ethics_ref": "ETH-1",
    "last_audit_at": "2024-01-15",
    "recipient_ico_registration": "Z6364106",
}


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in patch.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return {k: v for k, v in out.items() if v is not None}


def make_event(**patch: Any) -> AccessEvent:
    return AccessEvent.model_validate_json(json.dumps(_merge(BASE_EVENT, patch)))


def make_agreement(**patch: Any) -> Agreement:
    return Agreement.model_validate_json(json.dumps(_merge(BASE_AGREEMENT, patch)))


@pytest.fixture
def event_factory() -> Callable[..., AccessEvent]:
    return make_event


@pytest.fixture
def agreement_factory() -> Callable[..., Agreement]:
    return make_agreement
