"""An agent that raises ends the worker at once (exit 70): Faust would restart the agent in place, and the
message it was on would be acknowledged and committed with its outputs half sent, or never (the
partition's commit stuck while the worker looks healthy). The restarted worker decides every event
once, with the ledger intact."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli.runner import settings_env
from streams.offline.simulate import Simulator
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from streams.worker.app import AGENT_FAILED_EXIT
from tests.conftest import isolated_settings
from tests.reliability.support import SIM_START, sample_agreements
from tests.reliability.test_send_failure import _log_events, assert_a_restart_decides_each_event_once

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
    with Publisher(settings) as pub:
        pub.publish_agreements(agreements)
        pub.publish_events(events)

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

    assert_a_restart_decides_each_event_once(settings, tmp_path, events, agreements)
