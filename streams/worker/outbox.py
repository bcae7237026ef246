"""The worker's outputs, gathered into one Kafka record batch per topic partition and sent together.

Each decision, alert, dead letter and pupil look-up is still its own Kafka record (the contracts do
not change); what changes is how they reach the producer. `AIOKafkaProducer.send` costs tens of
microseconds per record (a future, a partitioner call, an accumulator append, a log call), several
per event. The outbox appends records to a `BatchBuilder` per topic partition (a few microseconds
each) and submits the builders with `send_batch` when one fills, when the oldest record has waited
`linger` seconds, and before every offset commit (streams/worker/tables.py installs that hook), so a commit
never runs ahead of the outputs of the events it covers.

Order: records of one topic partition are appended and submitted in order, under a lock, so each
decisions partition keeps the order of its hash chain.

Grouped items: for an internal topic whose reader takes many items per record (the pupil look-ups),
`collect` queues items per topic partition and `send` wraps them into as few records as fit
`group_max_bytes`, once the oldest has waited `group_linger` (longer than `linger`: every record the
reader gets costs it a Faust message, about as much as the work on the item itself), and always
before an offset commit (`send(everything=True)`).

Records last (`last_topics`, the decisions): a decision on the topic is what marks its event done after
a crash (streams/worker/exactly_once.py), so it must never be there without the event's other outputs. The
records of a `last` topic are submitted only once every other record queued with or before them has
been acknowledged, and only when no grouped item is still waiting to be wrapped; until then they stay
in their builders (in order).
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
        group_linger: float = 0.05,
        group_max_bytes: int = 256 * 1024,
        last_topics: frozenset[str] = frozenset(),
    ) -> None:
        self._producer = producer
        self.linger = linger
        self.group_linger = group_linger
        self.group_max_bytes = group_max_bytes
        self._wraps: dict[str, Callable[[list[bytes]], bytes]] = {}
        self._groups: dict[tuple[str, int], list[bytes]] = {}  # (topic, partition) -> items, in order
        self._grouped_at: float | None = None
        self._on_delivered = on_delivered
        self._open: dict[tuple[str, int], Any] = {}  # (topic, partition) -> BatchBuilder being filled
        self._full: list[tuple[str, int, Any]] = []  # builders that filled up, in order
        self._held: list[tuple[str, int, Any]] = []  # last-topic builders waiting for the others, in order
        self._release: asyncio.Future[bool] | None = None  # submits the last-topic builders of the latest send
        # Deliveries of other topics' records that no release has waited for yet: a last-topic record held
        # back (its look-ups unwrapped) goes with a later send, and must still wait for these.
        self._unreleased: list[asyncio.Future[Any]] = []
        self._first_at: float | None = None
        self._partitions: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self.last_topics = last_topics

    @property
    def pending(self) -> bool:
        return self._first_at is not None or self._grouped_at is not None or bool(self._held)

    def due(self) -> bool:
        """True once the oldest record has waited `linger` (grouped items: `group_linger`) or a builder is full."""
        now = time.monotonic()
        if self._first_at is not None and (bool(self._full) or now - self._first_at >= self.linger):
            return True
        return self._grouped_at is not None and now - self._grouped_at >= self.group_linger

    def grouped(self, topic: str, wrap: Callable[[list[bytes]], bytes]) -> None:
        """Declare `topic` as written by `collect`: `wrap(items)` makes one record's value of a run of items."""
        self._wraps[topic] = wrap

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
        self._append(topic, partition, key, value)

    def put(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        """Queue one record for an explicit partition, synchronously (a None value is a tombstone)."""
        self._append(topic, partition, key, value)

    def _append(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        slot = (topic, partition)
        builder = self._open.get(slot)
        if builder is None:
            builder = self._open[slot] = self._producer().create_batch()
        if builder.append(key=key, value=value, timestamp=None) is None:
            # full: queue it and start the next one (a single record always fits an empty builder)
            self._full.append((topic, partition, builder))
            builder = self._open[slot] = self._producer().create_batch()
            if builder.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a record of {len(value or b'')} bytes does not fit in an empty batch")
        if self._first_at is None:
            self._first_at = time.monotonic()

    def collect(self, topic: str, partition: int, item: bytes) -> None:
        """Queue one item of a `grouped` topic for `partition`; it goes out inside a record with its neighbours."""
        if topic not in self._wraps:
            raise ValueError(f"{topic} is not a grouped topic")
        self._groups.setdefault((topic, partition), []).append(item)
        if self._grouped_at is None:
            self._grouped_at = time.monotonic()

    def _wrap_groups(self) -> None:
        """Turn the collected items into records (in order, each under `group_max_bytes` unless one item is not)."""
        groups, self._groups, self._grouped_at = self._groups, {}, None
        for (topic, partition), items in groups.items():
            wrap = self._wraps[topic]
            run: list[bytes] = []
            size = 0
            for item in items:
                if run and size + len(item) + 1 > self.group_max_bytes:
                    self._append(topic, partition, None, wrap(run))
                    run, size = [], 0
                run.append(item)
                size += len(item) + 1
            if run:
                self._append(topic, partition, None, wrap(run))

    async def send(self, everything: bool = False) -> int:
        """Submit every builder to the producer, in order; returns how many batches went out.

        Grouped items are wrapped first if they are due, or if `everything` (before an offset commit).
        Records of `last_topics` go out after the others are acknowledged (in the background; `everything`
        waits for them too), and wait for a later call while grouped items are still unwrapped. After a
        failed send none goes out (the failure also stops every later commit).
        """
        async with self._lock:
            if self._grouped_at is not None and (
                everything or time.monotonic() - self._grouped_at >= self.group_linger
            ):
                self._wrap_groups()
            # Items not wrapped yet may be those of the last records queued so far (an event's decision is
            # queued after its other outputs): then the last records wait for them.
            unwrapped = self._grouped_at is not None
            batches = self._held + self._full + [(topic, partition, b) for (topic, partition), b in self._open.items()]
            self._held, self._full, self._open, self._first_at = [], [], {}, None
            first = [b for b in batches if b[0] not in self.last_topics]
            last = [b for b in batches if b[0] in self.last_topics]
            producer = self._producer()
            futures = [await self._submit(producer, batch) for batch in first]
            if self.last_topics:
                # Acknowledged ones are done with; a failed one is kept until a release has seen it.
                self._unreleased = [f for f in self._unreleased if not _delivered_ok(f)] + futures
            if last and unwrapped:  # due again when the items are
                self._held = last + self._held
            elif last:
                # Released once every record queued before them is acknowledged, after the previous release:
                # the caller (the agent) goes on meanwhile instead of waiting a round trip.
                futures, self._unreleased = self._unreleased, []
                self._release = asyncio.ensure_future(self._release_after(self._release, futures, last))
        if everything:
            await self.drain()
        return len(batches)

    async def drain(self) -> None:
        """Wait until every last-topic record released so far is submitted (or held after a failure)."""
        while self._release is not None and not self._release.done():
            await asyncio.shield(self._release)

    async def _release_after(
        self, previous: asyncio.Future[bool] | None, futures: list[asyncio.Future[Any]], last: list[Any]
    ) -> bool:
        try:
            ok = await previous if previous is not None else True
        except Exception:  # it failed to submit: the same as a failed send (its exception is the commit's)
            ok = False
        if futures:
            await asyncio.wait(futures)
            # A failed send is recorded by on_delivered and stops the next commit; nothing of a last topic
            # goes out after it, so no decision can be on the topic without its event's other outputs.
            ok = ok and not any(not f.cancelled() and f.exception() is not None for f in futures)
        if not ok:
            self._held.extend(last)  # in release order
            return False
        producer = self._producer()
        for batch in last:
            await self._submit(producer, batch)
        return True

    async def _submit(self, producer: Any, batch: tuple[str, int, Any]) -> asyncio.Future[Any]:
        topic, partition, builder = batch
        fut: asyncio.Future[Any] = await producer.send_batch(builder, topic, partition=partition)
        if self._on_delivered is not None:
            fut.add_done_callback(self._on_delivered)
        return fut


def _delivered_ok(future: asyncio.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None
