"""AgreementDecision v1: the judgement of one agreement as it entered the register (npd.agreement-decisions.v1).

A topic and a model of their own rather than a `subject` on Decision: a Decision is about one access
event (its time, action, record count) and every consumer of npd.decisions.v1 counts events; an
approval is judged when an agreement is added or changed, before any event cites it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Literal

import orjson
from pydantic import AwareDatetime, Field

from schemas._common import MAX_LIST, Contract, Identifier
from schemas.agreement import Agreement
from schemas.decision import Issue, LedgerLink, MessageRef, PackRef, Violation
from schemas.vocab import AgreementStatus, Approver, OrgType, Verdict

__all__ = ["AgreementDecision", "agreement_sha256"]


def agreement_sha256(agreement: Agreement) -> str:
    """sha256 hex of the agreement's canonical JSON (keys sorted, no spaces, `exclude_none`): its content.

    The same agreement published twice, whatever the spacing or key order of the record, has one hash;
    any change to a value gives another.
    """
    doc = agreement.model_dump(mode="json", exclude_none=True)
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


class AgreementDecision(Contract):
    """The approval rules' verdict on one version of one agreement: compliant or violation, with findings.

    `agreement_sha256` names the version judged (see `agreement_sha256`); `judged_on` is the UK date the
    time-dependent rules (overdue audit, unconfirmed destruction) were judged at. `ledger` is the
    decision's place in the hash chain of npd.agreement-decisions.v1 (schemas/ledger.py).
    """

    schema_version: Literal["1"] = "1"
    agreement_id: Identifier
    agreement_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    evaluated_at: AwareDatetime
    judged_on: dt.date
    verdict: Literal[Verdict.COMPLIANT, Verdict.VIOLATION]
    violations: tuple[Violation, ...] = Field(default=(), max_length=MAX_LIST)
    errors: tuple[Issue, ...] = Field(default=(), max_length=MAX_LIST)
    pack: PackRef
    status: AgreementStatus
    approver: Approver
    recipient_org_id: Identifier
    recipient_type: OrgType | None = None
    valid_from: dt.date
    valid_until: dt.date
    source: MessageRef | None = None
    ledger: LedgerLink | None = None
