"""The fixed vocabulary of facts a condition may name, derived lazily from (event, agreement, catalogue).

Each fact is a name (`event.fields`, `agreement.active`, ...), a static type the compiler checks, an
optional code domain (so a literal compared with it must exist in the catalogue) and a getter. Cheap
facts read the event directly; derived ones are computed at most once per event and cached.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

from rules.catalogue import Catalogue, Gateway, Purpose
from schemas.agreement import Agreement
from schemas.event import AccessEvent
from schemas.vocab import AccessRoute, AgreementStatus, Approver

__all__ = [
    "DEFAULT_AUDIT_INTERVAL_DAYS",
    "DESTRUCTION_GRACE_DAYS",
    "FACTS",
    "LONDON",
    "Fact",
    "Facts",
    "fact_table",
]

LONDON = ZoneInfo("Europe/London")
#: DOMAIN.md: "recipient audit overdue (default every 365 days)".
DEFAULT_AUDIT_INTERVAL_DAYS = 365
#: DOMAIN.md: "no destruction confirmation 30 days after the agreement ended".
DESTRUCTION_GRACE_DAYS = 30
_PANEL = frozenset({Approver.DSAP, Approver.DMAP})


class Facts:
    """The per-event evaluation context: the inputs plus a cache of derived facts (filled on demand)."""

    __slots__ = ("agreement", "cache", "catalogue", "event", "gateway", "purpose")

    def __init__(self, event: AccessEvent, agreement: Agreement | None, catalogue: Catalogue) -> None:
        self.event = event
        self.agreement = agreement
        self.catalogue = catalogue
        self.cache: dict[str, Any] = {}
        # Two dict lookups, needed by most rules: cheaper done once here than behind a cache.
        self.gateway: Gateway | None = catalogue.gateways.get(event.legal_gateway or "")
        self.purpose: Purpose | None = catalogue.purposes.get(event.purpose or "")

    @classmethod
    def for_sweep(cls, agreement: Agreement, catalogue: Catalogue, now: dt.datetime) -> Facts:
        """Facts for an agreement-scoped rule judged at `now`: no event; the day facts use `now`'s date.

        The loader lets such rules name only `agreement.*` (except agreement.cited) and `now.*` facts,
        which never read the event.
        """
        f = cls.__new__(cls)
        f.event = cast(AccessEvent, None)
        f.agreement = agreement
        f.catalogue = catalogue
        f.cache = {"_local": now.astimezone(LONDON)}
        f.gateway = None
        f.purpose = None
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


FACTS: dict[str, Fact] = {}


def _fact(
    name: str, type_: str, doc: str, *, nullable: bool = False, domain: str | None = None, cached: bool = False
) -> Callable[[Getter], Getter]:
    def register(fn: Getter) -> Getter:
        getter = fn
        if cached:

            def getter(f: Facts, _k: str = name, _fn: Getter = fn) -> Any:
                try:
                    return f.cache[_k]
                except KeyError:
                    value = f.cache[_k] = _fn(f)
                    return value

        FACTS[name] = Fact(name, type_, doc, getter, nullable, domain)
        return fn

    return register


# --- helpers (cached where more than an attribute read) ---------------------------------------------


def _local(f: Facts) -> dt.datetime:
    c = f.cache
    v: dt.datetime | None = c.get("_local")
    if v is None:
        v = c["_local"] = f.event.occurred_at.astimezone(LONDON)
    return v


def _event_day(f: Facts) -> dt.date:
    return _local(f).date()


def _gateway(f: Facts) -> Gateway | None:
    return f.gateway


def _purpose(f: Facts) -> Purpose | None:
    return f.purpose


def _where(f: Facts, test: Callable[[Any], bool]) -> tuple[str, ...]:
    known = f.catalogue.fields
    return tuple(c for c in f.event.fields if (d := known.get(c)) is not None and test(d))


def _opt(value: Any) -> Any:
    return None if value is None else str(value)


# --- event.* -------------------------------------------------------------------------------------

_fact("event.id", "str", "The event's id")(lambda f: f.event.event_id)
_fact("event.action", "str", "view, search, query, extract, transfer or match_check")(lambda f: f.event.action)
_fact("event.channel", "str", "srs, sftp, egress, api, email, portal or removable_media")(lambda f: f.event.channel)
_fact("event.source_system", "str", "System that reported the event")(lambda f: f.event.source_system)
_fact("event.record_count", "int", "Records disclosed")(lambda f: f.event.record_count)
_fact("event.datasets", "list", "Dataset codes drawn on", domain="dataset")(lambda f: f.event.datasets)
_fact("event.fields", "list", "Field codes disclosed to the recipient", domain="field")(lambda f: f.event.fields)
_fact("event.legal_gateway", "str", "Legal gateway code the event cites", nullable=True, domain="gateway")(
    lambda f: f.event.legal_gateway
)
_fact("event.purpose", "str", "Purpose code the event cites", nullable=True, domain="purpose")(
    lambda f: f.event.purpose
)
_fact("event.agreement_id", "str", "Agreement id the event cites", nullable=True)(lambda f: f.event.agreement_id)
_fact("event.recipient.org_id", "str", "Receiving organisation id")(lambda f: f.event.recipient.org_id)
_fact("event.recipient.org_type", "str", "Receiving organisation type", domain="org_type")(
    lambda f: f.event.recipient.org_type
)
_fact("event.recipient.name", "str", "Receiving organisation name", nullable=True)(lambda f: f.event.recipient.name)
_fact("event.recipient.ico_registration", "str", "Recipient's ICO registration", nullable=True)(
    lambda f: f.event.recipient.ico_registration
)
_fact("event.recipient.companies_house", "str", "Recipient's Companies House number", nullable=True)(
    lambda f: f.event.recipient.companies_house
)
_fact("event.actor.user_id", "str", "User who performed the access")(lambda f: f.event.actor.user_id)
_fact("event.actor.org_id", "str", "Organisation of that user")(lambda f: f.event.actor.org_id)
_fact("event.actor.role", "str", "Role of that user", nullable=True)(lambda f: f.event.actor.role)
_fact("event.actor.country", "str", "ISO 3166 alpha-2 country of access", nullable=True)(
    lambda f: f.event.actor.country
)
_fact("event.case_reference", "str", "Case reference of an enforcement request", nullable=True)(
    lambda f: f.event.case_reference
)
_fact("event.evidence_attestation", "bool", "True only if the requester attested the evidence (absent = false)")(
    lambda f: f.event.evidence_attestation is True
)
_fact("event.court_order_ref", "str", "Court order reference", nullable=True)(lambda f: f.event.court_order_ref)
_fact("event.onward_recipients", "list", "Organisations the data is passed on to")(lambda f: f.event.onward_recipients)
_fact("event.min_cell_count", "int", "Smallest cell of an aggregate output (null: not aggregate)", nullable=True)(
    lambda f: f.event.min_cell_count
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
_fact("event.local_hour", "int", "Hour of occurred_at in Europe/London (0-23)")(lambda f: _local(f).hour)
_fact("event.local_weekday", "int", "ISO weekday of occurred_at in Europe/London (1 = Monday, 7 = Sunday)")(
    lambda f: _local(f).isoweekday()
)
_fact("event.local_date", "str", "Date of occurred_at in Europe/London (YYYY-MM-DD)")(
    lambda f: _local(f).date().isoformat()
)


@_fact("event.pupil_level", "bool", "Pupil-level (not aggregate) data with at least one pupil-level field", cached=True)
def _pupil_level_event(f: Facts) -> bool:
    return f.event.min_cell_count is None and bool(_where(f, lambda d: d.pupil_level))


# --- agreement.* -----------------------------------------------------------------------------------

_fact("agreement.present", "bool", "The event's agreement was found in the register")(lambda f: f.agreement is not None)
_fact("agreement.cited", "bool", "The event names an agreement id (found or not)")(
    lambda f: f.event.agreement_id is not None
)
_fact("agreement.id", "str", "Agreement id (the register's, else the one the event cites)", nullable=True)(
    lambda f: f.agreement.agreement_id if f.agreement is not None else f.event.agreement_id
)
_fact("agreement.status", "str", "approved, suspended, revoked or rejected", nullable=True)(
    lambda f: None if f.agreement is None else f.agreement.status.value
)
_fact("agreement.approver", "str", "dsap, dmap, npd_team or other", nullable=True)(
    lambda f: None if f.agreement is None else f.agreement.approver.value
)
_fact("agreement.panel_approved", "bool", "Approved by the panel (DSAP or DMAP)")(
    lambda f: f.agreement is not None and f.agreement.approver in _PANEL
)
_fact("agreement.valid_from", "str", "First valid day", nullable=True)(
    lambda f: None if f.agreement is None else f.agreement.valid_from.isoformat()
)
_fact("agreement.valid_until", "str", "Last valid day (inclusive)", nullable=True)(
    lambda f: None if f.agreement is None else f.agreement.valid_until.isoformat()
)
_fact(
    "agreement.active",
    "bool",
    "Approved, and the event's Europe/London date is within valid_from..valid_until (event time, not clock)",
    cached=True,
)(lambda f: f.agreement is not None and f.agreement.active_on(_event_day(f)))
_fact("agreement.approved", "bool", "Status is approved")(
    lambda f: f.agreement is not None and f.agreement.status is AgreementStatus.APPROVED
)
_fact("agreement.not_yet_valid", "bool", "The event's date is before valid_from")(
    lambda f: f.agreement is not None and _event_day(f) < f.agreement.valid_from
)
_fact("agreement.expired", "bool", "The event's date is after valid_until")(
    lambda f: f.agreement is not None and _event_day(f) > f.agreement.valid_until
)
_fact("agreement.destruction_confirmed_at", "str", "Date the recipient confirmed destruction", nullable=True)(
    lambda f: None if f.agreement is None else _opt(f.agreement.destruction_confirmed_at)
)
_fact(
    "agreement.destruction_due",
    "str",
    f"Date destruction must be confirmed by (valid_until + {DESTRUCTION_GRACE_DAYS} days)",
    nullable=True,
)(lambda f: None if f.agreement is None else _opt(_destruction_due(f.agreement)))
_fact(
    "agreement.destruction_overdue",
    "bool",
    f"No destruction confirmation and the judged date is over {DESTRUCTION_GRACE_DAYS} days after valid_until",
)(
    lambda f: (
        f.agreement is not None
        and f.agreement.destruction_confirmed_at is None
        and _event_day(f) > _destruction_due(f.agreement)
    )
)
_fact("now.date", "str", "Europe/London date the sweep judges at (`scope: agreement` rules only)")(
    lambda f: _local(f).date().isoformat()
)


def _destruction_due(a: Agreement) -> dt.date:
    return a.valid_until + dt.timedelta(days=DESTRUCTION_GRACE_DAYS)


_fact("agreement.legal_gateways", "list", "Gateways the agreement approved", domain="gateway")(
    lambda f: () if f.agreement is None else f.agreement.legal_gateways
)
_fact("agreement.purposes", "list", "Purposes the agreement approved", domain="purpose")(
    lambda f: () if f.agreement is None else f.agreement.purposes
)
_fact("agreement.fields_allowed", "list", "Fields the agreement allows", domain="field")(
    lambda f: () if f.agreement is None else f.agreement.fields_allowed
)
_fact("agreement.datasets_allowed", "list", "Datasets (and so linkages) the agreement allows", domain="dataset")(
    lambda f: () if f.agreement is None else f.agreement.datasets_allowed
)
_fact("agreement.access_route", "str", "srs_only or direct_allowed", nullable=True)(
    lambda f: None if f.agreement is None else f.agreement.access_route.value
)
_fact("agreement.srs_only", "bool", "The agreement allows access through the Secure Research Service only")(
    lambda f: f.agreement is not None and f.agreement.access_route is AccessRoute.SRS_ONLY
)
_fact("agreement.recipient_org_id", "str", "Recipient the agreement names", nullable=True)(
    lambda f: None if f.agreement is None else f.agreement.recipient_org_id
)
_fact("agreement.recipient_org_type", "str", "Recipient type the agreement names", nullable=True, domain="org_type")(
    lambda f: (
        None if f.agreement is None or f.agreement.recipient_org_type is None else f.agreement.recipient_org_type.value
    )
)
_fact("agreement.recipient_ico_registration", "str", "ICO registration the agreement names", nullable=True)(
    lambda f: None if f.agreement is None else f.agreement.recipient_ico_registration
)
_fact("agreement.recipient_companies_house", "str", "Companies House number the agreement names", nullable=True)(
    lambda f: None if f.agreement is None else f.agreement.recipient_companies_house
)
_fact("agreement.monthly_record_cap", "int", "Records per calendar month allowed", nullable=True)(
    lambda f: None if f.agreement is None else f.agreement.monthly_record_cap
)
_fact("agreement.per_event_record_cap", "int", "Records per event allowed", nullable=True)(
    lambda f: None if f.agreement is None else f.agreement.per_event_record_cap
)
_fact("agreement.onward_recipients_allowed", "list", "Organisations the data may be passed on to")(
    lambda f: () if f.agreement is None else f.agreement.onward_recipients_allowed
)
_fact("agreement.dpia_ref", "str", "Data protection impact assessment reference", nullable=True)(
    lambda f: None if f.agreement is None else f.agreement.dpia_ref
)
_fact("agreement.ethics_ref", "str", "Ethics review reference", nullable=True)(
    lambda f: None if f.agreement is None else f.agreement.ethics_ref
)
_fact("agreement.commercial", "bool", "The agreement is with a commercial body")(
    lambda f: f.agreement is not None and f.agreement.commercial
)
_fact("agreement.last_audit_at", "str", "Date of the last recipient audit", nullable=True)(
    lambda f: None if f.agreement is None else _opt(f.agreement.last_audit_at)
)
_fact("agreement.audit_due", "str", "Date the next recipient audit is due", nullable=True)(
    lambda f: _opt(_audit_due(f))
)
_fact(
    "agreement.audit_overdue",
    "bool",
    f"The recipient audit is overdue at the event's date (interval default {DEFAULT_AUDIT_INTERVAL_DAYS} days; "
    "never audited counts from valid_from)",
)(lambda f: (due := _audit_due(f)) is not None and _event_day(f) > due)


def _audit_due(f: Facts) -> dt.date | None:
    a = f.agreement
    if a is None:
        return None
    interval = dt.timedelta(days=a.audit_interval_days or DEFAULT_AUDIT_INTERVAL_DAYS)
    return (a.last_audit_at or a.valid_from) + interval


# --- gateway.* and purpose.* --------------------------------------------------------------------------

_fact("gateway.known", "bool", "The event's gateway code is in the catalogue")(lambda f: _gateway(f) is not None)
_fact("gateway.title", "str", "Title of the event's gateway", nullable=True)(
    lambda f: None if (g := _gateway(f)) is None else g.title
)
_fact("gateway.recipient_types", "list", "Recipient types the event's gateway is open to", domain="org_type")(
    lambda f: () if (g := _gateway(f)) is None else tuple(sorted(g.recipient_types))
)
_fact("gateway.purposes", "list", "Purposes the event's gateway can carry", domain="purpose")(
    lambda f: () if (g := _gateway(f)) is None else tuple(sorted(g.purposes))
)


def _requirement(requirement: str) -> Getter:
    def get(f: Facts) -> bool:
        g = _gateway(f)
        return g is not None and requirement in g.requirements

    return get


for _req in (
    "case_reference_required",
    "evidence_attestation_required",
    "court_order_ref_required",
    "srs_only",
    "deidentified_only",
    "case_by_case",
):
    _fact(f"gateway.{_req}", "bool", f"The event's gateway has the requirement {_req}")(_requirement(_req))

_fact("purpose.known", "bool", "The event's purpose code is in the catalogue")(lambda f: _purpose(f) is not None)
_fact("purpose.title", "str", "Title of the event's purpose", nullable=True)(
    lambda f: None if (p := _purpose(f)) is None else p.title
)
_fact("purpose.carried_by_any_gateway", "bool", "Some gateway can carry the event's purpose")(
    lambda f: (p := _purpose(f)) is not None and p.carried_by_gateway
)
_fact("purpose.no_gateway", "bool", "The purpose is known and no gateway can carry it (journalism, marketing, ...)")(
    lambda f: (p := _purpose(f)) is not None and not p.carried_by_gateway
)

# --- fields.* and datasets.* ------------------------------------------------------------------------

_fact("fields.unknown", "list", "Disclosed field codes not in the catalogue", cached=True)(
    lambda f: tuple(c for c in f.event.fields if c not in f.catalogue.fields)
)
_fact("fields.prohibited", "list", "Prohibited fields disclosed", domain="field", cached=True)(
    lambda f: _where(f, lambda d: d.prohibited)
)
_fact("fields.identifiers", "list", "Instant or meaningful identifiers disclosed", domain="field", cached=True)(
    lambda f: _where(f, lambda d: d.identifier in ("instant", "meaningful"))
)
_fact("fields.instant_identifiers", "list", "Instant identifiers disclosed", domain="field", cached=True)(
    lambda f: _where(f, lambda d: d.identifier == "instant")
)
_fact("fields.tier1", "list", "Tier 1 fields disclosed", domain="field", cached=True)(
    lambda f: _where(f, lambda d: d.tier == 1)
)
_fact("fields.tier2", "list", "Tier 2 fields disclosed", domain="field", cached=True)(
    lambda f: _where(f, lambda d: d.tier == 2)
)
_fact(
    "fields.identifying", "list", "Identifiers or Tier 1/2 pupil-level fields disclosed", domain="field", cached=True
)(lambda f: _where(f, lambda d: d.pupil_level and (d.identifier in ("instant", "meaningful") or d.tier in (1, 2))))
_fact("fields.special_category", "list", "Special category fields disclosed", domain="field", cached=True)(
    lambda f: _where(f, lambda d: d.special_category is not None)
)
_fact("fields.sensitive", "list", "Tier 1 or special category fields disclosed", domain="field", cached=True)(
    lambda f: _where(f, lambda d: d.tier == 1 or d.special_category is not None)
)
_fact("fields.pupil_level", "bool", "At least one pupil-level field disclosed", cached=True)(
    lambda f: bool(_where(f, lambda d: d.pupil_level))
)
_fact(
    "fields.outside_agreement",
    "list",
    "Disclosed fields the agreement does not allow (prohibited fields excluded: prohibited_field reports them)",
    domain="field",
    cached=True,
)(
    lambda f: tuple(
        c
        for c in f.event.fields
        if c not in (f.agreement.fields_allowed if f.agreement is not None else ())
        and not ((d := f.catalogue.fields.get(c)) is not None and d.prohibited)
    )
)
_fact(
    "datasets.outside_agreement",
    "list",
    "Datasets drawn on that the agreement does not allow",
    domain="dataset",
    cached=True,
)(
    lambda f: tuple(
        c for c in f.event.datasets if c not in (f.agreement.datasets_allowed if f.agreement is not None else ())
    )
)
_fact("datasets.unknown", "list", "Dataset codes not in the catalogue", cached=True)(
    lambda f: tuple(c for c in f.event.datasets if c not in f.catalogue.datasets)
)
_fact("onward.not_allowed", "list", "Onward recipients the agreement does not name", cached=True)(
    lambda f: tuple(
        c
        for c in f.event.onward_recipients
        if c not in (f.agreement.onward_recipients_allowed if f.agreement is not None else ())
    )
)


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


def fact_table() -> list[tuple[str, str, str]]:
    """(name, type, description) for every fact, sorted; used to document the vocabulary."""
    return [(f.name, f.type + ("?" if f.nullable else ""), f.doc) for f in sorted(FACTS.values(), key=lambda f: f.name)]
