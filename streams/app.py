"""The Faust application: agents that evaluate access events and keep the agreements register.

`build_worker_app` wires settings, the rule engine, the metrics registry and the processor into a Faust
app with two agents:
- `register`: consumes npd.agreements.v1, validates each agreement and keeps it in a GlobalTable (so
  every worker in the group sees the whole register);
- `evaluate`: consumes npd.access.v1 and writes exactly one decision (plus alerts) or one dead letter
  per message. Faust flushes what the agent sent before it commits the offsets: at-least-once.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter as TallyCounter
from dataclasses import dataclass
from typing import Any

import faust
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from rules import Engine, load_engine
from schemas import Agreement, DeadLetterReason, Issue, MessageRef, issues_from_validation_error
from streams.kafka import faust_broker_options
from streams.metrics import Metrics
from streams.processing import AgreementCache, Outcome, Processor, make_dead_letter
from streams.settings import Settings

__all__ = ["WorkerApp", "build_worker_app"]

log = structlog.get_logger("gatewatch.worker")


@dataclass
class WorkerApp:
    """The Faust app and the objects it closes over (exposed for tests and the CLI)."""

    app: faust.App
    engine: Engine
    metrics: Metrics
    registry: CollectorRegistry
    processor: Processor
    register: Any  # faust GlobalTable[str, str]: agreement id -> Agreement JSON


def _faust_options(settings: Settings) -> dict[str, Any]:
    opts: dict[str, Any] = {
        **faust_broker_options(settings),
        "store": "memory://",
        "datadir": str(settings.data_dir),
        "web_enabled": True,
        "web_bind": settings.web_host,
        "web_host": settings.web_host,
        "web_port": settings.web_port,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "broker_commit_interval": 1.0,
        "stream_wait_empty": True,
        "table_cleanup_interval": 30.0,
    }
    if settings.local_mode:
        # A single-node embedded broker: the first group join waits about the rebalance timeout.
        opts.update(
            broker_rebalance_timeout=4.0,
            broker_session_timeout=6.0,
            broker_heartbeat_interval=1.0,
            broker_request_timeout=15.0,
        )
    return opts


def build_worker_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    registry: CollectorRegistry | None = None,
) -> WorkerApp:
    engine = engine or load_engine(settings.rule_pack_dir)
    registry = registry or CollectorRegistry()
    metrics = Metrics(registry, gateways=engine.catalogue.gateways, purposes=engine.catalogue.purposes)
    metrics.set_pack(engine.pack, ((r.id, r.category, r.severity) for r in engine.rules))

    app = faust.App(settings.app_id, **_faust_options(settings))
    t = settings.topics

    def raw_topic(name: str, partitions: int) -> faust.TopicT:
        # Bytes in and out: the agent decodes itself so that bad input can be dead-lettered intact.
        return app.topic(name, partitions=partitions, key_serializer="raw", value_serializer="raw")

    access = raw_topic(t.access, settings.partitions)
    agreements_topic = raw_topic(t.agreements, 1)
    decisions = raw_topic(t.decisions, settings.partitions)
    alerts = raw_topic(t.alerts, settings.partitions)
    deadletter = raw_topic(t.deadletter, settings.partitions)

    # The register is small and every worker needs all of it: one partition, replicated to all.
    register = app.GlobalTable(
        "agreements",
        partitions=1,
        recovery_buffer_size=1,
        default=None,
        key_type=str,
        value_type=str,
    )
    processor = Processor(
        engine,
        AgreementCache(register),
        metrics,
        max_message_bytes=settings.max_message_bytes,
        max_future_skew=dt.timedelta(seconds=settings.max_future_skew_seconds),
    )

    async def send_outcome(outcome: Outcome, key: bytes | None, partition: int) -> None:
        if outcome.dead_letter is not None:
            await deadletter.send(key=key, value=outcome.dead_letter.model_dump_json().encode(), partition=partition)
            return
        assert outcome.decision is not None
        # The decision goes to the partition its event came from, so each decisions partition is the
        # complete, ordered record of one access partition.
        await decisions.send(key=key, value=outcome.decision.model_dump_json().encode(), partition=partition)
        for alert in outcome.alerts:
            await alerts.send(key=alert.alert_id.encode(), value=alert.model_dump_json().encode())

    @app.agent(access, name="gatewatch.evaluate")
    async def evaluate(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            ref = MessageRef(topic=msg.topic, partition=msg.partition, offset=msg.offset)
            try:
                outcome = processor.process(msg.value, msg.key, ref)
            except Exception as exc:  # the engine must never stop the stream; keep the bytes instead
                log.exception("engine_crash", offset=msg.offset)
                outcome = Outcome(
                    dead_letter=make_dead_letter(
                        msg.value,
                        msg.key,
                        ref,
                        DeadLetterReason.ENGINE_ERROR,
                        [Issue(loc="$", message=f"engine failed: {type(exc).__name__}", type="engine_error")],
                    )
                )
                metrics.dead_letters.labels("access", DeadLetterReason.ENGINE_ERROR.value).inc()
            partition = msg.partition if msg.partition < settings.partitions else None
            await send_outcome(outcome, msg.key, partition)  # type: ignore[arg-type]

    @app.agent(agreements_topic, name="gatewatch.register")
    async def keep_register(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            ref = MessageRef(topic=msg.topic, partition=msg.partition, offset=msg.offset)
            key = msg.key.decode("utf-8", "replace") if msg.key else None
            if msg.value is None:  # tombstone: the agreement is withdrawn from the register
                if key is not None and key in register:
                    del register[key]
                    log.info("agreement_removed", agreement_id=key)
                continue
            try:
                agreement = Agreement.model_validate_json(msg.value)
            except ValidationError as exc:
                await _reject_agreement(msg.value, msg.key, ref, issues_from_validation_error(exc))
                continue
            if key != agreement.agreement_id:
                await _reject_agreement(
                    msg.value,
                    msg.key,
                    ref,
                    [
                        Issue(
                            loc="agreement_id",
                            type="key_mismatch",
                            message=f"record key {key!r} differs from agreement_id {agreement.agreement_id!r}",
                        )
                    ],
                )
                continue
            register[agreement.agreement_id] = msg.value.decode("utf-8")
            log.info("agreement_loaded", agreement_id=agreement.agreement_id, status=agreement.status.value)

    async def _reject_agreement(value: bytes, key: bytes | None, ref: MessageRef, issues: list[Issue]) -> None:
        metrics.dead_letters.labels("agreements", DeadLetterReason.SCHEMA_VIOLATION.value).inc()
        dead = make_dead_letter(value, key, ref, DeadLetterReason.SCHEMA_VIOLATION, issues)
        await deadletter.send(key=key, value=dead.model_dump_json().encode())

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]  # faust ships no types for timer
    async def refresh_register_gauge() -> None:
        tally = TallyCounter(a.status.value for k in list(register.keys()) if (a := processor.agreements(k)))
        for status in ("approved", "suspended", "revoked", "rejected"):
            metrics.agreements.labels(status).set(tally.get(status, 0))

    @app.page("/metrics")
    async def metrics_page(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def health_page(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json({"status": "ok", "agreements": len(register), "pack": engine.pack.model_dump()})

    return WorkerApp(app=app, engine=engine, metrics=metrics, registry=registry, processor=processor, register=register)
