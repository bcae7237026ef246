"""The sample agreements register and the synthetic traffic simulator (streams/offline/simulate.py)."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from schemas import AccessEvent, Agreement, AgreementStatus, Category, Verdict
from streams.offline.simulate import COMPLIANT, SimulatedEvent, Simulator, load_agreements

LONDON = ZoneInfo("Europe/London")
REGISTER = Path(__file__).resolve().parents[2] / "rules" / "samples" / "agreements.yaml"


@pytest.fixture(scope="module")
def agreements() -> list[Agreement]:
    return load_agreements()


@pytest.fixture(scope="module")
def by_id(agreements: list[Agreement]) -> dict[str, Agreement]:
    return {a.agreement_id: a for a in agreements}


@pytest.fixture(scope="module")
def sim(agreements: list[Agreement]) -> Simulator:
    return Simulator(agreements, seed=7)


@pytest.fixture(scope="module")
def five_hundred(sim: Simulator) -> list[SimulatedEvent]:
    return list(sim.events(500))


VIOLATION_SCENARIOS = [s for s in Simulator(load_agreements()).scenarios if s != COMPLIANT]


# --- the register ---------------------------------------------------------------------------------


def test_every_sample_agreement_validates() -> None:
    raw = yaml.safe_load(REGISTER.read_text(encoding="utf-8"))
    assert isinstance(raw, list)
    parsed = [Agreement.model_validate(item, strict=False) for item in raw]
    assert len(parsed) == len({a.agreement_id for a in parsed})
    assert [a.agreement_id for a in parsed] == [a.agreement_id for a in load_agreements()]


def test_register_has_the_kinds_of_agreement_the_rules_need(agreements: list[Agreement]) -> None:
    statuses = Counter(a.status for a in agreements)
    assert {AgreementStatus.APPROVED, AgreementStatus.SUSPENDED, AgreementStatus.REVOKED} <= set(statuses)
    assert any(a.valid_until < dt.date(2025, 1, 1) and a.status is AgreementStatus.APPROVED for a in agreements)
    assert any(a.dpia_ref is None and a.status is AgreementStatus.APPROVED for a in agreements)
    assert any(a.valid_until < dt.date(2025, 1, 1) and a.destruction_confirmed_at is None for a in agreements)


def test_active_agreements_cover_the_simulated_years(agreements: list[Agreement]) -> None:
    for a in agreements:
        if a.status is AgreementStatus.APPROVED and a.valid_until.year >= 2025:
            assert a.valid_from <= dt.date(2023, 12, 31), a.agreement_id
            assert a.valid_until >= dt.date(2027, 12, 31), a.agreement_id


def test_register_and_traffic_use_only_catalogue_codes(
    agreements: list[Agreement], five_hundred: list[SimulatedEvent]
) -> None:
    from rules import load_catalogue

    catalogue = load_catalogue()  # a catalogue that does not load fails this test
    for a in agreements:
        assert set(a.legal_gateways) <= set(catalogue.gateways), a.agreement_id
        assert set(a.purposes) <= set(catalogue.purposes), a.agreement_id
        assert set(a.fields_allowed) <= set(catalogue.fields), a.agreement_id
        assert set(a.datasets_allowed) <= set(catalogue.datasets), a.agreement_id
    for s in five_hundred:
        e = s.event
        if s.scenario != "unknown_gateway_code":
            assert e.legal_gateway is None or e.legal_gateway in catalogue.gateways, s.scenario
        assert e.purpose is None or e.purpose in catalogue.purposes, s.scenario
        assert set(e.fields) <= set(catalogue.fields), s.scenario
        assert set(e.datasets) <= set(catalogue.datasets), s.scenario


# --- the stream ------------------------------------------------------------------------------------


def test_simulator_is_deterministic_for_a_seed(agreements: list[Agreement]) -> None:
    first = list(Simulator(agreements, seed=3).events(300))
    again = list(Simulator(agreements, seed=3).events(300))
    other = list(Simulator(agreements, seed=4).events(300))
    assert first == again
    assert [s.event for s in first] != [s.event for s in other]
    assert list(Simulator(agreements, seed=3).events(120)) == first[:120]


def test_every_event_validates_and_round_trips_through_json(five_hundred: list[SimulatedEvent]) -> None:
    for s in five_hundred:
        assert AccessEvent.model_validate_json(s.event.model_dump_json()) == s.event
        assert AccessEvent.model_validate_json(s.event.model_dump_json(exclude_none=True)) == s.event


def test_event_ids_are_unique(agreements: list[Agreement]) -> None:
    ids = [s.event.event_id for s in Simulator(agreements, seed=11).events(2000)]
    assert len(ids) == len(set(ids))
    assert ids[0] == "sim-11-00000000"


def test_mostly_compliant_and_every_scenario_over_500_events(
    sim: Simulator, five_hundred: list[SimulatedEvent]
) -> None:
    scenarios = Counter(s.scenario for s in five_hundred)
    assert 0.80 <= scenarios[COMPLIANT] / 500 <= 0.90
    assert set(sim.scenarios) == set(scenarios)


@pytest.mark.parametrize("seed", [0, 1, 99])
def test_any_n_from_the_number_of_scenarios_shows_every_scenario(agreements: list[Agreement], seed: int) -> None:
    sim = Simulator(agreements, seed=seed)
    n = len(sim.scenarios)
    assert {s.scenario for s in sim.events(n)} == set(sim.scenarios)


def test_every_category_is_exercised_by_some_scenario(agreements: list[Agreement]) -> None:
    seen = {c for s in Simulator(agreements).events(200) for c in s.expected_categories}
    assert seen == {c.value for c in Category}


def test_a_scenario_may_name_several_categories(sim: Simulator) -> None:
    (draft,) = sim._example("nationality_to_home_office")
    assert frozenset({"prohibited_field", "fields_outside_agreement", "match_only_breach"}) == draft.expected


def test_compliant_events_are_labelled_compliant(five_hundred: list[SimulatedEvent]) -> None:
    for s in five_hundred:
        if s.scenario == COMPLIANT:
            assert s.expected_categories == frozenset()
        elif s.scenario != "repeated_pupil_lookup":  # its first three lookups are still within the limit
            assert s.expected_categories, s.scenario


def test_zero_violation_rate_gives_only_compliant_traffic(agreements: list[Agreement]) -> None:
    assert {s.scenario for s in Simulator(agreements, violation_rate=0.0).events(300)} == {COMPLIANT}


def test_rejects_a_bad_rate_or_a_naive_start(agreements: list[Agreement]) -> None:
    with pytest.raises(ValueError, match="violation_rate"):
        Simulator(agreements, violation_rate=1.0)
    with pytest.raises(ValueError, match="timezone-aware"):
        Simulator(agreements, start=dt.datetime(2026, 1, 5, 9, 0))  # naive on purpose


def test_rejects_a_register_without_any_sample_agreement() -> None:
    with pytest.raises(ValueError, match="sample register"):
        Simulator([])


def test_start_moves_the_window(agreements: list[Agreement]) -> None:
    start = dt.datetime(2025, 3, 3, 8, 0, tzinfo=LONDON)
    events = [s.event for s in Simulator(agreements, start=start).events(50)]
    assert min(e.occurred_at for e in events) >= start
    assert max(e.occurred_at for e in events) < start + dt.timedelta(days=14)


# --- realism of compliant traffic -------------------------------------------------------------------


def test_compliant_events_happen_in_london_working_hours_from_gb(five_hundred: list[SimulatedEvent]) -> None:
    for s in five_hundred:
        if s.scenario != COMPLIANT:
            continue
        local = s.event.occurred_at.astimezone(LONDON)
        assert local.isoweekday() <= 5
        assert 8 <= local.hour < 18
        assert s.event.actor.country == "GB"
        # stamped with London's offset of the day, as an English producer would
        assert s.event.occurred_at.utcoffset() == local.utcoffset()


def test_offsets_cover_summer_and_winter_time(five_hundred: list[SimulatedEvent]) -> None:
    offsets = {s.event.occurred_at.utcoffset() for s in five_hundred}
    assert offsets == {dt.timedelta(0), dt.timedelta(hours=1)}


def test_compliant_events_match_their_agreement(
    five_hundred: list[SimulatedEvent], by_id: dict[str, Agreement]
) -> None:
    for s in five_hundred:
        if s.scenario != COMPLIANT:
            continue
        e = s.event
        if e.recipient.org_type.value == "internal":
            assert e.agreement_id is None
            assert e.legal_gateway == "UKGDPR-6-1-e"
            continue
        assert e.agreement_id is not None
        a = by_id[e.agreement_id]
        assert a.active_on(e.occurred_at.astimezone(LONDON).date())
        assert (e.recipient.org_id, e.recipient.org_type) == (a.recipient_org_id, a.recipient_org_type)
        assert e.recipient.ico_registration == a.recipient_ico_registration
        assert e.recipient.companies_house == a.recipient_companies_house
        assert e.legal_gateway in a.legal_gateways
        assert e.purpose in a.purposes
        assert set(e.fields) <= set(a.fields_allowed)
        assert set(e.datasets) <= set(a.datasets_allowed)
        assert set(e.onward_recipients) <= set(a.onward_recipients_allowed)
        if a.per_event_record_cap is not None:
            assert e.record_count <= a.per_event_record_cap
        if e.pupil_refs is not None:
            assert len(e.pupil_refs) == e.record_count
            assert all(len(r) == 13 and r.startswith("P") for r in e.pupil_refs)


def test_traffic_stays_under_monthly_caps(agreements: list[Agreement], by_id: dict[str, Agreement]) -> None:
    monthly: dict[tuple[str, str], int] = defaultdict(int)
    for s in Simulator(agreements, seed=5).events(3000):
        e = s.event
        if e.agreement_id in by_id:
            monthly[(e.agreement_id, e.occurred_at.astimezone(LONDON).strftime("%Y-%m"))] += e.record_count
    for (agreement_id, month), total in monthly.items():
        cap = by_id[agreement_id].monthly_record_cap
        assert cap is None or total <= cap, (agreement_id, month, total, cap)


def test_compliant_volumes_stay_within_five_times_each_recipients_median(agreements: list[Agreement]) -> None:
    counts: dict[str, list[int]] = defaultdict(list)
    for s in Simulator(agreements, seed=2).events(2000):
        if s.scenario == COMPLIANT:
            counts[s.event.recipient.org_id].append(s.event.record_count)
    for org, values in counts.items():
        assert max(values) <= 5 * statistics.median(values), org


def test_repeated_pupil_lookup_repeats_one_pupil_five_times_for_one_recipient(sim: Simulator) -> None:
    drafts = sim._example("repeated_pupil_lookup")
    events = [
        AccessEvent.model_validate(d.event | {"schema_version": "1", "event_id": f"x{i}"}, strict=False)
        for i, d in enumerate(drafts)
    ]
    assert len(events) == 5
    assert len({e.pupil_refs for e in events}) == 1
    assert len({e.recipient.org_id for e in events}) == 1
    assert [bool(d.expected) for d in drafts] == [False, False, False, True, True]


@pytest.mark.parametrize("scenario", VIOLATION_SCENARIOS)
def test_violation_scenario_differs_from_its_compliant_template(sim: Simulator, scenario: str) -> None:
    for draft in sim._example(scenario):
        AccessEvent.model_validate(_with_id(draft.base), strict=False)  # the template itself is valid
        if draft.expected:
            assert draft.event != draft.base


def _with_id(data: dict[str, Any]) -> dict[str, Any]:
    return {"schema_version": "1", "event_id": "template", **data}


# --- cross-check with the rule engine -----------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Any:
    from rules import load_engine

    return load_engine()  # a pack that does not load fails these tests; it is never skipped


@pytest.fixture(scope="module")
def scenario_events(agreements: list[Agreement]) -> dict[str, list[SimulatedEvent]]:
    grouped: dict[str, list[SimulatedEvent]] = defaultdict(list)
    for s in Simulator(agreements, seed=21).events(1200):
        grouped[s.scenario].append(s)
    return grouped


def _decisions_in_order(engine: Any, by_id: dict[str, Agreement], events: list[SimulatedEvent]) -> list[Any]:
    """Decisions for a scenario's events in order, windowed rules included (fresh window state)."""
    from rules import OfflineRun

    offline = OfflineRun(engine, by_id)
    return [offline.evaluate(s.event).decision for s in events]


def _engine_params() -> list[str]:
    return [COMPLIANT, *VIOLATION_SCENARIOS]


@pytest.mark.parametrize("scenario", _engine_params())
def test_engine_reports_each_scenarios_expected_categories(
    engine: Any, by_id: dict[str, Agreement], scenario_events: dict[str, list[SimulatedEvent]], scenario: str
) -> None:
    implemented = {str(r.category) for r in engine.rules if getattr(r, "enabled", True)}
    events = scenario_events[scenario]
    assert events, f"no event of scenario {scenario} in the simulated run"
    expected_all = set().union(*(s.expected_categories for s in events))
    missing_rules = expected_all - implemented
    assert scenario == COMPLIANT or not missing_rules, f"no enabled rule in the pack for {sorted(missing_rules)}"
    for s, decision in zip(events, _decisions_in_order(engine, by_id, events), strict=True):
        got = {str(v.category) for v in decision.violations}
        rules = sorted(v.rule_id for v in decision.violations)
        assert decision.errors == (), f"{scenario}: engine errors {decision.errors}"
        if s.expected_categories:
            assert s.expected_categories <= got, f"{scenario}: expected {sorted(s.expected_categories)}, got {rules}"
        else:
            assert decision.verdict == Verdict.COMPLIANT, f"{scenario}: compliant event flagged by {rules}"


@pytest.mark.parametrize("scenario", _engine_params())
def test_engine_reports_nothing_beyond_each_scenarios_expected_categories(
    engine: Any, by_id: dict[str, Agreement], scenario_events: dict[str, list[SimulatedEvent]], scenario: str
) -> None:
    """Each scenario changes one thing in a compliant event and raises exactly the set of categories it
    names: every category that change breaks (several, where rules overlap), and no other."""
    implemented = {str(r.category) for r in engine.rules if getattr(r, "enabled", True)}
    events = scenario_events[scenario]
    for s, decision in zip(events, _decisions_in_order(engine, by_id, events), strict=True):
        got = {str(v.category) for v in decision.violations}
        rules = sorted(v.rule_id for v in decision.violations)
        assert got == s.expected_categories & implemented, (
            f"{scenario}: expected {sorted(s.expected_categories)}, got {rules}"
        )


def test_each_scenarios_template_is_compliant_for_the_engine(
    engine: Any, sim: Simulator, by_id: dict[str, Agreement]
) -> None:
    for scenario in VIOLATION_SCENARIOS:
        for seed in range(3):
            for draft in sim._example(scenario, seed):
                event = AccessEvent.model_validate(_with_id(draft.base), strict=False)
                decision = engine.evaluate(event, by_id.get(event.agreement_id or ""))
                assert decision.verdict == Verdict.COMPLIANT, (scenario, [v.rule_id for v in decision.violations])
