"""gatewatch_partition_lag_messages counts what this worker has not processed, never what its fetcher has
read ahead: a partition held but never processed shows its whole backlog (the stalled-partition alert
reads it)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.metrics import Metrics
from streams.worker.periodic import Periodic

ACCESS = "npd.access.v1"


class FakeConsumer:
    """What refresh_lag uses of Faust's consumer; the fetcher has read every partition to its end."""

    def __init__(self, ends: dict[TP, int], committed: dict[TP, int], earliest: dict[TP, int]) -> None:
        self._ends, self._earliest = ends, earliest
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None, committed)

    def assignment(self) -> set[TP]:
        return set(self._ends)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self._ends[tp] for tp in tps}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self._earliest[tp] for tp in tps}

    async def position(self, tp: TP) -> int:
        return self._ends[tp]  # read ahead: what a lag from the fetcher's position would show is 0


def _lag(consumer: FakeConsumer, processed: dict[int, int]) -> dict[str, float]:
    registry = CollectorRegistry()
    asyncio.run(_periodic(consumer, processed, registry).refresh_lag())
    return {
        sample.labels["partition"]: sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "gatewatch_partition_lag_messages"
    }


def _periodic(consumer: FakeConsumer, processed: dict[int, int], registry: CollectorRegistry) -> Any:
    none: Any = None
    return Periodic(
        SimpleNamespace(consumer=consumer),  # type: ignore[arg-type]
        none,
        Metrics(registry),
        none,
        none,
        SimpleNamespace(processed=processed),  # type: ignore[arg-type]
        none,
        none,
        access_topic=ACCESS,
        alerts_topic="npd.alerts.v1",
        window_tables={},
    )


def test_lag_counts_from_what_was_processed_else_the_commit_else_the_start_of_the_log() -> None:
    p0, p1, p2 = TP(ACCESS, 0), TP(ACCESS, 1), TP(ACCESS, 2)
    consumer = FakeConsumer(ends={p0: 150, p1: 150, p2: 150}, committed={p1: 100}, earliest={p2: 20})

    lag = _lag(consumer, processed={0: 140})

    assert {"0": 10.0, "1": 50.0, "2": 130.0} == lag
