"""Assemble a month's board pack or a quarter's register: read the history, aggregate, judge the register."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from rules import Engine
from schemas import Agreement, Decision
from streams.report.aggregate import Labels, MonthFigures, Profile, RegisterFigures
from streams.report.periods import Period, months_back
from streams.report.reading import History, Progress, ReadStats, read_history

__all__ = [
    "AUDIT_RULES",
    "DESTRUCTION_RULES",
    "ApprovalFinding",
    "MonthReport",
    "RegisterReport",
    "approval_findings",
    "build_month",
    "build_register",
    "home_office_cap",
]

#: Months of findings trend a board pack shows (the report month is the last).
TREND_MONTHS = 12
#: Sweep rules whose findings the pack lists as overdue audits and unconfirmed destructions.
AUDIT_RULES = frozenset({"NPD-GOV-04"})
DESTRUCTION_RULES = frozenset({"NPD-GOV-05"})


@dataclass(frozen=True, slots=True)
class ApprovalFinding:
    """A finding against an agreement (an approval), not against an event."""

    agreement_id: str
    recipient_org_id: str
    recipient_name: str | None
    approver: str
    status: str
    rule_id: str
    category: str
    severity: str
    title: str
    explanation: str


def approval_findings(engine: Engine, agreements: Sequence[Agreement], at: dt.datetime) -> list[ApprovalFinding]:
    """Findings against approvals at `at`: the pack's agreement-scoped rules run over the register.

    This is the one place the reports learn of approval findings; where agreement decisions are
    recorded, reading them here in place of the sweep changes nothing else.
    """
    by_id = {a.agreement_id: a for a in agreements}
    out = []
    for alert in engine.sweep(agreements, at):
        agreement = by_id.get(alert.agreement_id or "")
        if agreement is None:
            continue
        out.append(
            ApprovalFinding(
                agreement_id=agreement.agreement_id,
                recipient_org_id=agreement.recipient_org_id,
                recipient_name=agreement.recipient_name,
                approver=agreement.approver.value,
                status=agreement.status.value,
                rule_id=alert.rule_id,
                category=alert.category.value,
                severity=alert.severity.value,
                title=alert.title,
                explanation=alert.explanation,
            )
        )
    return sorted(out, key=lambda f: (f.agreement_id, f.rule_id))


def home_office_cap(engine: Engine) -> int | None:
    """Persons a month the Home Office may request: the threshold of the pack's rule tagged `home_office_cap`."""
    for rule in engine.rules:
        if "home_office_cap" in rule.tags and rule.window is not None and rule.window.threshold_text.isdigit():
            return int(rule.window.threshold_text)
    return None


def _judged_at(period: Period, now: dt.datetime) -> dt.datetime:
    """The register is judged as at the end of the period, or now for a period not yet over."""
    return min(period.end, now)


@dataclass
class MonthReport:
    period: Period
    figures: MonthFigures
    approvals: list[ApprovalFinding]
    home_office_cap: int | None
    stats: ReadStats
    source: str
    generated_at: dt.datetime
    judged_at: dt.datetime
    agreements: int
    judging_pack: str  # the pack that judged the register for approvals with findings: `npd 1.1.0`
    rule_titles: dict[str, str] = field(default_factory=dict)
    #: Recipient names the register gives, by organisation id (before any name an event carried).
    recipient_names: dict[str, str] = field(default_factory=dict)
    #: Agreement id -> recipient named in the register, for the agreements the month's findings name.
    agreement_recipients: dict[str, str] = field(default_factory=dict)

    @property
    def overdue_audits(self) -> list[ApprovalFinding]:
        return [f for f in self.approvals if f.rule_id in AUDIT_RULES]

    @property
    def unconfirmed_destructions(self) -> list[ApprovalFinding]:
        return [f for f in self.approvals if f.rule_id in DESTRUCTION_RULES]


@dataclass
class RegisterReport:
    period: Period
    figures: RegisterFigures
    stats: ReadStats
    source: str
    generated_at: dt.datetime
    #: The register's agreements by id: a row of an agreement it holds names the agreement's recipient.
    agreements: dict[str, Agreement] = field(default_factory=dict)


def build_month(
    history: History,
    period: Period,
    engine: Engine,
    agreements: Sequence[Agreement],
    *,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> MonthReport:
    now = now or dt.datetime.now(dt.UTC)
    trend = months_back(period, TREND_MONTHS)
    window = Period(f"{trend[0].label}..{period.label}", trend[0].start, period.end)
    labels = Labels(engine.catalogue)
    figures = MonthFigures(period.label, [m.label for m in trend])

    def consume(decision: Decision, month: str, profile: Profile | None, in_period: bool) -> None:
        figures.add_trend(month, decision)
        if in_period:
            figures.add(decision, profile, labels)

    stats = read_history(history, period, window, engine.catalogue, consume, progress)
    judged = _judged_at(period, now)
    return MonthReport(
        period=period,
        figures=figures,
        approvals=approval_findings(engine, agreements, judged),
        home_office_cap=home_office_cap(engine),
        stats=stats,
        source=history.description,
        generated_at=now,
        judged_at=judged,
        agreements=len(agreements),
        judging_pack=f"{engine.pack.name} {engine.pack.version}",
        rule_titles={r.id: r.title for r in engine.rules},
        recipient_names={a.recipient_org_id: a.recipient_name for a in agreements if a.recipient_name},
        agreement_recipients={a.agreement_id: a.recipient_name or a.recipient_org_id for a in agreements},
    )


def build_register(
    history: History,
    period: Period,
    engine: Engine,
    agreements: Sequence[Agreement],
    *,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> RegisterReport:
    labels = Labels(engine.catalogue)
    figures = RegisterFigures(period.label)

    def consume(decision: Decision, month: str, profile: Profile | None, in_period: bool) -> None:
        figures.add(decision, profile, labels)

    stats = read_history(history, period, period, engine.catalogue, consume, progress)
    registered = {a.agreement_id: a for a in agreements}
    return RegisterReport(period, figures, stats, history.description, now or dt.datetime.now(dt.UTC), registered)
