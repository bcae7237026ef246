"""An agent that raises ends the worker at once (exit 70): Faust would restart the agent in place, and the
message it was on would be acknowledged and committed with its outputs half sent, or never (the
partition's commit stuck while the worker looks healthy). The restarted worker decides every event
once, with the ledger intact."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.cli.runner import WorkerProcess, settings_env
from streams.offline.audit import verify_topic
from streams.offline.simulate import Simulator
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from streams.worker.app import AGENT_FAILED_EXIT
from tests.conftest import isolated_settings
from tests.reliability.support import SIM_START, Accounts, Tail, sample_agreements
from tests.reliability.test_kill import offline_alert_ids
from tests.reliability.test_send_failure import _log_events

pytestmark = pytest.mark.integration

EVENTS = 400
SCRIPT = Path(__file__).with_name("_failing_agent_worker.py")


@pytest.mark.timeout(600)
def test_an_exception_in_an_agent_stops_the_worker_and_the_restart_decides_every_event_once(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(broker, tmp_path)
    ensure_topics(settings)
    agreements = sample_agreements()
    events = [s.event for s in Simulator(agreements, seed=13, start=SIM_START).events(EVENTS)]
    ids = {e.event_id for e in events}
    with Publisher(settings) as pub:
        pub.publish_agreements(agreements)
        pub.publish_events(events)

    t = settings.topics
    failing_log = tmp_path / "worker-1.log"
    env = {**os.environ, **settings_env(settings), "FAIL_AT": str(EVENTS // 2)}
    with open(failing_log, "wb") as out:
        failing = subprocess.Popen([sys.executable, str(SCRIPT)], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            exit_code = failing.wait(timeout=120)
        except subprocess.TimeoutExpired:
            exit_code = None
        finally:
            if failing.poll() is None:
                failing.kill()
    assert AGENT_FAILED_EXIT == exit_code, f"the worker went on after its agent failed; see {failing_log}"
    assert 1 == _log_events(failing_log).count("agent_failed")

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
