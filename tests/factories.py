"""Builders of valid contract objects for tests: change one thing, keep the rest compliant."""

from __future__ import annotations

import copy
import json
from typing import Any

from schemas import AccessEvent, Agreement

BASE_AGREEMENT: dict[str, Any] = {
    "agreement_id": "DSA-2024-0001",
    "recipient_org_id": "uni-northbridge",
    "recipient_name": "University of Northbridge",
    "recipient_org_type": "research_academic",
    "status": "approved",
    "approver": "dsap",
    "valid_from": "2023-01-01",
    "valid_until": "2027-12-31",
    "legal_gateways": ["DEA2017-s64"],
    "purposes": ["research"],
    "fields_allowed": ["pmr", "attainment", "gender", "year_of_birth", "fsm", "la_code"],
    "datasets_allowed": ["npd"],
    "access_route": "srs_only",
    "monthly_record_cap": 2_000_000,
    "per_event_record_cap": 700_000,
    "dpia_ref": "DPIA-2023-17",
    "ethics_ref": "ETH-NB-2022-88",
    "last_audit_at": "2025-06-01",
    "audit_interval_days": 365,
    "recipient_ico_registration": "Z1234567",
}

BASE_EVENT: dict[str, Any] = {
    "schema_version": "1",
    "event_id": "evt-0001",
    "occurred_at": "2026-03-10T10:15:00+00:00",
    "source_system": "srs-gateway",
    "action": "query",
    "actor": {"user_id": "researcher-17", "org_id": "uni-northbridge", "country": "GB"},
    "recipient": {
        "org_id": "uni-northbridge",
        "name": "University of Northbridge",
        "org_type": "research_academic",
        "ico_registration": "Z1234567",
    },
    "agreement_id": "DSA-2024-0001",
    "legal_gateway": "DEA2017-s64",
    "purpose": "research",
    "datasets": ["npd"],
    "fields": ["pmr", "attainment", "gender"],
    "record_count": 5000,
    "channel": "srs",
}


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif value is ...:
            out.pop(key, None)  # `...` removes a field
        else:
            out[key] = value
    return out


def event_dict(**overrides: Any) -> dict[str, Any]:
    return _merge(BASE_EVENT, overrides)


def make_event(**overrides: Any) -> AccessEvent:
    return AccessEvent.model_validate(event_dict(**overrides), strict=False)


def make_agreement(**overrides: Any) -> Agreement:
    return Agreement.model_validate(_merge(BASE_AGREEMENT, overrides), strict=False)


# --- the rule engine's tests (tests/rules): a research extract under an approved agreement ---------------
# Kept apart from the bases above: the pack's tests pin its findings on these exact values.

RULES_BASE_EVENT: dict[str, Any] = {
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

RULES_BASE_AGREEMENT: dict[str, Any] = {
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


def _merge_dropping_none(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in patch.items():
        out[k] = _merge_dropping_none(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return {k: v for k, v in out.items() if v is not None}


def rule_event(**patch: Any) -> AccessEvent:
    """An event compliant with the npd pack (tests/rules); a None value removes the key."""
    return AccessEvent.model_validate_json(json.dumps(_merge_dropping_none(RULES_BASE_EVENT, patch)))


def rule_agreement(**patch: Any) -> Agreement:
    """The agreement `rule_event` cites; a None value removes the key."""
    return Agreement.model_validate_json(json.dumps(_merge_dropping_none(RULES_BASE_AGREEMENT, patch)))
