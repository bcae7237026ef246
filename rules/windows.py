"""Partition-local, expiring window state over a caller-provided mapping (a Faust table or a dict).

Pure: no Faust import. Values are JSON-compatible so a Faust table can serialise them. Each entry is
stored as `{"v": value, "x": expires_at, "p": partition}`; `advance` drops this partition's entries
once event time (the watermark) has moved `lateness` past their expiry, so memory plateaus.

Exactly-once updates: when the caller sets `at` (the source position of the event being applied:
source partition, offset, index), `put` records it in the entry as `"s": {source partition: [offset,
index]}`, and `seen(key)` tells whether the entry already holds the event at `at` or a later one of the
same source partition. After a crash the changelog may hold state of events that are processed again;
the windowed rules skip an entry that has seen them, so no event counts twice in a window.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
from collections.abc import MutableMapping
from typing import Any

__all__ = ["DEFAULT_LATENESS", "WindowState"]

#: How long after its expiry an entry is kept for late events (event time).
DEFAULT_LATENESS = dt.timedelta(days=7)


class WindowState:
    """State of one partition over a backing MutableMapping[str, Any] shared by all partitions of a worker.

    Only keys written through this partition's WindowState are ever deleted by it: a Faust table writes
    a delete to the changelog partition of the event being processed, so deleting another partition's
    key would corrupt that partition's recovery.
    """

    __slots__ = ("_derived", "_heap", "_indexed", "at", "backing", "lateness", "partition", "watermark")

    def __init__(
        self,
        backing: MutableMapping[str, Any],
        *,
        partition: int = 0,
        lateness: dt.timedelta = DEFAULT_LATENESS,
    ) -> None:
        self.backing = backing
        self.partition = partition
        self.lateness = lateness.total_seconds()
        self.watermark: float = -math.inf
        #: The source position (partition, offset, index) of the event being applied, or None (offline).
        self.at: tuple[int, int, int] | None = None
        # One heap item per indexed key (re-pushed lazily when its entry was extended), so the heap
        # stays as small as the set of live keys however often a key is updated.
        self._heap: list[tuple[float, str]] = []
        self._indexed: set[str] = set()
        # key -> (the entry `put` stored, data derived from its value): see get_with_derived.
        self._derived: dict[str, tuple[object, Any]] = {}

    def get(self, key: str) -> Any | None:
        """The stored value (unwrapped), or None."""
        entry = self.backing.get(key)
        if isinstance(entry, dict):
            return entry.get("v")
        return None

    def get_with_derived(self, key: str) -> tuple[Any | None, Any | None]:
        """The stored value (as `get`), and what `put(..., derived=...)` kept with it, or None.

        Derived data (a trailing window's values, sorted) is cheaper to update than to work out again
        from the value. It is kept in memory only, with the entry `put` stored, and given back only while
        that very entry is still the stored one: any other write of the key (another partition's state,
        recovery from the changelog) replaces the entry, and the caller then works it out again.
        """
        entry = self.backing.get(key)
        if not isinstance(entry, dict):
            return None, None
        derived = self._derived.get(key)
        return entry.get("v"), derived[1] if derived is not None and derived[0] is entry else None

    def seen(self, key: str) -> bool:
        """True if the entry under `key` has applied the event at `at`, or a later one of its source partition."""
        at = self.at
        if at is None:
            return False
        entry = self.backing.get(key)
        if not isinstance(entry, dict):
            return False
        applied = (entry.get("s") or {}).get(str(at[0]))
        return isinstance(applied, list) and (applied[0], applied[1]) >= (at[1], at[2])

    def put(self, key: str, value: Any, *, expires_at: float, derived: Any = None) -> None:
        """Store `value` (JSON-compatible) until event time passes `expires_at` (epoch seconds) + lateness.

        `derived`: data derived from `value`, kept in memory with this entry (see get_with_derived).
        With `at` set, the entry records it as the last event it applied from that source partition.
        """
        entry: dict[str, Any] = {"v": value, "x": float(expires_at), "p": self.partition}
        at = self.at
        if at is not None:
            old = self.backing.get(key)
            applied = old.get("s") if isinstance(old, dict) else None
            entry["s"] = {**(applied if isinstance(applied, dict) else {}), str(at[0]): [at[1], at[2]]}
        self.backing[key] = entry
        if derived is not None:
            self._derived[key] = (entry, derived)
        else:
            self._derived.pop(key, None)  # whatever was derived from the value it replaces
        if key not in self._indexed:
            self._indexed.add(key)
            heapq.heappush(self._heap, (float(expires_at), key))

    def advance(self, event_time: float) -> int:
        """Move the watermark to `event_time` if later; delete this partition's expired keys; count them."""
        if event_time > self.watermark:
            self.watermark = event_time
        cutoff = self.watermark - self.lateness
        heap = self._heap
        deleted = 0
        while heap and heap[0][0] < cutoff:
            _, key = heapq.heappop(heap)
            entry = self.backing.get(key)
            if not (isinstance(entry, dict) and entry.get("p") == self.partition):
                self._indexed.discard(key)  # gone, or now owned by another partition: not ours to delete
                self._derived.pop(key, None)
                continue
            expires = entry.get("x")
            if isinstance(expires, int | float) and expires >= cutoff:
                heapq.heappush(heap, (float(expires), key))  # extended since it was indexed
                continue
            del self.backing[key]
            self._indexed.discard(key)
            self._derived.pop(key, None)
            deleted += 1
        return deleted

    def rebuild(self) -> int:
        """Re-index this partition's entries after a restart or rebalance; returns how many were indexed."""
        self._heap = []
        self._indexed = set()
        self._derived = {}
        for key, entry in list(self.backing.items()):
            if isinstance(entry, dict) and entry.get("p") == self.partition and isinstance(key, str):
                expires = entry.get("x")
                self._heap.append((float(expires) if isinstance(expires, int | float) else -math.inf, key))
                self._indexed.add(key)
        heapq.heapify(self._heap)
        return len(self._heap)

    def __len__(self) -> int:
        """Number of keys this partition has indexed (live, or expired and not yet swept)."""
        return len(self._indexed)
