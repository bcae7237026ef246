"""Windowed rules: WindowState expiry and rebuild, the windowed NPD rules, de-dup, HMAC, the sweep."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from rules import Engine, PupilLookup, WindowState, load_engine, validate_pack
from schemas import AccessEvent, Agreement

from .conftest import make_agreement, make_event

DAY = 86400.0
T0 = dt.datetime(2024, 3, 4, 10, 0, tzinfo=dt.UTC)


def _at(days: float) -> str:
    return (T0 + dt.timedelta(days=days)).isoformat()


def _run(engine: Engine, events: list[AccessEvent], agreement: Agreement | None, **states: WindowState) -> list[Any]:
    out = []
    for e in events:
        for s in states.values():
            s.advance(e.occurred_at.timestamp())
        out.append(engine.run(e, agreement, **states))
    return out


# --- WindowState --------------------------------------------------------------------------------------


def test_entries_expire_once_event_time_passes_expiry_plus_lateness() -> None:
    state = WindowState({}, lateness=dt.timedelta(days=7))
    state.put("a", {"n": 1}, expires_at=10 * DAY)
    state.put("b", [1, 2], expires_at=20 * DAY)
    assert 0 == state.advance(16 * DAY)
    assert {"n": 1} == state.get("a")
    assert 1 == state.advance(18 * DAY)
    assert state.get("a") is None
    assert [1, 2] == state.get("b")


def test_an_extended_entry_is_kept() -> None:
    state = WindowState({}, lateness=dt.timedelta(0))
    state.put("a", 1, expires_at=10.0)
    state.put("a", 2, expires_at=100.0)
    assert 0 == state.advance(50.0)
    assert 2 == state.get("a")
    assert 1 == state.advance(101.0)


def test_only_own_partition_keys_are_deleted_and_rebuild_indexes_them() -> None:
    backing: dict[str, Any] = {}
    p0 = WindowState(backing, partition=0, lateness=dt.timedelta(0))
    p1 = WindowState(backing, partition=1, lateness=dt.timedelta(0))
    p0.put("k0", 0, expires_at=1.0)
    p1.put("k1", 1, expires_at=1.0)
    assert 1 == p0.advance(1000.0)
    assert ["k1"] == list(backing)
    assert {"v": 1, "x": 1.0, "p": 1} == backing["k1"]
    restarted = WindowState(backing, partition=1, lateness=dt.timedelta(0))
    assert 1 == restarted.rebuild()
    assert 0 == WindowState(backing, partition=0).rebuild()
    assert 1 == restarted.advance(1000.0)
    assert {} == backing


def test_memory_plateaus_over_a_year_of_distinct_keys() -> None:
    backing: dict[str, Any] = {}
    state = WindowState(backing)  # default lateness 7 days
    year = 365 * DAY
    n = 100_000
    for i in range(n):
        t = i * year / n
        state.advance(t)
        state.put(f"k{i}", i, expires_at=t + 30 * DAY)
    kept = len(backing)
    expected = n * 37 / 365
    assert abs(kept - expected) < 0.01 * n, (kept, expected)
    assert len(state) == kept
    assert all(backing[k]["x"] >= year - 38 * DAY for k in backing)


def test_stored_values_are_json() -> None:
    engine = load_engine()
    backing: dict[str, Any] = {}
    events = [make_event(event_id=f"e{i}", occurred_at=_at(i), record_count=400) for i in range(6)]
    _run(engine, events, make_agreement(monthly_record_cap=1000), state=WindowState(backing))
    assert json.loads(json.dumps(backing)) == backing


# --- windowed rules -----------------------------------------------------------------------------------


def test_monthly_cap_fires_only_once_the_month_total_is_over_and_dedups_by_powers_of_two(engine: Engine) -> None:
    events = [make_event(event_id=f"e{i}", occurred_at=_at(i), record_count=300, pupil_refs=None) for i in range(12)]
    runs = _run(engine, events, make_agreement(monthly_record_cap=1000), state=WindowState({}))
    fired = [any(v.rule_id == "NPD-VOL-02" for v in r.decision.violations) for r in runs]
    assert [False] * 3 + [True] * 9 == fired
    alerts = [a for r in runs for a in r.alerts if a.rule_id == "NPD-VOL-02"]
    assert [1, 2, 4, 8] == [a.count for a in alerts]
    assert 1 == len({a.alert_id for a in alerts})
    assert ("e3",) == alerts[0].event_ids
    assert T0 + dt.timedelta(days=3) == alerts[-1].first_seen
    assert T0 + dt.timedelta(days=10) == alerts[-1].last_seen
    assert "1200 records to uni-ucl in calendar month 2024-03" in alerts[0].explanation


def test_evaluate_without_state_skips_windowed_rules(engine: Engine) -> None:
    decision = engine.evaluate(make_event(record_count=5000), make_agreement(monthly_record_cap=10))
    assert [] == [v.rule_id for v in decision.violations]


def test_out_of_order_event_counts_in_its_own_month(engine: Engine) -> None:
    agreement = make_agreement(monthly_record_cap=1000)
    events = [
        make_event(event_id="a", occurred_at="2024-03-30T10:00:00+00:00", record_count=600, pupil_refs=None),
        make_event(event_id="b", occurred_at="2024-04-02T10:00:00+01:00", record_count=600, pupil_refs=None),
        make_event(event_id="c", occurred_at="2024-03-31T23:30:00+01:00", record_count=500, pupil_refs=None),
    ]
    runs = _run(engine, events, agreement, state=WindowState({}))
    assert [[], [], ["NPD-VOL-02"]] == [
        [v.rule_id for v in r.decision.violations if v.rule_id.startswith("NPD-VOL")] for r in runs
    ]


def test_home_office_monthly_persons_over_1500(engine: Engine) -> None:
    ho = make_agreement(
        agreement_id="AG-HO",
        recipient_org_id="ho",
        recipient_org_type="home_office",
        legal_gateways=["DPA2018-Sch2-p4"],
        purposes=["immigration_enforcement"],
        fields_allowed=["match_flag", "address", "school_urn"],
        access_route="direct_allowed",
    )
    patch: dict[str, Any] = {
        "recipient": {"org_id": "ho", "org_type": "home_office", "ico_registration": None},
        "agreement_id": "AG-HO",
        "legal_gateway": "DPA2018-Sch2-p4",
        "purpose": "immigration_enforcement",
        "fields": ["match_flag", "address", "school_urn"],
        "action": "match_check",
        "channel": "api",
        "case_reference": "C-1",
        "evidence_attestation": True,
        "pupil_refs": None,
        "record_count": 800,
    }
    events = [make_event(event_id=f"h{i}", occurred_at=_at(i), **patch) for i in range(2)]
    runs = _run(engine, events, ho, state=WindowState({}))
    assert [False, True] == [any(v.rule_id == "NPD-VOL-03" for v in r.decision.violations) for r in runs]


def test_trailing_median_needs_five_prior_events(engine: Engine) -> None:
    counts = [100, 100, 100, 100, 100, 501, 499]
    events = [
        make_event(event_id=f"t{i}", occurred_at=_at(i), record_count=c, pupil_refs=None) for i, c in enumerate(counts)
    ]
    runs = _run(engine, events, make_agreement(), state=WindowState({}))
    assert [False] * 5 + [True, False] == [any(v.rule_id == "NPD-BULK-02" for v in r.decision.violations) for r in runs]


def test_repeated_lookup_by_one_recipient_slides_out_after_30_days(engine: Engine) -> None:
    days = [0, 1, 2, 3, 4, 40]
    events = [make_event(event_id=f"r{i}", occurred_at=_at(d), record_count=1) for i, d in enumerate(days)]
    runs = _run(engine, events, make_agreement(), state=WindowState({}))
    assert [False, False, False, True, True, False] == [
        any(v.rule_id == "NPD-REP-01" for v in r.decision.violations) for r in runs
    ]


# --- pupil references never in clear -------------------------------------------------------------------


def test_no_pupil_ref_in_any_key_value_decision_or_alert() -> None:
    engine = load_engine(pupil_key=b"test-key")
    backing: dict[str, Any] = {}
    pupil_backing: dict[str, Any] = {}
    police = {
        "recipient": {"org_id": "police-x", "org_type": "police", "ico_registration": None},
        "agreement_id": None,
        "legal_gateway": "DPA2018-Sch2-p2",
        "purpose": "crime_prevention",
        "record_count": 1,
    }
    ho = {**police, "recipient": {"org_id": "ho-x", "org_type": "home_office", "ico_registration": None}}
    events = [make_event(event_id=f"p{i}", occurred_at=_at(i), **(police if i % 2 else ho)) for i in range(8)]
    runs = _run(engine, events, None, state=WindowState(backing), pupil_state=WindowState(pupil_backing))
    rules = {v.rule_id for r in runs for v in r.decision.violations}
    assert {"NPD-REP-01", "NPD-REP-02"} <= rules
    text = json.dumps([backing, pupil_backing]) + "".join(
        r.decision.model_dump_json() + "".join(a.model_dump_json() for a in r.alerts) for r in runs
    )
    assert "SECRET-PUPIL-REF" not in text
    assert engine.pupil_hash("SECRET-PUPIL-REF-1") in json.dumps(list(pupil_backing))
    assert engine.pupil_hash("SECRET-PUPIL-REF-1") != load_engine().pupil_hash("SECRET-PUPIL-REF-1")


@pytest.mark.parametrize("key", [b"", b"k", b"test-key", bytes(range(64)), b"x" * 65, b"long" * 50])
def test_pupil_hashes_are_hmac_sha256_under_the_engine_key(key: bytes) -> None:
    # The pseudonyms in state and look-ups must be reproducible by anyone holding the key.
    engine = load_engine(pupil_key=key)
    refs = ["P1", "A123456789012", "ref.2:x-y"]
    expected = sorted(hmac.new(key, r.encode(), hashlib.sha256).hexdigest() for r in refs)
    assert [engine.pupil_hash(r) for r in refs] == [hmac.new(key, r.encode(), hashlib.sha256).hexdigest() for r in refs]
    event = make_event(
        event_id="h1",
        pupil_refs=[*refs, refs[0]],
        recipient={"org_id": "police-x", "org_type": "police", "ico_registration": None},
        agreement_id=None,
        legal_gateway="DPA2018-Sch2-p2",
        purpose="crime_prevention",
        record_count=1,
    )
    assert [lookup.pupil_hash for lookup in engine.pupil_lookups(event)] == expected


def test_pupil_lookups_round_trip_through_json_and_run_pupil_alerts(engine: Engine) -> None:
    police = {
        "recipient": {"org_id": "police-x", "org_type": "police", "ico_registration": None},
        "agreement_id": None,
        "pupil_refs": ["SECRET-PUPIL-REF-1"],
        "record_count": 1,
    }
    first = make_event(event_id="l1", occurred_at=_at(0), **police)
    second = make_event(
        event_id="l2",
        occurred_at=_at(10),
        **{**police, "recipient": {"org_id": "dwp-x", "org_type": "dwp", "ico_registration": None}},
    )
    state = WindowState({})
    alerts = []
    for event in (first, second):
        lookups = engine.pupil_lookups(event)
        assert 1 == len(lookups)
        wire = lookups[0].model_dump_json()
        assert "SECRET" not in wire
        lookup = PupilLookup.model_validate_json(wire)
        assert lookup == lookups[0]
        assert ("NPD-REP-02",) == lookup.rule_ids
        state.advance(lookup.occurred_at.timestamp())
        alerts += engine.run_pupil(lookup, state)
    assert [("NPD-REP-02", 1, ("l2",))] == [(a.rule_id, a.count, a.event_ids) for a in alerts]
    assert "looked up by 2 enforcement recipients" in alerts[0].explanation
    assert [] == engine.pupil_lookups(make_event())  # a research extract is no enforcement lookup


def _police_lookup(event_id: str = "l1") -> AccessEvent:
    return make_event(
        event_id=event_id,
        occurred_at=_at(0),
        recipient={"org_id": "police-x", "org_type": "police", "ico_registration": None},
        agreement_id=None,
        pupil_refs=["SECRET-PUPIL-REF-1", "SECRET-PUPIL-REF-2"],
        record_count=2,
    )


def test_run_without_pupil_windows_gives_the_lookups_to_send(engine: Engine) -> None:
    event = _police_lookup()
    live = engine.run(event, None, state=WindowState({}))
    assert live.lookups == engine.pupil_lookups(event)
    assert 2 == len(live.lookups)
    # Given the pupil windows (offline, one process), they are applied there and nothing is left to send.
    assert [] == engine.run(event, None, state=WindowState({}), pupil_state=WindowState({})).lookups
    assert [] == engine.run(make_event(), make_agreement(), state=WindowState({})).lookups


def test_a_pupil_rule_that_raises_is_an_engine_error_on_the_decision(engine: Engine) -> None:
    import dataclasses

    from rules.loader import LoadedPack

    def boom(facts: object) -> bool:
        raise TypeError("boom")

    rules_ = tuple(
        dataclasses.replace(r, condition=boom) if r.window is not None and r.window.per == "pupil" else r
        for r in engine.rules
    )
    p = engine._pack
    broken = Engine(LoadedPack(p.name, p.version, p.engine_version, p.description, p.sha256, rules_, p.catalogue))
    for pupil_state in (None, WindowState({})):  # the worker (look-ups sent on) and offline alike
        evaluation = broken.run(_police_lookup(), None, state=WindowState({}), pupil_state=pupil_state)
        assert [] == evaluation.lookups
        assert [("rules.NPD-REP-02", "engine_error")] == [(e.loc, e.type) for e in evaluation.decision.errors]


# --- the sweep --------------------------------------------------------------------------------------


def test_sweep_at_a_fixed_now_gives_stable_ids(engine: Engine) -> None:
    now = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
    overdue = make_agreement(last_audit_at="2024-01-15")
    ended = make_agreement(agreement_id="AG-OLD", valid_until="2024-12-31", last_audit_at="2024-12-01")
    current = make_agreement(agreement_id="AG-OK", last_audit_at="2024-12-01")
    alerts = engine.sweep([overdue, ended, current], now)
    assert [("NPD-GOV-04", "AG-RES-UCL"), ("NPD-GOV-05", "AG-OLD")] == [(a.rule_id, a.agreement_id) for a in alerts]
    again = engine.sweep([overdue, ended, current], now + dt.timedelta(days=1))
    assert [a.alert_id for a in alerts] == [a.alert_id for a in again]
    assert dt.datetime(2025, 1, 14, tzinfo=dt.UTC) == alerts[0].first_seen
    assert now == alerts[0].last_seen
    with pytest.raises(ValueError, match="timezone-aware"):
        engine.sweep([overdue], dt.datetime(2025, 3, 1))  # naive on purpose


# --- the window block in the loader -----------------------------------------------------------------


def test_bad_window_blocks_are_reported_with_lines(tmp_path: Path) -> None:
    (tmp_path / "pack.yaml").write_text('name: t\nversion: "1.0.0"\nengine_version: 1\ndescription: t\n')
    (tmp_path / "a.rules.yaml").write_text(
        """- id: W-01
  title: t
  category: volume_cap_exceeded
  severity: high
  legal_basis: t
  condition: event.pupil_level
  window:
    kind: hourly
    per: recipient
    measure: total(event.record_count)
    threshold: agreement.status
  message: "{window.value}"
  runbook: t
- id: W-02
  title: t
  category: repeated_pupil_lookup
  severity: high
  legal_basis: t
  condition: window.value > 1
  window:
    kind: sliding
    size: 30
    per: pupil
    measure: count
    threshold: agreement.monthly_record_cap
  message: "{event.fields}"
  runbook: t
- id: W-03
  title: t
  category: governance_gap
  severity: high
  legal_basis: t
  scope: agreement
  condition: event.pupil_level
  message: t
  runbook: t
"""
    )
    f = tmp_path / "a.rules.yaml"
    got = [str(p) for p in validate_pack(tmp_path)]
    assert [
        f"{f}:8: rule W-01: window: kind 'hourly' is not one of calendar_month, sliding, trailing",
        f"{f}:10: rule W-01: window: measure 'total(event.record_count)' is not one of count, sum(...), "
        "count_distinct(...), median(...)",
        f"{f}:11: rule W-01: window: threshold 'agreement.status': threshold needs an int, got a str",
        f"{f}:19: rule W-02: condition, column 1: fact 'window.value' cannot be used here: window.* facts are for "
        "messages of windowed rules, now.* for `scope: agreement` rules",
        f"{f}:22: rule W-02: window: a sliding window needs size: a duration such as 30d or 12h, not 30",
        f"{f}:25: rule W-02: window: threshold 'agreement.monthly_record_cap': fact 'agreement.monthly_record_cap' "
        "cannot be used here: a `per: pupil` rule is judged from the pupil lookup, which carries only "
        "event.agreement_id, event.id, event.legal_gateway, event.local_date, event.purpose, "
        "event.recipient.org_id, event.recipient.org_type and window.*",
        f"{f}:26: rule W-02: message, column 2: placeholder {{event.fields}}: fact 'event.fields' cannot be used here: "
        "a `per: pupil` rule is judged from the pupil lookup, which carries only event.agreement_id, event.id, "
        "event.legal_gateway, event.local_date, event.purpose, event.recipient.org_id, event.recipient.org_type "
        "and window.*",
        f"{f}:33: rule W-03: a scope: agreement rule needs due: the date expression its finding dates from",
        f"{f}:34: rule W-03: condition, column 1: fact 'event.pupil_level' cannot be used here: a `scope: agreement` "
        "rule sees no event: only agreement.* (not agreement.cited) and now.* facts",
    ] == got
