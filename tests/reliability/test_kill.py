"""kill -9 mid-stream: the restarted worker replays from the last commit, and what it already wrote is not
written again: every event decided once, the ledger intact, alert ids and windowed state as without the kill."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from rules import OfflineRun, WindowState
from schemas import AccessEvent, MessageRef
from streams.cli.runner import WorkerProcess
from streams.offline.audit import verify_topic
from streams.offline.simulate import Simulator
from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from streams.worker.processing import Processor
from tests.conftest import isolated_settings
from tests.reliability.support import (
    SIM_START,
    Accounts,
    Tail,
    engine,
    read_all,
    report,
    sample_agreements,
    table_from_changelog,
    wait_committed,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# GATEWATCH_RELIABILITY_EVENTS scales the run down for a quick local check.
EVENTS = int(os.environ.get("GATEWATCH_RELIABILITY_EVENTS", "20000"))


def offline_alert_ids(events: list[AccessEvent], agreements: list) -> set[str]:  # type: ignore[type-arg]
    """The alert ids `gatewatch check` semantics give: one process, file order, inline per-pupil rules."""
    offline = OfflineRun(engine(), agreements)
    return {a.alert_id for event in events for a in offline.evaluate(event).alerts}


def uninterrupted_windows(settings: Settings, agreements: list) -> dict[str, object]:  # type: ignore[type-arg]
    """The recipient windows a worker that never stopped would hold: the access topic as it is, partition by
    partition in offset order, through the worker's own Processor (positions recorded as the worker does)."""
    import datetime as dt

    from streams.worker.processing import AgreementCache

    register = {a.agreement_id: a.model_dump_json() for a in agreements}
    processor = Processor(engine(), AgreementCache(register), track_positions=True)
    backing: dict[str, object] = {}
    lateness = dt.timedelta(days=settings.window_lateness_days)
    states: dict[int, WindowState] = {}
    for record in read_all(settings, settings.topics.access):
        state = states.get(record.partition)
        if state is None:
            state = states[record.partition] = WindowState(backing, partition=record.partition, lateness=lateness)
        ref = MessageRef(topic=record.topic, partition=record.partition, offset=record.offset)
        processor.process_message(record.value, record.key, ref, state=state)
    return json.loads(json.dumps(backing))  # as the changelog's JSON gives it back


@pytest.mark.timeout(max(600, EVENTS // 5))
@pytest.mark.parametrize(
    ("publish", "kill_at"),
    [("events", 0.3), ("batches", 0.6)],
    ids=["single-events-killed-at-30pc", "batches-killed-at-60pc"],
)
def test_kill_9_mid_stream_decides_every_event_once_and_keeps_the_ledger_and_windows_intact(
    broker: EmbeddedBroker, tmp_path: Path, request: pytest.FixtureRequest, publish: str, kill_at: float
) -> None:
    settings = isolated_settings(broker, tmp_path)
    ensure_topics(settings)
    agreements = sample_agreements()
    events = [s.event for s in Simulator(agreements, seed=5, start=SIM_START).events(EVENTS)]
    ids = {e.event_id for e in events}
    assert len(ids) == EVENTS
    kill_after = int(EVENTS * kill_at)
    started = time.monotonic()
    with Publisher(settings) as pub:
        pub.publish_agreements(agreements)
        if publish == "batches":
            pub.publish_batches(events, batch_size=50)
        else:
            pub.publish_events(events)
    published_in = time.monotonic() - started

    accounts = Accounts(settings)
    t = settings.topics
    worker = WorkerProcess(settings, log_file=tmp_path / "worker-1.log").start()
    try:
        worker.wait_ready(len({a.agreement_id for a in agreements}), timeout=120)
        with Tail(settings, [t.decisions, t.deadletter, t.alerts]) as tail:
            deadline = time.monotonic() + max(180, EVENTS / 10)
            while sum(accounts.decisions.values()) < kill_after and time.monotonic() < deadline:
                accounts.feed(tail.poll())
            seen_at_kill = sum(accounts.decisions.values())
            assert seen_at_kill >= kill_after, f"only {seen_at_kill} decisions; see {worker.log_file}"
            worker.kill(signal.SIGKILL)
            worker.stop()
            restarted = time.monotonic()
            worker = WorkerProcess(settings, log_file=tmp_path / "worker-2.log").start()
            waited = accounts.wait_for(tail, ids, timeout=max(300, EVENTS / 5))
            caught_up = wait_committed(settings, t.access)  # (the windows too: state is flushed before a commit)
    finally:
        worker.stop()  # a clean stop commits: the windows' changelog then holds the state of every event

    missing = ids - accounts.accounted()
    # Alerts about events only: the register's approval findings (no event) are judged as agreements apply.
    accounts.alerts = [a for a in accounts.alerts if a["event_ids"]]
    live_ids = {a["alert_id"] for a in accounts.alerts}
    records = Counter((a["alert_id"], a["count"], a["rule_id"]) for a in accounts.alerts)
    repeated = [record for record, n in records.items() if n > 1]
    offline_ids = offline_alert_ids(events, agreements)
    reports = verify_topic(settings)
    breaks = [(r.partition, b.offset, b.kind, b.detail) for r in reports for b in r.breaks]
    live_windows = table_from_changelog(settings, f"{settings.app_id}-windows-changelog")
    expected_windows = uninterrupted_windows(settings, agreements)
    differing = {k for k in set(live_windows) | set(expected_windows) if live_windows.get(k) != expected_windows.get(k)}
    resumed = (tmp_path / "worker-2.log").read_text().count("partition_resumed")
    report(
        request,
        events=EVENTS,
        publish=publish,
        publish_seconds=round(published_in, 1),
        decisions_at_kill=seen_at_kill,
        decisions_total=sum(accounts.decisions.values()),
        duplicate_decisions=accounts.duplicates(),
        dead_letters=len(accounts.dead_letters),
        alert_records=len(accounts.alerts),
        repeated_alert_records=len(repeated),
        distinct_alert_ids=len(live_ids),
        offline_alert_ids=len(offline_ids),
        window_keys=len(expected_windows),
        window_keys_differing=len(differing),
        partitions_resumed=resumed,
        seconds_after_restart=round(time.monotonic() - restarted, 1),
        wait_seconds=round(waited, 1),
        ledger_records=sum(r.records for r in reports),
        ledger_breaks=breaks[:20],
    )
    assert caught_up, f"the restarted worker did not commit up to the end of {t.access}; see {worker.log_file}"
    assert not missing, f"{len(missing)} events have neither a decision nor a dead letter, e.g. {sorted(missing)[:5]}"
    assert not accounts.dead_letters, accounts.dead_letters[:3]
    assert dict.fromkeys(ids, 1) == dict(accounts.decisions)
    assert [] == breaks
    assert EVENTS == sum(r.records for r in reports)
    assert offline_ids == live_ids
    # An alert record is sent once; only a cross-recipient (per: pupil) one may come again, when the kill
    # fell between its acknowledgement and the pupil windows' next flush.
    pupil_rules = {r.id for r in engine().rules if r.window is not None and r.window.per == "pupil"}
    assert [] == [record for record in repeated if record[2] not in pupil_rules]
    assert set() == differing, [(k, live_windows.get(k), expected_windows.get(k)) for k in sorted(differing)[:2]]
