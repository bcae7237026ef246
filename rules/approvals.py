"""Judging agreements: the `scope: agreement` rules applied to one agreement at a date, with no event.

Pure, like the engine. The worker judges each agreement as it is applied to the register (added or
changed) and the governance sweep re-judges the register at the clock's date; both give the same alert
id for the same finding on the same version of an agreement (`agreement_alert_id`), so an unchanged
agreement re-published or re-swept refreshes its alerts instead of paging again, and a changed one is
judged afresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rules._alerts import build_alert
from rules.catalogue import Catalogue
from rules.facts import LONDON, CatalogueViews, Facts
from rules.loader import Rule
from schemas.agreement import Agreement
from schemas.agreement_decision import AgreementDecision, agreement_sha256
from schemas.decision import Alert, Issue, MessageRef, PackRef, Violation
from schemas.vocab import Verdict

__all__ = ["AgreementEvaluation", "Finding", "agreement_alert_id", "agreement_findings", "judge"]

_MAX_TEXT = 4096


def agreement_alert_id(pack_name: str, rule_id: str, agreement_id: str, content_sha256: str) -> str:
    """Alert id of a finding about one version of one agreement: sha256 of (pack, rule, agreement, content).

    Time-dependent findings need no date in it: their due dates (audit due, destruction due) follow
    from the agreement's content, so they move only when the content does.
    """
    canonical = "\x1f".join(("gatewatch-agreement-alert-v1", pack_name, rule_id, agreement_id, content_sha256))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Finding:
    """One agreement rule that holds: the rule, its rendered explanation and its due date text."""

    rule: Rule
    explanation: str
    due: str


@dataclass(frozen=True, slots=True)
class AgreementEvaluation:
    """The decision about one agreement and the alerts to publish for it (one per finding)."""

    decision: AgreementDecision
    alerts: list[Alert]


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def agreement_findings(
    rules: Sequence[Rule],
    agreement: Agreement,
    catalogue: Catalogue,
    at: dt.datetime,
    *,
    views: CatalogueViews | None = None,
) -> tuple[list[Finding], list[Issue]]:
    """Every rule of `rules` (scope: agreement) whose condition holds for `agreement` judged at `at`.

    A rule that raises is an `engine_error` Issue naming it; the other rules still run. `views`: the
    engine's views of the catalogue (a fresh one if None).
    """
    if at.tzinfo is None:
        raise ValueError("agreements are judged at a timezone-aware time; pass dt.datetime.now(dt.UTC)")
    facts = Facts.for_sweep(agreement, catalogue, at, views)
    findings: list[Finding] = []
    errors: list[Issue] = []
    for rule in rules:
        try:
            if not rule.condition(facts):
                continue
            due = str(rule.due(facts)) if rule.due is not None else ""
            findings.append(Finding(rule, _clip(rule.message.render(facts)), due))
        except Exception as exc:
            errors.append(
                Issue(
                    loc=f"rules.{rule.id}",
                    message=f"rule {rule.id} failed with {type(exc).__name__} and was skipped; the other "
                    f"rules were evaluated (check the rule's condition and message in {Path(rule.file).name})",
                    type="engine_error",
                )
            )
    return findings, errors


def agreement_alert(
    pack: PackRef, agreement: Agreement, content_sha256: str, finding: Finding, at: dt.datetime
) -> Alert:
    """The alert for one finding; `first_seen` is the start of its due day (UK), or `at` if that is later."""
    rule = finding.rule
    return build_alert(
        alert_id=agreement_alert_id(pack.name, rule.id, agreement.agreement_id, content_sha256),
        rule_id=rule.id,
        category=rule.category,
        severity=rule.severity,
        title=rule.title,
        explanation=finding.explanation,
        legal_basis=rule.legal_basis,
        runbook=rule.runbook,
        recipient_org_id=agreement.recipient_org_id,
        recipient_type=agreement.recipient_org_type,
        agreement_id=agreement.agreement_id,
        first_seen=min(_day_start(finding.due, at), at),
        last_seen=at,
        count=1,
        pack=pack,
    )


def judge(
    rules: Sequence[Rule],
    pack: PackRef,
    catalogue: Catalogue,
    agreement: Agreement,
    at: dt.datetime,
    *,
    evaluated_at: dt.datetime | None = None,
    source: MessageRef | None = None,
    views: CatalogueViews | None = None,
) -> AgreementEvaluation:
    """The AgreementDecision for `agreement` judged at `at` (time-dependent rules use its UK date), and its alerts."""
    findings, errors = agreement_findings(rules, agreement, catalogue, at, views=views)
    content = agreement_sha256(agreement)
    decision = AgreementDecision(
        agreement_id=agreement.agreement_id,
        agreement_sha256=content,
        evaluated_at=evaluated_at or dt.datetime.now(dt.UTC),
        judged_on=at.astimezone(LONDON).date(),
        verdict=Verdict.VIOLATION if findings else Verdict.COMPLIANT,
        violations=tuple(
            Violation(
                rule_id=f.rule.id,
                category=f.rule.category,
                severity=f.rule.severity,
                title=f.rule.title,
                explanation=f.explanation,
                legal_basis=f.rule.legal_basis,
            )
            for f in findings
        ),
        errors=tuple(errors),
        pack=pack,
        status=agreement.status,
        approver=agreement.approver,
        recipient_org_id=agreement.recipient_org_id,
        recipient_type=agreement.recipient_org_type,
        valid_from=agreement.valid_from,
        valid_until=agreement.valid_until,
        source=source,
    )
    alerts = [agreement_alert(pack, agreement, content, f, at) for f in findings]
    return AgreementEvaluation(decision, alerts)


def _day_start(day: str, at: dt.datetime) -> dt.datetime:
    """Start of a YYYY-MM-DD day in Europe/London (the moment a due date passed), else `at`."""
    try:
        return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), LONDON)
    except ValueError:
        return at
