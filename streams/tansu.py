"""Adjustments for the embedded Tansu broker's fetch behaviour (local mode only).

A Kafka broker answers a fetch as soon as `fetch.min.bytes` of data is there, waiting at most
`fetch.max.wait.ms` for it. Tansu answers only when the wait runs out (or at once if data was already
there when the request came): measured with aiokafka, a record produced while a 1,500 ms fetch waits is
delivered after about 615 ms on average, and after 1 ms with a 20 ms wait. Faust hard-codes 1,500 ms
for its consumer, so each hop (access topic, pupil re-partition topic) could add over a second of
latency on the embedded broker. Local mode shortens the wait; a real Kafka needs no change.

`gatewatch worker` turns local mode on by itself when its bootstrap servers turn out to be Tansu (the
cluster id it reports): without it the worker took 32 s to become ready and 112 s to resume after a
restart, waiting out Kafka's rebalance and session timeouts on a single node.
"""

# ruff: noqa: SLF001 - the consumer is created inside Faust's aiokafka driver
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.settings import Settings

__all__ = ["LOCAL_FETCH_WAIT_MS", "TANSU_CLUSTER_ID", "is_embedded_broker", "local_mode_for", "shorten_fetch_wait"]

#: The cluster id Tansu reports (its default); a Kafka cluster's is a random, base64-encoded UUID.
TANSU_CLUSTER_ID = "tansu_cluster"

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


def is_embedded_broker(settings: Settings, timeout: float = 5.0) -> bool | None:
    """True when the bootstrap servers are a Tansu broker, False when not, None when they cannot be asked."""
    from kafka import KafkaAdminClient

    from streams.kafka import kafka_python_config

    try:
        admin = KafkaAdminClient(
            **kafka_python_config(settings),
            client_id="gatewatch-probe",
            request_timeout_ms=int(timeout * 1000),
            bootstrap_timeout_ms=int(timeout * 1000),
        )
        try:
            cluster = admin.describe_cluster()
        finally:
            admin.close()
    except Exception:  # unreachable, refused, not Kafka: the worker reports that itself
        return None
    return str(cluster.get("cluster_id") or "") == TANSU_CLUSTER_ID


def local_mode_for(settings: Settings) -> Settings:
    """The settings with local mode on if the broker is the embedded one and GATEWATCH_LOCAL_MODE is not set."""
    import structlog

    if settings.local_mode or "local_mode" in settings.model_fields_set:
        return settings  # the operator decided
    if not is_embedded_broker(settings):
        return settings
    structlog.get_logger("gatewatch.worker").warning(
        "embedded_broker_detected",
        local_mode=True,
        hint="the broker is Tansu (in memory, single node): local mode is on; set GATEWATCH_LOCAL_MODE=false "
        "to keep Kafka's timeouts",
    )
    return settings.model_copy(update={"local_mode": True})
