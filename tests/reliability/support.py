"""Helpers of the failure-injection tests: tail output topics, account for every event id, read /metrics."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from kafka import KafkaConsumer, TopicPartition

from rules import load_engine
from streams.settings import Settings
from streams.transport.kafka import kafka_python_config

__all__ = [
    "SIM_START",
    "Accounts",
    "Tail",
    "event_id_of",
    "metric_samples",
    "read_all",
    "report",
    "sample_agreements",
    "table_from_changelog",
    "wait_committed",
]


#: Simulated event time starts here: 20,000 events span about 16 months of working days, and every one of
#: them must lie in the worker's past (the simulator's default start is late 2026; later events would be
#: dead-lettered as future_timestamp on a machine whose clock is earlier).
SIM_START = dt.datetime(2024, 6, 3, 8, 0, tzinfo=ZoneInfo("Europe/London"))


def sample_agreements() -> list[Any]:
    from streams.offline.simulate import load_agreements

    return load_agreements()


def report(request: pytest.FixtureRequest, **figures: object) -> None:
    """Record a test's measured figures: printed (`pytest -s`) and kept in the JUnit XML properties."""
    for name, value in figures.items():
        request.node.user_properties.append((name, value))
    print(f"\n[{request.node.name}] " + ", ".join(f"{k}={v}" for k, v in figures.items()))


class Tail:
    """A group-less consumer that reads topics from their beginning and keeps reading as they grow."""

    def __init__(self, settings: Settings, topics: Iterable[str]) -> None:
        self.consumer = KafkaConsumer(
            **kafka_python_config(settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(self.consumer.partitions_for_topic(topic) or {0})
        ]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)

    def poll(self, timeout_ms: int = 300) -> list[Any]:
        return [r for batch in self.consumer.poll(timeout_ms=timeout_ms, max_records=5000).values() for r in batch]

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> Tail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_all(settings: Settings, topic: str, timeout: float = 120.0) -> list[Any]:
    """Every record of a topic as it is now, in (partition, offset) order (true end offsets, Tansu too)."""
    from streams.transport.endoffsets import probe_end_offsets

    consumer = KafkaConsumer(
        **kafka_python_config(settings),
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        ends = probe_end_offsets(consumer, consumer.end_offsets(tps))
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500, max_records=5000).items():
                out.extend(r for r in batch if r.offset < ends[tp])
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def wait_committed(settings: Settings, topic: str, timeout: float = 120.0) -> bool:
    """Wait until the worker group's committed offsets reach the topic's end: every message processed."""
    from streams.transport.endoffsets import probe_end_offsets

    consumer = KafkaConsumer(**kafka_python_config(settings), group_id=settings.app_id, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        ends = probe_end_offsets(consumer, consumer.end_offsets(tps))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all((consumer.committed(tp) or 0) >= ends[tp] for tp in tps):
                return True
            time.sleep(0.5)
        return False
    finally:
        consumer.close()


def table_from_changelog(settings: Settings, changelog: str) -> dict[str, Any]:
    """A Faust table as its changelog rebuilds it: the last value of each key, tombstones deleting."""
    table: dict[str, Any] = {}
    for record in read_all(settings, changelog):
        key = json.loads(record.key)
        if record.value is None:
            table.pop(key, None)
        else:
            table[key] = json.loads(record.value)
    return table


def event_id_of(raw: bytes) -> str | None:
    """The event_id inside a dead letter's original bytes, if they are a JSON object that has one."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return doc.get("event_id") if isinstance(doc, dict) else None


@dataclass
class Accounts:
    """What the output topics say about each event: decisions, dead letters and alerts, as read so far."""

    settings: Settings
    decisions: Counter[str] = field(default_factory=Counter)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    dead_ids: Counter[str] = field(default_factory=Counter)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, list[bytes]] = field(default_factory=dict)
    keep_raw: bool = False
    evaluated_at: dict[str, float] = field(default_factory=dict)  # event id -> first decision's time (epoch)

    def feed(self, records: Iterable[Any]) -> None:
        t = self.settings.topics
        for record in records:
            if self.keep_raw:
                self.raw.setdefault(record.topic, []).append(record.value or b"")
            doc = json.loads(record.value)
            if record.topic == t.decisions:
                event_id = doc.get("event_id") or "<none>"
                self.decisions[event_id] += 1
                if event_id not in self.evaluated_at:
                    self.evaluated_at[event_id] = dt.datetime.fromisoformat(doc["evaluated_at"]).timestamp()
            elif record.topic == t.deadletter:
                self.dead_letters.append(doc)
                event_id = event_id_of(base64.b64decode(doc["value_b64"]))
                if event_id:
                    self.dead_ids[event_id] += 1
            elif record.topic == t.alerts:
                self.alerts.append(doc)

    def accounted(self) -> set[str]:
        return set(self.decisions) | set(self.dead_ids)

    def wait_for(self, tail: Tail, ids: set[str], timeout: float, *, dead: int = 0) -> float:
        """Read until every id has a decision or a dead letter (and `dead` dead letters exist); seconds taken."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            self.feed(tail.poll())
            if ids <= self.accounted() and len(self.dead_letters) >= dead:
                break
        # stragglers (alerts follow their decision, duplicates must be visible)
        for _ in range(3):
            self.feed(tail.poll(500))
        return time.monotonic() - started

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.decisions.values() if n > 1)


def metric_samples(text: str) -> dict[str, float]:
    """Prometheus text format as {'name{labels}': value} (labels as rendered, sorted by the client)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


_ENGINE = None


def engine() -> Any:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = load_engine()
    return _ENGINE
