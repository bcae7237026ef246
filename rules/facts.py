"""The fixed vocabulary of facts a condition may name, derived lazily from (event, agreement, catalogue).

Each fact is a name (`event.fields`, `agreement.active`, ...), a static type the compiler checks, an
optional code domain (so a literal compared with it must exist in the catalogue) and a getter. Cheap
facts read the event directly; derived ones are computed at most once per event and cached.

This module registers the vocabulary, by domain (event, agreement, gateway and purpose, fields and
datasets, window). What the getters read lives beside it: the per-event context `Facts`
(rules/_context.py), the views of catalogue codes and agreements the engine keeps
(rules/_views.py), and the index key and the facts it decides (rules/_index_key.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from rules._context import LONDON, Facts, event_day, local_time
from rules._index_key import (
    INDEX_FACTS,
    INDEX_NONEMPTY,
    INDEX_NULL,
    INDEX_PARTIAL,
    UNKNOWN,
    KeyFn,
    decide_agreement_facts_by_view,
    index_key,
    nonempty_by_field_class,
)
from rules._views import (
    BIT_IDENTIFIERS,
    BIT_IDENTIFYING,
    BIT_INSTANT,
    BIT_PROHIBITED,
    BIT_PUPIL,
    BIT_SENSITIVE,
    BIT_SPECIAL,
    BIT_TIER1,
    BIT_TIER2,
    BIT_UNKNOWN,
    DEFAULT_AUDIT_INTERVAL_DAYS,
    DESTRUCTION_GRACE_DAYS,
    CatalogueViews,
    destruction_due_of,
)
from rules.catalogue import GATEWAY_REQUIREMENTS

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
    "CatalogueViews",
    "Fact",
    "Facts",
    "KeyFn",
    "fact_table",
    "index_key",
]

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
_fact("event.local_hour", "int", "Hour of occurred_at in Europe/London (0-23)")(
    lambda f: (f.local or local_time(f)).hour
)
_fact("event.local_weekday", "int", "ISO weekday of occurred_at in Europe/London (1 = Monday, 7 = Sunday)")(
    lambda f: (f.local or local_time(f)).isoweekday()
)
_fact("event.local_date", "str", "Date of occurred_at in Europe/London (YYYY-MM-DD)")(
    lambda f: (f.day or event_day(f)).isoformat()
)
# What an analyst reads in a message: UK wall-clock time with its zone (GMT or BST) and weekday, so
# "Sat 2021-03-06 22:14 GMT" needs no conversion from UTC or from an hour and an ISO weekday number.
# Weekday names fixed here: strftime's %a follows the process locale.
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _uk_time_text(t: dt.datetime) -> str:
    return f"{_WEEKDAYS[t.weekday()]} {t:%Y-%m-%d %H:%M} {t.tzname()}"


_fact("event.local_time", "str", "occurred_at in UK time for messages, e.g. Sat 2021-03-06 22:14 GMT (or BST)")(
    lambda f: _uk_time_text(f.local or local_time(f))
)
_path(
    "event.pupil_level",
    "bool",
    "Pupil-level (not aggregate) data with at least one pupil-level field (a code not in the catalogue counts)",
    "pupil_level",
)

# --- agreement.* -----------------------------------------------------------------------------------

_path("agreement.present", "bool", "The event's agreement was found in the register", "present")
_path("agreement.cited", "bool", "The event names an agreement id (found or not)", "cited")
_fact("agreement.id", "str", "Agreement id (the register's, else the one the event cites)", nullable=True)(
    lambda f: f.agreement.agreement_id if f.agreement is not None else f.event.agreement_id
)
_path("agreement.status", "str", "approved, suspended, revoked or rejected", "agreement_view.status", nullable=True)
_path("agreement.approver", "str", "dsap, dmap, npd_team or other", "agreement_view.approver", nullable=True)
_path("agreement.panel_approved", "bool", "Approved by the panel (DSAP or DMAP)", "agreement_view.panel_approved")
_path("agreement.valid_from", "str", "First valid day", "agreement_view.valid_from", nullable=True)
_path("agreement.valid_until", "str", "Last valid day (inclusive)", "agreement_view.valid_until", nullable=True)
_fact(
    "agreement.active",
    "bool",
    "Approved, and the event's Europe/London date is within valid_from..valid_until (event time, not clock)",
)(lambda f: (a := f.agreement) is not None and a.active_on(f.day or event_day(f)))
_path("agreement.approved", "bool", "Status is approved", "agreement_view.approved")
_fact("agreement.not_yet_valid", "bool", "The event's date is before valid_from")(
    lambda f: (a := f.agreement) is not None and (f.day or event_day(f)) < a.valid_from
)
_fact("agreement.expired", "bool", "The event's date is after valid_until")(
    lambda f: (a := f.agreement) is not None and (f.day or event_day(f)) > a.valid_until
)
_path(
    "agreement.destruction_confirmed_at",
    "str",
    "Date the recipient confirmed destruction",
    "agreement_view.destruction_confirmed_at",
    nullable=True,
)
_path(
    "agreement.destruction_due",
    "str",
    f"Date destruction must be confirmed by (valid_until + {DESTRUCTION_GRACE_DAYS} days)",
    "agreement_view.destruction_due",
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
        and (f.day or event_day(f)) > destruction_due_of(a)
    )
)
_fact("now.date", "str", "Europe/London date the sweep judges at (`scope: agreement` rules only)")(
    lambda f: (f.day or event_day(f)).isoformat()
)
_path(
    "agreement.legal_gateways",
    "list",
    "Gateways the agreement approved",
    "agreement_view.legal_gateways",
    domain="gateway",
)
_path("agreement.purposes", "list", "Purposes the agreement approved", "agreement_view.purposes", domain="purpose")
_path(
    "agreement.fields_allowed", "list", "Fields the agreement allows", "agreement_view.fields_allowed", domain="field"
)
_path(
    "agreement.datasets_allowed",
    "list",
    "Datasets (and so linkages) the agreement allows",
    "agreement_view.datasets_allowed",
    domain="dataset",
)
_path("agreement.access_route", "str", "srs_only or direct_allowed", "agreement_view.access_route", nullable=True)
_path(
    "agreement.srs_only",
    "bool",
    "The agreement allows access through the Secure Research Service only",
    "agreement_view.srs_only",
)
_path(
    "agreement.recipient_org_id",
    "str",
    "Recipient the agreement names",
    "agreement_view.recipient_org_id",
    nullable=True,
)
_path(
    "agreement.recipient_org_type",
    "str",
    "Recipient type the agreement names",
    "agreement_view.recipient_org_type",
    nullable=True,
    domain="org_type",
)
_path(
    "agreement.recipient_ico_registration",
    "str",
    "ICO registration the agreement names",
    "agreement_view.recipient_ico_registration",
    nullable=True,
)
_path(
    "agreement.recipient_companies_house",
    "str",
    "Companies House number the agreement names",
    "agreement_view.recipient_companies_house",
    nullable=True,
)
_path(
    "agreement.monthly_record_cap",
    "int",
    "Records per calendar month allowed",
    "agreement_view.monthly_record_cap",
    nullable=True,
)
_path(
    "agreement.per_event_record_cap",
    "int",
    "Records per event allowed",
    "agreement_view.per_event_record_cap",
    nullable=True,
)
_path(
    "agreement.onward_recipients_allowed",
    "list",
    "Organisations the data may be passed on to",
    "agreement_view.onward_recipients_allowed",
)
_path(
    "agreement.dpia_ref", "str", "Data protection impact assessment reference", "agreement_view.dpia_ref", nullable=True
)
_path("agreement.ethics_ref", "str", "Ethics review reference", "agreement_view.ethics_ref", nullable=True)
_path("agreement.commercial", "bool", "The agreement is with a commercial body", "agreement_view.commercial")
_path(
    "agreement.last_audit_at", "str", "Date of the last recipient audit", "agreement_view.last_audit_at", nullable=True
)
_path("agreement.audit_due", "str", "Date the next recipient audit is due", "agreement_view.audit_due", nullable=True)
_fact(
    "agreement.audit_overdue",
    "bool",
    f"The recipient audit is overdue at the event's date (interval default {DEFAULT_AUDIT_INTERVAL_DAYS} days; "
    "never audited counts from valid_from)",
)(lambda f: (due := f.agreement_view.audit_due_date) is not None and (f.day or event_day(f)) > due)

# --- gateway.* and purpose.* --------------------------------------------------------------------------

_path("gateway.known", "bool", "The event's gateway code is in the catalogue", "gateway_view.known")
_path("gateway.title", "str", "Title of the event's gateway", "gateway_view.title", nullable=True)
_path(
    "gateway.recipient_types",
    "list",
    "Recipient types the event's gateway is open to",
    "gateway_view.recipient_types",
    domain="org_type",
)
_path("gateway.purposes", "list", "Purposes the event's gateway can carry", "gateway_view.purposes", domain="purpose")
for _req in GATEWAY_REQUIREMENTS:
    _path(f"gateway.{_req}", "bool", f"The event's gateway has the requirement {_req}", f"gateway_view.{_req}")

_path("purpose.known", "bool", "The event's purpose code is in the catalogue", "purpose_view.known")
_path("purpose.title", "str", "Title of the event's purpose", "purpose_view.title", nullable=True)
_path("purpose.carried_by_any_gateway", "bool", "Some gateway can carry the event's purpose", "purpose_view.carried")
_path(
    "purpose.no_gateway",
    "bool",
    "The purpose is known and no gateway can carry it (journalism, marketing, ...)",
    "purpose_view.no_gateway",
)

# --- fields.* and datasets.* ------------------------------------------------------------------------


def _field_class(name: str, doc: str, bit: int, *, domain: str | None = "field") -> None:
    def get(f: Facts) -> tuple[str, ...]:
        return f.field_classes.select(bit)

    def nonempty(f: Facts) -> bool:
        return bool(f.field_classes.mask & bit)

    FACTS[name] = Fact(name, "list", doc, get, False, domain, nonempty)
    nonempty_by_field_class(name, bit)


_field_class(
    "fields.unknown", "Disclosed field codes not in the catalogue (counted pupil-level)", BIT_UNKNOWN, domain=None
)
_field_class("fields.prohibited", "Prohibited fields disclosed", BIT_PROHIBITED)
_field_class("fields.identifiers", "Instant or meaningful identifiers disclosed", BIT_IDENTIFIERS)
_field_class("fields.instant_identifiers", "Instant identifiers disclosed", BIT_INSTANT)
_field_class("fields.tier1", "Tier 1 fields disclosed", BIT_TIER1)
_field_class("fields.tier2", "Tier 2 fields disclosed", BIT_TIER2)
_field_class("fields.identifying", "Identifiers or Tier 1/2 pupil-level fields disclosed", BIT_IDENTIFYING)
_field_class("fields.special_category", "Special category fields disclosed", BIT_SPECIAL)
_field_class("fields.sensitive", "Tier 1 or special category fields disclosed", BIT_SENSITIVE)
_fact("fields.pupil_level", "bool", "At least one pupil-level field disclosed (a code not in the catalogue counts)")(
    lambda f: bool(f.field_classes.mask & BIT_PUPIL)
)


@_fact(
    "fields.outside_agreement",
    "list",
    "Disclosed fields the agreement does not allow (prohibited fields included)",
    domain="field",
    nonempty=lambda f: not f.agreement_view.fields_ok.issuperset(f.field_classes.fields),
)
def _fields_outside(f: Facts) -> tuple[str, ...]:
    ok = f.agreement_view.fields_ok
    return tuple([c for c in f.field_classes.fields if c not in ok])


def _datasets_outside_nonempty(f: Facts) -> bool:
    datasets = f.event.datasets
    if f.agreement is None:
        return len(datasets) > 0
    return not f.agreement_view.datasets_allowed_set.issuperset(datasets)


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
    allowed = f.agreement_view.datasets_allowed_set
    return tuple(c for c in datasets if c not in allowed)


_fact("datasets.unknown", "list", "Dataset codes not in the catalogue")(
    lambda f: tuple(c for c in f.event.datasets if c not in f.catalogue.datasets)
)


def _onward_not_allowed_nonempty(f: Facts) -> bool:
    onward = f.event.onward_recipients
    return bool(onward) and not f.agreement_view.onward_allowed_set.issuperset(onward)


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
    allowed = f.agreement_view.onward_allowed_set
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

# The agreement facts read from the agreement view are decided by a key extended with the view.
decide_agreement_facts_by_view(_PATHS)


def fact_table() -> list[tuple[str, str, str]]:
    """(name, type, description) for every fact, sorted; used to document the vocabulary."""
    return [(f.name, f.type + ("?" if f.nullable else ""), f.doc) for f in sorted(FACTS.values(), key=lambda f: f.name)]


# The approval facts (agreement.* lists judged against the catalogue) live in their own module; importing
# it registers them, and it comes last so that it can use the helpers above.
from rules import _approval_facts  # noqa: E402, F401
