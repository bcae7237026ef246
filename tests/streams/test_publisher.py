"""The publisher validates before sending and reports every send Kafka did not acknowledge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streams.exceptions import PublishError
from streams.settings import Settings
from streams.transport.publisher import Publisher
from tests.factories import event_dict, make_event


class _FailedFuture:
    def add_errback(self, callback: Callable[[BaseException], Any]) -> _FailedFuture:
        callback(TimeoutError("no broker answered"))
        return self


class _RefusingProducer:
    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None) -> _FailedFuture:
        return _FailedFuture()

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def publisher_with(producer: object) -> Publisher:
    publisher = Publisher.__new__(Publisher)  # no Kafka connection: the producer is the fake below
    publisher.settings = Settings(kafka_bootstrap="k:1")
    publisher._producer = producer  # type: ignore[assignment]
    publisher.failed = []
    return publisher


def test_unacknowledged_sends_are_raised_with_the_event_ids() -> None:
    publisher = publisher_with(_RefusingProducer())
    publisher.publish_events([make_event(event_id="lost-1"), make_event(event_id="lost-2")])
    with pytest.raises(PublishError, match=r"2 message\(s\) were not acknowledged.*lost-1"):
        publisher.flush()


def test_an_invalid_event_is_refused_before_sending() -> None:
    publisher = publisher_with(_RefusingProducer())
    with pytest.raises(PublishError, match="record_count"):
        publisher.publish_event(event_dict(record_count=-1))


def test_record_checksums_are_computed_in_c() -> None:
    """kafka-python falls back to a pure-Python CRC-32C without the `crc32c` package: 15x slower batched sends."""
    from kafka.record import util

    assert util.crc32c_c is not None, "install the crc32c package (a dependency in pyproject.toml)"
    assert util.calc_crc32c(memoryview(b"123456789")) == 0xE3069283  # the CRC-32C check value
