"""The end-to-end proof: broker + worker + Prometheus + Alertmanager + the sink + a stand-in pager.

A critical violation reaches the pager exactly once within a bounded time with the right labels;
repeating the same violation does not page again; a high-severity one goes to the security desk.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from streams.cli.runner import WorkerProcess, settings_env
from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests.conftest import isolated_settings, read_topic
from tests.factories import make_agreement, make_event
from tests.httpreceiver import Receiver, http_receiver
from tests.services import alertmanager, prometheus

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).parents[2] / "deploy"
PAGE_WITHIN_SECONDS = 60

AGREEMENTS = [
    make_agreement(),
    make_agreement(agreement_id="DSA-2024-0002", recipient_org_id="uni-southgate", recipient_ico_registration=None),
]
CRITICAL = make_event(event_id="e2e-critical", fields=["pmr", "nationality"])  # NPD-PF-01, critical
HIGH = make_event(  # NPD-INS-01 (SRS-only agreement reached by SFTP), high, another agreement
    event_id="e2e-high",
    agreement_id="DSA-2024-0002",
    channel="sftp",
    action="extract",
    recipient={"org_id": "uni-southgate", "org_type": "research_academic", "ico_registration": None, "name": None},
    actor={"org_id": "uni-southgate"},
)


def alerts_in(receiver: Receiver, path: str) -> list[dict[str, str]]:
    """Labels of every alert in every notification the receiver got on `path`."""
    return [alert["labels"] for note in receiver.on(path) for alert in note.json()["alerts"]]


def wait_for(predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(scope="module")
def stack(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Receiver]]:
    tmp = tmp_path_factory.mktemp("e2e")
    settings = isolated_settings(broker, tmp / "worker")
    ensure_topics(settings)
    with Publisher(settings) as pub:
        pub.publish_agreements(AGREEMENTS)
    with http_receiver() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        am_config = tmp / "alertmanager.yml"
        am_config.write_text(
            (DEPLOY / "alertmanager" / "alertmanager.test.yml")
            .read_text()
            .replace("PAGER_PORT", port)
            .replace("DESK_PORT", port)
        )
        worker = WorkerProcess(settings, log_file=tmp / "worker.log").start()
        sink: subprocess.Popen[bytes] | None = None
        try:
            worker.wait_ready(len(AGREEMENTS), timeout=120)
            with alertmanager(am_config, tmp / "am") as am_url:
                prom_config = tmp / "prometheus.yml"
                prom_config.write_text(
                    yaml.safe_dump(
                        {
                            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                            "rule_files": [
                                str(DEPLOY / "prometheus" / "rules" / "alerts.yml"),
                                str(DEPLOY / "prometheus" / "rules" / "recording.yml"),
                            ],
                            "alerting": {
                                "alertmanagers": [{"static_configs": [{"targets": [am_url.removeprefix("http://")]}]}]
                            },
                            "scrape_configs": [
                                {
                                    "job_name": "gatewatch",
                                    "static_configs": [{"targets": [f"127.0.0.1:{settings.web_port}"]}],
                                }
                            ],
                        }
                    )
                )
                with prometheus(prom_config, tmp / "prom"):
                    env = {**os.environ, **settings_env(settings), "GATEWATCH_ALERTMANAGER_URL": am_url}
                    with (tmp / "sink.log").open("wb") as sink_log:
                        sink = subprocess.Popen(
                            [sys.executable, "-m", "streams.cli.main", "sink", "alertmanager"],
                            env=env,
                            stdout=sink_log,
                            stderr=subprocess.STDOUT,
                        )
                        yield settings, receiver
        finally:
            if sink is not None:
                sink.terminate()
                sink.wait(15)
            worker.stop()


def test_a_critical_violation_pages_once_with_the_right_labels(stack: tuple[Settings, Receiver]) -> None:
    settings, receiver = stack
    with Publisher(settings) as pub:
        pub.publish_event(CRITICAL)
    took = wait_for(
        lambda: any(a["alertname"] == "NPD-PF-01" for a in alerts_in(receiver, "/pager")), PAGE_WITHIN_SECONDS
    )
    print(f"critical violation paged {took:.1f}s after publishing")
    [paged] = [a for a in alerts_in(receiver, "/pager") if a["alertname"] == "NPD-PF-01"]
    assert {k: paged[k] for k in ("severity", "category", "recipient_type", "agreement", "gateway", "purpose")} == {
        "severity": "critical",
        "category": "prohibited_field",
        "recipient_type": "research_academic",
        "agreement": "DSA-2024-0001",
        "gateway": "DEA2017-s64",
        "purpose": "research",
    }

    # The same violation again (a producer retry, a replay): same alert id, so Alertmanager refreshes it.
    with Publisher(settings) as pub:
        pub.publish_event(CRITICAL)
    read_topic(settings, settings.topics.decisions, expected=2)
    time.sleep(8)  # several group intervals (1s in the test routing) for a second page to show up
    assert len([a for a in alerts_in(receiver, "/pager") if a["alertname"] == "NPD-PF-01"]) == 1


def test_a_high_violation_goes_to_the_security_desk_not_the_pager(stack: tuple[Settings, Receiver]) -> None:
    settings, receiver = stack
    with Publisher(settings) as pub:
        pub.publish_event(HIGH)
    wait_for(lambda: any(a["alertname"] == "NPD-INS-01" for a in alerts_in(receiver, "/desk")), PAGE_WITHIN_SECONDS)
    assert not any(a["alertname"] == "NPD-INS-01" for a in alerts_in(receiver, "/pager"))
    [desk] = [a for a in alerts_in(receiver, "/desk") if a["alertname"] == "NPD-INS-01"]
    assert desk["severity"] == "high"
    assert desk["agreement"] == "DSA-2024-0002"
