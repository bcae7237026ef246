"""Alert sinks: Alertmanager payloads, signed webhooks, retries, and resuming from the alerts topic."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from rules import load_engine
from schemas import Alert
from streams.settings import Settings
from streams.sinks.delivery import (
    AlertmanagerSink,
    SinkMetrics,
    SinkRunner,
    WebhookSink,
    alertmanager_payload,
    sign,
)
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests import rawbatch
from tests.conftest import isolated_settings
from tests.factories import make_agreement, make_event
from tests.httpreceiver import http_receiver
from tests.rawbatch import SNAPPY

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def some_alerts(n: int = 1) -> list[Alert]:
    engine = load_engine()
    out: list[Alert] = []
    for i in range(n):
        event = make_event(event_id=f"sink-{i}", fields=["pmr", "nationality"])
        # The pack also raises NPD-FOA-01 for the field, inhibited by NPD-PF-01: keep the paged one.
        out += [a for a in engine.alerts(event, engine.evaluate(event, make_agreement())) if not a.inhibited_by]
    return out


def test_inhibited_alerts_are_counted_and_not_sent() -> None:
    engine = load_engine()
    event = make_event(event_id="sink-inh", fields=["pmr", "nationality"])
    alerts = engine.alerts(event, engine.evaluate(event, make_agreement()))
    with http_receiver() as receiver:
        runner = SinkRunner(isolated_settings_stub(), AlertmanagerSink(receiver.url), sleep=lambda _: None)
        runner.deliver_with_retry(alerts)
        [got] = receiver.on("/api/v2/alerts")
    assert (["NPD-FOA-01", "NPD-PF-01"], ["NPD-PF-01"], 1.0) == (
        [a.rule_id for a in alerts],
        [posted["labels"]["alertname"] for posted in got.json()],
        runner.metrics.inhibited.labels("alertmanager")._value.get(),
    )


def test_alertmanager_payload_carries_the_routing_labels_and_annotations() -> None:
    alert = some_alerts()[0]
    [posted] = alertmanager_payload(
        [alert],
        now=NOW,
        ttl=dt.timedelta(hours=1),
        generator_base="http://gw/alerts",
        runbook_base="http://gw/runbooks",
    )
    assert posted["labels"] == {
        "alertname": alert.rule_id,
        "alert_id": alert.alert_id,
        "severity": "critical",
        "category": "prohibited_field",
        "recipient_type": "research_academic",
        "agreement": "DSA-2024-0001",
        "gateway": "DEA2017-s64",
        "purpose": "research",
        "subject": "event",
        "source": "gatewatch",
    }
    assert {"summary", "description", "runbook_url"} <= set(posted["annotations"])
    assert posted["endsAt"] == "2026-03-10T13:00:00Z"
    assert posted["generatorURL"].endswith(alert.alert_id)


def test_an_alert_about_an_agreement_is_labelled_for_governance_routing() -> None:
    from rules import load_engine
    from tests.factories import make_agreement

    agreement = make_agreement(fields_allowed=["pmr", "nationality"])
    [alert] = load_engine().judge_agreement(agreement, NOW).alerts
    [posted] = alertmanager_payload(
        [alert], now=NOW, ttl=dt.timedelta(hours=1), generator_base="http://gw", runbook_base="http://gw"
    )
    assert ("agreement", "NPD-APR-04", "DSA-2024-0001") == (
        posted["labels"]["subject"],
        posted["labels"]["alertname"],
        posted["labels"]["agreement"],
    )


def test_webhook_bodies_are_signed_and_verifiable() -> None:
    alert = some_alerts()[0]
    with http_receiver() as receiver:
        WebhookSink(receiver.url + "/hook", b"s3cret").deliver([alert])
        [got] = receiver.on("/hook")
    timestamp = got.headers["X-Gatewatch-Timestamp"]
    assert got.headers["X-Gatewatch-Signature"] == "sha256=" + sign(b"s3cret", timestamp, got.body)
    assert got.headers["X-Gatewatch-Signature"] != "sha256=" + sign(b"other", timestamp, got.body)
    assert Alert.model_validate_json(got.body) == alert


def test_transient_failures_are_retried_with_backoff_and_counted() -> None:
    alerts = some_alerts()
    sleeps: list[float] = []
    with http_receiver() as receiver:
        receiver.fail_next = 4
        runner = SinkRunner(isolated_settings_stub(), AlertmanagerSink(receiver.url), sleep=sleeps.append)
        runner.deliver_with_retry(alerts)
        assert len(receiver.on("/api/v2/alerts")) == 1
    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    registry_value = runner.metrics.failures.labels("alertmanager")._value.get()
    assert registry_value == 4


def test_a_refused_payload_is_counted_and_not_retried_forever() -> None:
    with http_receiver() as receiver:
        receiver.status = 400
        runner = SinkRunner(isolated_settings_stub(), AlertmanagerSink(receiver.url), sleep=lambda _: None)
        runner.deliver_with_retry(some_alerts())
        assert len(receiver.requests) == 1
    assert runner.metrics.rejected.labels("alertmanager")._value.get() >= 1


def isolated_settings_stub():  # type: ignore[no-untyped-def]
    from streams.settings import Settings

    return Settings(kafka_bootstrap="127.0.0.1:1")


@pytest.mark.integration
def test_sink_loses_nothing_while_the_receiver_is_down_and_resumes_from_the_topic(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(broker, tmp_path)
    ensure_topics(settings)
    alerts = some_alerts(6)
    with Publisher(settings) as pub:
        for alert in alerts[:3]:
            pub.publish_raw(alert.model_dump_json().encode(), key=alert.alert_id.encode(), topic=settings.topics.alerts)
    with http_receiver() as receiver:
        receiver.fail_next = 3  # Alertmanager "down" for the first three attempts
        runner = SinkRunner(settings, AlertmanagerSink(receiver.url), sleep=lambda s: threading.Event().wait(0.05))
        runner.run(idle_exit_after=3.0)
        first = [a["labels"]["alert_id"] for r in receiver.on("/api/v2/alerts") for a in r.json()]
    assert sorted(first) == sorted(a.alert_id for a in alerts[:3])
    with Publisher(settings) as pub:
        for alert in alerts[3:]:
            pub.publish_raw(alert.model_dump_json().encode(), key=alert.alert_id.encode(), topic=settings.topics.alerts)
    with http_receiver() as receiver:  # a new sink process: committed offsets mean it resumes after the first three
        SinkRunner(settings, AlertmanagerSink(receiver.url)).run(idle_exit_after=3.0)
        second = [a["labels"]["alert_id"] for r in receiver.on("/api/v2/alerts") for a in r.json()]
    assert sorted(second) == sorted(a.alert_id for a in alerts[3:])


def committed_offsets(settings: Settings, group: str, partitions: int) -> dict[int, int | None]:
    from kafka import KafkaConsumer, TopicPartition

    from streams.transport.kafka import kafka_python_config

    consumer = KafkaConsumer(**kafka_python_config(settings), group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(settings.topics.alerts, p)) for p in range(partitions)}
    finally:
        consumer.close()


UNDECODABLE = {  # a batch no sink can read, as the broker stores it -> the reason reported (Tansu refuses codec 7)
    "snappy_flag_on_plain_bytes": ({"codec": SNAPPY}, "corrupt_batch"),
    "crc_mismatch": ({"bad_crc": True}, "corrupt_batch"),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", list(UNDECODABLE))
def test_an_undecodable_batch_stops_only_its_partition_and_is_reported(
    broker: EmbeddedBroker, tmp_path: Path, case: str
) -> None:
    settings = isolated_settings(broker, tmp_path)
    ensure_topics(settings)
    alerts = some_alerts(5)
    topic = settings.topics.alerts

    def put(partition: int, alert: Alert, **broken: Any) -> int:
        raw = rawbatch.batch(0, [alert.model_dump_json().encode()], key=alert.alert_id.encode(), **broken)
        return rawbatch.produce_raw(broker.bootstrap, topic, partition, raw)

    put(0, alerts[0])
    kwargs, reason = UNDECODABLE[case]
    bad_offset = put(0, alerts[1], **kwargs)
    put(0, alerts[2])  # behind the bad batch: never delivered
    put(1, alerts[3])
    put(2, alerts[4])
    registry = CollectorRegistry()
    labels = {"topic": "alerts", "partition": "0", "reason": reason}
    with http_receiver() as receiver, capture_logs() as logs:
        runner = SinkRunner(settings, AlertmanagerSink(receiver.url), metrics=SinkMetrics.create(registry))
        running = threading.Thread(target=runner.run)
        running.start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(receiver.on("/api/v2/alerts")) < 3:
                time.sleep(0.2)
            time.sleep(1.0)  # anything from behind the bad batch would arrive now
            gauge = registry.get_sample_value("gatewatch_sink_partition_undecodable", labels)
        finally:
            runner.stop()
            running.join(30)
        delivered = [a["labels"]["alert_id"] for r in receiver.on("/api/v2/alerts") for a in r.json()]
    assert not running.is_alive()  # it stopped when asked: it had not died, nor hung
    assert sorted(a.alert_id for a in (alerts[0], alerts[3], alerts[4])) == sorted(delivered)
    assert 1.0 == gauge
    stopped = [e for e in logs if e["event"] == "sink_partition_stopped_undecodable_batch"]
    assert [(0, bad_offset, reason)] == [(e["partition"], e["offset"], e["reason"]) for e in stopped]
    committed = committed_offsets(settings, f"{settings.app_id}-sink-alertmanager", 4)
    assert (bad_offset, 1, 1) == (committed[0], committed[1], committed[2])  # nothing past the bad batch
