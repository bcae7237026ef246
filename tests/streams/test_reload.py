"""Rule packs reload on change and on SIGHUP: validated first, swapped atomically, refused packs leave the old."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rules import DEFAULT_PACK_DIR, load_engine
from streams.cli.runner import WorkerProcess
from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests.conftest import isolated_settings, read_topic
from tests.factories import make_agreement, make_event

pytestmark = pytest.mark.integration


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def wait_until(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError("condition not met in time")


def bump(pack_dir: Path, version: str) -> None:
    header = pack_dir / "pack.yaml"
    doc = yaml.safe_load(header.read_text())
    doc["version"] = version
    header.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="module")
def running(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, WorkerProcess, Path]]:
    tmp = tmp_path_factory.mktemp("reload")
    pack_dir = tmp / "pack"
    shutil.copytree(DEFAULT_PACK_DIR, pack_dir)
    settings = isolated_settings(broker, tmp / "data", rule_pack_dir=pack_dir, rule_reload_interval_seconds=0.5)
    ensure_topics(settings)
    with Publisher(settings) as pub:
        pub.publish_agreements([make_agreement()])
    worker = WorkerProcess(settings, log_file=tmp / "worker.log").start()
    try:
        worker.wait_ready(1, timeout=120)
        yield settings, worker, pack_dir
    finally:
        worker.stop()


def decided_by(settings: Settings, event_id: str, n: int) -> str:
    with Publisher(settings) as pub:
        pub.publish_event(make_event(event_id=event_id))
    decisions = read_topic(settings, settings.topics.decisions, expected=n)
    return str(next(d for d in decisions if d["event_id"] == event_id)["pack"]["version"])  # type: ignore[index]


def test_a_changed_pack_is_validated_and_swapped_in(running: tuple[Settings, WorkerProcess, Path]) -> None:
    settings, worker, pack_dir = running
    original = load_engine(pack_dir).pack.version
    assert decided_by(settings, "rl-1", 1) == original
    bump(pack_dir, "9.0.0")
    wait_until(lambda: (worker.health() or {}).get("pack", {}).get("version") == "9.0.0")
    assert decided_by(settings, "rl-2", 2) == "9.0.0"
    metrics = worker.metrics_text()
    assert sample(metrics, 'gatewatch_rule_pack_reloads_total{result="ok"}') >= 1
    assert 'version="9.0.0"' in next(
        line for line in metrics.splitlines() if line.startswith("gatewatch_rule_pack_info")
    )


def test_a_broken_pack_is_refused_and_the_old_one_keeps_serving(running: tuple[Settings, WorkerProcess, Path]) -> None:
    settings, worker, pack_dir = running
    serving = (worker.health() or {})["pack"]["version"]
    rules_file = pack_dir / "core.rules.yaml"
    good = rules_file.read_text()
    rules_file.write_text(good.replace("category: prohibited_field", "category: no_such_category", 1))
    wait_until(lambda: sample(worker.metrics_text(), "gatewatch_rule_pack_reload_failing") == 1.0)
    assert sample(worker.metrics_text(), 'gatewatch_rule_pack_reloads_total{result="failed"}') >= 1
    assert decided_by(settings, "rl-3", 3) == serving

    rules_file.write_text(good)  # fixed: the next check loads it and the alarm clears
    wait_until(lambda: sample(worker.metrics_text(), "gatewatch_rule_pack_reload_failing") == 0.0)


def test_sighup_reloads_the_pack(running: tuple[Settings, WorkerProcess, Path]) -> None:
    _, worker, _ = running
    before = sample(worker.metrics_text(), 'gatewatch_rule_pack_reloads_total{result="ok"}')
    worker.kill(signal.SIGHUP)
    wait_until(lambda: sample(worker.metrics_text(), 'gatewatch_rule_pack_reloads_total{result="ok"}') > before)
