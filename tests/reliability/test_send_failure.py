"""A record batch the broker never acknowledges: the worker stops at its next commit, and the restarted
worker writes what was lost, so every event still has one decision, its alerts, and an unbroken ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schemas import AccessEvent, Agreement
from streams.cli.runner import WorkerProcess, settings_env
from streams.offline.audit import verify_topic
from streams.offline.simulate import Simulator
from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests.conftest import isolated_settings
from tests.reliability.support import SIM_START, Accounts, Tail, sample_agreements
from tests.reliability.test_kill import offline_alert_ids

pytestmark = pytest.mark.integration

EVENTS = 400
SCRIPT = Path(__file__).with_name("_unacknowledged_worker.py")


def _log_events(log: Path) -> list[str]:
    names = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "event" in doc:
            names.append(str(doc["event"]))
    return names


@pytest.mark.timeout(600)
def test_an_unacknowledged_alert_batch_stops_the_worker_and_the_restart_writes_it(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(broker, tmp_path)
    ensure_topics(settings)
    agreements = sample_agreements()
    events = [s.event for s in Simulator(agreements, seed=11, start=SIM_START).events(EVENTS)]
    with Publisher(settings) as pub:
        pub.publish_agreements(agreements)
        pub.publish_events(events)

    t = settings.topics
    failing_log = tmp_path / "worker-1.log"
    env = {**os.environ, **settings_env(settings), "FAIL_TOPIC": t.alerts, "AFTER_TOPIC": t.decisions}
    with open(failing_log, "wb") as out:
        failing = subprocess.Popen([sys.executable, str(SCRIPT)], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            exit_code = failing.wait(timeout=120)
        finally:
            if failing.poll() is None:
                failing.kill()
    assert exit_code != 0, f"the worker went on after an unacknowledged send; see {failing_log}"
    assert 1 == _log_events(failing_log).count("send_failed")

    assert_a_restart_decides_each_event_once(settings, tmp_path, events, agreements)


def assert_a_restart_decides_each_event_once(
    settings: Settings, tmp_path: Path, events: list[AccessEvent], agreements: list[Agreement]
) -> None:
    """A fresh worker finishes the topic: every event decided once, the ledger intact, the alert ids
    those of an offline run."""
    t, ids = settings.topics, {e.event_id for e in events}
    accounts = Accounts(settings)
    worker = WorkerProcess(settings, log_file=tmp_path / "worker-2.log").start()
    try:
        with Tail(settings, [t.decisions, t.deadletter, t.alerts]) as tail:
            accounts.wait_for(tail, ids, timeout=240)
            time.sleep(2)  # anything written twice would follow its first copy closely
            accounts.feed(tail.poll(1000))
    finally:
        worker.stop()

    live_ids = {a["alert_id"] for a in accounts.alerts if a["event_ids"]}
    reports = verify_topic(settings)
    assert dict.fromkeys(ids, 1) == dict(accounts.decisions)
    assert [] == [(r.partition, b.offset, b.kind) for r in reports for b in r.breaks]
    assert offline_alert_ids(events, agreements) == live_ids
