"""Builders of valid contract objects for tests: change one thing, keep the rest compliant."""

from __future__ import annotations

import copy
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
