"""An agent that raises ends the worker at once (exit 70): Faust would restart the agent in place, and the
message it was on would be acknowledged and committed with its outputs half sent, or never (the
partition's commit stuck while the worker looks healthy). The restarted worker decides every event
once, with the ledger intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.transport.broker import EmbeddedBroker
from streams.worker.app import AGENT_FAILED_EXIT
from tests.conftest import isolated_settings
from tests.reliability.injected import assert_a_restart_decides_each_event_once, log_events, published, run_until_exit

pytestmark = pytest.mark.integration

EVENTS = 400
SCRIPT = Path(__file__).with_name("_failing_agent_worker.py")


@pytest.mark.timeout(600)
def test_an_exception_in_an_agent_stops_the_worker_and_the_restart_decides_every_event_once(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(broker, tmp_path)
    agreements, events = published(settings, EVENTS, seed=13)

    failing_log = tmp_path / "worker-1.log"
    exit_code = run_until_exit(SCRIPT, settings, failing_log, FAIL_AT=str(EVENTS // 2))
    assert AGENT_FAILED_EXIT == exit_code, f"the worker went on after its agent failed; see {failing_log}"
    assert 1 == log_events(failing_log).count("agent_failed")

    assert_a_restart_decides_each_event_once(settings, tmp_path, events, agreements)
