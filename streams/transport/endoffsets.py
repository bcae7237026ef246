"""True end offsets, on Kafka and on brokers that report the last batch's base offset + 1 (Tansu).

A Kafka broker answers "end offset" (ListOffsets latest, the high watermark) with the offset after the
last record. The embedded Tansu broker answers with the last *batch's* base offset + 1, so a batch of
five records at offsets 0-4 reports 1 (tests/streams/test_broker.py pins this). Anything that reads
"up to the end" then stops short by the rest of the last batch: Faust's changelog recovery, which would
silently drop table updates across a restart, and `gatewatch audit verify`.

The probe here is correct on both: fetch from (reported end - 1), which on Kafka is the last record and
on Tansu the base of the last batch; the last offset that comes back, + 1, is the true end. It costs one
fetch per partition, so it is used where exactness matters, not per message (Faust's table recovery
uses it through streams/_compat/recovery_highwaters.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

__all__ = ["probe_end_offsets", "probe_end_offsets_async"]


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
