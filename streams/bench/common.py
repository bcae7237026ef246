"""What the benchmarks share: the broker and scratch directory of one run, events on the wire, timing."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas import AccessEvent, Agreement
from streams.cli.runner import WorkerProcess
from streams.offline.replay import TopicSource
from streams.offline.simulate import DEFAULT_START, Simulator
from streams.settings import Settings, TopicNames
from streams.transport.broker import EmbeddedBroker, free_port
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def sim_event_stream(n: int, agreements: Sequence[Agreement], seed: int = 7) -> Iterator[AccessEvent]:
    """n simulator events dated in the past (the worker dead-letters events from the future), one at a time."""
    start = DEFAULT_START
    span = dt.timedelta(days=n / 40 + 30)  # about 60 events per working day, with room to spare
    now = dt.datetime.now(dt.UTC)
    while start + span > now:
        start -= dt.timedelta(weeks=52)
    return (s.event for s in Simulator(agreements, seed=seed, start=start).events(n))


def sim_events(n: int, agreements: Sequence[Agreement], seed: int = 7) -> list[AccessEvent]:
    """`sim_event_stream` as a list."""
    return list(sim_event_stream(n, agreements, seed))


def to_wire(events: Sequence[AccessEvent]) -> list[tuple[bytes, bytes]]:
    return [(e.recipient.org_id.encode(), e.model_dump_json(exclude_none=True).encode()) for e in events]


@dataclass
class Bench:
    """The broker, a scratch directory and helpers shared by the benchmarks of one run."""

    broker: EmbeddedBroker
    workdir: Path
    agreements: list[Agreement]
    _names: Iterator[int] = field(default_factory=itertools.count)

    def settings(self, name: str, *, access: str | None = None, partitions: int = 4) -> Settings:
        prefix = f"bench{next(self._names)}-{name}"
        topics = TopicNames(
            access=access or f"{prefix}.access",
            agreements=f"{prefix}.agreements",
            decisions=f"{prefix}.decisions",
            alerts=f"{prefix}.alerts",
            deadletter=f"{prefix}.deadletter",
            agreement_decisions=f"{prefix}.agreement-decisions",
        )
        return Settings(
            kafka_bootstrap=self.broker.bootstrap,
            local_mode=True,
            app_id=prefix,
            topics=topics,
            web_port=free_port(),
            data_dir=self.workdir / prefix,
            partitions=partitions,
            log_level="warning",
            rule_reload_interval_seconds=0,
        )

    def prepare(self, settings: Settings) -> None:
        ensure_topics(settings)
        with Publisher(settings) as pub:
            pub.publish_agreements(self.agreements)

    def publish(self, settings: Settings, wire: Sequence[tuple[bytes, bytes]]) -> float:
        """Publish pre-serialised events in producer batches (fast); returns events/s of the publish."""
        t0 = time.perf_counter()
        with Publisher(settings, batch_size=512 * 1024, linger_ms=10, max_in_flight_requests_per_connection=5) as pub:
            for key, value in wire:
                pub.publish_raw(value, key=key)
        return len(wire) / (time.perf_counter() - t0)

    def worker(self, settings: Settings) -> WorkerProcess:
        worker = WorkerProcess(settings, log_file=self.workdir / f"{settings.app_id}.log").start()
        worker.wait_ready(agreements=len(self.agreements), timeout=90)
        return worker

    def decide(self, settings: Settings, expected: int, timeout: float) -> tuple[int, float]:
        """Run a worker over the events already published: (decisions read, first-to-last seconds)."""
        worker = self.worker(settings)
        try:
            return decision_span(settings, expected, timeout)
        finally:
            worker.stop()


def evaluated_at(raw: bytes) -> float:
    return dt.datetime.fromisoformat(json.loads(raw)["evaluated_at"]).timestamp()


def decision_span(settings: Settings, expected: int, timeout: float) -> tuple[int, float]:
    """(decisions read, seconds from the first to the last decision's evaluated_at)."""
    with TopicSource(
        settings, settings.topics.decisions, expected=expected, timeout=timeout, decode=evaluated_at
    ) as source:
        times: list[float] = [t for _, t, _ in source.read_all()]
    if len(times) < 2:
        return len(times), 0.0
    return len(times), max(times) - min(times)


def per_second(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }
