"""Pure aggregation of decisions (and the profile of their events) into report figures; no I/O.

Every figure is a count over a bounded vocabulary: enums of the contract, catalogue codes (anything
else becomes `other`, as the worker's metrics do), months, and recipients. Nothing about a pupil and
no field code is kept: an event is reduced to its `Profile` before it is stored or counted.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rules.catalogue import Catalogue
from schemas import AccessEvent, Category, Decision, OrgType

__all__ = [
    "NONE",
    "OTHER",
    "UNKNOWN",
    "Labels",
    "MonthFigures",
    "PackUse",
    "Profile",
    "RecipientTotals",
    "RegisterFigures",
    "RegisterRow",
    "profile_of",
    "route_of",
]

OTHER = "other"
NONE = "none"
#: The tier or channel of a decision whose access event was not found in the history read.
UNKNOWN = "unknown"
#: Channels that are the Secure Research Service; every other channel supplies data directly.
SRS_CHANNELS = frozenset({"srs"})


@dataclass(frozen=True, slots=True)
class Profile:
    """What the report needs from an access event that its decision does not carry."""

    channel: str
    tier: str  # "1" (most sensitive) to "4", or "none" when no disclosed field has a tier
    special: bool  # any special-category field (ethnicity, health, ...) disclosed
    datasets: tuple[str, ...]
    recipient_name: str | None


def profile_of(event: AccessEvent, catalogue: Catalogue) -> Profile:
    """The event's profile: most sensitive tier and special category from the catalogue, as the worker counts them."""
    known = catalogue.fields
    entries = [entry for f in event.fields if (entry := known.get(f)) is not None]
    tiers = [e.tier for e in entries if e.tier is not None]
    datasets = tuple(sorted({d if d in catalogue.datasets else OTHER for d in event.datasets}))
    return Profile(
        channel=event.channel.value,
        tier=str(min(tiers)) if tiers else NONE,
        special=any(e.special_category for e in entries),
        datasets=datasets,
        recipient_name=event.recipient.name,
    )


def route_of(channel: str) -> str:
    """`srs` (Secure Research Service), `direct` (any other channel) or `unknown`."""
    if channel == UNKNOWN:
        return UNKNOWN
    return "srs" if channel in SRS_CHANNELS else "direct"


class Labels:
    """Catalogue codes as report labels: a code the catalogue lacks is `other`, a missing one `none`."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._gateways = frozenset(catalogue.gateways)
        self._purposes = frozenset(catalogue.purposes)

    def gateway(self, code: str | None) -> str:
        return NONE if code is None else code if code in self._gateways else OTHER

    def purpose(self, code: str | None) -> str:
        return NONE if code is None else code if code in self._purposes else OTHER


@dataclass(slots=True)
class PackUse:
    """One rule pack version seen on the period's decisions."""

    decisions: int = 0
    first: dt.datetime | None = None
    last: dt.datetime | None = None


#: Distinct names (or types) kept per recipient: enough for honest variation, bounded against a hostile producer.
_MAX_VARIANTS = 16


def _tally(counter: Counter[Any], value: Any) -> None:
    if value in counter or len(counter) < _MAX_VARIANTS:
        counter[value] += 1


def _most_common(counter: Counter[Any]) -> Any:
    """The value seen most often (ties to the smallest), whatever order the history was read in."""
    return min(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0] if counter else None


@dataclass(slots=True)
class RecipientTotals:
    names: Counter[str] = field(default_factory=Counter)
    types: Counter[str] = field(default_factory=Counter)
    events: int = 0
    records: int = 0
    findings: int = 0

    @property
    def name(self) -> str | None:
        name: str | None = _most_common(self.names)
        return name

    @property
    def recipient_type(self) -> str:
        rtype: str | None = _most_common(self.types)
        return rtype or NONE


def _span(first: dt.datetime | None, last: dt.datetime | None, when: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    return (when if first is None or when < first else first, when if last is None or when > last else last)


@dataclass
class MonthFigures:
    """The board pack's figures: the month in detail, findings and Home Office requests over the trend months."""

    month: str
    trend_months: list[str]
    events: Counter[tuple[str, str, str, str, str]] = field(
        default_factory=Counter
    )  # action, type, gw, purpose, verdict
    records: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)  # recipient type, gw, purpose, tier
    records_by_channel: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # channel, tier, special
    events_by_route: Counter[str] = field(default_factory=Counter)
    findings: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # rule, category, severity
    findings_trend: Counter[tuple[str, str]] = field(default_factory=Counter)  # month, severity
    findings_trend_by_category: Counter[tuple[str, str]] = field(default_factory=Counter)  # month, category
    events_trend: Counter[str] = field(default_factory=Counter)  # month
    home_office_persons: Counter[str] = field(default_factory=Counter)  # month
    recipients: dict[str, RecipientTotals] = field(default_factory=dict)
    packs: dict[tuple[str, str, str], PackUse] = field(default_factory=dict)
    missing_events: int = 0  # decisions of the month whose access event was not in the history read
    #: (agreement, rule) -> events: governance findings on the month's shares, i.e. against their approval.
    approval_gaps: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add_trend(self, month: str, decision: Decision) -> None:
        """A decision of any trend month (the report month included): findings and Home Office requests."""
        self.events_trend[month] += 1
        for v in decision.violations:
            self.findings_trend[(month, v.severity.value)] += 1
            self.findings_trend_by_category[(month, v.category.value)] += 1
        if decision.recipient_type is OrgType.HOME_OFFICE and decision.record_count:
            self.home_office_persons[month] += decision.record_count

    def add(self, decision: Decision, profile: Profile | None, labels: Labels) -> None:
        """A decision of the report month, with its event's profile (None when the event was not found)."""
        if profile is None:
            self.missing_events += 1
        rtype = decision.recipient_type.value if decision.recipient_type is not None else NONE
        action = decision.action.value if decision.action is not None else NONE
        gateway, purpose = labels.gateway(decision.legal_gateway), labels.purpose(decision.purpose)
        self.events[(action, rtype, gateway, purpose, decision.verdict.value)] += 1
        channel = profile.channel if profile is not None else UNKNOWN
        self.events_by_route[route_of(channel)] += 1
        records = decision.record_count or 0
        if records:
            tier = profile.tier if profile is not None else UNKNOWN
            special = "true" if profile is not None and profile.special else "false"
            self.records[(rtype, gateway, purpose, tier)] += records
            self.records_by_channel[(channel, tier, special)] += records
        for v in decision.violations:
            self.findings[(v.rule_id, v.category.value, v.severity.value)] += 1
            if v.category is Category.GOVERNANCE_GAP and decision.agreement_id:
                self.approval_gaps[(decision.agreement_id, v.rule_id)] += 1
        org = decision.recipient_org_id or NONE
        totals = self.recipients.get(org)
        if totals is None:
            totals = self.recipients[org] = RecipientTotals()
        if profile is not None and profile.recipient_name:
            _tally(totals.names, profile.recipient_name)
        _tally(totals.types, rtype)
        totals.events += 1
        totals.records += records
        totals.findings += len(decision.violations)
        key = (decision.pack.name, decision.pack.version, decision.pack.sha256)
        use = self.packs.get(key)
        if use is None:
            use = self.packs[key] = PackUse()
        use.decisions += 1
        use.first, use.last = _span(use.first, use.last, decision.evaluated_at)

    # Marginals the pack shows: each is a sum over `records` or `records_by_channel`.
    def records_by(self, position: int) -> Counter[str]:
        """Records disclosed by recipient type (0), gateway (1), purpose (2) or tier (3)."""
        out: Counter[str] = Counter()
        for key, n in self.records.items():
            out[key[position]] += n
        return out

    @property
    def total_records(self) -> int:
        return sum(self.records.values())

    def records_where(self, *, tier: str | None = None, special: bool | None = None) -> int:
        return sum(
            n
            for (_, t, s), n in self.records_by_channel.items()
            if (tier is None or t == tier) and (special is None or (s == "true") == special)
        )

    def records_by_route(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for (channel, _, _), n in self.records_by_channel.items():
            out[route_of(channel)] += n
        return out

    def verdicts(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for key, n in self.events.items():
            out[key[4]] += n
        return out

    def findings_by(self, position: int) -> Counter[str]:
        """Findings of the month by rule (0), category (1) or severity (2)."""
        out: Counter[str] = Counter()
        for key, n in self.findings.items():
            out[key[position]] += n
        return out

    def top_recipients(self, n: int = 10) -> list[tuple[str, RecipientTotals]]:
        ranked = sorted(self.recipients.items(), key=lambda kv: (-kv[1].records, -kv[1].events, kv[0]))
        return ranked[:n]


@dataclass(slots=True)
class RegisterRow:
    """One agreement and share route in the quarter: a row of the published register, plus its findings."""

    agreement_id: str | None
    route: str
    recipients: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (org id, type, name or "")
    gateways: set[str] = field(default_factory=set)
    purposes: set[str] = field(default_factory=set)
    datasets: set[str] = field(default_factory=set)
    highest_tier: str = NONE  # the lowest tier number seen: tier 1 is the most sensitive
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    shares: int = 0
    records: int = 0
    findings: Counter[str] = field(default_factory=Counter)  # category -> events

    @property
    def recipient(self) -> tuple[str, str, str]:
        """(org id, type, name) of the recipient seen most often on the row's shares."""
        best: tuple[str, str, str] | None = _most_common(self.recipients)
        return best or (NONE, NONE, "")


def _more_sensitive(a: str, b: str) -> str:
    ranked = [t for t in (a, b) if t.isdigit()]
    if ranked:
        return min(ranked)
    return UNKNOWN if UNKNOWN in (a, b) else NONE


@dataclass
class RegisterFigures:
    """The quarter's external shares, one row per (agreement, route); shares with no agreement per recipient."""

    quarter: str
    rows: dict[tuple[str, str, str], RegisterRow] = field(default_factory=dict)
    internal_events: int = 0  # events of DfE's own staff: not external shares, left out of the register
    missing_events: int = 0

    def add(self, decision: Decision, profile: Profile | None, labels: Labels) -> None:
        if profile is None:
            self.missing_events += 1
        if decision.recipient_type is OrgType.INTERNAL:
            self.internal_events += 1
            return
        org = decision.recipient_org_id or NONE
        route = route_of(profile.channel if profile is not None else UNKNOWN)
        # Keyed by agreement; shares citing none are grouped per recipient, so each stays visible.
        key = (decision.agreement_id or "", "" if decision.agreement_id else org, route)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = RegisterRow(decision.agreement_id, route)
        rtype = decision.recipient_type.value if decision.recipient_type is not None else NONE
        _tally(row.recipients, (org, rtype, (profile.recipient_name if profile is not None else None) or ""))
        row.gateways.add(labels.gateway(decision.legal_gateway))
        row.purposes.add(labels.purpose(decision.purpose))
        if profile is not None:
            row.datasets.update(profile.datasets)
            row.highest_tier = _more_sensitive(row.highest_tier, profile.tier)
        else:
            row.highest_tier = _more_sensitive(row.highest_tier, UNKNOWN)
        when = decision.occurred_at or decision.evaluated_at
        row.first, row.last = _span(row.first, row.last, when)
        row.shares += 1
        row.records += decision.record_count or 0
        for category in {v.category.value for v in decision.violations}:
            row.findings[category] += 1

    def sorted_rows(self) -> list[RegisterRow]:
        return sorted(
            self.rows.values(),
            key=lambda r: (r.agreement_id is None, r.agreement_id or "", r.recipient[0], r.route),
        )
