"""The worker's outputs, gathered into one Kafka record batch per topic partition and sent together.

Each decision, alert, dead letter and pupil look-up is still its own Kafka record (the contracts do
not change); what changes is how they reach the producer. `AIOKafkaProducer.send` costs tens of
microseconds per record (a future, a partitioner call, an accumulator append, a log call), several
per event. The outbox appends records to a `BatchBuilder` per topic partition (a few microseconds
each) and submits the builders with `send_batch` when one fills, when the oldest record has waited
`linger` seconds, and before every offset commit (streams/tables.py installs that hook), so a commit
never runs ahead of the outputs of the events it covers.

Order: records of one topic partition are appended and submitted in order, under a lock, so each
decisions partition keeps the order of its hash chain.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiokafka.partitioner import murmur2

__all__ = ["Outbox"]


class Outbox:
    """Batched output records over an aiokafka producer (given lazily: Faust starts it late)."""

    def __init__(
        self,
        producer: Callable[[], Any],
        *,
        linger: float = 0.005,
        on_delivered: Callable[[asyncio.Future[Any]], None] | None = None,
    ) -> None:
        self._producer = producer
        self.linger = linger
        self._on_delivered = on_delivered
        self._open: dict[tuple[str, int], Any] = {}  # (topic, partition) -> BatchBuilder being filled
        self._full: list[tuple[str, int, Any]] = []  # builders that filled up, in order
        self._first_at: float | None = None
        self._partitions: dict[str, int] = {}
        self._lock = asyncio.Lock()

    @property
    def pending(self) -> bool:
        return self._first_at is not None

    def due(self) -> bool:
        """True once the oldest unsent record has waited `linger`, or a builder is full."""
        return self._first_at is not None and (bool(self._full) or time.monotonic() - self._first_at >= self.linger)

    async def partition_for(self, topic: str, key: bytes) -> int:
        """Kafka's default partitioner (murmur2 of the key), as Java clients and aiokafka use it."""
        count = self._partitions.get(topic)
        if count is None:
            count = len(await self._producer().partitions_for(topic))
            self._partitions[topic] = count
        return int(murmur2(key) & 0x7FFFFFFF) % count

    async def learn_partitions(self, *topics: str) -> None:
        """Look up the partition counts of topics written by key now, so that `add` never waits for one."""
        for topic in topics:
            await self.partition_for(topic, b"")

    async def add(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        """Queue one record; `partition` None means by key (murmur2), as the producer would."""
        if partition is None:
            if key is None:
                raise ValueError("an output record needs a partition or a key")
            partition = await self.partition_for(topic, key)
        slot = (topic, partition)
        builder = self._open.get(slot)
        if builder is None:
            builder = self._open[slot] = self._producer().create_batch()
        if builder.append(key=key, value=value, timestamp=None) is None:
            # full: queue it and start the next one (a single record always fits an empty builder)
            self._full.append((topic, partition, builder))
            builder = self._open[slot] = self._producer().create_batch()
            if builder.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a record of {len(value)} bytes does not fit in an empty batch")
        if self._first_at is None:
            self._first_at = time.monotonic()

    async def send(self) -> int:
        """Submit every builder to the producer, in order; returns how many batches went out."""
        async with self._lock:
            batches = self._full + [(topic, partition, b) for (topic, partition), b in self._open.items()]
            self._full, self._open, self._first_at = [], {}, None
            producer = self._producer()
            for topic, partition, builder in batches:
                fut = await producer.send_batch(builder, topic, partition=partition)
                if self._on_delivered is not None:
                    fut.add_done_callback(self._on_delivered)
            return len(batches)
