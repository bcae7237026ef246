"""A backtest reproduces live alert ids: `check` and `replay` judge with the worker's settings.

Per-pupil windowed alerts (NPD-REP-01/02) hash the pupil's HMAC under GATEWATCH_PUPIL_HMAC_KEY into their
ids, so an offline run that ignored the key disagreed with the live worker on every one of them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from rules import WindowState
from schemas import AccessEvent, Agreement, MessageRef
from streams.cli.main import main
from streams.offline.check import check_outcomes
from streams.offline.replay import replay_events
from streams.offline.simulate import Simulator, load_agreements
from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker
from streams.worker.engine_setup import engine_for, lateness_of
from tests.reliability.support import SIM_START

KEY = "production-pupil-key-for-tests"


def _events() -> list[AccessEvent]:
    # 300 events start every scenario, the repeated look-ups of one pupil (NPD-REP-01) among them.
    return [s.event for s in Simulator(load_agreements(), seed=4, start=SIM_START).events(300)]


def _jsonl(events: list[AccessEvent]) -> bytes:
    return b"".join(e.model_dump_json(exclude_none=True).encode() + b"\n" for e in events)


def _live_alert_ids(settings: Settings, events: list[AccessEvent], agreements: list[Agreement]) -> set[str]:
    """The ids the worker raises: its own processor, then its pupil agent's engine over the look-ups."""
    from streams.worker.app import build_worker_app

    worker = build_worker_app(settings)
    register = {a.agreement_id: a for a in agreements}
    worker.processor.agreements = register.get
    lateness = lateness_of(settings)
    state, pupil_state = WindowState({}, lateness=lateness), WindowState({}, lateness=lateness)
    ids: set[str] = set()
    for offset, event in enumerate(events):
        ref = MessageRef(topic="access", partition=0, offset=offset)
        outcome = worker.processor.process(event.model_dump_json(exclude_none=True).encode(), None, ref, state=state)
        assert outcome.decision is not None
        ids.update(a.alert_id for a in outcome.alerts)
        for lookup in outcome.pupil_lookups:
            pupil_state.advance(lookup.occurred_at.timestamp())
            ids.update(a.alert_id for a in worker.pack.engine.run_pupil(lookup, pupil_state))
    return ids


def _rep_ids(alert_lines: list[dict[str, object]]) -> set[str]:
    return {str(a["alert_id"]) for a in alert_lines if str(a["rule_id"]).startswith("NPD-REP-")}


def test_offline_engine_with_the_pupil_key_raises_the_worker_engines_alert_ids(tmp_path: Path) -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path, pupil_hmac_key=KEY)
    events, agreements = _events(), load_agreements()
    live = _live_alert_ids(settings, events, agreements)

    checked = {
        a.alert_id
        for _, alerts in check_outcomes(
            io.BytesIO(_jsonl(events)), engine_for(settings), agreements, lateness=lateness_of(settings)
        )
        for a in alerts
    }
    replayed: set[str] = set()
    replay_events(
        [(0, e.model_dump_json(exclude_none=True).encode()) for e in events],
        engine_for(settings),
        agreements=agreements,
        sink=lambda _p, _d, alerts: replayed.update(a.alert_id for a in alerts),
        lateness=lateness_of(settings),
    )
    development = {
        a.alert_id
        for _, alerts in check_outcomes(io.BytesIO(_jsonl(events)), engine_for(Settings()), agreements)
        for a in alerts
    }

    assert live == checked
    assert live == replayed
    assert live != development, "the key must change the per-pupil alert ids, or this test proves nothing"


def test_check_alerts_file_carries_the_live_ids_when_the_pupil_key_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    events, agreements = _events(), load_agreements()
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(_jsonl(events))
    alerts_file = tmp_path / "alerts.jsonl"
    live_settings = Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path, pupil_hmac_key=KEY)
    live = _live_alert_ids(live_settings, events, agreements)
    capsys.readouterr()  # the processor's log lines
    monkeypatch.setenv("GATEWATCH_PUPIL_HMAC_KEY", KEY)

    main(["check", str(events_file), "--agreements", str(_sample_register()), "--alerts", str(alerts_file)])

    decisions = capsys.readouterr().out.splitlines()
    written = [json.loads(line) for line in alerts_file.read_text(encoding="utf-8").splitlines()]
    assert len(events) == len(decisions)
    assert live == {a["alert_id"] for a in written}
    assert _rep_ids(written), "the per-pupil rules must have fired"


def _sample_register() -> Path:
    from streams.offline.register_file import sample_register_path

    return Path(sample_register_path())


@pytest.mark.integration
def test_replay_and_check_reproduce_the_live_workers_alert_ids_under_the_production_key(
    broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.cli.runner import WorkerProcess
    from streams.transport.kafka import ensure_topics
    from streams.transport.publisher import Publisher
    from tests.conftest import isolated_settings, read_topic

    events, agreements = _events(), load_agreements()
    live_settings = isolated_settings(broker, tmp_path / "live", pupil_hmac_key=KEY)
    ensure_topics(live_settings)
    with Publisher(live_settings) as pub:
        pub.publish_agreements(agreements)
    worker = WorkerProcess(live_settings, log_file=tmp_path / "worker.log").start()
    try:
        worker.wait_ready(len(agreements), timeout=120)
        with Publisher(live_settings) as pub:
            pub.publish_events(events)
        read_topic(live_settings, live_settings.topics.decisions, expected=len(events), timeout=120)
        # Per-pupil alerts come from a second agent, after the decisions: read until no new id arrives.
        live_alerts: list[dict[str, object]] = []
        for _ in range(20):
            seen = len({a["alert_id"] for a in live_alerts})
            live_alerts = read_topic(live_settings, live_settings.topics.alerts, expected=1)
            if seen and seen == len({a["alert_id"] for a in live_alerts}):
                break
    finally:
        worker.stop()
    # Alerts about events; the worker also judges the register's agreements as it applies them, and those
    # alerts (no event) are not what check and replay reproduce from events.
    live = {str(a["alert_id"]) for a in live_alerts if a["event_ids"]}

    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(_jsonl(events))
    monkeypatch.setenv("GATEWATCH_PUPIL_HMAC_KEY", KEY)
    alerts_file = tmp_path / "alerts.jsonl"
    main(["check", str(events_file), "--agreements", str(_sample_register()), "--alerts", str(alerts_file)])
    checked = {json.loads(line)["alert_id"] for line in alerts_file.read_text(encoding="utf-8").splitlines()}
    replay_settings = isolated_settings(broker, tmp_path / "replay")
    ensure_topics(replay_settings)
    t = replay_settings.topics
    for name, value in (("DECISIONS", t.decisions), ("ALERTS", t.alerts)):
        monkeypatch.setenv(f"GATEWATCH_TOPIC_{name}", value)
    replay_args = ["replay", "--file", str(events_file), "--agreements", str(_sample_register()), "--publish"]
    assert main([*replay_args, "--bootstrap", replay_settings.kafka_bootstrap or "", "--json"]) == 0
    capsys.readouterr()
    replayed = {str(a["alert_id"]) for a in read_topic(replay_settings, t.alerts, expected=len(live))}

    assert _rep_ids(live_alerts), "the per-pupil rules must have fired live"
    assert live == checked
    assert live == replayed
