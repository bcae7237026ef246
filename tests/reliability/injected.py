"""A worker run as a script with one failure injected, and the check that its restart loses nothing.

Used by tests/reliability/test_send_failure.py and tests/reliability/test_agent_failure.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from schemas import AccessEvent, Agreement
from streams.cli.runner import WorkerProcess, settings_env
from streams.offline.audit import verify_topic
from streams.offline.simulate import Simulator
from streams.settings import Settings
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests.reliability.support import SIM_START, Accounts, Tail, sample_agreements
from tests.reliability.test_kill import offline_alert_ids


def published(settings: Settings, events: int, seed: int) -> tuple[list[Agreement], list[AccessEvent]]:
    """The sample register and `events` simulated events, on the topics (created if missing)."""
    ensure_topics(settings)
    agreements = sample_agreements()
    simulated = [s.event for s in Simulator(agreements, seed=seed, start=SIM_START).events(events)]
    with Publisher(settings) as pub:
        pub.publish_agreements(agreements)
        pub.publish_events(simulated)
    return agreements, simulated


def run_until_exit(script: Path, settings: Settings, log: Path, timeout: float = 120.0, **env: str) -> int | None:
    """Run a worker script to its end; its exit code, or None if it was still running after `timeout`."""
    environment = {**os.environ, **settings_env(settings), **env}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(script)], env=environment, stdout=out, stderr=subprocess.STDOUT)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def log_events(log: Path) -> list[str]:
    """The `event` names of a worker log's structlog lines, in order."""
    names = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "event" in doc:
            names.append(str(doc["event"]))
    return names


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
