"""A hook into Faust's offset commit, so write-behind table state is flushed before its offsets commit.

streams/worker/tables.py keeps table writes in memory and sends one changelog record per dirty key per commit.
Its safety rests on the flush happening before the offsets it covers are committed; faust-streaming has
no hook at that point, so `add_commit_hooks` registers an app's hooks and the patches call them.

`snapshot` runs synchronously immediately before Faust reads the acknowledged offsets, with no await
in between, so the write-behind state it flushes is the state of exactly the events those offsets
cover (the agents keep their awaits out of the span between changing state and acknowledging an
event, streams/worker/agents.py). Flushed later, after Faust's own awaits, it could hold the state of events
past the committed offsets, and a crash would then count those events twice when they are processed
again. `before_commit` runs before Faust flushes its producer and commits; if it raises, the commit
does not happen (the events are processed again after a restart: nothing is lost). Apps without
hooks are unaffected.

Upstream: none filed; faust-streaming/faust PR #273 ("flushing producer before commit") added the
producer flush at the same point for Faust's own buffer, with no hook for an application's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from streams._compat._patch import Patch, require_installed

__all__ = ["PATCHES", "add_commit_hooks"]

_UPSTREAM = "none filed: faust-streaming has no before-commit hook (PR #273 flushes only its own producer)"


def add_commit_hooks(
    app: Any, before_commit: Callable[[], Awaitable[None]], *, snapshot: Callable[[], None] | None = None
) -> None:
    """Run `snapshot()` as Faust works out which offsets to commit, and await `before_commit()` before it commits."""
    require_installed(PATCHES)
    hooks: list[Callable[[], Awaitable[None]]] = app.__dict__.setdefault("_gatewatch_before_commit", [])
    hooks.append(before_commit)
    snapshots: list[Callable[[], None]] = app.__dict__.setdefault("_gatewatch_snapshot", [])
    if snapshot is not None:
        snapshots.append(snapshot)


def _snapshot_as_offsets_are_read(original_tps: Any) -> Any:
    async def _commit_tps(self: Any, tps: Any, start_new_transaction: bool) -> bool:
        for snap in getattr(self.app, "_gatewatch_snapshot", ()):
            snap()
        # The original works out the committable offsets before its first await.
        return await original_tps(self, tps, start_new_transaction=start_new_transaction)  # type: ignore[no-any-return]

    return _commit_tps


def _hooks_before_the_commit(original: Any) -> Any:
    async def _commit_offsets(self: Any, offsets: Any, start_new_transaction: bool = True) -> bool:
        for hook in getattr(self.app, "_gatewatch_before_commit", ()):
            await hook()
        return await original(self, offsets, start_new_transaction=start_new_transaction)  # type: ignore[no-any-return]

    return _commit_offsets


PATCHES = (
    Patch(
        owner="faust.transport.consumer:Consumer",
        attribute="_commit_offsets",
        build=_hooks_before_the_commit,
        upstream=_UPSTREAM,
        original_sha256="1a6979904118844111259d182ca1c6e92ccc16364ccbe55c58e59d6e254a7adb",
    ),
    Patch(
        owner="faust.transport.consumer:Consumer",
        attribute="_commit_tps",
        build=_snapshot_as_offsets_are_read,
        upstream=_UPSTREAM,
        original_sha256="a20e230b05ae8b151ac9f78fa77a102003a948c66c24c9d3588e39cb12859b7e",
    ),
)
