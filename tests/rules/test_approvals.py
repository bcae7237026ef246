"""Judging one agreement (Engine.judge_agreement) and the sweep: the same findings, the same alert ids."""

from __future__ import annotations

import datetime as dt
import json

from rules import Engine
from schemas import Agreement, agreement_sha256
from tests.factories import make_agreement

AT = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
#: Nationality and a purpose no gateway carries, under the research power with direct supply.
BAD = make_agreement(
    agreement_id="AG-UNIT-BAD",
    fields_allowed=["pmr", "nationality", "upn"],
    purposes=["research", "marketing"],
    access_route="direct_allowed",
)


def test_judging_an_agreement_gives_a_decision_with_every_finding_and_one_alert_each(engine: Engine) -> None:
    evaluation = engine.judge_agreement(BAD, AT, evaluated_at=AT)
    decision = evaluation.decision
    expected = ["NPD-APR-02", "NPD-APR-03", "NPD-APR-04", "NPD-APR-06", "NPD-APR-07"]
    assert expected == sorted(v.rule_id for v in decision.violations)
    assert expected == sorted(a.rule_id for a in evaluation.alerts)
    assert ("violation", agreement_sha256(BAD), dt.date(2026, 3, 10)) == (
        decision.verdict.value,
        decision.agreement_sha256,
        decision.judged_on,
    )


def test_the_sweep_raises_the_same_alert_ids_as_judging_the_agreement(engine: Engine) -> None:
    judged = {a.alert_id for a in engine.judge_agreement(BAD, AT).alerts}
    swept = {a.alert_id for a in engine.sweep([BAD], AT + dt.timedelta(days=3))}
    assert judged == swept


def test_the_same_content_in_another_spelling_keeps_its_alert_ids_and_a_change_does_not(engine: Engine) -> None:
    reordered = Agreement.model_validate_json(json.dumps(dict(reversed(list(BAD.model_dump(mode="json").items())))))
    changed = BAD.model_copy(update={"dpia_ref": "DPIA-2026-001"})
    ids = [sorted(a.alert_id for a in engine.judge_agreement(a, AT).alerts) for a in (BAD, reordered, changed)]
    assert ids[0] == ids[1]
    assert not set(ids[0]) & set(ids[2])


def test_a_clean_agreement_is_compliant_with_no_alerts(engine: Engine) -> None:
    evaluation = engine.judge_agreement(make_agreement(last_audit_at="2026-01-01"), AT)
    assert ("compliant", [], []) == (
        evaluation.decision.verdict.value,
        list(evaluation.decision.violations),
        evaluation.alerts,
    )


def test_a_purpose_no_gateway_carries_pages_once_but_both_findings_stay_on_the_decision(engine: Engine) -> None:
    evaluation = engine.judge_agreement(
        make_agreement(purposes=["research", "journalism"], last_audit_at="2026-01-01"), AT
    )
    paged = sorted(a.rule_id for a in evaluation.alerts if not a.inhibited_by)
    assert (["NPD-APR-02", "NPD-APR-03"], ["NPD-APR-03"]) == (
        sorted(v.rule_id for v in evaluation.decision.violations),
        paged,
    )


def test_an_approval_with_no_gateway_is_no_legal_gateway_not_a_purpose_finding(engine: Engine) -> None:
    evaluation = engine.judge_agreement(make_agreement(legal_gateways=[], last_audit_at="2026-01-01"), AT)
    assert [("NPD-APR-11", "no_legal_gateway")] == [
        (v.rule_id, v.category.value) for v in evaluation.decision.violations
    ]
    assert (
        "agreement DSA-2024-0001 (uni-northbridge, recipient type research_academic) approves purposes research"
        " with no legal gateway; expected at least one of the catalogue's gateways"
    ) == evaluation.decision.violations[0].explanation


def test_an_unknown_gateway_code_in_an_approval_is_named_as_no_legal_gateway(engine: Engine) -> None:
    agreement = make_agreement(legal_gateways=["DEA2017-s64", "GDPR-6-1-f"], last_audit_at="2026-01-01")
    violations = engine.judge_agreement(agreement, AT).decision.violations
    assert [("NPD-APR-12", "no_legal_gateway")] == [(v.rule_id, v.category.value) for v in violations]
    assert "approves gateway codes GDPR-6-1-f, which are not known legal gateways" in violations[0].explanation
