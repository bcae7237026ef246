"""kill -9 mid-stream: the restarted worker replays from the last commit; nothing is lost, alert ids are stable."""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

from rules import WindowState
from schemas import AccessEvent
from streams.audit import verify_topic
from streams.broker import EmbeddedBroker
from streams.kafka import ensure_topics
from streams.publisher import Publisher
from streams.runner import WorkerProcess
from streams.simulate import Simulator
from tests.conftest import isolated_settings
from tests.reliability.support import SIM_START, Accounts, Tail, engine, report, sample_agreements

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# GATEWATCH_RELIABILITY_EVENTS scales the run down for a quick local check.
EVENTS = int(os.environ.get("GATEWATCH_RELIABILITY_EVENTS", "20000"))
KILL_AFTER = EVENTS * 3 // 10


def offline_alert_ids(events: list[AccessEvent], agreements: list) -> set[str]:  # type: ignore[type-arg]
    """The alert ids `gatewatch check` semantics give: one process, file order, inline per-pupil rules."""
    eng = engine()
    register = {a.agreement_id: a for a in agreements}
    state, pupil_state = WindowState({}), WindowState({})
    ids: set[str] = set()
    for event in events:
        t = event.occurred_at.timestamp()
        state.advance(t)
        pupil_state.advance(t)
        agreement = register.get(event.agreement_id) if event.agreement_id else None
        ids |= {a.alert_id for a in eng.run(event, agreement, state=state, pupil_state=pupil_state).alerts}
    return ids


@pytest.mark.timeout(max(600, EVENTS // 5))
def test_kill_9_mid_stream_loses_nothing_and_alert_ids_are_deterministic(
    broker: EmbeddedBroker, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = isolated_settings(broker, tmp_path)
    ensure_topics(settings)
    agreements = sample_agreements()
    events = [s.event for s in Simulator(agreements, seed=5, start=SIM_START).events(EVENTS)]
    ids = {e.event_id for e in events}
    assert len(ids) == EVENTS
    started = time.monotonic()
    with Publisher(settings) as pub:
        pub.publish_agreements(agreements)
        pub.publish_events(events)
    published_in = time.monotonic() - started

    accounts = Accounts(settings)
    t = settings.topics
    worker = WorkerProcess(settings, log_file=tmp_path / "worker-1.log").start()
    try:
        worker.wait_ready(len({a.agreement_id for a in agreements}), timeout=120)
        with Tail(settings, [t.decisions, t.deadletter, t.alerts]) as tail:
            deadline = time.monotonic() + max(180, EVENTS / 10)
            while sum(accounts.decisions.values()) < KILL_AFTER and time.monotonic() < deadline:
                accounts.feed(tail.poll())
            seen_at_kill = sum(accounts.decisions.values())
            assert seen_at_kill >= KILL_AFTER, f"only {seen_at_kill} decisions; see {worker.log_file}"
            worker.kill(signal.SIGKILL)
            worker.stop()
            restarted = time.monotonic()
            worker = WorkerProcess(settings, log_file=tmp_path / "worker-2.log").start()
            waited = accounts.wait_for(tail, ids, timeout=max(300, EVENTS / 5))
    finally:
        worker.stop()

    missing = ids - accounts.accounted()
    duplicates = accounts.duplicates()
    # Alerts about events only: the register's approval findings (no event) are judged as agreements apply.
    accounts.alerts = [a for a in accounts.alerts if a["event_ids"]]
    by_content: dict[tuple[str, tuple[str, ...], int], set[str]] = defaultdict(set)
    for alert in accounts.alerts:
        by_content[(alert["rule_id"], tuple(alert["event_ids"]), alert["count"])].add(alert["alert_id"])
    live_ids = {a["alert_id"] for a in accounts.alerts}
    offline_ids = offline_alert_ids(events, agreements)
    reports = verify_topic(settings)
    breaks = [(r.partition, b.offset, b.kind, b.detail) for r in reports for b in r.breaks]
    report(
        request,
        events=EVENTS,
        publish_seconds=round(published_in, 1),
        decisions_at_kill=seen_at_kill,
        decisions_total=sum(accounts.decisions.values()),
        duplicate_decisions=duplicates,
        dead_letters=len(accounts.dead_letters),
        alert_records=len(accounts.alerts),
        distinct_alert_ids=len(live_ids),
        offline_alert_ids=len(offline_ids),
        live_not_offline=len(live_ids - offline_ids),
        offline_not_live=len(offline_ids - live_ids),
        seconds_after_restart=round(time.monotonic() - restarted, 1),
        wait_seconds=round(waited, 1),
        ledger_records=sum(r.records for r in reports),
        ledger_breaks=breaks[:20],
        extra_alerts=[
            (a["rule_id"], a["count"], a["event_ids"][:3], len(a["event_ids"]))
            for a in accounts.alerts
            if a["alert_id"] in live_ids - offline_ids
        ][:10],
    )
    assert not missing, f"{len(missing)} events have neither a decision nor a dead letter, e.g. {sorted(missing)[:5]}"
    assert not accounts.dead_letters, accounts.dead_letters[:3]
    assert all(len(found) == 1 for found in by_content.values()), "one alert content, two alert ids"
    # A replay re-links the replayed decisions after the restart point: each partition may show at most
    # one break, where its first replayed decision follows the last decision written before the kill.
    assert all(kind in {"reordered", "relinked"} for _, _, kind, _ in breaks), breaks
    assert len({p for p, *_ in breaks}) == len(breaks), breaks
    assert offline_ids <= live_ids, "an alert the events call for was never raised"
    # Known limit (README, Guarantees): windowed state is at-least-once. State is flushed with exactly
    # the events the committed offsets cover, but a kill between that flush and the offset commit (no
    # transactions) makes the events since the previous commit count twice in the windows when they are
    # processed again, which can tip a window over its threshold: extra windowed alerts, never missing
    # ones. Stateless alert ids stay exactly those of the offline run.
    windowed = {r.id for r in engine().rules if r.window is not None}
    extra = [a for a in accounts.alerts if a["alert_id"] in live_ids - offline_ids]
    assert all(a["rule_id"] in windowed for a in extra), [(a["rule_id"], a["event_ids"][:3]) for a in extra][:5]
    assert len(live_ids - offline_ids) <= max(3, len(offline_ids) // 200), len(live_ids - offline_ids)
