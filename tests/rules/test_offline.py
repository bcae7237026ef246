"""The offline evaluation loop (rules/offline.py) that check, replay and the rule tests share."""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any

from rules import Engine, OfflineRun, WindowState
from schemas import AccessEvent, Verdict

from .conftest import make_agreement, make_event

T0 = dt.datetime(2024, 3, 4, 10, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
POLICE: dict[str, Any] = {
    "recipient": {"org_id": "police-x", "org_type": "police", "ico_registration": None},
    "agreement_id": None,
    "legal_gateway": "DPA2018-Sch2-p2",
    "purpose": "crime_prevention",
    "record_count": 1,
    "pupil_refs": ["SECRET-PUPIL-REF-1"],
}
HOME_OFFICE = {**POLICE, "recipient": {"org_id": "ho-x", "org_type": "home_office", "ico_registration": None}}


def _lookup(n: int, **patch: Any) -> AccessEvent:
    return make_event(event_id=f"l{n}", occurred_at=(T0 + dt.timedelta(days=n)).isoformat(), **patch)


def _fired(offline: OfflineRun, event: AccessEvent, partition: int) -> list[str]:
    return [v.rule_id for v in offline.evaluate(event, partition=partition, evaluated_at=NOW).decision.violations]


def test_each_partition_counts_a_recipients_lookups_in_its_own_windows(engine: Engine) -> None:
    # NPD-REP-01 (per recipient and pupil, more than 3 in 30 days): four look-ups on one partition fire
    # it; the same four split over two partitions leave two in each partition's windows.
    one, two = OfflineRun(engine), OfflineRun(engine)
    events = [_lookup(n, **POLICE) for n in range(4)]
    assert ["NPD-REP-01"] == [r for e in events for r in _fired(one, e, 0) if r == "NPD-REP-01"]
    assert [] == [r for n, e in enumerate(events) for r in _fired(two, e, n % 2) if r == "NPD-REP-01"]
    assert (0, 1) == (two.state(0).partition, two.state(1).partition)
    assert two.state(0) is two.state(0)
    assert two.state(0).backing is not two.state(1).backing


def test_the_pupil_windows_are_shared_by_every_partition(engine: Engine) -> None:
    # NPD-REP-02 (per pupil, two enforcement recipients in 90 days): the police on partition 0 and the
    # Home Office on partition 1 look up the same pupil, and the second look-up fires it.
    offline = OfflineRun(engine)
    assert "NPD-REP-02" not in _fired(offline, _lookup(0, **POLICE), 0)
    assert "NPD-REP-02" in _fired(offline, _lookup(1, **HOME_OFFICE), 1)


def test_the_agreement_comes_from_the_register_unless_the_caller_gives_it(engine: Engine) -> None:
    event = make_event()
    agreement = make_agreement()
    assert Verdict.COMPLIANT == OfflineRun(engine, [agreement]).evaluate(event).decision.verdict
    assert Verdict.COMPLIANT == OfflineRun(engine, {agreement.agreement_id: agreement}).evaluate(event).decision.verdict
    assert Verdict.COMPLIANT == OfflineRun(engine).evaluate(event, agreement=agreement).decision.verdict
    assert Verdict.VIOLATION == OfflineRun(engine).evaluate(event).decision.verdict  # no such agreement


def test_windows_advance_to_each_events_time_and_expire_after_the_lateness(engine: Engine) -> None:
    offline = OfflineRun(engine, lateness=dt.timedelta(days=2))
    offline.evaluate(_lookup(0, **POLICE), partition=3)
    assert T0.timestamp() == offline.state(3).watermark == offline.pupil_state.watermark
    assert 2 * 86400.0 == offline.state(3).lateness == offline.pupil_state.lateness
    assert 0 < len(offline.state(3))
    offline.evaluate(_lookup(200, **{**POLICE, "pupil_refs": ["SECRET-PUPIL-REF-9"]}), partition=3)
    # Day 0's 30-day window is gone (expired plus 2 days); only day 200's own entries remain.
    assert all(entry["x"] > (T0 + dt.timedelta(days=200)).timestamp() for entry in offline.state(3).backing.values())


def test_the_loop_gives_what_engine_run_gives_driven_by_hand_over_simulator_traffic(engine: Engine) -> None:
    from streams.offline.simulate import Simulator, load_agreements

    agreements = load_agreements()
    start = dt.datetime(2025, 1, 6, tzinfo=dt.UTC)
    events = [s.event for s in Simulator(agreements, seed=9, start=start).events(1500)]
    lateness = dt.timedelta(days=3)

    def partition_of(event: AccessEvent) -> int:
        return zlib.crc32(event.recipient.org_id.encode()) % 3

    register = {a.agreement_id: a for a in agreements}
    states: dict[int, WindowState] = {}
    pupil_state = WindowState({}, lateness=lateness)
    by_hand = []
    for event in events:
        p = partition_of(event)
        state = states.setdefault(p, WindowState({}, partition=p, lateness=lateness))
        state.advance(event.occurred_at.timestamp())
        pupil_state.advance(event.occurred_at.timestamp())
        agreement = register.get(event.agreement_id) if event.agreement_id else None
        by_hand.append(engine.run(event, agreement, state=state, pupil_state=pupil_state, evaluated_at=NOW))

    offline = OfflineRun(engine, agreements, lateness=lateness)
    looped = [offline.evaluate(e, partition=partition_of(e), evaluated_at=NOW) for e in events]

    def dump(evaluations: list[Any]) -> list[str]:
        return [
            e.decision.model_dump_json() + "".join(a.model_dump_json() for a in e.alerts) + repr(e.lookups)
            for e in evaluations
        ]

    assert dump(by_hand) == dump(looped)
    # The traffic exercises what the loop holds: recipient windows that fire, on every partition, and
    # per-pupil windows (the simulator raises no NPD-REP-02, but its look-ups fill the pupil state).
    fired = {a.rule_id for e in looped for a in e.alerts}
    assert {"NPD-BULK-02", "NPD-REP-01"} <= fired
    assert all(len(offline.state(p)) > 0 for p in range(3))
    assert len(offline.pupil_state) > 0
