"""Producers that are not ours: librdkafka (confluent-kafka) with every codec, and batches the worker cannot decode.

One worker judges every codec's events; a batch it cannot decode (its codec library missing, or its
payload corrupt) stops only that partition, sets the gauge the critical platform alert reads, and is
not committed past: a restart with the cause fixed judges everything that waited behind it.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas import AccessEvent
from streams.cli.runner import WorkerProcess
from streams.offline.simulate import Simulator
from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests import rawbatch
from tests.conftest import isolated_settings
from tests.rawbatch import SNAPPY, batch
from tests.reliability.support import SIM_START, Accounts, Tail, report, sample_agreements
from tests.services import tool

pytestmark = pytest.mark.integration

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
PER_CODEC = 100
STOPPED = 1  # the access partition that gets the batch the worker cannot decode
ROOT = Path(__file__).resolve().parents[2]

# Stands in for a deployment without Kafka's codec libraries: aiokafka then has no snappy, lz4 or zstd.
NO_CODECS_SHIM = 'raise ImportError("cramjam hidden by the test: the worker runs without its codec libraries")\n'


def librdkafka_publish(
    settings: Settings, events: list[AccessEvent], codec: str, partition: int | None = None
) -> dict[str, int]:
    """Publish as a non-Python producer would (idempotent, acks=all); event id -> partition it landed on."""
    from confluent_kafka import Producer

    assert settings.kafka_bootstrap
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": codec,
            "linger.ms": 10,
            "partitioner": "murmur2_random",  # as the README asks: Java's partitioner, one recipient one partition
        }
    )
    landed: dict[str, int] = {}
    failed: list[str] = []

    def delivered(event_id: str, err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(str(err))
        else:
            landed[event_id] = msg.partition()

    for event in events:
        extra = {} if partition is None else {"partition": partition}
        producer.produce(
            settings.topics.access,
            key=event.recipient.org_id.encode(),
            value=event.model_dump_json(exclude_none=True).encode(),
            on_delivery=functools.partial(delivered, event.event_id),
            **extra,
        )
    assert producer.flush(30) == 0
    assert failed == []
    return landed


def undecodable_batch() -> bytes:
    """A v2 record batch flagged snappy whose payload is not snappy; its CRC is right, so brokers keep it."""
    return batch(0, [b'{"event_id": "never"}'], codec=SNAPPY, key=b"corrupt")


def produce_raw(settings: Settings, partition: int, raw: bytes) -> int:
    """Write a record batch to one access partition as it is; its base offset."""
    assert settings.kafka_bootstrap
    return rawbatch.produce_raw(settings.kafka_bootstrap, settings.topics.access, partition, raw)


def stopped_series(metrics: str) -> dict[tuple[str, str, str], float]:
    """gatewatch_partition_undecodable samples as {(topic, partition, reason): value}."""
    out: dict[tuple[str, str, str], float] = {}
    for labels, value in re.findall(r"^gatewatch_partition_undecodable\{([^}]*)\} (\S+)$", metrics, re.M):
        named = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        out[(named["topic"], named["partition"], named["reason"])] = float(value)
    return out


def wait_for_stop(worker: WorkerProcess, timeout: float = 60) -> None:
    """Until the worker reports a stopped partition on /metrics (or `timeout`; the tests then say what is missing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.proc is not None and worker.proc.poll() is None:
        try:
            if stopped_series(worker.metrics_text()):
                return
        except OSError:
            pass
        time.sleep(0.2)


def log_lines(path: Path, event: str) -> list[dict[str, Any]]:
    """The worker's JSON log lines of one event."""
    lines = (json.loads(line) for line in path.read_text().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == event]


def committed(settings: Settings) -> dict[int, int | None]:
    """The worker group's committed offset of each access partition (read without joining the group)."""
    from kafka import KafkaConsumer, TopicPartition

    from streams.transport.kafka import kafka_python_config

    consumer = KafkaConsumer(**kafka_python_config(settings), group_id=settings.app_id, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(settings.topics.access, p)) for p in range(settings.partitions)}
    finally:
        consumer.close()


@dataclass
class Run:
    settings: Settings
    data: Path
    decided_per_codec: dict[str, int] = field(default_factory=dict)
    missing_codec: dict[str, Any] = field(default_factory=dict)
    corrupt: dict[str, Any] = field(default_factory=dict)


def wait_decided(settings: Settings, ids: set[str], timeout: float = 120) -> Accounts:
    accounts = Accounts(settings)
    t = settings.topics
    with Tail(settings, [t.decisions, t.deadletter]) as tail:
        accounts.wait_for(tail, ids, timeout=timeout)
    return accounts


def _without_codecs(run: Run, events: list[AccessEvent]) -> None:
    """Worker 1 has no codec libraries: a snappy batch stops partition STOPPED, the rest is judged."""
    shim = run.data / "no-codecs"
    shim.mkdir()
    (shim / "cramjam.py").write_text(NO_CODECS_SHIM)
    log = run.data / "worker-1.log"
    worker = WorkerProcess(run.settings, log_file=log, extra_env={"PYTHONPATH": f"{shim}:{ROOT}"}).start()
    try:
        worker.wait_ready(len(sample_agreements()), timeout=120)
        snappy, gzip_events = events[:20], events[20:]
        librdkafka_publish(run.settings, snappy, "snappy", partition=STOPPED)
        landed = librdkafka_publish(run.settings, gzip_events, "gzip")
        others = {e for e, p in landed.items() if p != STOPPED}
        wait_for_stop(worker)  # the worker has reached the batch: anything behind it was decided only if skipped
        accounts = wait_decided(run.settings, others)
        run.missing_codec = {
            "others": others,
            "behind": {e.event_id for e in snappy} | {e for e, p in landed.items() if p == STOPPED},
            "decided": set(accounts.decisions),
            "alive": worker.proc is not None and worker.proc.poll() is None,
            "metrics": worker.metrics_text(),
            "log": log_lines(log, "partition_stopped_undecodable_batch"),
            "warned": [line["codecs"] for line in log_lines(log, "codecs_unavailable")],
        }
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def foreign_run(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    data = tmp_path_factory.mktemp("producers")
    settings = isolated_settings(broker, data)
    ensure_topics(settings)
    run = Run(settings, data)
    agreements = sample_agreements()
    events = [s.event for s in Simulator(agreements, seed=20, start=SIM_START).events(120 + PER_CODEC * 6)]
    with Publisher(settings) as pub:
        pub.publish_agreements(agreements)
    _without_codecs(run, events[:120])
    events = events[120:]

    log = data / "worker-2.log"
    worker = WorkerProcess(settings, log_file=log).start()
    try:
        worker.wait_ready(len(agreements), timeout=120)
        # The cause fixed (codec libraries back), the restarted worker judges what waited behind the batch.
        resumed = wait_decided(settings, run.missing_codec["behind"] | run.missing_codec["others"])
        run.missing_codec["decided_after_restart"] = set(resumed.decisions)
        for i, codec in enumerate(CODECS):
            batch = events[i * PER_CODEC : (i + 1) * PER_CODEC]
            librdkafka_publish(settings, batch, codec)
            accounts = wait_decided(settings, {e.event_id for e in batch})
            run.decided_per_codec[codec] = len({e.event_id for e in batch} & set(accounts.decisions))
        last = events[len(CODECS) * PER_CODEC :]
        bad_offset = produce_raw(settings, STOPPED, undecodable_batch())
        landed = librdkafka_publish(settings, last, "none")
        others = {e for e, p in landed.items() if p != STOPPED}
        wait_for_stop(worker)
        accounts = wait_decided(settings, others)
        run.corrupt = {
            "offset": bad_offset,
            "others": others,
            "behind": {e for e, p in landed.items() if p == STOPPED},
            "decided": set(accounts.decisions),
            "alive": worker.proc is not None and worker.proc.poll() is None,
            "metrics": worker.metrics_text(),
            "log": log_lines(log, "partition_stopped_undecodable_batch"),
            "committed": committed(settings),
        }
    finally:
        worker.stop()
    return run


def test_every_codec_of_a_librdkafka_producer_gets_its_decisions(
    foreign_run: Run, request: pytest.FixtureRequest
) -> None:
    report(request, decided_per_codec=foreign_run.decided_per_codec)
    assert dict.fromkeys(CODECS, PER_CODEC) == foreign_run.decided_per_codec


def test_a_missing_codec_library_stops_only_its_partition(foreign_run: Run) -> None:
    seen = foreign_run.missing_codec
    assert seen["alive"], "the worker exited"
    assert seen["others"]
    assert seen["behind"]
    assert seen["others"] <= seen["decided"]
    assert set() == seen["behind"] & seen["decided"]
    assert {("access", str(STOPPED), "unsupported_codec"): 1.0} == stopped_series(seen["metrics"])
    assert 1 == len(seen["log"])
    assert ("unsupported_codec", 0) == (seen["log"][0]["reason"], seen["log"][0]["offset"])
    assert [["snappy", "lz4", "zstd"]] == seen["warned"]  # said at start-up, before any batch came


def test_a_restart_with_the_codec_installed_judges_what_waited_behind_the_batch(foreign_run: Run) -> None:
    seen = foreign_run.missing_codec
    assert seen["behind"] | seen["others"] <= seen["decided_after_restart"]


def test_a_corrupt_batch_stops_only_its_partition_and_sets_the_gauge(foreign_run: Run) -> None:
    seen = foreign_run.corrupt
    assert seen["alive"], "the worker exited"
    assert seen["others"]
    assert seen["behind"]
    assert seen["others"] <= seen["decided"]
    assert set() == seen["behind"] & seen["decided"]
    assert {("access", str(STOPPED), "corrupt_batch"): 1.0} == stopped_series(seen["metrics"])
    assert 1 == len(seen["log"])
    assert ("corrupt_batch", seen["offset"]) == (seen["log"][0]["reason"], seen["log"][0]["offset"])


def test_nothing_is_committed_past_the_corrupt_batch(foreign_run: Run) -> None:
    seen = foreign_run.corrupt
    assert (seen["committed"][STOPPED] or 0) <= seen["offset"]


def test_the_platform_alert_fires_on_the_workers_own_series(foreign_run: Run, tmp_path: Path) -> None:
    """promtool evaluates the shipped alert rule over the series the live worker exported."""
    promtool = tool("promtool")
    rules_file = ROOT / "deploy/prometheus/rules/alerts.yml"
    rule = next(
        r for g in yaml.safe_load(rules_file.read_text())["groups"] for r in g["rules"]
        if r.get("alert") == "GatewatchPartitionUndecodable"
    )  # fmt: skip
    (topic, partition, reason), _ = next(iter(stopped_series(foreign_run.corrupt["metrics"]).items()))
    labels = {"job": "gatewatch", "instance": "w1:6066", "topic": topic, "partition": partition, "reason": reason}
    rendered = {  # the annotations only use {{ $labels.NAME }}
        k: re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels[m[1]], v) for k, v in rule["annotations"].items()
    }
    series = "gatewatch_partition_undecodable{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    test = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": series, "values": "1x5"}],
                "alert_rule_test": [
                    {
                        "eval_time": "1m",
                        "alertname": "GatewatchPartitionUndecodable",
                        "exp_alerts": [{"exp_labels": {**labels, **rule["labels"]}, "exp_annotations": rendered}],
                    }
                ],
            }
        ],
    }
    test_file = tmp_path / "live_test.yml"
    test_file.write_text(yaml.safe_dump(test))
    result = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True, check=False)
    assert 0 == result.returncode, result.stdout + result.stderr
