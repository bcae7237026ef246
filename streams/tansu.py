"""Adjustments for the embedded Tansu broker's fetch behaviour (local mode only).

A Kafka broker answers a fetch as soon as `fetch.min.bytes` of data is there, waiting at most
`fetch.max.wait.ms` for it. Tansu answers only when the wait runs out (or at once if data was already
there when the request came): measured with aiokafka, a record produced while a 1,500 ms fetch waits is
delivered after about 615 ms on average, and after 1 ms with a 20 ms wait. Faust hard-codes 1,500 ms
for its consumer, so each hop (access topic, pupil re-partition topic) could add over a second of
latency on the embedded broker. Local mode shortens the wait; a real Kafka needs no change.
"""

# ruff: noqa: SLF001 - the consumer is created inside Faust's aiokafka driver
from __future__ import annotations

from typing import Any

__all__ = ["LOCAL_FETCH_WAIT_MS", "shorten_fetch_wait"]

#: Fetch wait of the worker's consumer on the embedded broker: an idle worker makes about 40 fetches/s.
LOCAL_FETCH_WAIT_MS = 25


def shorten_fetch_wait(app: Any, wait_ms: int = LOCAL_FETCH_WAIT_MS) -> None:
    """Make `app`'s Faust consumer fetch with at most `wait_ms` of broker-side wait (patch installed once)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    app._gatewatch_fetch_wait_ms = wait_ms
    if getattr(AIOKafkaConsumerThread._create_worker_consumer, "_gatewatch_wait", False):
        return
    original = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        wait = getattr(self.app, "_gatewatch_fetch_wait_ms", None)
        if wait is not None:
            consumer._fetch_max_wait_ms = int(wait)  # read by the fetcher when the consumer starts
        return consumer

    _create_worker_consumer._gatewatch_wait = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
