"""Views of a catalogue's codes and of agreements, memoised per catalogue: what most facts read.

Derived values that depend only on a catalogue code, an agreement or a field list (gateway and purpose
properties, agreement properties, field classes) are computed once and kept in a `CatalogueViews`,
which the engine owns, so most facts are a plain attribute read with no per-event work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rules.catalogue import Catalogue, Gateway, Purpose
from rules.catalogue import Field as FieldDef
from schemas.agreement import Agreement
from schemas.vocab import AccessRoute, AgreementStatus, Approver

__all__ = [
    "DEFAULT_AUDIT_INTERVAL_DAYS",
    "DESTRUCTION_GRACE_DAYS",
    "MEMO_LIMIT",
    "NO_AGREEMENT",
    "NO_FIELDS",
    "NO_GATEWAY",
    "NO_PURPOSE",
    "UNKNOWN_FIELD_BITS",
    "AgreementView",
    "CatalogueViews",
    "FieldClasses",
    "GatewayView",
    "PurposeView",
    "audit_due_of",
    "destruction_due_of",
]

#: A recipient audit is due a year after the last one unless the agreement sets its own interval.
DEFAULT_AUDIT_INTERVAL_DAYS = 365
#: Days after an agreement ends by which the recipient must confirm the data was destroyed.
DESTRUCTION_GRACE_DAYS = 30
_PANEL = frozenset({Approver.DSAP, Approver.DMAP})


def _opt(value: Any) -> Any:
    return None if value is None else str(value)


def destruction_due_of(a: Agreement) -> dt.date:
    return a.valid_until + dt.timedelta(days=DESTRUCTION_GRACE_DAYS)


def audit_due_of(a: Agreement) -> dt.date:
    interval = dt.timedelta(days=a.audit_interval_days or DEFAULT_AUDIT_INTERVAL_DAYS)
    return (a.last_audit_at or a.valid_from) + interval


MEMO_LIMIT = 4096


@dataclass(frozen=True, slots=True, eq=False)  # identity hash: views are part of the index key
class GatewayView:
    gateway: Gateway | None
    known: bool
    title: str | None
    recipient_types: tuple[str, ...]
    purposes: tuple[str, ...]
    case_reference_required: bool
    evidence_attestation_required: bool
    court_order_ref_required: bool
    srs_only: bool
    deidentified_only: bool
    case_by_case: bool


def gateway_view(g: Gateway | None) -> GatewayView:
    if g is None:
        return GatewayView(None, False, None, (), (), False, False, False, False, False, False)
    req = g.requirements
    return GatewayView(
        g,
        True,
        g.title,
        tuple(sorted(g.recipient_types)),
        tuple(sorted(g.purposes)),
        "case_reference_required" in req,
        "evidence_attestation_required" in req,
        "court_order_ref_required" in req,
        "srs_only" in req,
        "deidentified_only" in req,
        "case_by_case" in req,
    )


@dataclass(frozen=True, slots=True, eq=False)
class PurposeView:
    purpose: Purpose | None
    known: bool
    title: str | None
    carried: bool
    no_gateway: bool


def purpose_view(p: Purpose | None) -> PurposeView:
    if p is None:
        return PurposeView(None, False, None, False, False)
    return PurposeView(p, True, p.title, p.carried_by_gateway, not p.carried_by_gateway)


# Field classes as bits: a field list's classes are the OR of its fields' bits (one pass, cached per
# list); the class lists themselves are built only when a rule or message reads them.
(
    BIT_UNKNOWN,
    BIT_PROHIBITED,
    BIT_IDENTIFIERS,
    BIT_INSTANT,
    BIT_TIER1,
    BIT_TIER2,
    BIT_IDENTIFYING,
    BIT_SPECIAL,
    BIT_SENSITIVE,
    BIT_PUPIL,
) = (1 << i for i in range(10))


#: The classes of a field code the catalogue does not know: pupil-level, to fail safe. A producer's new
#: or misspelt code must not turn pupil data into "aggregate" and silence the agreement rules.
UNKNOWN_FIELD_BITS = BIT_UNKNOWN | BIT_PUPIL


def field_bits(d: FieldDef) -> int:
    identifier = d.identifier in ("instant", "meaningful")
    return (
        (BIT_PROHIBITED if d.prohibited else 0)
        | (BIT_IDENTIFIERS if identifier else 0)
        | (BIT_INSTANT if d.identifier == "instant" else 0)
        | (BIT_TIER1 if d.tier == 1 else 0)
        | (BIT_TIER2 if d.tier == 2 else 0)
        | (BIT_IDENTIFYING if d.pupil_level and (identifier or d.tier in (1, 2)) else 0)
        | (BIT_SPECIAL if d.special_category is not None else 0)
        | (BIT_SENSITIVE if d.tier == 1 or d.special_category is not None else 0)
        | (BIT_PUPIL if d.pupil_level else 0)
    )


class FieldClasses:
    """The catalogue classes of one event's field list: a bit mask, and each class's codes on demand."""

    __slots__ = ("bits", "fields", "mask", "selected")

    def __init__(self, fields: tuple[str, ...], bits: Mapping[str, int]) -> None:
        self.fields = fields
        self.bits = bits
        mask = 0
        for c in fields:
            mask |= bits.get(c, UNKNOWN_FIELD_BITS)
        self.mask = mask
        self.selected: dict[int, tuple[str, ...]] = {}

    def select(self, bit: int) -> tuple[str, ...]:
        """The codes of class `bit`, in the event's order."""
        if not self.mask & bit:
            return ()
        got = self.selected.get(bit)
        if got is None:
            bits = self.bits
            got = self.selected[bit] = tuple(c for c in self.fields if bits.get(c, UNKNOWN_FIELD_BITS) & bit)
        return got


@dataclass(frozen=True, slots=True, eq=False)  # identity hash: the rule index is keyed by it
class AgreementView:
    """The agreement facts that do not depend on the event (dates as ISO text, enums as values)."""

    agreement: Agreement | None
    status: str | None
    approver: str | None
    approved: bool
    panel_approved: bool
    valid_from: str | None
    valid_until: str | None
    destruction_confirmed_at: str | None
    destruction_due: str | None
    destruction_due_date: dt.date | None
    legal_gateways: tuple[str, ...]
    purposes: tuple[str, ...]
    fields_allowed: tuple[str, ...]
    datasets_allowed: tuple[str, ...]
    access_route: str | None
    srs_only: bool
    recipient_org_id: str | None
    recipient_org_type: str | None
    recipient_ico_registration: str | None
    recipient_companies_house: str | None
    monthly_record_cap: int | None
    per_event_record_cap: int | None
    onward_recipients_allowed: tuple[str, ...]
    dpia_ref: str | None
    ethics_ref: str | None
    commercial: bool
    last_audit_at: str | None
    audit_due: str | None
    audit_due_date: dt.date | None
    datasets_allowed_set: frozenset[str]
    onward_allowed_set: frozenset[str]
    #: The allowed fields: a disclosed field not in it is outside the agreement (prohibited ones too).
    fields_ok: frozenset[str]
    #: The part of the index key that comes from the agreement (see INDEX_FACTS and INDEX_NULL).
    flags: tuple[bool, ...]


def agreement_view_of(a: Agreement) -> AgreementView:
    due = destruction_due_of(a)
    audit_due = audit_due_of(a)
    return AgreementView(
        agreement=a,
        status=a.status.value,
        approver=a.approver.value,
        approved=a.status is AgreementStatus.APPROVED,
        panel_approved=a.approver in _PANEL,
        valid_from=a.valid_from.isoformat(),
        valid_until=a.valid_until.isoformat(),
        destruction_confirmed_at=_opt(a.destruction_confirmed_at),
        destruction_due=_opt(due),
        destruction_due_date=due,
        legal_gateways=a.legal_gateways,
        purposes=a.purposes,
        fields_allowed=a.fields_allowed,
        datasets_allowed=a.datasets_allowed,
        access_route=a.access_route.value,
        srs_only=a.access_route is AccessRoute.SRS_ONLY,
        recipient_org_id=a.recipient_org_id,
        recipient_org_type=None if a.recipient_org_type is None else a.recipient_org_type.value,
        recipient_ico_registration=a.recipient_ico_registration,
        recipient_companies_house=a.recipient_companies_house,
        monthly_record_cap=a.monthly_record_cap,
        per_event_record_cap=a.per_event_record_cap,
        onward_recipients_allowed=a.onward_recipients_allowed,
        dpia_ref=a.dpia_ref,
        ethics_ref=a.ethics_ref,
        commercial=a.commercial,
        last_audit_at=_opt(a.last_audit_at),
        audit_due=_opt(audit_due),
        audit_due_date=audit_due,
        datasets_allowed_set=frozenset(a.datasets_allowed),
        onward_allowed_set=frozenset(a.onward_recipients_allowed),
        fields_ok=frozenset(a.fields_allowed),
        flags=(
            a.status is AgreementStatus.APPROVED,
            a.access_route is AccessRoute.SRS_ONLY,
            a.commercial,
            a.approver in _PANEL,
            a.dpia_ref is None,
            a.ethics_ref is None,
            a.recipient_org_type is None,
            a.per_event_record_cap is None,
            a.recipient_ico_registration is None,
            a.recipient_companies_house is None,
        ),
    )


NO_AGREEMENT = AgreementView(
    None, None, None, False, False, None, None, None, None, None, (), (), (), (), None, False, None, None, None,
    None, None, None, (), None, None, False, None, None, None, frozenset(), frozenset(), frozenset(),
    (False, False, False, False, True, True, True, True, True, True),
)  # fmt: skip
NO_GATEWAY = gateway_view(None)
NO_PURPOSE = purpose_view(None)
NO_FIELDS = FieldClasses((), {})


class CatalogueViews:
    """Views of one catalogue's codes, and bounded memos keyed by field list and agreement identity.

    One per engine (rules.engine.Engine.views): what the facts of every event it judges read.

    Agreements are keyed by id() and checked by identity (the memo holds a reference, so an id cannot
    be reused while its entry lives); registers hand out the same Agreement object for every event.
    """

    __slots__ = (
        "agreements",
        "bits",
        "catalogue",
        "fields",
        "gateways",
        "no_agreement",
        "prohibited",
        "purposes",
    )

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.gateways = {code: gateway_view(g) for code, g in catalogue.gateways.items()}
        self.purposes = {code: purpose_view(p) for code, p in catalogue.purposes.items()}
        self.bits = {code: field_bits(d) for code, d in catalogue.fields.items()}
        self.prohibited = frozenset(code for code, bits in self.bits.items() if bits & BIT_PROHIBITED)
        #: The view of no agreement: no field is allowed.
        self.no_agreement = NO_AGREEMENT
        self.fields: dict[tuple[str, ...], FieldClasses] = {}
        self.agreements: dict[int, tuple[Agreement, AgreementView]] = {}

    def field_classes(self, fields: tuple[str, ...]) -> FieldClasses:
        if type(fields) is not tuple:  # model_construct'ed events may carry lists
            fields = tuple(fields)
        fc = self.fields.get(fields)
        if fc is None:
            if len(self.fields) >= MEMO_LIMIT:
                self.fields.clear()
            fc = self.fields[fields] = FieldClasses(fields, self.bits)
        return fc

    def agreement_view(self, a: Agreement) -> AgreementView:
        hit = self.agreements.get(id(a))
        if hit is not None and hit[0] is a:
            return hit[1]
        if len(self.agreements) >= MEMO_LIMIT:
            self.agreements.clear()
        view = agreement_view_of(a)
        self.agreements[id(a)] = (a, view)
        return view
