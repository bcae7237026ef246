"""The deployment files in deploy/: each passes its own checker, the alert routing sends each kind of alert to the
right receiver, images are pinned, and dashboards and rules use only metrics Gatewatch exports or records."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import services
from tests.deploy._promql import (
    ALERTMANAGER,
    DASHBOARDS,
    DEPLOY,
    GRAFANA,
    PROMETHEUS,
    ROOT,
    allowed_names,
    exported_metrics,
    load_dashboard,
    metric_names,
    panel_targets,
    panels,
    recorded_names,
    require_tool,
    rule_exprs,
)

AM_PROD = ALERTMANAGER / "alertmanager.yml"
AM_TEST = ALERTMANAGER / "alertmanager.test.yml"
TIMINGS = {"group_wait", "group_interval", "repeat_interval"}


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


@pytest.fixture(scope="module")
def am_test_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alertmanager.test.yml with its port placeholders filled in, as the end-to-end test does."""
    text = AM_TEST.read_text().replace("PAGER_PORT", "18001").replace("DESK_PORT", "18002")
    path = tmp_path_factory.mktemp("am") / "alertmanager.yml"
    path.write_text(text)
    return path


# ---- Prometheus --------------------------------------------------------------------------------------------------


def test_promtool_check_config_passes() -> None:
    result = run(require_tool("promtool"), "check", "config", "prometheus.yml", cwd=PROMETHEUS)
    assert 0 == result.returncode, result.stdout + result.stderr


def test_promtool_check_rules_passes() -> None:
    rules = sorted((PROMETHEUS / "rules").glob("*.yml"))
    result = run(require_tool("promtool"), "check", "rules", *rules)
    assert 0 == result.returncode, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_alerting_rules_pass() -> None:
    tests = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert tests
    result = run(require_tool("promtool"), "test", "rules", *tests)
    assert 0 == result.returncode, result.stdout + result.stderr


def _alerting_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def test_every_alerting_rule_has_a_firing_and_a_silent_unit_test() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in (PROMETHEUS / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in _alerting_rules()}
    assert set() == names - firing, "alerts without a firing test"
    assert set() == names - silent, "alerts without a not-firing test"


def test_platform_alerts_carry_the_labels_and_annotations_alertmanager_routes_on() -> None:
    for rule in _alerting_rules():
        assert "gatewatch-platform" == rule["labels"]["source"], rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "high", "medium", "low"}, rule["alert"]
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), rule["alert"]


def test_worker_down_and_stall_alerts_exist() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in _alerting_rules()}
    assert 'up{job="gatewatch"} == 0' == exprs["GatewatchWorkerDown"]
    assert "gatewatch_partition_last_processed_timestamp_seconds" in exprs["GatewatchPartitionStalled"]
    assert 'increase(gatewatch_rule_pack_reloads_total{result="failed"}' in exprs["GatewatchRulePackReloadFailed"]
    assert 'gatewatch_alerts_total{severity="critical"}' in exprs["GatewatchCriticalViolationBackstop"]


def test_prometheus_scrapes_the_worker_job_the_alerts_match() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert ["worker:6066"] == jobs["gatewatch"]["static_configs"][0]["targets"]
    assert ["alertmanager:9093"] == config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert {"rules/recording.yml", "rules/alerts.yml"} == set(config["rule_files"])


# ---- Alertmanager ------------------------------------------------------------------------------------------------


def test_amtool_check_config_passes_on_the_production_file() -> None:
    result = run(require_tool("amtool"), "check-config", AM_PROD)
    assert 0 == result.returncode, result.stdout + result.stderr


def test_amtool_check_config_passes_on_the_test_file(am_test_config: Path) -> None:
    result = run(require_tool("amtool"), "check-config", am_test_config)
    assert 0 == result.returncode, result.stdout + result.stderr


def _without_timings(route: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in route.items() if k not in TIMINGS}
    if "routes" in out:
        out["routes"] = [_without_timings(r) for r in out["routes"]]
    return out


def test_test_alertmanager_has_the_production_routing_tree_and_inhibitions() -> None:
    prod, test = yaml.safe_load(AM_PROD.read_text()), yaml.safe_load(AM_TEST.read_text())
    assert _without_timings(prod["route"]) == _without_timings(test["route"])
    assert prod["inhibit_rules"] == test["inhibit_rules"]
    assert sorted(r["name"] for r in prod["receivers"]) == sorted(r["name"] for r in test["receivers"])


def test_test_alertmanager_waits_one_second_before_paging() -> None:
    test = yaml.safe_load(AM_TEST.read_text())
    critical = next(r for r in test["route"]["routes"] if 'severity="critical"' in r["matchers"])
    assert "1s" == critical["group_wait"]
    hooks = {r["name"]: r["webhook_configs"][0]["url"] for r in test["receivers"]}
    assert "http://127.0.0.1:PAGER_PORT/pager" == hooks["pager"]
    assert "http://127.0.0.1:DESK_PORT/desk" == hooks["security-desk"]


def test_production_pager_reads_its_key_from_a_file_and_repeats_every_four_hours() -> None:
    prod = yaml.safe_load(AM_PROD.read_text())
    pager = next(r for r in prod["receivers"] if r["name"] == "pager")
    assert pager["pagerduty_configs"][0]["routing_key_file"].startswith("/etc/alertmanager/secrets/")
    critical_matchers = ['source="gatewatch"', 'severity="critical"']
    critical = next(r for r in prod["route"]["routes"] if r["matchers"] == critical_matchers)
    assert "4h" == critical["repeat_interval"]
    assert ["agreement", "alertname"] == prod["route"]["group_by"]


VIOLATION = {"source": "gatewatch", "alertname": "NPD-PF-01", "agreement": "DSA-2020-0042", "category": "x"}
ROUTES = [
    pytest.param({**VIOLATION, "severity": "critical"}, "pager", id="critical-violation-pages"),
    pytest.param({**VIOLATION, "severity": "high"}, "security-desk", id="high-violation-to-desk"),
    pytest.param({**VIOLATION, "severity": "medium"}, "governance", id="medium-violation-to-governance"),
    pytest.param({**VIOLATION, "severity": "low"}, "governance", id="low-violation-to-governance"),
    pytest.param(
        {"source": "gatewatch-platform", "alertname": "GatewatchWorkerDown", "severity": "critical"},
        "ops",
        id="critical-platform-to-ops",
    ),
    pytest.param(
        {"source": "gatewatch-platform", "alertname": "GatewatchConsumerLagHigh", "severity": "high"},
        "ops",
        id="high-platform-to-ops",
    ),
    pytest.param(
        {"source": "gatewatch-platform", "alertname": "GatewatchCriticalViolationBackstop", "severity": "critical"},
        "pager",
        id="backstop-pages",
    ),
    pytest.param(
        {"source": "gatewatch-platform", "alertname": "GatewatchSinkPartitionUndecodable", "severity": "critical"},
        "pager",
        id="sink-stopped-at-an-undecodable-batch-pages",
    ),
    pytest.param(
        {"source": "gatewatch-platform", "alertname": "GatewatchPartitionUndecodable", "severity": "critical"},
        "ops",
        id="worker-stopped-at-an-undecodable-batch-to-ops",
    ),
    pytest.param({"alertname": "Something", "severity": "critical"}, "ops", id="unknown-source-to-ops"),
    pytest.param(
        {**VIOLATION, "alertname": "NPD-APR-03", "subject": "agreement", "severity": "critical"},
        "governance",
        id="critical-approval-finding-to-governance",
    ),
    pytest.param(
        {**VIOLATION, "alertname": "NPD-APR-10", "subject": "agreement", "severity": "high"},
        "governance",
        id="high-approval-finding-to-governance",
    ),
    pytest.param({**VIOLATION, "subject": "event", "severity": "critical"}, "pager", id="critical-share-pages"),
]


@pytest.mark.parametrize("which", ["production", "test"])
@pytest.mark.parametrize(("labels", "receiver"), ROUTES)
def test_amtool_routes_each_kind_of_alert_to_its_receiver(
    labels: dict[str, str], receiver: str, which: str, am_test_config: Path
) -> None:
    config = AM_PROD if which == "production" else am_test_config
    result = run(
        require_tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={config}",
        f"--verify.receivers={receiver}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert 0 == result.returncode, result.stdout + result.stderr
    assert receiver == result.stdout.strip()


@pytest.fixture
def alertmanager(am_test_config: Path, tmp_path: Path) -> Iterator[str]:
    """The Debian Alertmanager on a free loopback port with the test configuration (no clustering)."""
    with services.alertmanager(am_test_config, tmp_path / "am") as url:
        yield url


def _post_alerts(url: str, alerts: list[dict[str, str]]) -> None:
    body = json.dumps([{"labels": labels, "annotations": {"summary": "test"}} for labels in alerts]).encode()
    request = urllib.request.Request(
        f"{url}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert 200 == response.status


def test_a_critical_violation_inhibits_the_backstop_and_no_other_violation(alertmanager: str) -> None:
    # Violation-on-violation inhibition is the rule pack's (pack.yaml `inhibit:`); Alertmanager must not add its own.
    high = {**VIOLATION, "alertname": "NPD-SEC-01", "severity": "high"}
    _post_alerts(
        alertmanager,
        [
            {**VIOLATION, "severity": "critical"},
            high,
            {**high, "agreement": "DSA-2019-0007"},
            {"source": "gatewatch-platform", "alertname": "GatewatchConsumerLagHigh", "severity": "high"},
            {"source": "gatewatch-platform", "alertname": "GatewatchCriticalViolationBackstop", "severity": "critical"},
            # A critical approval finding on another agreement inhibits nobody's share alerts there.
            {
                **VIOLATION,
                "alertname": "NPD-APR-03",
                "subject": "agreement",
                "severity": "critical",
                "agreement": "DSA-2021-0003",
            },
            {**high, "agreement": "DSA-2021-0003"},
        ],
    )
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts", timeout=5) as response:
            alerts = json.loads(response.read())
        inhibited = {
            (a["labels"]["alertname"], a["labels"].get("agreement", "")) for a in alerts if a["status"]["inhibitedBy"]
        }
        if (len(alerts) == 7 and inhibited) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {("GatewatchCriticalViolationBackstop", "")} == inhibited


def test_an_undecodable_batch_inhibits_the_stalled_page_of_the_same_partition_only(alertmanager: str) -> None:
    def stalled(instance: str, partition: str) -> dict[str, str]:
        labels = {"alertname": "GatewatchPartitionStalled", "severity": "critical", "partition": partition}
        return {"source": "gatewatch-platform", "instance": instance, **labels}

    undecodable = {**stalled("w1:6066", "1"), "alertname": "GatewatchPartitionUndecodable", "topic": "access"}
    _post_alerts(alertmanager, [undecodable, stalled("w1:6066", "1"), stalled("w1:6066", "2"), stalled("w2:6066", "1")])
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts", timeout=5) as response:
            alerts = json.loads(response.read())
        inhibited = {
            (a["labels"]["alertname"], a["labels"]["instance"], a["labels"]["partition"])
            for a in alerts
            if a["status"]["inhibitedBy"]
        }
        if (len(alerts) == 4 and inhibited) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {("GatewatchPartitionStalled", "w1:6066", "1")} == inhibited


# ---- Grafana -----------------------------------------------------------------------------------------------------


def test_dashboards_are_valid_json_with_unique_panel_ids_and_the_provisioned_datasource() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    assert {"security-operations.json", "governance-trends.json"} == {p.name for p in DASHBOARDS}
    for path in DASHBOARDS:
        dashboard = load_dashboard(path)
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel, target in panel_targets(dashboard):
            assert uid == target["datasource"]["uid"], f"{path.name} panel {panel['id']}"
            assert target["expr"].strip(), f"{path.name} panel {panel['id']}: empty expr"


def test_dashboard_provider_points_at_the_mounted_dashboards() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in mounts


def _dashboard_exprs() -> Iterator[tuple[str, str]]:
    for path in DASHBOARDS:
        dashboard = load_dashboard(path)
        for panel, target in panel_targets(dashboard):
            yield f"{path.name} panel {panel['id']} ({panel['title']})", target["expr"]
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable.get("query")
            yield f"{path.name} variable {variable['name']}", query["query"] if isinstance(query, dict) else query


def test_metric_name_extraction_sees_through_promql_syntax() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(gatewatch_evaluation_seconds_bucket{job=~"$job"}[$__range])))'
        " / on () group_left max(foo:bar:ratio) and time() - gatewatch_x offset 5m"
    )
    assert {"gatewatch_evaluation_seconds_bucket", "foo:bar:ratio", "gatewatch_x"} == metric_names(expr)
    assert {"gatewatch_alerts_total"} == metric_names("label_values(gatewatch_alerts_total, category)")


def test_dashboards_and_rules_use_only_exported_metrics_and_recorded_series() -> None:
    allowed = allowed_names()
    unknown = {
        where: sorted(metric_names(expr) - allowed)
        for where, expr in [*_dashboard_exprs(), *rule_exprs()]
        if metric_names(expr) - allowed
    }
    assert {} == unknown


def test_every_recording_rule_is_used_by_a_dashboard_or_another_rule() -> None:
    used = set().union(*(metric_names(expr) for _, expr in [*_dashboard_exprs(), *rule_exprs()]))
    assert set() == recorded_names() - used


def test_readme_metrics_table_is_parsed() -> None:
    metrics = exported_metrics()
    assert "histogram" == metrics["gatewatch_evaluation_seconds"]
    assert all(name.endswith("_total") for name, kind in metrics.items() if kind == "counter")


# ---- Compose and Dockerfile --------------------------------------------------------------------------------------

PINNED = re.compile(r"^[\w.\-/]+:v?\d+\.\d+(\.\d+)?[\w.\-]*$")


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # type: ignore[no-any-return]


def test_compose_has_the_whole_stack() -> None:
    assert {"kafka", "init", "worker", "sink", "prometheus", "alertmanager", "grafana"} == set(_compose()["services"])


def test_compose_runs_the_alertmanager_sink_where_prometheus_scrapes_it() -> None:
    sink = _compose()["services"]["sink"]
    assert ["gatewatch", "sink", "alertmanager", "--metrics-port", "6067"] == sink["command"]
    assert "kafka:9092" == sink["environment"]["GATEWATCH_KAFKA_BOOTSTRAP"]
    assert "http://alertmanager:9093" == sink["environment"]["GATEWATCH_ALERTMANAGER_URL"]
    settings = set(re.findall(r"^\| `(GATEWATCH_\w+)`", (ROOT / "README.md").read_text(), flags=re.MULTILINE))
    assert set() == set(sink["environment"]) - settings
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert ["sink:6067"] == jobs["gatewatch-sink"]["static_configs"][0]["targets"]


def test_every_compose_image_is_pinned_to_a_version() -> None:
    images = {name: service.get("image", "") for name, service in _compose()["services"].items()}
    unpinned = {name: image for name, image in images.items() if not PINNED.match(image) or "latest" in image}
    assert {} == unpinned


def test_every_file_compose_mounts_exists_in_the_repository() -> None:
    missing = []
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")) and not (DEPLOY / source).resolve().exists():
                missing.append(f"{name}: {source}")
        build = service.get("build")
        if isinstance(build, dict):
            assert (DEPLOY / build["context"] / build["dockerfile"]).resolve().is_file(), name
    assert [] == missing


def test_compose_points_the_worker_at_kafka_and_sets_only_known_settings() -> None:
    settings = set(re.findall(r"^\| `(GATEWATCH_\w+)`", (ROOT / "README.md").read_text(), flags=re.MULTILINE))
    for name in ("init", "worker"):
        env = _compose()["services"][name]["environment"]
        assert "kafka:9092" == env["GATEWATCH_KAFKA_BOOTSTRAP"]
        assert set() == set(env) - settings, f"{name}: environment variables Gatewatch does not read"


def test_kafka_runs_in_kraft_mode() -> None:
    env = _compose()["services"]["kafka"]["environment"]
    assert "broker,controller" == env["KAFKA_PROCESS_ROLES"]
    assert "zookeeper" not in json.dumps(_compose()).lower()


def test_dockerfile_is_pinned_non_root_and_runs_the_worker() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    base = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert 1 == len(base)
    assert re.match(r"^python:3\.11\.\d+-slim", base[0]), base[0]
    user = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert user
    assert user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^RUN pip install \.", text, flags=re.MULTILINE)
    assert re.search(r"^EXPOSE 6066$", text, flags=re.MULTILINE)
    assert "GATEWATCH_WEB_HOST=0.0.0.0" in text
    assert 'CMD ["gatewatch", "worker"]' in text.splitlines()[-1]


def test_every_runbook_url_points_at_a_runbook_section_of_the_deploy_readme() -> None:
    headings = re.findall(r"^### (.+)$", (DEPLOY / "README.md").read_text(), flags=re.MULTILINE)
    anchors = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
    for rule in _alerting_rules():
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert "deploy/README.md" == path, rule["alert"]
        assert anchor in anchors, rule["alert"]
