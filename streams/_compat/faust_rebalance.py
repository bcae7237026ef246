"""A fix for faust-streaming (0.15.3, with mode-streaming 0.7.1) dropping stream messages at a take-over.

How they were lost (seen in tests/reliability/test_scale_out.py, 2 to 18 events per failing run):
at the end of a rebalance Faust's ``Recovery.on_recovery_completed`` resumes the stream partitions,
*then* awaits ``Consumer.perform_seek()`` (a committed-offset round trip per assigned partition), then
calls ``app.flow_control.resume()``. The consumer's flow is already running at that point (recovery
resumed it to read the changelogs), so while the seek is awaited the fetcher delivers messages of the
newly resumed partitions into the agents' channel queues and advances its read offsets past them.
``FlowControlEvent.resume()`` then *clears* every queue created with ``clear_on_resume=True``, which
means every channel queue and the changelog queue. Whatever the agent had not taken yet is gone. It is
never processed: the seek moves aiokafka back to the committed offset and resets Faust's read offsets,
but the fetch loop goes on through the batch it fetched before the seek and moves the read offsets past
them again, so the refetched copies are dropped as "DROPPED MESSAGE ROFF" (a Faust dev-level log).
The partition's commit then either sticks below the hole or, when the hole shows up as a "gap" in the
read offsets, is committed over. No error is logged anywhere.

This is the race of faust-streaming/faust issue #596 (open); #216 (fixed by PR #217) was the same
order problem in ``_resume_streams``. Upstream PR #253 resumes the consumer's flow
after the flow control for the same reason, but here the flow is already on (changelog recovery), so
the stream partitions themselves have to stay paused until the queues have been cleared.

The fix, in three parts, the first two each closing the hole on its own:

1. ``on_recovery_completed`` (and ``_resume_streams``, the no-tables path) seek first and resume the
   flow control, and only then resume the stream partitions. Nothing of those partitions can be in a
   queue when it is cleared, and the first message delivered is the one at the committed offset.
2. ``FlowControlEvent.resume()`` clears the queues only when flow actually goes from suspended to
   active. Queues are cleared on resume to drop what was delivered before a rebalance; a resume while
   flow is already active has nothing of that kind to drop, only current messages. This also protects
   the changelog queue, which carries GlobalTable (agreements register) updates while the other resumes
   in ``Recovery`` run.
3. A stream partition the group has never committed is seeked to the start of its log after the
   committed-offset seek, which leaves it alone (``_seek_uncommitted_to_start``).
"""

# ruff: noqa: SLF001 - the fix has to reach into Faust's recovery service
from __future__ import annotations

import asyncio
from typing import Any

from streams._compat._patch import Patch

__all__ = ["PATCHES"]


def _resume_clears_only_when_suspended(original: Any) -> Any:
    def resume(self: Any) -> None:
        was_suspended = not self.is_active()
        self._suspend.clear()
        self._resume.set()
        if was_suspended:
            self.clear()

    return resume


async def _seek_uncommitted_to_start(recovery: Any, assignment: set[Any]) -> None:
    """Seek the stream partitions the group has never committed to the start of their log.

    aiokafka's ``seek_to_committed`` seeks only to a committed offset above 0, so such a partition stays
    wherever the fetcher left it, which after a rebalance can be past messages fetched in the previous
    generation and dropped by Faust as stale: never processed, never committed, with no error (seen in
    the scale-out bench on a fresh consumer group: a worker held 8 partitions, processed none of their
    1,304 events, and reported lag 0; the drop is inferred from that state, not traced). With the
    consumer's own offset reset (earliest) they start again from the beginning, whatever dropped them;
    the outputs already written are not written twice (streams/worker/exactly_once.py).
    """
    consumer = recovery.app.consumer
    committed = getattr(consumer, "_committed_offset", {})
    never = sorted(tp for tp in assignment if not recovery._is_changelog_tp(tp) and not committed.get(tp))
    if not never:
        return
    starts = await consumer.earliest_offsets(*never)
    for tp in never:
        await consumer.seek(tp, starts.get(tp, 0))
    recovery.log.info("Seek never-committed stream partitions to the start of the log: %r", never)


async def _seek_then_resume(recovery: Any, generation_id: int, rebalances: int) -> bool:
    """Seek the stream partitions to their committed offsets (the start of the log for those never
    committed), then let them flow. False if superseded."""
    app = recovery.app
    consumer = app.consumer
    assignment = consumer.assignment()
    if assignment:
        recovery.log.info("Seek stream partitions to committed offsets.")
        await recovery._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        await recovery._wait(_seek_uncommitted_to_start(recovery, assignment), timeout=app.conf.broker_request_timeout)
    if app.consumer_generation_id != generation_id or app.rebalancing_count != rebalances:
        # A new rebalance began while we waited: it paused everything and its recovery resumes it.
        recovery.log.warning("Rebalance started during the seek; not resuming stream partitions")
        return False
    recovery.completed.set()
    app.flow_control.resume()  # before the stream partitions flow: nothing of theirs is queued yet
    recovery.log.dev("Resume stream partitions")
    consumer.resume_partitions({tp for tp in assignment if not recovery._is_changelog_tp(tp)})
    consumer.resume_flow()
    await app._fetcher.maybe_start()
    return True


def _resume_stream_partitions_after_the_seek(original: Any) -> Any:
    # Faust 0.15.3's on_recovery_completed with the resume moved after the seek (see module docstring).
    async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
        rebalances = self.app.rebalancing_count
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        if self.app.consumer_generation_id != generation_id:
            self.log.warning(
                f"Recovery rebalancing again app id {self.app.consumer_generation_id} param {generation_id}"
            )
            return
        if not await _seek_then_resume(self, generation_id, rebalances):
            return
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    return on_recovery_completed


def _resume_streams_after_the_seek(original: Any) -> Any:
    # The same for apps without tables.
    async def _resume_streams(self: Any, generation_id: int = 0) -> None:
        rebalances = self.app.rebalancing_count
        await self.app.on_rebalance_complete.send()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        if not await _seek_then_resume(self, generation_id, rebalances):
            return
        self.tables.on_actives_ready()
        self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    return _resume_streams


_ISSUE = "faust-streaming/faust#596 (messages lost when a worker takes over partitions); see also #216, PR #253"
PATCHES = (
    Patch(
        owner="mode.utils.queues:FlowControlEvent",
        attribute="resume",
        build=_resume_clears_only_when_suspended,
        upstream=_ISSUE,
        original_sha256="4dcdc1253fd0dcb40de18a3702503c01d21e9da7e5e55b122fb92615f27648d9",
    ),
    Patch(
        owner="faust.tables.recovery:Recovery",
        attribute="on_recovery_completed",
        build=_resume_stream_partitions_after_the_seek,
        upstream=_ISSUE,
        original_sha256="6ef567acf072e46da3fccbccc6d662371f634f622c3d510972d5df81f70ae3ac",
    ),
    Patch(
        owner="faust.tables.recovery:Recovery",
        attribute="_resume_streams",
        build=_resume_streams_after_the_seek,
        upstream=_ISSUE,
        original_sha256="d986a6710c1aca98f08c4c723fb3eadc5bf24576ad4eb9da3dd3eecedda2f24e",
    ),
)
