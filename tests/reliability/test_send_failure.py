"""A record batch the broker never acknowledges: the worker stops at its next commit, and the restarted
worker writes what was lost, so every event still has one decision, its alerts, and an unbroken ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.transport.broker import EmbeddedBroker
from tests.conftest import isolated_settings
from tests.reliability.injected import assert_a_restart_decides_each_event_once, log_events, published, run_until_exit

pytestmark = pytest.mark.integration

EVENTS = 400
SCRIPT = Path(__file__).with_name("_unacknowledged_worker.py")


@pytest.mark.timeout(600)
def test_an_unacknowledged_alert_batch_stops_the_worker_and_the_restart_writes_it(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(broker, tmp_path)
    agreements, events = published(settings, EVENTS, seed=11)
    t = settings.topics

    failing_log = tmp_path / "worker-1.log"
    exit_code = run_until_exit(SCRIPT, settings, failing_log, FAIL_TOPIC=t.alerts, AFTER_TOPIC=t.decisions)
    assert exit_code not in (0, None), f"the worker went on after an unacknowledged send; see {failing_log}"
    assert 1 == log_events(failing_log).count("send_failed")

    assert_a_restart_decides_each_event_once(settings, tmp_path, events, agreements)
