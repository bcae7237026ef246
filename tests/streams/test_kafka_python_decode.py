"""A batch kafka-python cannot decode stops its partition for a consumer that opted in (kafka_python_decode.py).

These drive kafka-python's own Fetcher with fetched bytes, as a fetch response hands them over; the
tests on the embedded broker (tests/streams/test_sinks.py, tests/streams/test_audit_export.py) read
the same kinds of batch from a real topic.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from streams import _compat
from streams._compat import kafka_python_decode
from streams._compat.kafka_python_decode import reason_of
from tests.rawbatch import SNAPPY, UNKNOWN_CODEC, batch

TOPIC = "npd.alerts.v1"
GOOD = batch(0, [b"a", b"b"])
BAD = {  # case -> (the second batch, at offset 2; the reason reported)
    "unknown_codec_id": (batch(2, [b"c"], codec=UNKNOWN_CODEC), "unsupported_codec"),
    "gzip_flag_on_plain_bytes": (batch(2, [b"c"], codec=1), "corrupt_batch"),
    "snappy_flag_on_plain_bytes": (batch(2, [b"c"], codec=SNAPPY), "corrupt_batch"),
    "lz4_flag_on_plain_bytes": (batch(2, [b"c"], codec=3), "corrupt_batch"),
    "zstd_flag_on_plain_bytes": (batch(2, [b"c"], codec=4), "corrupt_batch"),
    "crc_mismatch": (batch(2, [b"c"], bad_crc=True), "corrupt_batch"),
    "garbled_records_under_a_good_crc": (batch(2, [b"c"], garble_records=True), "corrupt_batch"),
}

Reported = list[tuple[str, int, int, str]]


@pytest.fixture
def patched(unpatched_libraries: None) -> Iterator[None]:
    with _compat.installed(kafka_python_decode.PATCHES):
        yield


class Reader:
    """kafka-python's Fetcher over two partitions, given the bytes each one's fetch returned."""

    def __init__(self, fetched: dict[int, bytes], *, opt_in: bool) -> None:
        from kafka.consumer.fetcher import CompletedFetch, Fetcher
        from kafka.consumer.subscription_state import SubscriptionState
        from kafka.structs import TopicPartition

        self.tps = {p: TopicPartition(TOPIC, p) for p in fetched}
        self.subscriptions = SubscriptionState()
        self.subscriptions.assign_from_user(set(self.tps.values()))
        client = SimpleNamespace(_manager=SimpleNamespace(_net=None))  # the fetcher sends nothing here
        self.fetcher = Fetcher(client, self.subscriptions)
        self.reported: Reported = []
        if opt_in:
            # What stop_at_undecodable_batch does to a KafkaConsumer: it sets the handler on its fetcher.
            _compat.stop_at_undecodable_batch(SimpleNamespace(_fetcher=self.fetcher), self._report)
        for p, raw in fetched.items():
            self.subscriptions.seek(self.tps[p], 0)
            data = SimpleNamespace(
                error_code=0,
                high_watermark=10,
                records=raw,
                aborted_transactions=None,
                diverging_epoch=None,
                preferred_read_replica=-1,
            )
            self.fetcher._completed_fetches.append(CompletedFetch(self.tps[p], 0, 11, data, None))

    def _report(self, topic: str, partition: int, offset: int, exc: BaseException) -> None:
        self.reported.append((topic, partition, offset, reason_of(exc)))

    def poll(self, max_records: int = 500) -> dict[int, list[int]]:
        records, _ = self.fetcher.fetched_records(max_records)
        return {tp.partition: [r.offset for r in batch] for tp, batch in records.items()}

    def state(self, partition: int) -> tuple[int, bool]:
        tp = self.tps[partition]
        return self.subscriptions.position(tp).offset, self.subscriptions.is_paused(tp)


@pytest.mark.parametrize("case", list(BAD))
def test_the_partition_stops_at_the_bad_batch_and_the_others_go_on(patched: None, case: str) -> None:
    bad, reason = BAD[case]
    reader = Reader({0: GOOD + bad + batch(3, [b"d"]), 1: GOOD}, opt_in=True)
    assert {0: [0, 1], 1: [0, 1]} == reader.poll()
    assert [(TOPIC, 0, 2, reason)] == reader.reported
    assert (2, True) == reader.state(0)  # no fetch until resumed; the position stays at the bad batch
    assert (2, False) == reader.state(1)
    assert {} == reader.poll()  # no raise, no spin, no second report
    assert [(TOPIC, 0, 2, reason)] == reader.reported


def test_records_before_the_bad_batch_are_delivered_however_few_a_poll_takes(patched: None) -> None:
    reader = Reader({0: GOOD + BAD["crc_mismatch"][0]}, opt_in=True)
    assert [{0: [0]}, {0: [1]}, {}] == [reader.poll(max_records=1) for _ in range(3)]
    assert [(TOPIC, 0, 2, "corrupt_batch")] == reader.reported
    assert (2, True) == reader.state(0)


def test_a_bad_first_batch_delivers_nothing_and_leaves_the_position(patched: None) -> None:
    reader = Reader({0: batch(0, [b"a"], codec=UNKNOWN_CODEC), 1: GOOD}, opt_in=True)
    assert {1: [0, 1]} == reader.poll()
    assert [(TOPIC, 0, 0, "unsupported_codec")] == reader.reported
    assert (0, True) == reader.state(0)


def test_a_consumer_that_did_not_opt_in_raises_as_kafka_python_does(patched: None) -> None:
    from kafka.errors import UnsupportedCodecError

    reader = Reader({0: GOOD + BAD["unknown_codec_id"][0]}, opt_in=False)
    assert {0: [0, 1]} == reader.poll()
    with pytest.raises(UnsupportedCodecError):
        reader.poll()  # (kafka-python would now spin on a third poll: the reason the readers opt in)
    assert [] == reader.reported


def test_a_missing_codec_library_is_reported_as_unsupported_codec(
    patched: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kafka.codec

    monkeypatch.setattr(kafka.codec, "snappy", None)
    reader = Reader({0: batch(0, [b"a"], payload_codec=SNAPPY)}, opt_in=True)
    assert {} == reader.poll()
    assert [(TOPIC, 0, 0, "unsupported_codec")] == reader.reported


def test_every_codec_kafka_defines_is_decoded(patched: None) -> None:
    for codec in (1, 2, 3, 4):  # gzip, snappy, lz4, zstd
        reader = Reader({0: batch(0, [b"a" * 100, b"b" * 100], payload_codec=codec)}, opt_in=True)
        assert {0: [0, 1]} == reader.poll()
        assert [] == reader.reported


def test_opting_in_refuses_to_do_nothing_when_the_patches_are_not_installed(unpatched_libraries: None) -> None:
    with pytest.raises(RuntimeError, match=r"call streams\._compat\.install"):
        _compat.stop_at_undecodable_batch(SimpleNamespace(_fetcher=SimpleNamespace()), lambda *_: None)


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (RuntimeError("LZ4F_decompress failed with code: ERROR_frameType_unknown"), "corrupt_batch"),
        (RuntimeError("something else"), "decode_error"),
        (ValueError("a deserializer's"), "decode_error"),
    ],
)
def test_reasons_are_bounded(exc: Any, reason: str) -> None:
    assert reason == reason_of(exc)
