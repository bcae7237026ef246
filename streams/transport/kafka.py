"""Kafka plumbing shared by the worker, the publisher and the CLI: client settings and topic creation."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from typing import Any

from streams.exceptions import BrokerError
from streams.settings import Settings

__all__ = ["TopicSpec", "aiokafka_config", "ensure_topics", "kafka_python_config", "topic_specs"]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics Gatewatch owns. Events and their outputs share the partition count so they line up."""
    t, n = settings.topics, settings.partitions
    return [
        TopicSpec(t.access, n, {}),
        # The register: one record per agreement id, compacted so the latest version of each survives.
        TopicSpec(t.agreements, 1, {"cleanup.policy": "compact"}),
        TopicSpec(t.decisions, n, {}),
        TopicSpec(t.alerts, n, {}),
        TopicSpec(t.deadletter, n, {}),
        # The register's judgements, in the register's order on one hash chain.
        TopicSpec(t.agreement_decisions, 1, {}),
    ]


def kafka_python_config(settings: Settings) -> dict[str, Any]:
    """Connection settings for kafka-python clients (producer, consumer, admin), TLS/SASL included."""
    if not settings.kafka_bootstrap:
        raise BrokerError("no Kafka bootstrap servers configured (set GATEWATCH_KAFKA_BOOTSTRAP)")
    cfg: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()],
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        if settings.kafka_ssl_cafile:
            cfg["ssl_cafile"] = str(settings.kafka_ssl_cafile)
        if settings.kafka_ssl_certfile:
            cfg["ssl_certfile"] = str(settings.kafka_ssl_certfile)
        if settings.kafka_ssl_keyfile:
            cfg["ssl_keyfile"] = str(settings.kafka_ssl_keyfile)
    if settings.kafka_sasl_mechanism:
        cfg["sasl_mechanism"] = settings.kafka_sasl_mechanism
        cfg["sasl_plain_username"] = settings.kafka_sasl_username
        cfg["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        )
    return cfg


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """Connection settings for aiokafka clients, TLS/SASL included (the kafka-python ones, renamed)."""
    cfg = kafka_python_config(settings)
    out: dict[str, Any] = {
        "bootstrap_servers": cfg["bootstrap_servers"],
        "security_protocol": cfg["security_protocol"],
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        context: ssl.SSLContext = create_ssl_context(
            cafile=cfg.get("ssl_cafile"), certfile=cfg.get("ssl_certfile"), keyfile=cfg.get("ssl_keyfile")
        )
        out["ssl_context"] = context
    if settings.kafka_sasl_mechanism:
        out["sasl_mechanism"] = cfg["sasl_mechanism"]
        out["sasl_plain_username"] = cfg["sasl_plain_username"]
        out["sasl_plain_password"] = cfg["sasl_plain_password"]
    return out


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    """Faust App keyword arguments for the broker connection, TLS/SASL included."""
    if not settings.kafka_bootstrap:
        raise BrokerError("no Kafka bootstrap servers configured (set GATEWATCH_KAFKA_BOOTSTRAP)")
    urls = [f"kafka://{s.strip()}" for s in settings.kafka_bootstrap.split(",") if s.strip()]
    opts: dict[str, Any] = {"broker": urls}
    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return opts
    import faust  # local: keeps this module importable without faust for kafka-python-only tools

    context: ssl.SSLContext | None = None
    if proto in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            purpose=ssl.Purpose.SERVER_AUTH,
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
        )
        if settings.kafka_ssl_certfile and settings.kafka_ssl_keyfile:
            context.load_cert_chain(str(settings.kafka_ssl_certfile), str(settings.kafka_ssl_keyfile))
    if proto == "SSL":
        opts["broker_credentials"] = faust.SSLCredentials(context)
        return opts
    if not (settings.kafka_sasl_mechanism and settings.kafka_sasl_username and settings.kafka_sasl_password):
        raise BrokerError(f"security protocol {proto} needs GATEWATCH_KAFKA_SASL_MECHANISM, _USERNAME and _PASSWORD")
    opts["broker_credentials"] = faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )
    return opts


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create any missing Gatewatch topic; return the names created. Idempotent."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(**kafka_python_config(settings), request_timeout_ms=10_000)
        except KafkaError as exc:
            last = exc
            time.sleep(0.5)
            continue
        try:
            existing = set(admin.list_topics())
            missing = [s for s in topic_specs(settings) if s.name not in existing]
            created: list[str] = []
            for spec in missing:
                try:
                    admin.create_topics(
                        [NewTopic(spec.name, spec.partitions, settings.replication_factor, topic_configs=spec.config)]
                    )
                    created.append(spec.name)
                except TopicAlreadyExistsError:
                    pass
            return created
        except KafkaError as exc:
            last = exc
            time.sleep(0.5)
        finally:
            admin.close()
    raise BrokerError(f"could not create topics on {settings.kafka_bootstrap}: {last}")
