"""Alert delivery: Alertmanager (API v2) and a signed generic webhook, resuming from the alerts topic.

The alerts topic is the source of truth. A sink is its own consumer group: it commits an offset only
after the alerts before it were delivered, so an unreachable Alertmanager loses nothing (the sink
retries with backoff and resumes where it stopped) and never slows the worker, which only writes to
the topic. Re-sending an alert is harmless: its deterministic id is a label, so Alertmanager refreshes
the alert it already has instead of paging again.

A record batch on the alerts topic that cannot be decoded (a corrupt batch, a codec whose library is
missing) stops that partition only, at that offset (streams/_compat/kafka_python_decode.py): one log
line, `gatewatch_sink_partition_undecodable` at 1 and the critical GatewatchSinkPartitionUndecodable
alert, while the other partitions are delivered on. Nothing behind the batch is delivered or committed
past; a restart with the cause fixed resumes there.

An alert the rule pack's `inhibit:` list inhibited (`inhibited_by` not empty) stays on the topic and on
dashboards but is not sent: the pack, versioned and diffed with its rules, is the one place that
decides what pages people, so Alertmanager needs no copy of that list.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError

from schemas import Alert
from streams import _compat
from streams._compat import kafka_python_decode
from streams.settings import Settings
from streams.transport.kafka import kafka_python_config

__all__ = [
    "AlertmanagerSink",
    "DeliveryError",
    "PermanentDeliveryError",
    "Sink",
    "SinkMetrics",
    "SinkRunner",
    "WebhookSink",
    "alertmanager_payload",
    "sign",
]

log = structlog.get_logger("gatewatch.sink")


class DeliveryError(Exception):
    """Delivery failed but may succeed later (network, 5xx, 429): retry with backoff."""


class PermanentDeliveryError(Exception):
    """The receiver refused the payload (4xx): retrying the same bytes cannot help."""


class Sink(Protocol):
    name: str

    def deliver(self, alerts: Sequence[Alert]) -> None: ...


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - operator-configured URL
            response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise DeliveryError(f"{url} answered {exc.code}") from exc
        raise PermanentDeliveryError(f"{url} refused the alerts with {exc.code}: {exc.read()[:300]!r}") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DeliveryError(f"{url} unreachable: {exc}") from exc


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def alertmanager_payload(
    alerts: Sequence[Alert], *, now: dt.datetime, ttl: dt.timedelta, generator_base: str, runbook_base: str
) -> list[dict[str, Any]]:
    """Alertmanager API v2 `postableAlerts` for Gatewatch alerts; labels come from bounded vocabularies."""
    out = []
    for alert in alerts:
        labels = {
            "alertname": alert.rule_id,
            "alert_id": alert.alert_id,
            "severity": alert.severity.value,
            "category": alert.category.value,
            "recipient_type": alert.recipient_type.value if alert.recipient_type else "none",
            "agreement": alert.agreement_id or "none",
            "gateway": alert.legal_gateway or "none",
            "purpose": alert.purpose or "none",
            # An alert with no event is a finding about an agreement (judged as it entered the register or
            # re-swept): Alertmanager routes those to governance.
            "subject": "event" if alert.event_ids else "agreement",
            "source": "gatewatch",
        }
        description = alert.explanation
        if alert.count > 1:
            description += f" (seen {alert.count} times; last {alert.last_seen.isoformat()})"
        out.append(
            {
                "labels": labels,
                "annotations": {
                    "summary": alert.title,
                    "description": description,
                    "runbook_url": f"{runbook_base}#{alert.rule_id.lower()}",
                    "runbook": alert.runbook or "",
                    "legal_basis": alert.legal_basis,
                    "event_ids": ", ".join(alert.event_ids[:10]),
                },
                "startsAt": _rfc3339(alert.first_seen),
                "endsAt": _rfc3339(now + ttl),
                "generatorURL": f"{generator_base}?alert_id={alert.alert_id}",
            }
        )
    return out


class AlertmanagerSink:
    """Pushes alerts to Alertmanager's `/api/v2/alerts`."""

    name = "alertmanager"

    def __init__(
        self,
        url: str,
        *,
        ttl: dt.timedelta = dt.timedelta(hours=24),
        generator_base: str = "http://127.0.0.1:6066/alerts",
        runbook_base: str = "https://gatewatch.invalid/runbooks",
        timeout: float = 10.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.ttl = ttl
        self.generator_base = generator_base
        self.runbook_base = runbook_base
        self.timeout = timeout
        self.clock = clock

    def deliver(self, alerts: Sequence[Alert]) -> None:
        payload = alertmanager_payload(
            alerts, now=self.clock(), ttl=self.ttl, generator_base=self.generator_base, runbook_base=self.runbook_base
        )
        _post(self.url, json.dumps(payload).encode(), {}, self.timeout)


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The webhook signature: hex HMAC-SHA256 over `timestamp + "." + body` (the timestamp defeats replays)."""
    return hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookSink:
    """POSTs each alert as JSON with `X-Gatewatch-Signature: sha256=<hmac>` for SOAR tools and chat."""

    name = "webhook"

    def __init__(self, url: str, secret: bytes, *, timeout: float = 10.0) -> None:
        if not secret:
            raise ValueError("a webhook sink needs a non-empty secret (GATEWATCH_WEBHOOK_SECRET)")
        self.url = url
        self.secret = secret
        self.timeout = timeout

    def deliver(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            body = alert.model_dump_json().encode()
            timestamp = str(int(time.time()))
            headers = {
                "X-Gatewatch-Timestamp": timestamp,
                "X-Gatewatch-Signature": "sha256=" + sign(self.secret, timestamp, body),
                "X-Gatewatch-Alert-Id": alert.alert_id,
            }
            _post(self.url, body, headers, self.timeout)


@dataclass
class SinkMetrics:
    delivered: Counter
    failures: Counter
    rejected: Counter
    inhibited: Counter
    backlog_seconds: Gauge
    partition_undecodable: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> SinkMetrics:
        return cls(
            delivered=Counter("gatewatch_sink_delivered_total", "Alerts delivered", ["sink"], registry=registry),
            failures=Counter(
                "gatewatch_sink_delivery_failures_total",
                "Failed delivery attempts (retried)",
                ["sink"],
                registry=registry,
            ),
            rejected=Counter(
                "gatewatch_sink_rejected_total",
                "Alerts the receiver refused (4xx); logged, not retried",
                ["sink"],
                registry=registry,
            ),
            inhibited=Counter(
                "gatewatch_sink_inhibited_total",
                "Alerts not sent because the rule pack's inhibit list inhibited them (kept on the alerts topic)",
                ["sink"],
                registry=registry,
            ),
            backlog_seconds=Gauge(
                "gatewatch_sink_oldest_undelivered_age_seconds",
                "Age of the oldest alert waiting for delivery (0 when caught up)",
                ["sink"],
                registry=registry,
            ),
            partition_undecodable=Gauge(
                "gatewatch_sink_partition_undecodable",
                "1 while this sink has stopped reading an alerts partition at a record batch it cannot decode "
                "(topic: alerts; reason: unsupported_codec, corrupt_batch or decode_error); nothing after it is "
                "delivered or committed until a restart",
                ["topic", "partition", "reason"],
                registry=registry,
            ),
        )


class SinkRunner:
    """Consumes the alerts topic as its own consumer group and hands batches to a sink, in order."""

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        *,
        metrics: SinkMetrics | None = None,
        batch_size: int = 100,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.metrics = metrics or SinkMetrics.create(CollectorRegistry())
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.stopped = False
        self._undecodable: dict[int, tuple[int, str]] = {}  # partition stopped at a bad batch -> (offset, reason)

    def deliver_with_retry(self, alerts: Sequence[Alert]) -> None:
        """Deliver a batch, retrying transient failures with capped exponential backoff until stopped.

        Inhibited alerts are counted and left out: they page nobody.
        """
        paged = [a for a in alerts if not a.inhibited_by]
        if len(paged) < len(alerts):
            self.metrics.inhibited.labels(self.sink.name).inc(len(alerts) - len(paged))
        if not paged:
            return
        alerts = paged
        backoff = 0.5
        while not self.stopped:
            try:
                self.sink.deliver(alerts)
            except DeliveryError as exc:
                self.metrics.failures.labels(self.sink.name).inc()
                oldest = min(a.first_seen for a in alerts)
                self.metrics.backlog_seconds.labels(self.sink.name).set(
                    (dt.datetime.now(dt.UTC) - oldest).total_seconds()
                )
                log.warning("sink_delivery_failed", sink=self.sink.name, error=str(exc), retry_in=backoff)
                self.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            except PermanentDeliveryError as exc:
                self.metrics.rejected.labels(self.sink.name).inc(len(alerts))
                log.error("sink_rejected", sink=self.sink.name, error=str(exc), alerts=[a.alert_id for a in alerts])
                return
            self.metrics.delivered.labels(self.sink.name).inc(len(alerts))
            self.metrics.backlog_seconds.labels(self.sink.name).set(0)
            return

    def stop_partition(self, topic: str, partition: int, offset: int, exc: BaseException) -> None:
        """The consumer stopped `partition` at `offset`, a batch it cannot decode: say so once, set the gauge."""
        reason = kafka_python_decode.reason_of(exc)
        if self._undecodable.get(partition) == (offset, reason):
            return  # the same batch met again (resumed without a rebalance): said already
        self._undecodable[partition] = (offset, reason)
        self.metrics.partition_undecodable.labels("alerts", str(partition), reason).set(1)
        log.error(
            "sink_partition_stopped_undecodable_batch",
            sink=self.sink.name,
            topic=topic,
            partition=partition,
            offset=offset,
            reason=reason,
            error=type(exc).__name__,
            detail=str(exc)[:200],
            hint="the other partitions are delivered on; nothing after this offset is delivered or committed: "
            "fix the cause (codec library, producer) and restart the sink",
        )

    def forget_partitions(self, partitions: Iterable[Any]) -> None:
        """Partitions revoked from this sink: whoever reads them next reports them if they still fail."""
        for tp in partitions:
            gone = self._undecodable.pop(tp.partition, None)
            if gone is not None:
                with contextlib.suppress(KeyError):
                    self.metrics.partition_undecodable.remove("alerts", str(tp.partition), gone[1])

    def run(self, *, idle_exit_after: float | None = None) -> None:
        """Consume and deliver until `stop()` (or, for tests, until idle for `idle_exit_after` seconds)."""
        undo = _compat.install(kafka_python_decode.PATCHES)  # kafka-python's alone: the sink never imports Faust
        try:
            self._consume(idle_exit_after)
        finally:
            undo()

    def _consume(self, idle_exit_after: float | None) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        runner = self

        class Revoked(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                runner.forget_partitions(revoked)

            def on_partitions_assigned(self, assigned: Any) -> None:
                pass

        consumer = KafkaConsumer(
            **kafka_python_config(self.settings),
            group_id=f"{self.settings.app_id}-sink-{self.sink.name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
            # JoinGroup waits up to the rebalance timeout (= max poll interval) for other members; a
            # single-node local broker has none, so keep it short there.
            **(
                {"max_poll_interval_ms": 10_000, "session_timeout_ms": 6_000, "heartbeat_interval_ms": 1_000}
                if self.settings.local_mode
                else {}
            ),
        )
        kafka_python_decode.stop_at_undecodable_batch(consumer, self.stop_partition)
        consumer.subscribe([self.settings.topics.alerts], listener=Revoked())
        idle_since = time.monotonic()
        try:
            while not self.stopped:
                polled = consumer.poll(timeout_ms=500)
                if not polled:
                    if not consumer.assignment():
                        idle_since = time.monotonic()  # still joining the group: not idle yet
                    elif idle_exit_after is not None and time.monotonic() - idle_since > idle_exit_after:
                        return
                    continue
                idle_since = time.monotonic()
                for records in polled.values():
                    alerts: list[Alert] = []
                    for record in records:
                        try:
                            alerts.append(Alert.model_validate_json(record.value))
                        except ValidationError:
                            log.error("sink_bad_alert_record", partition=record.partition, offset=record.offset)
                    if alerts:
                        self.deliver_with_retry(alerts)
                if self.stopped:
                    return  # not delivered: do not commit, the next run resumes here
                consumer.commit()
        finally:
            consumer.close()

    def stop(self) -> None:
        self.stopped = True
