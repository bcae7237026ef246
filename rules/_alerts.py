"""The one place an Alert is built: for an event's violation, for a window, for an agreement's finding.

Callers differ only in the id, the subject (an event, a window of events, an agreement) and the times;
the rule's identity, texts and the pack are copied the same way everywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from rules._index import construct
from schemas import Alert, Category, OrgType, PackRef, Severity

_FIELDS_SET = frozenset(Alert.model_fields) - {"schema_version", "inhibited_by"}


def build_alert(
    *,
    alert_id: str,
    rule_id: str,
    category: Category,
    severity: Severity,
    title: str,
    explanation: str,
    legal_basis: Any,
    runbook: str | None,
    recipient_org_id: str,
    recipient_type: OrgType | None,
    agreement_id: str | None,
    first_seen: dt.datetime,
    last_seen: dt.datetime,
    count: int,
    pack: PackRef,
    legal_gateway: str | None = None,
    purpose: str | None = None,
    event_ids: Sequence[str] = (),
    trusted: bool = False,
) -> Alert:
    """An Alert, validated unless `trusted` (every value already comes from validated models)."""
    values: dict[str, Any] = {
        "schema_version": "1",
        "alert_id": alert_id,
        "rule_id": rule_id,
        "category": category,
        "severity": severity,
        "title": title,
        "explanation": explanation,
        "legal_basis": legal_basis,
        "runbook": runbook,
        "recipient_org_id": recipient_org_id,
        "recipient_type": recipient_type,
        "agreement_id": agreement_id,
        "legal_gateway": legal_gateway,
        "purpose": purpose,
        "event_ids": tuple(event_ids),
        "first_seen": first_seen,
        "last_seen": last_seen,
        "count": count,
        "pack": pack,
        "inhibited_by": (),
    }
    if trusted:  # in declaration order, as `construct` needs
        return construct(Alert, values, _FIELDS_SET)
    return Alert(**values)
