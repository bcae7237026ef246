"""The worker end to end on a real embedded broker: events in, decisions, alerts and dead letters out."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rules import load_engine
from streams.cli.runner import WorkerProcess
from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from streams.worker.gctuning import THRESHOLDS
from tests.conftest import isolated_settings, read_topic
from tests.factories import make_agreement, make_event

pytestmark = pytest.mark.integration

EVENTS = {
    "compliant": make_event(event_id="it-compliant"),
    "prohibited": make_event(event_id="it-prohibited", fields=["pmr", "nationality"]),
    "no-agreement": make_event(
        event_id="it-no-agreement",
        agreement_id=...,
        recipient={"org_id": "adtech-ltd", "org_type": "commercial"},
        legal_gateway="EA1996-s537A",
        purpose="research",
        channel="sftp",
        action="extract",
    ),
    "insecure": make_event(event_id="it-insecure", channel="email", action="extract"),
}
BAD_MESSAGES = [b"{not json", b'{"schema_version": "1", "event_id": "half"}']


@pytest.fixture(scope="module")
def running(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, WorkerProcess]]:
    settings = isolated_settings(broker, tmp_path_factory.mktemp("worker"))
    ensure_topics(settings)
    with Publisher(settings) as pub:
        pub.publish_agreements([make_agreement()])
    worker = WorkerProcess(settings, log_file=Path(settings.data_dir) / "worker.log").start()
    try:
        worker.wait_ready(1, timeout=120)
        with Publisher(settings) as pub:
            pub.publish_events(EVENTS.values())
            for raw in BAD_MESSAGES:
                pub.publish_raw(raw, key=b"bad")
        yield settings, worker
    finally:
        worker.stop()


def test_events_become_decisions_with_the_right_categories(running: tuple[Settings, WorkerProcess]) -> None:
    settings, _ = running
    decisions = read_topic(settings, settings.topics.decisions, expected=len(EVENTS))
    by_id = {d["event_id"]: d for d in decisions}
    assert set(by_id) == {e.event_id for e in EVENTS.values()}
    categories = {k: {v["category"] for v in by_id[e.event_id]["violations"]} for k, e in EVENTS.items()}
    assert by_id["it-compliant"]["verdict"] == "compliant"
    assert "prohibited_field" in categories["prohibited"]
    assert "no_agreement" in categories["no-agreement"]
    assert "insecure_access_route" in categories["insecure"]
    assert all(d["pack"]["sha256"] for d in decisions)


def test_alerts_are_written_for_violations(running: tuple[Settings, WorkerProcess]) -> None:
    settings, _ = running
    # The register's agreement is judged as it is applied: its findings at today's date (an overdue audit,
    # as the factory's dates age) are alerts too, and name no event.
    approval_findings = len(load_engine().judge_agreement(make_agreement(), dt.datetime.now(dt.UTC)).alerts)
    alerts = read_topic(settings, settings.topics.alerts, expected=3 + approval_findings)
    seen = {(a["event_ids"][0], a["category"]) for a in alerts if a["event_ids"]}
    assert ("it-prohibited", "prohibited_field") in seen
    assert ("it-insecure", "insecure_access_route") in seen
    assert all(a["event_ids"] != ["it-compliant"] for a in alerts)


def test_invalid_messages_land_in_the_dead_letter_topic_with_reason(running: tuple[Settings, WorkerProcess]) -> None:
    settings, _ = running
    dead = read_topic(settings, settings.topics.deadletter, expected=len(BAD_MESSAGES))
    assert sorted(base64.b64decode(d["value_b64"]) for d in dead) == sorted(BAD_MESSAGES)
    reasons = {base64.b64decode(d["value_b64"]): d["reason"] for d in dead}
    assert reasons[b"{not json"] == "not_json"
    assert reasons[b'{"schema_version": "1", "event_id": "half"}'] == "schema_violation"
    assert all(d["source"]["topic"] == settings.topics.access for d in dead)


def test_metrics_endpoint_shows_the_counts(running: tuple[Settings, WorkerProcess]) -> None:
    settings, worker = running
    read_topic(settings, settings.topics.decisions, expected=len(EVENTS))
    text = worker.metrics_text()
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['gatewatch_decisions_total{verdict="compliant"}'] == 1.0
    assert samples['gatewatch_decisions_total{verdict="violation"}'] == 3.0
    assert samples['gatewatch_dead_letters_total{reason="not_json",topic="access"}'] == 1.0
    assert samples['gatewatch_dead_letters_total{reason="schema_violation",topic="access"}'] == 1.0
    assert any(k.startswith("gatewatch_rule_pack_info{") for k in samples)
    assert any(
        k.startswith('gatewatch_alerts_total{category="prohibited_field"') and v >= 1 for k, v in samples.items()
    )


def test_decisions_on_the_topic_form_an_intact_hash_chain(running: tuple[Settings, WorkerProcess]) -> None:
    from streams.offline.audit import verify_topic

    settings, _ = running
    read_topic(settings, settings.topics.decisions, expected=len(EVENTS))
    reports = verify_topic(settings)
    assert sum(r.records for r in reports) == len(EVENTS)
    assert all(r.ok for r in reports), [b for r in reports for b in r.breaks]


def test_batched_events_each_get_a_decision(running: tuple[Settings, WorkerProcess]) -> None:
    settings, _ = running
    events = [make_event(event_id=f"it-batch-{i}", record_count=10 + i) for i in range(25)]
    with Publisher(settings) as pub:
        assert pub.publish_batches(events, batch_size=10) == 25
    decisions = read_topic(settings, settings.topics.decisions, expected=len(EVENTS) + 25)
    batched = {d["event_id"]: d for d in decisions if str(d["event_id"]).startswith("it-batch-")}
    assert set(batched) == {e.event_id for e in events}
    assert {d["source"]["index"] for d in batched.values()} == set(range(10))  # type: ignore[index]


def test_the_worker_log_is_json_lines_for_a_log_shipper(running: tuple[Settings, WorkerProcess]) -> None:
    settings, worker = running
    read_topic(settings, settings.topics.decisions, expected=len(EVENTS))
    ours = [line for line in worker.log_file.read_text().splitlines() if '"violation"' in line]
    assert ours, "the violations were logged"
    for line in ours:  # whole lines of JSON, not wrapped in another logger's prefix
        assert json.loads(line)["event"] == "violation"


def test_the_worker_runs_with_the_tuned_garbage_collector(running: tuple[Settings, WorkerProcess]) -> None:
    _, worker = running
    lines = [json.loads(line) for line in worker.log_file.read_text().splitlines() if '"gc_tuned"' in line]
    assert len(lines) == 1
    assert lines[0]["gc_threshold"] == THRESHOLDS[0]
    assert lines[0]["gc_frozen_objects"] > 10_000  # the engine, catalogue and app, out of every collection
