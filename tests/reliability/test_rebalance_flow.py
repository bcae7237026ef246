"""Regression tests for streams/_compat/faust_rebalance.py: a take-over must not discard messages already delivered.

The scale-out test lost events this way (see the module docstring of streams/_compat/faust_rebalance.py): Faust
resumed the taken-over partitions, awaited the committed-offset seek while the fetcher delivered their
messages into the agent's queue, then resumed flow control, which cleared that queue. These tests drive
Faust's own Recovery code with a consumer stub that delivers during the seek, so they are deterministic.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from streams import _compat

STREAM = TP("t.access", 0)
OTHER = TP("t.access", 1)
CHANGELOG = TP("app-windows-changelog", 0)


class _Log:
    def info(self, *args: Any, **kwargs: Any) -> None: ...

    warning = dev = info


class _Consumer:
    """Like Faust's: a resumed stream partition is fetched while the seek's round trips are awaited."""

    def __init__(self, queue: FlowControlQueue, flow: FlowControlEvent, committed: dict[TP, int] | None = None) -> None:
        self.queue, self.flow = queue, flow
        self.flowing: set[TP] = set()
        self.delivered: list[int] = []
        self.seeked = False
        self._committed_offset = dict(committed if committed is not None else {STREAM: 7})
        self.seeks: list[tuple[TP, int]] = []  # explicit seeks, and whether the partition flowed yet

    def assignment(self) -> set[TP]:
        return {STREAM, OTHER, CHANGELOG}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 3)  # the log starts at 3 (retention deleted 0-2)

    async def seek(self, tp: TP, offset: int) -> None:
        assert tp not in self.flowing, "seeked after it was let flow"
        self.seeks.append((tp, offset))

    def resume_partitions(self, tps: set[TP]) -> None:
        self.flowing |= tps

    def deliver(self) -> None:
        if STREAM in self.flowing and self.flow.is_active():
            offset = len(self.delivered)
            self.delivered.append(offset)
            self.queue.put_nowait(offset)

    async def perform_seek(self) -> None:
        for _ in range(2):  # one committed-offset request per partition
            self.deliver()
            await asyncio.sleep(0)
        self.seeked = True

    def resume_flow(self) -> None: ...


def _recovery(consumer: _Consumer, flow: FlowControlEvent) -> Any:
    async def noop(*args: Any, **kwargs: Any) -> None: ...

    async def wait(coro: Any, timeout: float | None = None) -> None:
        await coro

    app = SimpleNamespace(
        consumer=consumer,
        flow_control=flow,
        consumer_generation_id=1,
        rebalancing_count=1,
        conf=SimpleNamespace(broker_request_timeout=15.0),
        on_rebalance_complete=SimpleNamespace(send=noop),
        _fetcher=SimpleNamespace(maybe_start=noop),
        assignor=SimpleNamespace(assigned_standbys=set),
        on_rebalance_end=lambda: None,
    )
    return SimpleNamespace(
        app=app,
        log=_Log(),
        tables=SimpleNamespace(values=list, on_actives_ready=lambda: None, on_standbys_ready=lambda: None),
        actives_for_table={},
        standbys_for_table={},
        completed=asyncio.Event(),
        _set_recovery_ended=lambda: None,
        _is_changelog_tp=lambda tp: tp == CHANGELOG,
        _wait=wait,
    )


def _take_over(method: str) -> tuple[list[int], list[int]]:
    """Run Recovery.<method> as at the end of a take-over; (delivered offsets, offsets still queued)."""
    from faust.tables.recovery import Recovery

    async def run() -> tuple[list[int], list[int]]:
        flow = FlowControlEvent()
        flow.resume()  # recovery resumed the flow to read the changelogs
        queue: FlowControlQueue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
        consumer = _Consumer(queue, flow)
        await getattr(Recovery, method)(_recovery(consumer, flow), 1)
        assert consumer.seeked
        consumer.deliver()  # the fetcher goes on after the take-over
        queued = []
        while not queue.empty():
            queued.append(queue.get_nowait())
        return consumer.delivered, queued

    return asyncio.run(run())


def test_unpatched_faust_loses_what_it_delivers_during_a_take_over(unpatched_libraries: None) -> None:
    # The bug the patch works around (faust-streaming #596): if Faust is fixed upstream, this fails and
    # the patch can go.
    delivered, queued = _take_over("on_recovery_completed")
    lost = [offset for offset in delivered if offset not in queued]
    assert [0, 1] == lost  # delivered during the seek, cleared by the flow-control resume


def test_a_take_over_keeps_every_message_it_delivers(unpatched_libraries: None) -> None:
    with _compat.installed():
        for method in ("on_recovery_completed", "_resume_streams"):
            delivered, queued = _take_over(method)
            assert delivered, method
            assert queued == delivered, f"{method}: delivered {delivered}, left for the agent {queued}"


def test_resuming_active_flow_keeps_the_queues_but_a_real_resume_still_clears_them(unpatched_libraries: None) -> None:
    async def run() -> tuple[int, int]:
        flow = FlowControlEvent()
        queue: FlowControlQueue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
        flow.resume()
        queue.put_nowait("current")
        flow.resume()  # already active: nothing stale to drop
        kept = queue.qsize()
        flow.suspend()  # a rebalance: what is queued now belongs to the old assignment
        flow.resume()
        return kept, queue.qsize()

    assert asyncio.run(run()) == (0, 0)  # unpatched mode clears on every resume
    with _compat.installed():
        assert asyncio.run(run()) == (1, 0)


def test_stream_partitions_the_group_never_committed_are_seeked_to_the_start_of_the_log_before_they_flow(
    unpatched_libraries: None,
) -> None:
    # aiokafka's seek_to_committed leaves a partition with no commit (or a commit of 0) where the fetcher
    # is; after a rebalance that can be past messages Faust dropped as stale.
    from faust.tables.recovery import Recovery

    async def run(method: str, committed: dict[TP, int]) -> list[tuple[TP, int]]:
        flow = FlowControlEvent()
        flow.resume()
        consumer = _Consumer(FlowControlQueue(flow_control=flow, clear_on_resume=True), flow, committed)
        await getattr(Recovery, method)(_recovery(consumer, flow), 1)
        return consumer.seeks

    with _compat.installed():
        for method in ("on_recovery_completed", "_resume_streams"):
            assert [(OTHER, 3)] == asyncio.run(run(method, {STREAM: 7})), method
            assert [(STREAM, 3), (OTHER, 3)] == asyncio.run(run(method, {STREAM: 0})), method
            assert [] == asyncio.run(run(method, {STREAM: 7, OTHER: 2})), method
