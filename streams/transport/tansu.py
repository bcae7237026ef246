"""Recognising the embedded Tansu broker, so `gatewatch worker` can turn local mode on by itself.

`gatewatch worker` turns local mode on by itself when its bootstrap servers turn out to be Tansu (the
cluster id it reports): without it the worker took 32 s to become ready and 112 s to resume after a
restart, waiting out Kafka's rebalance and session timeouts on a single node. What local mode changes
for Tansu's fetch behaviour is in streams/_compat/fetch_wait.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.settings import Settings

__all__ = ["TANSU_CLUSTER_ID", "is_embedded_broker", "local_mode_for"]

#: The cluster id Tansu reports (its default); a Kafka cluster's is a random, base64-encoded UUID.
TANSU_CLUSTER_ID = "tansu_cluster"


def is_embedded_broker(settings: Settings, timeout: float = 5.0) -> bool | None:
    """True when the bootstrap servers are a Tansu broker, False when not, None when they cannot be asked."""
    from kafka import KafkaAdminClient

    from streams.transport.kafka import kafka_python_config

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
