"""The engine: one decision per event, judged by event time, with replay-stable alerts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from rules import Engine, alert_id
from rules.engine import Engine as EngineClass
from rules.loader import Rule
from schemas import Category, Issue, MessageRef, Verdict
from tests.rules.conftest import make_agreement, make_event

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
POLICE: dict[str, Any] = {
    "action": "search",
    "agreement_id": "AG-POL",
    "actor": {"org_id": "police-met"},
    "recipient": {"org_id": "police-met", "org_type": "police", "ico_registration": None},
    "legal_gateway": "DPA2018-Sch2-p2",
    "purpose": "crime_prevention",
    "fields": ["name", "school_urn"],
    "record_count": 1,
    "channel": "portal",
    "case_reference": "MET-1",
    "evidence_attestation": True,
}
POLICE_AGREEMENT: dict[str, Any] = {
    "agreement_id": "AG-POL",
    "recipient_org_id": "police-met",
    "recipient_org_type": "police",
    "legal_gateways": ["DPA2018-Sch2-p2"],
    "purposes": ["crime_prevention"],
    "fields_allowed": ["name", "school_urn"],
    "access_route": "direct_allowed",
    "recipient_ico_registration": None,
}
DWP: dict[str, Any] = {
    "action": "match_check",
    "agreement_id": "AG-DWP",
    "recipient": {"org_id": "dwp-fraud", "org_type": "dwp", "ico_registration": None},
    "legal_gateway": "DEA2017-s56",
    "purpose": "fraud_investigation",
    "fields": ["match_flag"],
    "record_count": 1,
    "channel": "api",
}
DWP_AGREEMENT: dict[str, Any] = {
    "agreement_id": "AG-DWP",
    "recipient_org_id": "dwp-fraud",
    "recipient_org_type": "dwp",
    "legal_gateways": ["DEA2017-s56"],
    "purposes": ["fraud_investigation"],
    "fields_allowed": ["match_flag", "name"],
    "access_route": "direct_allowed",
    "recipient_ico_registration": None,
}
NO_AGREEMENT = {
    "agreement_id": None,
    "recipient": {"org_id": "charity-x", "org_type": "charity", "ico_registration": None},
    "legal_gateway": "EA1996-s537A",
    "purpose": "statistics",
    "channel": "sftp",
}


def _merge(*patches: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in patches:
        for k, v in p.items():
            out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# (case, event patch, agreement patch or None for "no agreement in the register", expected categories)
TABLE: list[tuple[str, dict[str, Any], dict[str, Any] | None, set[Category]]] = [
    ("compliant srs research extract", {}, {}, set()),
    ("no agreement named", NO_AGREEMENT, None, {Category.NO_AGREEMENT}),
    ("named agreement unknown", {"agreement_id": "AG-UNKNOWN"}, None, {Category.NO_AGREEMENT}),
    (
        "internal public task needs none",
        {**NO_AGREEMENT, "recipient": {"org_id": "dfe", "org_type": "internal"}, "legal_gateway": "UKGDPR-6-1-e"},
        None,
        set(),
    ),
    ("revoked agreement", {}, {"status": "revoked"}, {Category.AGREEMENT_NOT_ACTIVE}),
    ("expired agreement", {}, {"valid_until": "2024-03-04"}, {Category.AGREEMENT_NOT_ACTIVE}),
    ("no gateway", {"legal_gateway": None}, {}, {Category.NO_LEGAL_GATEWAY}),
    ("unknown gateway", {"legal_gateway": "XYZ"}, {}, {Category.NO_LEGAL_GATEWAY, Category.GATEWAY_OUTSIDE_AGREEMENT}),
    (
        "immigration exemption used by police",
        _merge(POLICE, {"legal_gateway": "DPA2018-Sch2-p4", "purpose": "immigration_enforcement"}),
        _merge(POLICE_AGREEMENT, {"legal_gateways": ["DPA2018-Sch2-p4"], "purposes": ["immigration_enforcement"]}),
        {Category.GATEWAY_NOT_PERMITTED_FOR_RECIPIENT},
    ),
    ("police under the crime exemption", POLICE, POLICE_AGREEMENT, set()),
    (
        "crime prevention under the education gateway",
        {"legal_gateway": "EA1996-s537A", "purpose": "crime_prevention"},
        {"purposes": ["research", "crime_prevention"]},
        {Category.PURPOSE_NOT_PERMITTED_BY_GATEWAY},
    ),
    (
        "gateway outside agreement",
        {"legal_gateway": "EA1996-s537A"},
        {"legal_gateways": ["DEA2017-s64"]},
        {Category.GATEWAY_OUTSIDE_AGREEMENT},
    ),
    (
        "purpose outside agreement",
        {"purpose": "statistics"},
        {"purposes": ["research"]},
        {Category.PURPOSE_OUTSIDE_AGREEMENT},
    ),
    ("fields outside agreement", {"fields": ["pmr", "enrolment"]}, {}, {Category.FIELDS_OUTSIDE_AGREEMENT}),
    (
        "prohibited field despite agreement",
        {"fields": ["pmr", "country_of_birth"]},
        {"fields_allowed": ["pmr", "country_of_birth"]},
        {Category.PROHIBITED_FIELD},
    ),
    (
        "identifiers under DEA s64",
        {"fields": ["pmr", "upn"]},
        {"fields_allowed": ["pmr", "upn"]},
        {Category.IDENTIFIABLE_DATA_NOT_PERMITTED},
    ),
    (
        "marketing purpose with pupil-level data",
        {"legal_gateway": "EA1996-s537A", "purpose": "marketing"},
        {"purposes": ["research", "marketing"]},
        {Category.IDENTIFIABLE_DATA_NOT_PERMITTED, Category.PURPOSE_NOT_PERMITTED_BY_GATEWAY},
    ),
    ("srs-only agreement by email", {"channel": "email"}, {}, {Category.INSECURE_ACCESS_ROUTE}),
    ("recipient mismatch", {"recipient": {"org_id": "uni-other"}}, {}, {Category.RECIPIENT_MISMATCH}),
    (
        "police without case reference",
        _merge(POLICE, {"case_reference": None}),
        POLICE_AGREEMENT,
        {Category.MISSING_JUSTIFICATION},
    ),
    (
        "fraud match returning a name",
        _merge(DWP, {"fields": ["match_flag", "name"]}),
        DWP_AGREEMENT,
        {Category.MATCH_ONLY_BREACH},
    ),
    ("fraud match returning the flag", DWP, DWP_AGREEMENT, set()),
    ("over per-event cap", {"record_count": 1000001}, {}, {Category.VOLUME_CAP_EXCEEDED}),
    ("police bulk request", _merge(POLICE, {"record_count": 62}), POLICE_AGREEMENT, {Category.BULK_EXTRACT}),
    ("onward to unnamed org", {"onward_recipients": ["broker-ltd"]}, {}, {Category.ONWARD_SHARING}),
    ("linkage with health", {"datasets": ["npd", "health"]}, {}, {Category.UNAPPROVED_LINKAGE}),
    ("linkage with hesa approved", {"datasets": ["npd", "hesa"]}, {}, set()),
    ("sunday access", {"occurred_at": "2024-03-10T11:00:00+00:00"}, {}, {Category.UNUSUAL_ACCESS}),
    ("tier 1 without dpia", {"fields": ["pmr", "cin"]}, {"dpia_ref": None}, {Category.GOVERNANCE_GAP}),
    ("restricted records", {"restricted_record_count": 2}, {}, {Category.RESTRICTED_RECORDS}),
    ("small cell", {"min_cell_count": 3}, {}, {Category.DISCLOSIVE_OUTPUT}),
    ("cells at threshold", {"min_cell_count": 10}, {}, set()),
]


@pytest.mark.parametrize(("case", "event_patch", "agreement_patch", "expected"), TABLE, ids=[t[0] for t in TABLE])
def test_category_decision_table(
    engine: Engine,
    case: str,
    event_patch: dict[str, Any],
    agreement_patch: dict[str, Any] | None,
    expected: set[Category],
) -> None:
    event = make_event(**event_patch)
    agreement = None if agreement_patch is None else make_agreement(**agreement_patch)
    decision = engine.evaluate(event, agreement, evaluated_at=NOW)
    assert (expected, Verdict.VIOLATION if expected else Verdict.COMPLIANT, ()) == (
        {v.category for v in decision.violations},
        decision.verdict,
        decision.errors,
    )


def test_agreement_valid_on_event_date_is_valid_whenever_evaluated(engine: Engine) -> None:
    event = make_event(occurred_at="2026-12-31T12:00:00+00:00")
    agreement = make_agreement(last_audit_at="2026-06-01")
    decision = engine.evaluate(event, agreement, evaluated_at=dt.datetime(2035, 6, 1, tzinfo=dt.UTC))
    assert (Verdict.COMPLIANT, ()) == (decision.verdict, decision.violations)


def test_agreement_expired_on_event_date_is_flagged_even_if_evaluated_earlier(engine: Engine) -> None:
    event = make_event(occurred_at="2027-01-01T09:00:00+00:00")
    agreement = make_agreement(last_audit_at="2026-06-01")
    decision = engine.evaluate(event, agreement, evaluated_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert ["NPD-ANA-02"] == [v.rule_id for v in decision.violations]


def test_explanation_names_expected_and_seen(engine: Engine) -> None:
    decision = engine.evaluate(make_event(fields=["pmr", "enrolment"]), make_agreement(), evaluated_at=NOW)
    assert (
        "field(s) enrolment are not in agreement AG-RES-UCL's list (pmr, attainment, fsm, gender, ethnicity_major, cin)"
    ) == decision.violations[0].explanation


@pytest.mark.parametrize(
    ("occurred_at", "uk_time"),
    [
        ("2024-03-09T10:00:00+00:00", "Sat 2024-03-09 10:00 GMT"),  # winter: UK time is UTC
        ("2024-07-02T18:30:00+00:00", "Tue 2024-07-02 19:30 BST"),  # summer: an hour ahead
        ("2024-07-06T23:30:00-05:00", "Sun 2024-07-07 05:30 BST"),  # another offset, another UK day
    ],
)
def test_unusual_access_explanation_gives_uk_local_time(engine: Engine, occurred_at: str, uk_time: str) -> None:
    decision = engine.evaluate(make_event(occurred_at=occurred_at), make_agreement(), evaluated_at=NOW)
    explanation = {v.rule_id: v.explanation for v in decision.violations}["NPD-UA-01"]
    assert f"access by u-ucl-17 on {uk_time} (UK time) from country GB" in explanation


def test_an_unknown_field_code_counts_as_pupil_level(engine: Engine) -> None:
    no_agreement = {"agreement_id": None, "recipient": {"org_id": "charity-ff", "org_type": "charity"}}
    known = engine.evaluate(make_event(fields=["school_urn"], **no_agreement), None, evaluated_at=NOW)
    unknown = engine.evaluate(make_event(fields=["school_urn", "home_phone"], **no_agreement), None, evaluated_at=NOW)
    assert ([], ["NPD-NA-01"]) == (
        [v.rule_id for v in known.violations],
        [v.rule_id for v in unknown.violations],
    )


def test_decision_summary_fields(engine: Engine) -> None:
    event = make_event()
    source = MessageRef(topic="npd.access.v1", partition=2, offset=7)
    d = engine.evaluate(event, make_agreement(), evaluated_at=NOW, source=source)
    assert (
        event.event_id,
        NOW,
        event.occurred_at,
        event.action,
        "uni-ucl",
        event.recipient.org_type,
        "AG-RES-UCL",
        "DEA2017-s64",
        "research",
        250000,
        source,
        engine.pack,
    ) == (
        d.event_id,
        d.evaluated_at,
        d.occurred_at,
        d.action,
        d.recipient_org_id,
        d.recipient_type,
        d.agreement_id,
        d.legal_gateway,
        d.purpose,
        d.record_count,
        d.source,
        d.pack,
    )


def test_evaluated_at_defaults_to_utc_now(engine: Engine) -> None:
    before = dt.datetime.now(dt.UTC)
    d = engine.evaluate(make_event(), make_agreement())
    assert before <= d.evaluated_at <= dt.datetime.now(dt.UTC)


def test_violations_follow_pack_order(engine: Engine) -> None:
    event = make_event(fields=["pmr", "nationality", "enrolment"], channel="email", restricted_record_count=1)
    d = engine.evaluate(event, make_agreement(), evaluated_at=NOW)
    order = [r.id for r in engine.rules]
    ids = [v.rule_id for v in d.violations]
    assert sorted(ids, key=order.index) == ids
    assert {"NPD-FOA-01", "NPD-PF-01", "NPD-INS-01", "NPD-INS-02", "NPD-RR-01"} == set(ids)


def _boom(_facts: object) -> bool:
    raise ZeroDivisionError("boom")


def test_a_rule_that_raises_is_recorded_and_the_others_still_run(engine: Engine) -> None:
    import dataclasses

    first_event_rule = next(i for i, r in enumerate(engine.rules) if r.scope == "event")
    broken = dataclasses.replace(engine.rules[first_event_rule], condition=_boom)
    from rules.loader import LoadedPack

    pack = engine._pack
    patched = EngineClass(
        LoadedPack(
            pack.name,
            pack.version,
            pack.engine_version,
            pack.description,
            pack.sha256,
            (*engine.rules[:first_event_rule], broken, *engine.rules[first_event_rule + 1 :]),
            pack.catalogue,
        )
    )
    d = patched.evaluate(make_event(fields=["pmr", "nationality"]), make_agreement(), evaluated_at=NOW)
    assert (["NPD-FOA-01", "NPD-PF-01"], [("rules.NPD-NA-01", "engine_error")]) == (
        [v.rule_id for v in d.violations],
        [(e.loc, e.type) for e in d.errors],
    )
    assert "NPD-NA-01" in d.errors[0].message


def test_alert_ids_are_deterministic_across_replays(engine: Engine) -> None:
    event = make_event(fields=["pmr", "nationality"])
    first = engine.alerts(event, engine.evaluate(event, make_agreement(), evaluated_at=NOW))
    second = engine.alerts(event, engine.evaluate(event, make_agreement(), evaluated_at=NOW + dt.timedelta(days=3)))
    assert [a.alert_id for a in first] == [a.alert_id for a in second]
    assert [alert_id("npd", r, event.event_id) for r in ("NPD-FOA-01", "NPD-PF-01")] == [a.alert_id for a in first]


def test_alert_carries_rule_runbook_and_event_times(engine: Engine) -> None:
    event = make_event(fields=["pmr", "nationality"])
    (alert,) = [
        a
        for a in engine.alerts(event, engine.evaluate(event, make_agreement(), evaluated_at=NOW))
        if a.rule_id == "NPD-PF-01"
    ]
    assert (engine.rule("NPD-PF-01").runbook, event.occurred_at, event.occurred_at, 1, (event.event_id,)) == (
        alert.runbook,
        alert.first_seen,
        alert.last_seen,
        alert.count,
        alert.event_ids,
    )


def test_pupil_refs_never_appear_in_decisions_or_alerts(engine: Engine) -> None:
    event = make_event(
        fields=["upn", "name", "nationality"],
        recipient={"org_type": "press", "org_id": "press-x"},
        purpose="journalism",
        channel="email",
    )
    decision = engine.evaluate(event, None, evaluated_at=NOW)
    alerts = engine.alerts(event, decision)
    text = decision.model_dump_json() + "".join(a.model_dump_json() for a in alerts)
    assert decision.violations
    assert "SECRET-PUPIL-REF" not in text


def test_no_fact_exposes_pupil_ref_values() -> None:
    from rules import FACTS

    assert ["event.pupil_ref_count"] == [name for name in FACTS if "pupil_ref" in name]


def test_invalid_decision_carries_errors_and_pack(engine: Engine) -> None:
    errors = [Issue(loc="recipient.org_type", message="bad", type="enum")]
    d = engine.invalid(errors, event_id="ev-9", evaluated_at=NOW)
    assert (Verdict.INVALID, "ev-9", tuple(errors), engine.pack, ()) == (
        d.verdict,
        d.event_id,
        d.errors,
        d.pack,
        d.violations,
    )


def test_invalid_decision_drops_an_event_id_that_is_not_an_identifier(engine: Engine) -> None:
    assert engine.invalid([], event_id="bad id with spaces", evaluated_at=NOW).event_id is None


def test_disabled_rules_are_listed_but_not_evaluated(engine: Engine) -> None:
    import dataclasses

    from rules.loader import LoadedPack

    pack = engine._pack
    rules: tuple[Rule, ...] = tuple(dataclasses.replace(r, enabled=r.id != "NPD-PF-01") for r in engine.rules)
    patched = EngineClass(
        LoadedPack(pack.name, pack.version, pack.engine_version, pack.description, pack.sha256, rules, pack.catalogue)
    )
    agreement = make_agreement(fields_allowed=["pmr", "nationality"])
    d = patched.evaluate(make_event(fields=["pmr", "nationality"]), agreement, evaluated_at=NOW)
    assert ((), len(engine.rules)) == (d.violations, len(patched.rules))
