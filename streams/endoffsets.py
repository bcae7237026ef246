"""True end offsets, on Kafka and on brokers that report the last batch's base offset + 1 (Tansu).

A Kafka broker answers "end offset" (ListOffsets latest, the high watermark) with the offset after the
last record. The embedded Tansu broker answers with the last *batch's* base offset + 1, so a batch of
five records at offsets 0-4 reports 1 (tests/streams/test_broker.py pins this). Anything that reads
"up to the end" then stops short by the rest of the last batch: Faust's changelog recovery, which would
silently drop table updates across a restart, and `gatewatch audit verify`.

The probe here is correct on both: fetch from (reported end - 1), which on Kafka is the last record and
on Tansu the base of the last batch; the last offset that comes back, + 1, is the true end. It costs one
fetch per partition, so it is used where exactness matters, not per message.
"""

# ruff: noqa: SLF001 - the Faust patch has to reach into its recovery service
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["patch_faust_recovery", "probe_end_offsets", "probe_end_offsets_async"]

#: Given reported end offsets by topic partition, the true ones.
EndProbe = Callable[[Mapping[Any, int]], Awaitable[dict[Any, int]]]


def probe_end_offsets(consumer: Any, ends: Mapping[Any, int], timeout: float = 10.0) -> dict[Any, int]:
    """True end offsets with an assigned kafka-python consumer; moves its positions (seek afterwards).

    A poll returns at most `max_poll_records` (500 by default) records, fewer than a large last batch
    holds: a partition is probed until a poll after its first records brings none of it.
    """
    out = dict(ends)
    pending = {tp for tp, end in ends.items() if end > 0}
    for tp in pending:
        consumer.seek(tp, ends[tp] - 1)
    started: set[Any] = set()
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        got: set[Any] = set()
        for tp, records in consumer.poll(timeout_ms=200).items():
            if tp in pending and records:
                out[tp] = max(out[tp], records[-1].offset + 1)
                got.add(tp)
        pending -= started - got
        started |= got
    return out


async def probe_end_offsets_async(
    config: Mapping[str, Any], ends: Mapping[Any, int], timeout: float = 10.0
) -> dict[Any, int]:
    """True end offsets through a short-lived aiokafka consumer (`config`: connection settings)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    out = dict(ends)
    wanted = {TopicPartition(tp.topic, tp.partition): tp for tp, end in ends.items() if end > 0}
    if not wanted:
        return out
    consumer = AIOKafkaConsumer(**config, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        for ktp, tp in wanted.items():
            consumer.seek(ktp, ends[tp] - 1)
        pending = set(wanted)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            batches = await consumer.getmany(*pending, timeout_ms=200)
            for ktp, records in batches.items():
                if records:
                    tp = wanted[ktp]
                    out[tp] = max(out[tp], records[-1].offset + 1)
                    pending.discard(ktp)
    finally:
        await consumer.stop()
    return out


def patch_faust_recovery(app: Any, probe: EndProbe) -> None:
    """Make Faust's table recovery read changelogs up to their true end on this app.

    Faust builds the highwater it recovers to from the broker's end offsets; on Tansu that would end
    recovery inside the last batch of a changelog. The patch (installed once, applied only to apps that
    carry a probe) corrects those highwaters before recovery starts.
    """
    from faust.tables.recovery import Recovery

    app._gatewatch_end_probe = probe
    if getattr(Recovery._build_highwaters, "_gatewatch_probes", False):
        return
    original = Recovery._build_highwaters

    async def _build_highwaters(self: Any, consumer: Any, tps: Any, destination: Any, title: str) -> None:
        await original(self, consumer, tps, destination, title)
        end_probe: EndProbe | None = getattr(self.app, "_gatewatch_end_probe", None)
        if end_probe is None:
            return
        # Faust keeps highwater - 1 (the last offset); -1 means an empty partition.
        reported = {tp: last + 1 for tp, last in destination.items() if last >= 0}
        try:
            true_ends = await asyncio.wait_for(end_probe(reported), timeout=30.0)
        except Exception:
            self.log.exception("End-offset probe failed; recovering to the reported highwaters")
            return
        for tp, end in true_ends.items():
            if end - 1 != destination[tp]:
                self.log.info(
                    "Highwater of %r corrected from %r to %r (broker reports batch ends)", tp, destination[tp], end - 1
                )
                destination[tp] = end - 1

    _build_highwaters._gatewatch_probes = True  # type: ignore[attr-defined]
    Recovery._build_highwaters = _build_highwaters  # type: ignore[method-assign]
