"""Gatewatch contracts: access events, agreements, decisions, agreement decisions, alerts and dead letters (v1).

Pure pydantic models; no I/O. `python -m schemas` regenerates the JSON Schemas in schemas/json/.
"""

from schemas.agreement import Agreement
from schemas.agreement_decision import AgreementDecision, agreement_sha256
from schemas.decision import Alert, DeadLetter, Decision, Issue, MessageRef, PackRef, Violation
from schemas.errors import issues_from_validation_error
from schemas.event import MAX_BATCH_EVENTS, AccessEvent, AccessEventBatch, Actor, Recipient
from schemas.export import MODELS, json_schemas
from schemas.vocab import (
    AccessRoute,
    Action,
    AgreementStatus,
    Approver,
    Category,
    Channel,
    DeadLetterReason,
    OrgType,
    Severity,
    Verdict,
)

__all__ = [
    "MAX_BATCH_EVENTS",
    "MODELS",
    "AccessEvent",
    "AccessEventBatch",
    "AccessRoute",
    "Action",
    "Actor",
    "Agreement",
    "AgreementDecision",
    "AgreementStatus",
    "Alert",
    "Approver",
    "Category",
    "Channel",
    "DeadLetter",
    "DeadLetterReason",
    "Decision",
    "Issue",
    "MessageRef",
    "OrgType",
    "PackRef",
    "Recipient",
    "Severity",
    "Verdict",
    "Violation",
    "agreement_sha256",
    "issues_from_validation_error",
    "json_schemas",
]
