"""Helpers shared by the deploy tests: the exported metric names, the recorded names, and PromQL name extraction."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
ALERTMANAGER = DEPLOY / "alertmanager"
GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

# Series Prometheus makes itself rather than scraping them from Gatewatch; each one is named here on purpose.
PROMETHEUS_SYNTHETIC = {"up": "scrape health of each target (worker health panel, GatewatchWorkerDown)"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
_AGGREGATION_CLAUSE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_IDENT = re.compile(r"(?<![\w:$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def require_tool(name: str) -> str:
    """The tool's path; skip if missing on a developer machine, fail if missing in CI (.ci/run installs it)."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not on PATH (Debian: apt-get install prometheus prometheus-alertmanager; .ci/run does it)"
        if ci():
            pytest.fail(f"CI is set and {reason}")
        pytest.skip(reason)
    return path


def exported_metrics() -> dict[str, str]:
    """Metric name -> type, from the generated table in README.md: the only metrics Gatewatch exports."""
    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- BEGIN generated:metrics -->", 1)[1].split("<!-- END generated:metrics -->", 1)[0]
    rows = re.findall(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*(\w+)\s*\|", table, flags=re.MULTILINE)
    assert rows, "no metrics found between the generated:metrics markers of README.md"
    return dict(rows)


def recorded_names() -> set[str]:
    doc = yaml.safe_load((PROMETHEUS / "rules" / "recording.yml").read_text())
    return {rule["record"] for group in doc["groups"] for rule in group["rules"] if "record" in rule}


def allowed_names() -> set[str]:
    names = set(recorded_names()) | set(PROMETHEUS_SYNTHETIC)
    for name, kind in exported_metrics().items():
        names.add(name)
        if kind == "histogram":
            names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (no full parser: strings, label matchers, ranges, clauses removed)."""
    label_values = re.findall(r"label_values\(\s*([a-zA-Z_:][\w:]*)", expr)
    if expr.strip().startswith("label_values("):
        return set(label_values)
    stripped = _STRING.sub('""', expr)
    stripped = re.sub(r"\{[^}]*\}", " ", stripped)
    stripped = re.sub(r"\[[^\]]*\]", " ", stripped)
    stripped = _AGGREGATION_CLAUSE.sub(" ", stripped)
    names = set()
    for match in _IDENT.finditer(stripped):
        name, call = match.group(1), match.group(2)
        if call or name in _KEYWORDS or name in ("inf", "nan", "Inf", "NaN"):
            continue
        names.add(name)
    return names


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep their panels inside


def panel_targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def rule_exprs() -> Iterator[tuple[str, str]]:
    for path in sorted((PROMETHEUS / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                yield f"{path.name}:{rule.get('alert') or rule.get('record')}", rule["expr"]


def grafana_to_promql(expr: str) -> str:
    """A panel expression as Prometheus would receive it from Grafana: built-in and template variables filled in."""
    for variable, value in (("$__rate_interval", "1m"), ("$__interval", "15s"), ("$__range", "5m")):
        expr = expr.replace(variable, value)
    expr = re.sub(r"\$\{?(\w+)(?::\w+)?\}?", ".*", expr)  # template variables: "All" is the regex .*
    return expr
