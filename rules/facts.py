"""The fixed vocabulary of facts a condition may name, derived lazily from (event, agreement, catalogue).

Each fact is a name (`event.fields`, `agreement.active`, ...), a static type the compiler checks, an
optional code domain (so a literal compared with it must exist in the catalogue) and a getter. Cheap
facts read the event directly; derived ones are computed at most once per event and cached.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, cast
from zoneinfo import ZoneInfo

from rules.catalogue import Catalogue, Gateway, Purpose
from rules.catalogue import Field as FieldDef
from schemas.agreement import Agreement
from schemas.event import AccessEvent
from schemas.vocab import AccessRoute, AgreementStatus, Approver

__all__ = [
    "DEFAULT_AUDIT_INTERVAL_DAYS",
    "DESTRUCTION_GRACE_DAYS",
    "FACTS",
    "INDEX_FACTS",
    "INDEX_NONEMPTY",
    "INDEX_NULL",
    "INDEX_PARTIAL",
    "LONDON",
    "UNKNOWN",
    "Fact",
    "Facts",
    "fact_table",
    "index_key",
]

LONDON = ZoneInfo("Europe/London")
#: A recipient audit is due a year after the last one unless the agreement sets its own interval.
DEFAULT_AUDIT_INTERVAL_DAYS = 365
#: Days after an agreement ends by which the recipient must confirm the data was destroyed.
DESTRUCTION_GRACE_DAYS = 30
_PANEL = frozenset({Approver.DSAP, Approver.DMAP})


class Facts:
    """The per-event evaluation context: the inputs plus derived facts, each computed at most once.

    Derived values that depend only on a catalogue code, an agreement or a field list (gateway and
    purpose properties, agreement properties, field classes) come from a bounded per-catalogue memo,
    so most facts are a plain attribute read (`operator.attrgetter`) with no per-event work.
    """

    __slots__ = (
        "agreement",
        "av",
        "cache",
        "catalogue",
        "cited",
        "day",
        "event",
        "fc",
        "gateway",
        "gw",
        "local",
        "memo",
        "present",
        "pupil_level",
        "purpose",
        "pv",
    )

    def __init__(self, event: AccessEvent, agreement: Agreement | None, catalogue: Catalogue) -> None:
        self.event = event
        self.agreement = agreement
        self.catalogue = catalogue
        self.cache: dict[str, Any] = {}
        memo = _memo(catalogue)
        self.memo: _Memo = memo
        gw = memo.gateways.get(event.legal_gateway or "", _NO_GATEWAY)
        self.gw: _GatewayView = gw
        self.gateway: Gateway | None = gw.gateway
        pv = memo.purposes.get(event.purpose or "", _NO_PURPOSE)
        self.pv: _PurposeView = pv
        self.purpose: Purpose | None = pv.purpose
        if agreement is None:
            self.av: _AgreementView = memo.no_agreement
        else:  # memo.agreement_view, with its hit inlined: this runs for every event
            hit = memo.agreements.get(id(agreement))
            self.av = hit[1] if hit is not None and hit[0] is agreement else memo.agreement_view(agreement)
        self.present: bool = agreement is not None
        self.cited: bool = event.agreement_id is not None
        fields = event.fields
        fc = memo.fields.get(fields) if type(fields) is tuple else None  # memo.field_classes, hit inlined
        if fc is None:
            fc = memo.field_classes(fields)
        self.fc: _FieldClasses = fc
        self.pupil_level: bool = bool(fc.mask & _PUPIL) and event.min_cell_count is None
        self.local: dt.datetime | None = None
        self.day: dt.date | None = None

    @classmethod
    def for_sweep(cls, agreement: Agreement, catalogue: Catalogue, now: dt.datetime) -> Facts:
        """Facts for an agreement-scoped rule judged at `now`: no event; the day facts use `now`'s date.

        The loader lets such rules name only `agreement.*` (except agreement.cited) and `now.*` facts,
        which never read the event.
        """
        f = cls.__new__(cls)
        memo = _memo(catalogue)
        f.event = cast(AccessEvent, None)
        f.agreement = agreement
        f.catalogue = catalogue
        f.cache = {}
        f.memo = memo
        f.gw = _NO_GATEWAY
        f.gateway = None
        f.pv = _NO_PURPOSE
        f.purpose = None
        f.av = memo.agreement_view(agreement)
        f.present = True
        f.cited = False
        f.fc = _NO_FIELDS
        f.pupil_level = False
        f.local = now.astimezone(LONDON)
        f.day = None
        return f


Getter = Callable[[Facts], Any]


@dataclass(frozen=True, slots=True)
class Fact:
    """One name of the vocabulary. `type` is str, int, bool or list; `nullable` if it may be null."""

    name: str
    type: str
    doc: str
    getter: Getter
    nullable: bool = False
    domain: str | None = None
    #: For a list fact: a cheaper getter of `bool(value)` (what any()/empty() need), if there is one.
    nonempty: Getter | None = None


FACTS: dict[str, Fact] = {}


def _fact(
    name: str,
    type_: str,
    doc: str,
    *,
    nullable: bool = False,
    domain: str | None = None,
    nonempty: Getter | None = None,
) -> Callable[[Getter], Getter]:
    def register(fn: Getter) -> Getter:
        FACTS[name] = Fact(name, type_, doc, fn, nullable, domain, nonempty)
        return fn

    return register


#: The attribute path of each fact registered with _path.
_PATHS: dict[str, str] = {}


def _path(name: str, type_: str, doc: str, path: str, *, nullable: bool = False, domain: str | None = None) -> None:
    """A fact that is an attribute path from Facts: a C-level attrgetter, no Python frame per read."""
    FACTS[name] = Fact(name, type_, doc, attrgetter(path), nullable, domain)
    _PATHS[name] = path


# --- memoised views (per catalogue; bounded) -----------------------------------------------------------

#: Most distinct field lists (and agreement x list pairs) kept per catalogue before the memo restarts.
MEMO_LIMIT = 4096


@dataclass(frozen=True, slots=True, eq=False)  # identity hash: views are part of the index key
class _GatewayView:
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


def _gateway_view(g: Gateway | None) -> _GatewayView:
    if g is None:
        return _GatewayView(None, False, None, (), (), False, False, False, False, False, False)
    req = g.requirements
    return _GatewayView(
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
class _PurposeView:
    purpose: Purpose | None
    known: bool
    title: str | None
    carried: bool
    no_gateway: bool


def _purpose_view(p: Purpose | None) -> _PurposeView:
    if p is None:
        return _PurposeView(None, False, None, False, False)
    return _PurposeView(p, True, p.title, p.carried_by_gateway, not p.carried_by_gateway)


# Field classes as bits: a field list's classes are the OR of its fields' bits (one pass, cached per
# list); the class lists themselves are built only when a rule or message reads them.
_UNKNOWN, _PROHIBITED, _IDENTIFIERS, _INSTANT, _TIER1, _TIER2, _IDENTIFYING, _SPECIAL, _SENSITIVE, _PUPIL = (
    1 << i for i in range(10)
)


def _field_bits(d: FieldDef) -> int:
    identifier = d.identifier in ("instant", "meaningful")
    return (
        (_PROHIBITED if d.prohibited else 0)
        | (_IDENTIFIERS if identifier else 0)
        | (_INSTANT if d.identifier == "instant" else 0)
        | (_TIER1 if d.tier == 1 else 0)
        | (_TIER2 if d.tier == 2 else 0)
        | (_IDENTIFYING if d.pupil_level and (identifier or d.tier in (1, 2)) else 0)
        | (_SPECIAL if d.special_category is not None else 0)
        | (_SENSITIVE if d.tier == 1 or d.special_category is not None else 0)
        | (_PUPIL if d.pupil_level else 0)
    )


class _FieldClasses:
    """The catalogue classes of one event's field list: a bit mask, and each class's codes on demand."""

    __slots__ = ("bits", "fields", "mask", "selected")

    def __init__(self, fields: tuple[str, ...], bits: Mapping[str, int]) -> None:
        self.fields = fields
        self.bits = bits
        mask = 0
        for c in fields:
            mask |= bits.get(c, _UNKNOWN)
        self.mask = mask
        self.selected: dict[int, tuple[str, ...]] = {}

    def select(self, bit: int) -> tuple[str, ...]:
        """The codes of class `bit`, in the event's order."""
        if not self.mask & bit:
            return ()
        got = self.selected.get(bit)
        if got is None:
            bits = self.bits
            got = self.selected[bit] = tuple(c for c in self.fields if bits.get(c, _UNKNOWN) & bit)
        return got


@dataclass(frozen=True, slots=True, eq=False)  # identity hash: the rule index is keyed by it
class _AgreementView:
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


def _agreement_view(a: Agreement) -> _AgreementView:
    due = _destruction_due(a)
    audit_due = _audit_due_of(a)
    return _AgreementView(
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


_NO_AGREEMENT = _AgreementView(
    None, None, None, False, False, None, None, None, None, None, (), (), (), (), None, False, None, None, None,
    None, None, None, (), None, None, False, None, None, None, frozenset(), frozenset(), frozenset(),
    (False, False, False, False, True, True, True, True, True, True),
)  # fmt: skip
_NO_GATEWAY = _gateway_view(None)
_NO_PURPOSE = _purpose_view(None)
_NO_FIELDS = _FieldClasses((), {})


class _Memo:
    """Views of one catalogue's codes, and bounded memos keyed by field list and agreement identity.

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
        self.gateways = {code: _gateway_view(g) for code, g in catalogue.gateways.items()}
        self.purposes = {code: _purpose_view(p) for code, p in catalogue.purposes.items()}
        self.bits = {code: _field_bits(d) for code, d in catalogue.fields.items()}
        self.prohibited = frozenset(code for code, bits in self.bits.items() if bits & _PROHIBITED)
        #: The view of no agreement: no field is allowed.
        self.no_agreement = _NO_AGREEMENT
        self.fields: dict[tuple[str, ...], _FieldClasses] = {}
        self.agreements: dict[int, tuple[Agreement, _AgreementView]] = {}

    def field_classes(self, fields: tuple[str, ...]) -> _FieldClasses:
        if type(fields) is not tuple:  # model_construct'ed events may carry lists
            fields = tuple(fields)
        fc = self.fields.get(fields)
        if fc is None:
            if len(self.fields) >= MEMO_LIMIT:
                self.fields.clear()
            fc = self.fields[fields] = _FieldClasses(fields, self.bits)
        return fc

    def agreement_view(self, a: Agreement) -> _AgreementView:
        hit = self.agreements.get(id(a))
        if hit is not None and hit[0] is a:
            return hit[1]
        if len(self.agreements) >= MEMO_LIMIT:
            self.agreements.clear()
        view = _agreement_view(a)
        self.agreements[id(a)] = (a, view)
        return view


_MEMOS: dict[int, _Memo] = {}


_last_memo: _Memo | None = None  # the memo of the catalogue used last: one engine's, almost always


def _memo(catalogue: Catalogue) -> _Memo:
    global _last_memo
    m = _last_memo
    if m is not None and m.catalogue is catalogue:
        return m
    m = _MEMOS.get(id(catalogue))
    if m is None or m.catalogue is not catalogue:
        if len(_MEMOS) >= 64:
            _MEMOS.clear()
        m = _MEMOS[id(catalogue)] = _Memo(catalogue)
    _last_memo = m
    return m


# --- helpers -----------------------------------------------------------------------------------------


def _local(f: Facts) -> dt.datetime:
    v = f.local
    if v is None:
        v = f.local = f.event.occurred_at.astimezone(LONDON)
    return v


def _event_day(f: Facts) -> dt.date:
    """The Europe/London date of the event (of `now` in a sweep), computed once per Facts.

    Getters write `f.day or _event_day(f)` (and `f.local or _local(f)`): no call once it is set, as a
    date or datetime is never false.
    """
    d = f.day
    if d is None:
        d = f.day = _local(f).date()
    return d


def _opt(value: Any) -> Any:
    return None if value is None else str(value)


def _destruction_due(a: Agreement) -> dt.date:
    return a.valid_until + dt.timedelta(days=DESTRUCTION_GRACE_DAYS)


def _audit_due_of(a: Agreement) -> dt.date:
    interval = dt.timedelta(days=a.audit_interval_days or DEFAULT_AUDIT_INTERVAL_DAYS)
    return (a.last_audit_at or a.valid_from) + interval


# --- the index -----------------------------------------------------------------------------------------

# The index key of an event: cheap values with few distinct values in practice, which most conditions
# test. Gateway and purpose views are in it by identity (one per code).
_K_ACTION, _K_ORG, _K_GW_CODE, _K_GW, _K_PURPOSE, _K_PV, _K_CHANNEL, _K_PRESENT, _K_CITED = range(9)
_K_PUPIL, _K_AGGREGATE, _K_EVIDENCE, _K_MASK, _K_AGREEMENT, _K_NULLS, _K_ONWARD, _K_RESTRICTED = range(9, 17)
#: Where the agreement view goes in a key extended with it (`index_key(f) + (f.av,)`): the rule index
#: specialises each bucket further per agreement with it (see INDEX_PARTIAL).
_K_AV = _K_RESTRICTED + 1


#: The event attributes the key is made of, read in one call (in this order, as index_key uses them).
_KEY_ATTRIBUTES = attrgetter(
    "action",
    "recipient.org_type",
    "legal_gateway",
    "purpose",
    "channel",
    "min_cell_count",
    "evidence_attestation",
    "case_reference",
    "court_order_ref",
    "actor.country",
    "recipient.ico_registration",
    "recipient.companies_house",
    "onward_recipients",
    "restricted_record_count",
)


def index_key(f: Facts) -> tuple[Any, ...]:
    """The index key of one event (what the engine's rule index is keyed by); see INDEX_FACTS."""
    (
        action,
        org_type,
        gateway,
        purpose,
        channel,
        cells,
        attested,
        case_ref,
        court_ref,
        country,
        ico,
        ch,
        onward,
        restricted,
    ) = _KEY_ATTRIBUTES(f.event)
    return (
        action,
        org_type,
        gateway,
        f.gw,
        purpose,
        f.pv,
        channel,
        f.present,
        f.cited,
        f.pupil_level,
        cells is not None,
        attested is True,
        f.fc.mask,
        f.av.flags,
        (case_ref is None, court_ref is None, country is None, ico is None, ch is None),
        bool(onward),
        bool(restricted),
    )


KeyFn = Callable[[tuple[Any, ...]], Any]


def _at(i: int, j: int | None = None, attr: str | None = None) -> KeyFn:
    if attr is not None:
        get = attrgetter(attr)
        return lambda k: get(k[i])
    if j is not None:
        return lambda k: k[i][j]
    return lambda k: k[i]


#: Facts whose value is determined by the index key: fact -> the value from a key. Equal to the
#: fact's getter for every event with that key (tests/rules/test_properties.py checks it).
INDEX_FACTS: dict[str, KeyFn] = {
    "event.action": _at(_K_ACTION),
    "event.recipient.org_type": _at(_K_ORG),
    "event.legal_gateway": _at(_K_GW_CODE),
    "event.purpose": _at(_K_PURPOSE),
    "event.channel": _at(_K_CHANNEL),
    "agreement.present": _at(_K_PRESENT),
    "agreement.cited": _at(_K_CITED),
    "event.pupil_level": _at(_K_PUPIL),
    "event.aggregate": _at(_K_AGGREGATE),
    "event.evidence_attestation": _at(_K_EVIDENCE),
    "fields.pupil_level": lambda k: bool(k[_K_MASK] & _PUPIL),
    "agreement.approved": _at(_K_AGREEMENT, 0),
    "agreement.srs_only": _at(_K_AGREEMENT, 1),
    "agreement.commercial": _at(_K_AGREEMENT, 2),
    "agreement.panel_approved": _at(_K_AGREEMENT, 3),
    **{
        f"gateway.{name}": _at(_K_GW, attr=name)
        for name in (
            "known",
            "title",
            "recipient_types",
            "purposes",
            "case_reference_required",
            "evidence_attestation_required",
            "court_order_ref_required",
            "srs_only",
            "deidentified_only",
            "case_by_case",
        )
    },
    "purpose.known": _at(_K_PV, attr="known"),
    "purpose.title": _at(_K_PV, attr="title"),
    "purpose.carried_by_any_gateway": _at(_K_PV, attr="carried"),
    "purpose.no_gateway": _at(_K_PV, attr="no_gateway"),
}
#: List facts whose emptiness is determined by the index key: fact -> bool(value) from a key.
INDEX_NONEMPTY: dict[str, KeyFn] = {}
#: Nullable facts whose null-ness is determined by the index key: fact -> (value is None) from a key.
INDEX_NULL: dict[str, KeyFn] = {
    "event.case_reference": _at(_K_NULLS, 0),
    "event.court_order_ref": _at(_K_NULLS, 1),
    "event.actor.country": _at(_K_NULLS, 2),
    "event.recipient.ico_registration": _at(_K_NULLS, 3),
    "event.recipient.companies_house": _at(_K_NULLS, 4),
    "event.min_cell_count": lambda k: not k[_K_AGGREGATE],
    "agreement.dpia_ref": _at(_K_AGREEMENT, 4),
    "agreement.ethics_ref": _at(_K_AGREEMENT, 5),
    "agreement.recipient_org_type": _at(_K_AGREEMENT, 6),
    "agreement.per_event_record_cap": _at(_K_AGREEMENT, 7),
    "agreement.recipient_ico_registration": _at(_K_AGREEMENT, 8),
    "agreement.recipient_companies_house": _at(_K_AGREEMENT, 9),
}


class _Unknown:
    """The type of UNKNOWN."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


#: What a partial key function gives when the index key does not determine the value (INDEX_PARTIAL).
UNKNOWN: Any = _Unknown()


def _null_or_unknown(is_null: KeyFn) -> KeyFn:
    return lambda k: None if is_null(k) else UNKNOWN


#: Facts whose value the index key determines for some keys only: fact -> the value, or UNKNOWN. It lets
#: the index drop, say, `event.min_cell_count < 10` for events that are not aggregate (null: false).
INDEX_PARTIAL: dict[str, KeyFn] = {
    **{name: _null_or_unknown(is_null) for name, is_null in INDEX_NULL.items()},
    "event.restricted_record_count": lambda k: UNKNOWN if k[_K_RESTRICTED] else 0,
    "onward.not_allowed": lambda k: UNKNOWN if k[_K_ONWARD] else (),
}


# --- event.* -------------------------------------------------------------------------------------

_path("event.id", "str", "The event's id", "event.event_id")
_path("event.action", "str", "view, search, query, extract, transfer or match_check", "event.action")
_path("event.channel", "str", "srs, sftp, egress, api, email, portal or removable_media", "event.channel")
_path("event.source_system", "str", "System that reported the event", "event.source_system")
_path("event.record_count", "int", "Records disclosed", "event.record_count")
_path("event.datasets", "list", "Dataset codes drawn on", "event.datasets", domain="dataset")
_path("event.fields", "list", "Field codes disclosed to the recipient", "event.fields", domain="field")
_path(
    "event.legal_gateway",
    "str",
    "Legal gateway code the event cites",
    "event.legal_gateway",
    nullable=True,
    domain="gateway",
)
_path("event.purpose", "str", "Purpose code the event cites", "event.purpose", nullable=True, domain="purpose")
_path("event.agreement_id", "str", "Agreement id the event cites", "event.agreement_id", nullable=True)
_path("event.recipient.org_id", "str", "Receiving organisation id", "event.recipient.org_id")
_path("event.recipient.org_type", "str", "Receiving organisation type", "event.recipient.org_type", domain="org_type")
_path("event.recipient.name", "str", "Receiving organisation name", "event.recipient.name", nullable=True)
_path(
    "event.recipient.ico_registration",
    "str",
    "Recipient's ICO registration",
    "event.recipient.ico_registration",
    nullable=True,
)
_path(
    "event.recipient.companies_house",
    "str",
    "Recipient's Companies House number",
    "event.recipient.companies_house",
    nullable=True,
)
_path("event.actor.user_id", "str", "User who performed the access", "event.actor.user_id")
_path("event.actor.org_id", "str", "Organisation of that user", "event.actor.org_id")
_path("event.actor.role", "str", "Role of that user", "event.actor.role", nullable=True)
_path("event.actor.country", "str", "ISO 3166 alpha-2 country of access", "event.actor.country", nullable=True)
_path(
    "event.case_reference",
    "str",
    "Case reference of an enforcement request",
    "event.case_reference",
    nullable=True,
)
_fact("event.evidence_attestation", "bool", "True only if the requester attested the evidence (absent = false)")(
    lambda f: f.event.evidence_attestation is True
)
_path("event.court_order_ref", "str", "Court order reference", "event.court_order_ref", nullable=True)
_path("event.onward_recipients", "list", "Organisations the data is passed on to", "event.onward_recipients")
_path(
    "event.min_cell_count",
    "int",
    "Smallest cell of an aggregate output (null: not aggregate)",
    "event.min_cell_count",
    nullable=True,
)
_fact("event.aggregate", "bool", "The output is aggregate (min_cell_count given)")(
    lambda f: f.event.min_cell_count is not None
)
_fact("event.restricted_record_count", "int", "Records of pupils with a restriction or upheld objection (absent = 0)")(
    lambda f: f.event.restricted_record_count or 0
)
_fact("event.pupil_ref_count", "int", "How many pupil references the event carries (never their values)")(
    lambda f: len(f.event.pupil_refs) if f.event.pupil_refs else 0
)
_fact("event.local_hour", "int", "Hour of occurred_at in Europe/London (0-23)")(lambda f: (f.local or _local(f)).hour)
_fact("event.local_weekday", "int", "ISO weekday of occurred_at in Europe/London (1 = Monday, 7 = Sunday)")(
    lambda f: (f.local or _local(f)).isoweekday()
)
_fact("event.local_date", "str", "Date of occurred_at in Europe/London (YYYY-MM-DD)")(
    lambda f: (f.day or _event_day(f)).isoformat()
)
_path(
    "event.pupil_level", "bool", "Pupil-level (not aggregate) data with at least one pupil-level field", "pupil_level"
)

# --- agreement.* -----------------------------------------------------------------------------------

_path("agreement.present", "bool", "The event's agreement was found in the register", "present")
_path("agreement.cited", "bool", "The event names an agreement id (found or not)", "cited")
_fact("agreement.id", "str", "Agreement id (the register's, else the one the event cites)", nullable=True)(
    lambda f: f.agreement.agreement_id if f.agreement is not None else f.event.agreement_id
)
_path("agreement.status", "str", "approved, suspended, revoked or rejected", "av.status", nullable=True)
_path("agreement.approver", "str", "dsap, dmap, npd_team or other", "av.approver", nullable=True)
_path("agreement.panel_approved", "bool", "Approved by the panel (DSAP or DMAP)", "av.panel_approved")
_path("agreement.valid_from", "str", "First valid day", "av.valid_from", nullable=True)
_path("agreement.valid_until", "str", "Last valid day (inclusive)", "av.valid_until", nullable=True)
_fact(
    "agreement.active",
    "bool",
    "Approved, and the event's Europe/London date is within valid_from..valid_until (event time, not clock)",
)(lambda f: (a := f.agreement) is not None and a.active_on(f.day or _event_day(f)))
_path("agreement.approved", "bool", "Status is approved", "av.approved")
_fact("agreement.not_yet_valid", "bool", "The event's date is before valid_from")(
    lambda f: (a := f.agreement) is not None and (f.day or _event_day(f)) < a.valid_from
)
_fact("agreement.expired", "bool", "The event's date is after valid_until")(
    lambda f: (a := f.agreement) is not None and (f.day or _event_day(f)) > a.valid_until
)
_path(
    "agreement.destruction_confirmed_at",
    "str",
    "Date the recipient confirmed destruction",
    "av.destruction_confirmed_at",
    nullable=True,
)
_path(
    "agreement.destruction_due",
    "str",
    f"Date destruction must be confirmed by (valid_until + {DESTRUCTION_GRACE_DAYS} days)",
    "av.destruction_due",
    nullable=True,
)
_fact(
    "agreement.destruction_overdue",
    "bool",
    f"No destruction confirmation and the judged date is over {DESTRUCTION_GRACE_DAYS} days after valid_until",
)(
    lambda f: (
        (a := f.agreement) is not None
        and a.destruction_confirmed_at is None
        and (f.day or _event_day(f)) > _destruction_due(a)
    )
)
_fact("now.date", "str", "Europe/London date the sweep judges at (`scope: agreement` rules only)")(
    lambda f: (f.day or _event_day(f)).isoformat()
)
_path("agreement.legal_gateways", "list", "Gateways the agreement approved", "av.legal_gateways", domain="gateway")
_path("agreement.purposes", "list", "Purposes the agreement approved", "av.purposes", domain="purpose")
_path("agreement.fields_allowed", "list", "Fields the agreement allows", "av.fields_allowed", domain="field")
_path(
    "agreement.datasets_allowed",
    "list",
    "Datasets (and so linkages) the agreement allows",
    "av.datasets_allowed",
    domain="dataset",
)
_path("agreement.access_route", "str", "srs_only or direct_allowed", "av.access_route", nullable=True)
_path(
    "agreement.srs_only", "bool", "The agreement allows access through the Secure Research Service only", "av.srs_only"
)
_path("agreement.recipient_org_id", "str", "Recipient the agreement names", "av.recipient_org_id", nullable=True)
_path(
    "agreement.recipient_org_type",
    "str",
    "Recipient type the agreement names",
    "av.recipient_org_type",
    nullable=True,
    domain="org_type",
)
_path(
    "agreement.recipient_ico_registration",
    "str",
    "ICO registration the agreement names",
    "av.recipient_ico_registration",
    nullable=True,
)
_path(
    "agreement.recipient_companies_house",
    "str",
    "Companies House number the agreement names",
    "av.recipient_companies_house",
    nullable=True,
)
_path(
    "agreement.monthly_record_cap", "int", "Records per calendar month allowed", "av.monthly_record_cap", nullable=True
)
_path("agreement.per_event_record_cap", "int", "Records per event allowed", "av.per_event_record_cap", nullable=True)
_path(
    "agreement.onward_recipients_allowed",
    "list",
    "Organisations the data may be passed on to",
    "av.onward_recipients_allowed",
)
_path("agreement.dpia_ref", "str", "Data protection impact assessment reference", "av.dpia_ref", nullable=True)
_path("agreement.ethics_ref", "str", "Ethics review reference", "av.ethics_ref", nullable=True)
_path("agreement.commercial", "bool", "The agreement is with a commercial body", "av.commercial")
_path("agreement.last_audit_at", "str", "Date of the last recipient audit", "av.last_audit_at", nullable=True)
_path("agreement.audit_due", "str", "Date the next recipient audit is due", "av.audit_due", nullable=True)
_fact(
    "agreement.audit_overdue",
    "bool",
    f"The recipient audit is overdue at the event's date (interval default {DEFAULT_AUDIT_INTERVAL_DAYS} days; "
    "never audited counts from valid_from)",
)(lambda f: (due := f.av.audit_due_date) is not None and (f.day or _event_day(f)) > due)

# --- gateway.* and purpose.* --------------------------------------------------------------------------

_path("gateway.known", "bool", "The event's gateway code is in the catalogue", "gw.known")
_path("gateway.title", "str", "Title of the event's gateway", "gw.title", nullable=True)
_path(
    "gateway.recipient_types",
    "list",
    "Recipient types the event's gateway is open to",
    "gw.recipient_types",
    domain="org_type",
)
_path("gateway.purposes", "list", "Purposes the event's gateway can carry", "gw.purposes", domain="purpose")
for _req in (
    "case_reference_required",
    "evidence_attestation_required",
    "court_order_ref_required",
    "srs_only",
    "deidentified_only",
    "case_by_case",
):
    _path(f"gateway.{_req}", "bool", f"The event's gateway has the requirement {_req}", f"gw.{_req}")

_path("purpose.known", "bool", "The event's purpose code is in the catalogue", "pv.known")
_path("purpose.title", "str", "Title of the event's purpose", "pv.title", nullable=True)
_path("purpose.carried_by_any_gateway", "bool", "Some gateway can carry the event's purpose", "pv.carried")
_path(
    "purpose.no_gateway",
    "bool",
    "The purpose is known and no gateway can carry it (journalism, marketing, ...)",
    "pv.no_gateway",
)

# --- fields.* and datasets.* ------------------------------------------------------------------------


def _field_class(name: str, doc: str, bit: int, *, domain: str | None = "field") -> None:
    def get(f: Facts) -> tuple[str, ...]:
        return f.fc.select(bit)

    def nonempty(f: Facts) -> bool:
        return bool(f.fc.mask & bit)

    FACTS[name] = Fact(name, "list", doc, get, False, domain, nonempty)
    INDEX_NONEMPTY[name] = lambda k: bool(k[_K_MASK] & bit)


_field_class("fields.unknown", "Disclosed field codes not in the catalogue", _UNKNOWN, domain=None)
_field_class("fields.prohibited", "Prohibited fields disclosed", _PROHIBITED)
_field_class("fields.identifiers", "Instant or meaningful identifiers disclosed", _IDENTIFIERS)
_field_class("fields.instant_identifiers", "Instant identifiers disclosed", _INSTANT)
_field_class("fields.tier1", "Tier 1 fields disclosed", _TIER1)
_field_class("fields.tier2", "Tier 2 fields disclosed", _TIER2)
_field_class("fields.identifying", "Identifiers or Tier 1/2 pupil-level fields disclosed", _IDENTIFYING)
_field_class("fields.special_category", "Special category fields disclosed", _SPECIAL)
_field_class("fields.sensitive", "Tier 1 or special category fields disclosed", _SENSITIVE)
_fact("fields.pupil_level", "bool", "At least one pupil-level field disclosed")(lambda f: bool(f.fc.mask & _PUPIL))


@_fact(
    "fields.outside_agreement",
    "list",
    "Disclosed fields the agreement does not allow (prohibited fields included)",
    domain="field",
    nonempty=lambda f: not f.av.fields_ok.issuperset(f.fc.fields),
)
def _fields_outside(f: Facts) -> tuple[str, ...]:
    ok = f.av.fields_ok
    return tuple([c for c in f.fc.fields if c not in ok])


def _datasets_outside_nonempty(f: Facts) -> bool:
    datasets = f.event.datasets
    if f.agreement is None:
        return len(datasets) > 0
    return not f.av.datasets_allowed_set.issuperset(datasets)


@_fact(
    "datasets.outside_agreement",
    "list",
    "Datasets drawn on that the agreement does not allow",
    domain="dataset",
    nonempty=_datasets_outside_nonempty,
)
def _datasets_outside(f: Facts) -> tuple[str, ...]:
    datasets = f.event.datasets
    if f.agreement is None:
        return tuple(datasets)
    allowed = f.av.datasets_allowed_set
    return tuple(c for c in datasets if c not in allowed)


_fact("datasets.unknown", "list", "Dataset codes not in the catalogue")(
    lambda f: tuple(c for c in f.event.datasets if c not in f.catalogue.datasets)
)


def _onward_not_allowed_nonempty(f: Facts) -> bool:
    onward = f.event.onward_recipients
    return bool(onward) and not f.av.onward_allowed_set.issuperset(onward)


@_fact(
    "onward.not_allowed",
    "list",
    "Onward recipients the agreement does not name",
    nonempty=_onward_not_allowed_nonempty,
)
def _onward_not_allowed(f: Facts) -> tuple[str, ...]:
    onward = f.event.onward_recipients
    if not onward:
        return ()
    allowed = f.av.onward_allowed_set
    return tuple(c for c in onward if c not in allowed)


# --- window.* (messages of windowed rules only; set by the engine per window) -------------------------


def _window(key: str) -> Getter:
    def get(f: Facts) -> Any:
        w = f.cache.get("_window")
        return None if w is None else w.get(key)

    return get


_fact("window.value", "int", "The window's aggregate after this event (windowed rule messages only)", nullable=True)(
    _window("value")
)
_fact(
    "window.threshold",
    "int",
    "The threshold the aggregate was compared with (windowed rule messages only)",
    nullable=True,
)(_window("threshold"))
_fact(
    "window.label",
    "str",
    "The window, e.g. 2024-03 or 30 days to 2024-03-05 (windowed rule messages only)",
    nullable=True,
)(_window("label"))


def _agreement_partial(attr: str, without_view: KeyFn | None) -> KeyFn:
    get = attrgetter(attr)

    def key(k: tuple[Any, ...]) -> Any:
        if len(k) > _K_AV:
            return get(k[_K_AV])
        return UNKNOWN if without_view is None else without_view(k)

    return key


# The agreement facts read from the agreement view are decided by a key extended with the view.
for _name, _attr_path in _PATHS.items():
    if _attr_path.startswith("av."):
        INDEX_PARTIAL[_name] = _agreement_partial(_attr_path.removeprefix("av."), INDEX_PARTIAL.get(_name))


def fact_table() -> list[tuple[str, str, str]]:
    """(name, type, description) for every fact, sorted; used to document the vocabulary."""
    return [(f.name, f.type + ("?" if f.nullable else ""), f.doc) for f in sorted(FACTS.values(), key=lambda f: f.name)]


# The approval facts (agreement.* lists judged against the catalogue) live in their own module; importing
# it registers them, and it comes last so that it can use the helpers above.
from rules import _approval_facts  # noqa: E402, F401
