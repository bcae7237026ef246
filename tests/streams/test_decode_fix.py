"""A batch aiokafka cannot decode stops its partition there (streams/_compat/aiokafka_decode.py), reported once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from streams import _compat
from streams._compat.aiokafka_decode import reason_of
from streams.metrics import Metrics
from streams.worker.stalls import StoppedPartitions
from tests.rawbatch import batch

TOPIC = "npd.access.v1"


GOOD = batch(0, [b"a", b"b"])
BAD = {  # case -> (the third batch, the reason reported)
    "unknown_codec_id": (batch(2, [b"c"], codec=7), "unsupported_codec"),
    "snappy_flag_on_plain_bytes": (batch(2, [b"c"], codec=2), "corrupt_batch"),
    "zstd_flag_on_plain_bytes": (batch(2, [b"c"], codec=4), "corrupt_batch"),
    "crc_mismatch": (batch(2, [b"c"], bad_crc=True), "corrupt_batch"),
    "garbled_records_under_a_good_crc": (batch(2, [b"c"], garble_records=True), "corrupt_batch"),
}


@pytest.fixture
def reported(unpatched_libraries: None) -> Iterator[list[tuple[str, int, int, str]]]:
    calls: list[tuple[str, int, int, str]] = []
    with _compat.installed():
        _compat.stop_partition_at_undecodable_batch(lambda t, p, o, exc: calls.append((t, p, o, reason_of(exc))))
        yield calls
        _compat.stop_partition_at_undecodable_batch(lambda *_: None)


def fetch(data: bytes, *, one_by_one: bool = False) -> tuple[list[int], Any, Any]:
    """Hand the fetched bytes out the way the consumer does; (offsets delivered, partition state, result)."""
    from aiokafka.consumer.fetcher import FetchResult, PartitionRecords
    from aiokafka.consumer.subscription_state import SubscriptionState
    from aiokafka.record.memory_records import MemoryRecords
    from aiokafka.structs import TopicPartition

    async def run() -> tuple[list[int], Any, Any]:
        tp = TopicPartition(TOPIC, 0)
        subscriptions = SubscriptionState()
        subscriptions.assign_from_user({tp})
        subscriptions.seek(tp, 0)
        assignment = subscriptions.subscription.assignment
        records = PartitionRecords(tp, MemoryRecords(data), [], 0, None, None, True, 0)
        result = FetchResult(tp, assignment=assignment, partition_records=records, backoff=0)
        if one_by_one:
            delivered = []
            while (msg := result.getone()) is not None:
                delivered.append(msg.offset)
        else:
            delivered = [msg.offset for msg in result.getall()]
        return delivered, assignment.state_value(tp), result

    return asyncio.run(run())


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("one_by_one", [False, True], ids=["getall", "getone"])
def test_records_before_the_bad_batch_are_delivered_and_the_partition_stops_at_it(
    reported: list[tuple[str, int, int, str]], case: str, one_by_one: bool
) -> None:
    bad, reason = BAD[case]
    delivered, state, _ = fetch(GOOD + bad + batch(3, [b"d"]), one_by_one=one_by_one)
    assert [0, 1] == delivered
    assert [(TOPIC, 0, 2, reason)] == reported
    assert (True, 2) == (state.paused, state.position)  # no fetch until resumed; then it starts at the bad batch


def test_a_stopped_partition_is_reported_once_however_often_it_is_drained(
    reported: list[tuple[str, int, int, str]],
) -> None:
    _, _, result = fetch(BAD["crc_mismatch"][0])
    assert [] == result.getall()
    assert [(TOPIC, 0, 0, "corrupt_batch")] == reported


def test_a_missing_codec_library_is_reported_as_unsupported_codec(
    reported: list[tuple[str, int, int, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiokafka.codec

    snappy = batch(0, [b"a"], payload_codec=2)
    monkeypatch.setattr(aiokafka.codec, "cramjam", None)
    delivered, _, _ = fetch(snappy)
    assert [] == delivered
    assert [(TOPIC, 0, 0, "unsupported_codec")] == reported


def test_every_codec_kafka_defines_is_decoded(reported: list[tuple[str, int, int, str]]) -> None:
    for codec in (1, 2, 3, 4):  # gzip, snappy, lz4, zstd
        assert [0, 1] == fetch(batch(0, [b"a" * 100, b"b" * 100], payload_codec=codec))[0]
    assert [] == reported


def test_a_stopped_partition_is_logged_once_with_its_offset_and_sets_the_gauge() -> None:
    from aiokafka.errors import UnsupportedCodecError

    registry = CollectorRegistry()
    stopped = StoppedPartitions(Metrics(registry), {TOPIC: "access"})
    with capture_logs() as logs:
        stopped.stop(TOPIC, 3, 1234, UnsupportedCodecError("Libraries for snappy compression codec not found"))
        stopped.stop(TOPIC, 3, 1234, UnsupportedCodecError("Libraries for snappy compression codec not found"))
    labels = {"topic": "access", "partition": "3", "reason": "unsupported_codec"}
    assert 1.0 == registry.get_sample_value("gatewatch_partition_undecodable", labels)
    assert [("partition_stopped_undecodable_batch", 3, 1234, "unsupported_codec")] == [
        (e["event"], e["partition"], e["offset"], e["reason"]) for e in logs
    ]
    stopped.forget([(TOPIC, 3)])  # revoked: its next reader reports it if it still fails
    assert registry.get_sample_value("gatewatch_partition_undecodable", labels) is None


@pytest.mark.parametrize(
    ("topic", "role"),
    [(TOPIC, "access"), ("gatewatch-windows-changelog", "changelog"), ("somebody.else", "other")],
)
def test_topic_label_is_a_bounded_role(topic: str, role: str) -> None:
    assert role == StoppedPartitions(Metrics(CollectorRegistry()), {TOPIC: "access"}).role(topic)
