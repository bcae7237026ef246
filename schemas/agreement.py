"""Agreement v1: one data sharing agreement in the register published on npd.agreements.v1."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, model_validator

from schemas._common import MAX_LIST, Code, Contract, Identifier, ShortText
from schemas.vocab import AccessRoute, AgreementStatus, Approver, OrgType

__all__ = ["Agreement"]


class Agreement(Contract):
    """A data sharing agreement: who may receive what, under which gateways and purposes, until when."""

    schema_version: Literal["1"] = "1"
    agreement_id: Identifier
    recipient_org_id: Identifier
    recipient_name: ShortText | None = None
    recipient_org_type: OrgType | None = None
    status: AgreementStatus
    approver: Approver
    valid_from: dt.date
    valid_until: dt.date = Field(description="Last day the agreement is valid (inclusive)")
    legal_gateways: tuple[Code, ...] = Field(max_length=MAX_LIST)
    purposes: tuple[Code, ...] = Field(max_length=MAX_LIST)
    fields_allowed: tuple[Code, ...] = Field(max_length=MAX_LIST)
    datasets_allowed: tuple[Code, ...] = Field(max_length=MAX_LIST)
    access_route: AccessRoute
    monthly_record_cap: int | None = Field(default=None, ge=0)
    per_event_record_cap: int | None = Field(default=None, ge=0)
    onward_recipients_allowed: tuple[Identifier, ...] = Field(default=(), max_length=MAX_LIST)
    dpia_ref: ShortText | None = None
    ethics_ref: ShortText | None = None
    last_audit_at: dt.date | None = None
    audit_interval_days: int | None = Field(default=None, ge=1, le=3650)
    destruction_confirmed_at: dt.date | None = None
    recipient_ico_registration: ShortText | None = None
    recipient_companies_house: ShortText | None = None
    commercial: bool = False

    @model_validator(mode="after")
    def _valid_period(self) -> Agreement:
        if self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")  # names the fields, never their values
        return self

    def active_on(self, day: dt.date) -> bool:
        """True when the agreement is approved and `day` falls inside its validity period."""
        return self.status is AgreementStatus.APPROVED and self.valid_from <= day <= self.valid_until
