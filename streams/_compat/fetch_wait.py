"""Adjustments for the embedded Tansu broker's fetch behaviour (local mode only).

A Kafka broker answers a fetch as soon as `fetch.min.bytes` of data is there, waiting at most
`fetch.max.wait.ms` for it. Tansu answers only when the wait runs out (or at once if data was already
there when the request came): measured with aiokafka, a record produced while a 1,500 ms fetch waits is
delivered after about 615 ms on average, and after 1 ms with a 20 ms wait. Faust hard-codes 1,500 ms
for its consumer, so each hop (access topic, pupil re-partition topic) could add over a second of
latency on the embedded broker. Local mode shortens the wait; a real Kafka needs no change.

Upstream: faust-streaming passes ``fetch_max_wait_ms=1500`` to aiokafka with no setting to change it
(faust/transport/drivers/aiokafka.py, 0.15.3); no faust-streaming issue asks for one, and none was
found for Tansu (tansu-io/tansu) answering a fetch only at the end of its wait.
"""

# ruff: noqa: SLF001 - the consumer is created inside Faust's aiokafka driver
from __future__ import annotations

from typing import Any

from streams._compat._patch import Patch, require_installed

__all__ = ["LOCAL_FETCH_WAIT_MS", "PATCHES", "shorten_fetch_wait"]

#: Fetch wait of the worker's consumer on the embedded broker: an idle worker makes about 40 fetches/s.
LOCAL_FETCH_WAIT_MS = 25


def shorten_fetch_wait(app: Any, wait_ms: int = LOCAL_FETCH_WAIT_MS) -> None:
    """Make `app`'s Faust consumer fetch with at most `wait_ms` of broker-side wait (needs the patch)."""
    require_installed(PATCHES)
    app._gatewatch_fetch_wait_ms = wait_ms


def _fetch_wait_of_the_app(original: Any) -> Any:
    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        wait = getattr(self.app, "_gatewatch_fetch_wait_ms", None)
        if wait is not None:
            consumer._fetch_max_wait_ms = int(wait)  # read by the fetcher when the consumer starts
        return consumer

    return _create_worker_consumer


PATCHES = (
    Patch(
        owner="faust.transport.drivers.aiokafka:AIOKafkaConsumerThread",
        attribute="_create_worker_consumer",
        build=_fetch_wait_of_the_app,
        upstream="none filed: faust-streaming hard-codes fetch_max_wait_ms=1500; Tansu holds a fetch for it",
        original_sha256="c2701bfc3e6f6cad95c2be36d6a255a86e2c57d18d36cc1082b5fb5c482d99d7",
    ),
)
