"""Write-behind Faust tables: state changes apply in memory at once, reach the changelog once per commit.

A Faust table sends one changelog record per assignment. The windowed rules update several keys per
event and the ledger tail changes with every decision, so a plain table costs the worker several
produce requests per event, most of them overwritten a moment later. `WriteBehind` applies each write
to the table's store immediately (reads see it at once) and remembers the key as dirty; `flush` hands
one changelog record per dirty key (a tombstone if it was deleted) to a sink, the worker's Outbox.

Safety rests on one rule: every dirty key is flushed before offsets are committed. The commit hook
(streams/_compat/commit_hook.py) makes Faust's consumer call the app's write-behind flushes just before
it flushes its producer and commits, so a committed offset never runs ahead of the state its events
produced; after a crash, events since the last commit are processed again, and the window entries skip
those they have already applied (rules/windows.py). The worker sends the flushed records only after
the outputs of the events they cover are acknowledged (streams/worker/outputs.py). On revocation the worker
flushes every dirty key itself before the partitions go; `discard` then forgets what is left.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

import structlog

from rules import WindowState

__all__ = ["PartitionStates", "PartitionView", "WriteBehind"]

log = structlog.get_logger("gatewatch.worker")


class WriteBehind:
    """Buffered changelog writes for one Faust table (any partition); not thread-safe.

    `flush` serialises each record as the table's changelog topic would and hands it to
    `sink(topic, partition, key, value)` (the worker's Outbox), not to Faust's producer buffer, which
    sends records one at a time, each through `AIOKafkaProducer.send`. The records are the same bytes
    on the same topic partitions, so Faust's recovery reads them as its own. Only for stores that keep
    no persisted offsets (the memory store the worker uses): Faust's sent-callback, which records them,
    is not called.
    """

    def __init__(self, table: Any, sink: Callable[[str, int, bytes | None, bytes | None], None]) -> None:
        self.table = table
        self.sink = sink
        self._dirty: dict[Any, int] = {}  # key -> changelog partition

    def get(self, key: Any, default: Any = None) -> Any:
        return self.table.data.get(key, default)

    def set(self, key: Any, value: Any, partition: int) -> None:
        self.table.data[key] = value
        self._dirty[key] = partition

    def delete(self, key: Any, partition: int) -> None:
        self.table.data.pop(key, None)
        self._dirty[key] = partition

    def view(self, partition: int) -> PartitionView:
        """A mapping whose writes go to `partition`'s changelog (what WindowState needs)."""
        return PartitionView(self, partition)

    def flush(self) -> int:
        """Hand one changelog record per dirty key to the sink; returns how many."""
        if not self._dirty:
            return 0
        dirty, self._dirty = self._dirty, {}
        table, sink = self.table, self.sink
        topic = table.changelog_topic
        name = topic.get_topic_name()
        key_serializer, value_serializer = table.key_serializer, table.value_serializer
        data = table.data
        for key, partition in dirty.items():
            key_bytes, _ = topic.prepare_key(key, key_serializer)
            value_bytes = None  # a tombstone, as Table.__delitem__ sends
            if key in data:
                value_bytes, _ = topic.prepare_value(data[key], value_serializer)
            sink(name, partition, key_bytes, value_bytes)
        return len(dirty)

    def discard(self, partitions: Iterable[int]) -> int:
        """Forget dirty keys of revoked partitions (their committed state was flushed already)."""
        gone = set(partitions)
        keep = {k: p for k, p in self._dirty.items() if p not in gone}
        dropped = len(self._dirty) - len(keep)
        self._dirty = keep
        return dropped


class PartitionView(MutableMapping[Any, Any]):
    """The whole table to read; writes buffered for one partition's changelog."""

    __slots__ = ("buffer", "partition")

    def __init__(self, buffer: WriteBehind, partition: int) -> None:
        self.buffer = buffer
        self.partition = partition

    def __getitem__(self, key: Any) -> Any:
        return self.buffer.table.data[key]

    def get(self, key: Any, default: Any = None) -> Any:
        return self.buffer.table.data.get(key, default)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.buffer.set(key, value, self.partition)

    def __delitem__(self, key: Any) -> None:
        if key not in self.buffer.table.data:
            raise KeyError(key)
        self.buffer.delete(key, self.partition)

    def __contains__(self, key: object) -> bool:
        return key in self.buffer.table.data

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self.buffer.table.data.keys()))

    def __len__(self) -> int:
        return len(self.buffer.table.data)


class PartitionStates:
    """One WindowState per partition over a shared write-behind table, rebuilt after a restart or rebalance."""

    def __init__(self, table: WriteBehind, lateness: dt.timedelta) -> None:
        self._table = table
        self._lateness = lateness
        self._states: dict[int, WindowState] = {}

    def get(self, partition: int) -> WindowState:
        state = self._states.get(partition)
        if state is None:
            state = WindowState(self._table.view(partition), partition=partition, lateness=self._lateness)
            indexed = state.rebuild()  # entries recovered from the changelog for this partition
            log.info("window_state_ready", partition=partition, entries=indexed)
            self._states[partition] = state
        return state

    def drop(self, partitions: Iterable[int]) -> None:
        gone = list(partitions)
        for partition in gone:
            self._states.pop(partition, None)
        self._table.discard(gone)
