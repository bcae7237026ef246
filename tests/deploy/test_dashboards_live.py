"""Every Grafana panel query, run through a real Prometheus (Debian package, loopback) that scrapes a real worker
after a simulated run, with the deploy recording and alerting rules loaded: each must parse and return data."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.cli.runner import WorkerProcess
from streams.offline.register_file import load_agreements_file, sample_register_path
from streams.offline.simulate import Simulator
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests import services
from tests.conftest import isolated_settings, read_topic
from tests.deploy._promql import (
    DASHBOARDS,
    PROMETHEUS,
    allowed_names,
    grafana_to_promql,
    load_dashboard,
    metric_names,
    panel_targets,
    require_tool,
)

pytestmark = pytest.mark.integration

EVENTS = 300


# Series a healthy short run may legitimately leave empty. A panel query may come back empty only if every name it
# reads is listed here AND the listed condition holds in the worker's own /metrics at that moment; as soon as the
# worker exports the data, the exemption stops applying and the query must return data.
def _no_sample(metric: str) -> Callable[[str], bool]:
    return lambda text: not any(line.startswith((f"{metric}{{", f"{metric} ")) for line in text.splitlines())


MAY_HAVE_NO_DATA: dict[str, tuple[str, Callable[[str], bool]]] = {
    "gatewatch_engine_errors_total": (
        "a series appears only when a rule raises; a healthy run has none",
        _no_sample("gatewatch_engine_errors_total"),
    ),
}


@dataclass
class Stack:
    prometheus: str
    worker: WorkerProcess


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
        return json.loads(response.read())


def query(prometheus: str, expr: str) -> dict[str, Any]:
    try:
        return _get(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:  # a bad query answers 400 with a JSON error body
        return json.loads(exc.read())  # type: ignore[no-any-return]


def _value(prometheus: str, expr: str) -> float:
    try:
        result = query(prometheus, expr).get("data", {}).get("result", [])
    except OSError:  # not listening yet
        return 0.0
    return float(result[0]["value"][1]) if result else 0.0


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def _prometheus_config(tmp: Path, worker_port: int) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(PROMETHEUS / "rules" / "recording.yml"), str(PROMETHEUS / "rules" / "alerts.yml")],
        "scrape_configs": [
            {"job_name": "gatewatch", "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]},
        ],
    }
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def stack(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_tool("prometheus")
    tmp = tmp_path_factory.mktemp("live-dashboards")
    settings = isolated_settings(broker, tmp / "worker", sweep_interval_seconds=2)
    ensure_topics(settings)
    agreements = load_agreements_file(sample_register_path())
    with Publisher(settings) as pub:
        pub.publish_agreements(agreements)
    worker = WorkerProcess(settings, log_file=tmp / "worker.log").start()
    try:
        worker.wait_ready(len({a.agreement_id for a in agreements}), timeout=120)
        with services.prometheus(_prometheus_config(tmp, settings.web_port), tmp / "prometheus") as url:
            # Scraping before the traffic starts, so increase() and rate() see the counters move.
            _wait(lambda: _value(url, 'count_over_time(up{job="gatewatch"}[1m])') >= 2, 60, "two scrapes of the worker")
            # Two halves with scrapes in between: a labelled series is born at its first increment, which
            # increase() cannot see, so the second half is what makes the short-range panels move.
            events = [s.event for s in Simulator(agreements, seed=1).events(EVENTS)]
            for published in (EVENTS // 2, EVENTS):
                with Publisher(settings) as pub:
                    pub.publish_events(events[published - EVENTS // 2 : published])
                decisions = read_topic(settings, settings.topics.decisions, expected=published, timeout=120)
                assert len(decisions) >= published
                _wait(
                    lambda n=published: _value(url, "sum(gatewatch_decisions_total)") >= n, 60, "Prometheus to scrape"
                )
                time.sleep(2)
            time.sleep(3)  # a few more scrapes and rule evaluations after the last event
            yield Stack(url, worker)
    finally:
        worker.stop()


def _targets() -> list[Any]:
    params = []
    for path in DASHBOARDS:
        for panel, target in panel_targets(load_dashboard(path)):
            where = f"{path.stem}/{panel['id']}{target['refId']}"
            params.append(pytest.param(panel["title"], target["expr"], id=where))
    return params


@pytest.mark.parametrize(("title", "expr"), _targets())
def test_panel_query_returns_data_from_a_real_run(stack: Stack, title: str, expr: str) -> None:
    unknown = metric_names(expr) - allowed_names()
    assert set() == unknown, f"{title}: metrics Gatewatch does not export and no rule records"
    promql = grafana_to_promql(expr)
    answer = query(stack.prometheus, promql)
    assert "success" == answer["status"], f"{title}: {promql}: {answer.get('error')}"
    if answer["data"]["result"]:
        return
    names = metric_names(expr)
    text = stack.worker.metrics_text()
    exempt = {name for name in names if name in MAY_HAVE_NO_DATA and MAY_HAVE_NO_DATA[name][1](text)}
    assert names, f"{title}: {promql} returned no data"
    assert exempt == names, f"{title}: {promql} returned no data"
    pytest.skip(f"{title}: no data, as expected: " + "; ".join(MAY_HAVE_NO_DATA[n][0] for n in sorted(exempt)))


def test_a_query_for_a_metric_gatewatch_does_not_export_returns_nothing(stack: Stack) -> None:
    answer = query(stack.prometheus, "sum by (rule) (gatewatch_violations_total)")
    assert "success" == answer["status"]
    assert [] == answer["data"]["result"]
    assert {"gatewatch_violations_total"} == metric_names(
        "sum by (rule) (gatewatch_violations_total)"
    ) - allowed_names()


def test_platform_alert_rules_load_and_stay_quiet_on_a_healthy_run(stack: Stack) -> None:
    groups = _get(f"{stack.prometheus}/api/v1/rules")["data"]["groups"]
    health = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    assert {"ok"} == set(health.values()), health
    firing = {a["labels"]["alertname"] for a in _get(f"{stack.prometheus}/api/v1/alerts")["data"]["alerts"]}
    assert firing <= {"GatewatchCriticalViolationBackstop", "GatewatchNoEventsDuringWorkingHours"}
