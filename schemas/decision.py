"""Decision, Alert and DeadLetter v1: what Gatewatch writes for every event it consumes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, Field, SerializerFunctionWrapHandler, model_serializer

from schemas._common import MAX_LIST, Code, Contract, Identifier, LongText, ShortText
from schemas.vocab import Action, Category, DeadLetterReason, OrgType, Severity, Verdict

__all__ = [
    "Alert",
    "DeadLetter",
    "Decision",
    "Inhibitor",
    "Issue",
    "LedgerLink",
    "MessageRef",
    "PackRef",
    "Violation",
]

Sha256 = Field(pattern=r"^[0-9a-f]{64}$")


class PackRef(Contract):
    """The rule pack that produced a decision or alert."""

    name: ShortText
    version: ShortText
    sha256: str = Sha256


class MessageRef(Contract):
    """Where a consumed message came from."""

    topic: ShortText
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    index: int | None = Field(default=None, ge=0, description="Position of the event inside a batch message")


class Violation(Contract):
    """One rule that fired, with an explanation naming what was expected and what was seen."""

    rule_id: Identifier
    category: Category
    severity: Severity
    title: ShortText
    explanation: LongText
    legal_basis: LongText


class Issue(Contract):
    """A validation or engine problem, located by a path into the input. Never echoes input values."""

    loc: str = Field(max_length=512)
    message: LongText
    type: ShortText


class LedgerLink(Contract):
    """A decision's place in the tamper-evident chain of its decisions partition.

    `hash` is the sha256 of the decision's canonical JSON with `ledger.hash` left out (see
    schemas/ledger.py); `prev_hash` is the previous decision's `hash` in the same partition (64 zeros
    for the first). Removing, altering or reordering a decision breaks the chain at that point.
    """

    partition: int = Field(ge=0)
    seq: int = Field(ge=0)
    prev_hash: str = Sha256
    hash: str = Sha256


class Decision(Contract):
    """The recorded outcome for one event: compliant, violation (with violations) or invalid."""

    schema_version: Literal["1"] = "1"
    event_id: Identifier | None
    evaluated_at: AwareDatetime
    verdict: Verdict
    violations: tuple[Violation, ...] = Field(default=(), max_length=MAX_LIST)
    errors: tuple[Issue, ...] = Field(default=(), max_length=MAX_LIST)
    pack: PackRef
    occurred_at: AwareDatetime | None = None
    action: Action | None = None
    recipient_org_id: Identifier | None = None
    recipient_type: OrgType | None = None
    agreement_id: Identifier | None = None
    legal_gateway: Code | None = None
    purpose: Code | None = None
    record_count: int | None = Field(default=None, ge=0)
    source: MessageRef | None = None
    ledger: LedgerLink | None = None


class Inhibitor(Contract):
    """An alert that inhibited another: its id and the rule that raised it."""

    alert_id: str = Sha256
    rule_id: Identifier


class Alert(Contract):
    """A violation raised for people: routed to Alertmanager and pagers, shown on dashboards.

    `alert_id` is deterministic (the same violation replayed gives the same id) so that downstream
    sinks de-duplicate re-deliveries instead of paging twice. `inhibited_by` is empty unless the rule
    pack's `inhibit:` list matched a greater alert on the same event: such an alert stays on the alerts
    topic, but the sinks do not page it. The key is left out of the JSON when empty, so an alert that
    nothing inhibited reads exactly as before it existed.
    """

    schema_version: Literal["1"] = "1"
    alert_id: str = Sha256
    rule_id: Identifier
    category: Category
    severity: Severity
    title: ShortText
    explanation: LongText
    legal_basis: LongText
    runbook: LongText | None = None
    recipient_org_id: Identifier | None = None
    recipient_type: OrgType | None = None
    agreement_id: Identifier | None = None
    legal_gateway: Code | None = None
    purpose: Code | None = None
    event_ids: tuple[Identifier, ...] = Field(default=(), max_length=MAX_LIST)
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    count: int = Field(default=1, ge=1)
    pack: PackRef
    inhibited_by: tuple[Inhibitor, ...] = Field(
        default=(),
        max_length=MAX_LIST,
        description="The alerts that inhibited this one (the pack's inhibit list); empty or absent: page it",
    )

    @model_serializer(mode="wrap")
    def _omit_empty_inhibited_by(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and not data.get("inhibited_by", True):
            del data["inhibited_by"]
        return data


class DeadLetter(Contract):
    """A consumed message that could not be evaluated, kept byte for byte with the reason.

    A dead letter always fits the output topic's size limit: when the original would not, `value_b64`
    holds its first bytes only, `truncated` is true, and `value_length` and `value_sha256` describe the
    whole original (find it again on the source topic at `source`).
    """

    schema_version: Literal["1"] = "1"
    source: MessageRef
    key_b64: str | None = Field(default=None, description="Original key, base64")
    value_b64: str = Field(description="Original value bytes, base64 (the first bytes only when `truncated`)")
    truncated: bool = Field(default=False, description="True when value_b64 holds only the start of the original")
    value_length: int | None = Field(default=None, ge=0, description="Length in bytes of the whole original value")
    value_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="sha256 of the whole original value"
    )
    reason: DeadLetterReason
    errors: tuple[Issue, ...] = Field(default=(), max_length=MAX_LIST)
    received_at: AwareDatetime
