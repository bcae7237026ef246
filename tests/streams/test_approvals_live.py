"""Approvals judged live on a real embedded broker: a bad agreement published to a running worker raises
its alert once; re-published unchanged it raises nothing more; changed, it is judged afresh."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.agreement import Agreement
from schemas.agreement_decision import AgreementDecision
from schemas.ledger import verify_partition
from streams.cli.main import main
from streams.cli.runner import WorkerProcess, settings_env
from streams.offline.audit import verify_topic
from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests.conftest import isolated_settings, read_topic
from tests.factories import make_agreement

pytestmark = pytest.mark.integration


def _agreement(**overrides: Any) -> Agreement:
    """A clean research agreement in date today (audited a month ago), with `overrides`."""
    today = dt.date.today()
    dates = {
        "valid_from": str(today - dt.timedelta(days=400)),
        "valid_until": str(today + dt.timedelta(days=400)),
        "last_audit_at": str(today - dt.timedelta(days=30)),
    }
    return make_agreement(**{**dates, **overrides})


GOOD = _agreement(agreement_id="AG-LIVE-GOOD")
#: Nationality allowed: a prohibited field, whatever the recipient (NPD-APR-04), and nothing else.
BAD = _agreement(agreement_id="AG-LIVE-BAD", fields_allowed=["pmr", "attainment", "nationality"])
#: An agreement changed: a second prohibited field makes a new version, judged afresh.
CHANGING = _agreement(agreement_id="AG-LIVE-CHANGE", fields_allowed=["pmr", "nationality"])
CHANGED = _agreement(agreement_id="AG-LIVE-CHANGE", fields_allowed=["pmr", "nationality", "country_of_birth"])
#: Published after the re-publication: once its alert is out, the worker has applied what came before.
MARKER = _agreement(agreement_id="AG-LIVE-MARKER", access_route="direct_allowed")


@pytest.fixture(scope="module")
def worker(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, WorkerProcess]]:
    # No sweep during the test: the alerts topic then holds only what applying agreements raised.
    settings = isolated_settings(broker, tmp_path_factory.mktemp("approvals"), sweep_interval_seconds=3600)
    ensure_topics(settings)
    with Publisher(settings) as pub:
        pub.publish_agreements([GOOD])
    process = WorkerProcess(settings, log_file=Path(settings.data_dir) / "worker.log").start()
    try:
        process.wait_ready(1, timeout=120)
        yield settings, process
    finally:
        process.stop()


def _read_until(settings: Settings, topic: str, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """The topic's records once `done` holds for them (or after a generous wait: the assertions then tell)."""
    deadline = time.monotonic() + 90
    records = read_topic(settings, topic, expected=1, timeout=5)
    while not done(records) and time.monotonic() < deadline:
        records = read_topic(settings, topic, expected=len(records) + 1, timeout=5)
    return records


def _of(records: list[dict[str, Any]], agreement_id: str) -> list[dict[str, Any]]:
    return [r for r in records if r["agreement_id"] == agreement_id]


def test_a_bad_agreement_raises_its_alert_once_and_unchanged_republication_raises_nothing(
    worker: tuple[Settings, WorkerProcess],
) -> None:
    settings, _ = worker
    alerts_topic = settings.topics.alerts
    with Publisher(settings) as pub:
        pub.publish_agreements([BAD])
    first = _of(_read_until(settings, alerts_topic, lambda rs: bool(_of(rs, "AG-LIVE-BAD"))), "AG-LIVE-BAD")
    assert [("NPD-APR-04", "prohibited_field")] == [(a["rule_id"], a["category"]) for a in first]

    with Publisher(settings) as pub:
        pub.publish_agreements([BAD, MARKER])
    # MARKER's own alert (direct supply under the research power) shows the re-publication was applied.
    alerts = _read_until(settings, alerts_topic, lambda rs: bool(_of(rs, "AG-LIVE-MARKER")))
    assert ["NPD-APR-07"] == [a["rule_id"] for a in _of(alerts, "AG-LIVE-MARKER")]
    assert first == _of(alerts, "AG-LIVE-BAD")

    decisions = _read_until(settings, settings.topics.agreement_decisions, lambda rs: bool(_of(rs, "AG-LIVE-MARKER")))
    judged = [d["agreement_id"] for d in decisions]
    assert (1, 1) == (judged.count("AG-LIVE-BAD"), judged.count("AG-LIVE-MARKER"))
    assert judged.index("AG-LIVE-BAD") < judged.index("AG-LIVE-MARKER")
    assert ["compliant"] == [d["verdict"] for d in _of(decisions, "AG-LIVE-GOOD")]


def test_a_changed_agreement_is_judged_afresh_with_a_new_alert_id(worker: tuple[Settings, WorkerProcess]) -> None:
    settings, _ = worker
    with Publisher(settings) as pub:
        pub.publish_agreements([CHANGING])
    before = _of(
        _read_until(settings, settings.topics.alerts, lambda rs: bool(_of(rs, "AG-LIVE-CHANGE"))), "AG-LIVE-CHANGE"
    )
    with Publisher(settings) as pub:
        pub.publish_agreements([CHANGED])
    after = _of(
        _read_until(settings, settings.topics.alerts, lambda rs: len(_of(rs, "AG-LIVE-CHANGE")) > 1), "AG-LIVE-CHANGE"
    )
    assert (1, 2) == (len(before), len({a["alert_id"] for a in after}))
    # (the alerts topic is partitioned by alert id: the new alert is the one with the new id)
    [new] = [a for a in after if a["alert_id"] != before[0]["alert_id"]]
    assert "country_of_birth" in new["explanation"]
    assert "country_of_birth" not in before[0]["explanation"]


def test_agreement_decisions_form_one_verifiable_hash_chain(
    worker: tuple[Settings, WorkerProcess], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, _ = worker
    with Publisher(settings) as pub:
        pub.publish_agreements([_agreement(agreement_id="AG-LIVE-CHAIN", dpia_ref=None, fields_allowed=["cin"])])
    decisions = _read_until(settings, settings.topics.agreement_decisions, lambda rs: bool(_of(rs, "AG-LIVE-CHAIN")))
    records = [(i, json.dumps(d).encode()) for i, d in enumerate(decisions)]
    report = verify_partition(0, records, model=AgreementDecision)
    assert ([], len(decisions)) == (report.breaks, report.records)
    assert list(range(len(decisions))) == [d["ledger"]["seq"] for d in decisions]
    assert ["NPD-APR-08"] == [v["rule_id"] for v in _of(decisions, "AG-LIVE-CHAIN")[0]["violations"]]
    # `gatewatch audit verify --agreement-decisions`: the topic, then an export with one decision altered.
    [topic_report] = verify_topic(settings, AgreementDecision)
    assert (True, len(decisions)) == (topic_report.ok, topic_report.records)
    export = tmp_path / "agreement-decisions.jsonl"
    altered = [
        {**d, "verdict": "compliant", "violations": []} if d["agreement_id"] == "AG-LIVE-CHAIN" else d
        for d in decisions
    ]
    export.write_text("".join(json.dumps(d) + "\n" for d in altered), encoding="utf-8")
    assert 1 == main(["audit", "verify", "--agreement-decisions", "--file", str(export)])
    assert "altered" in capsys.readouterr().out


def test_the_gauge_counts_the_registers_agreements_by_finding_category(worker: tuple[Settings, WorkerProcess]) -> None:
    settings, process = worker
    with Publisher(settings) as pub:
        pub.publish_agreements([_agreement(agreement_id="AG-LIVE-GAUGE", fields_allowed=["english_proficiency"])])
    _read_until(settings, settings.topics.alerts, lambda rs: bool(_of(rs, "AG-LIVE-GAUGE")))
    deadline = time.monotonic() + 60
    samples = _gauge(process.metrics_text())
    while samples.get("prohibited_field", 0) < 1 and time.monotonic() < deadline:  # refreshed every 5 s
        time.sleep(0.5)
        samples = _gauge(process.metrics_text())
    assert 0 == samples["no_agreement"]
    assert samples["prohibited_field"] >= 1


def _gauge(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("gatewatch_agreement_findings{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('category="', 1)[1].split('"', 1)[0]] = float(value)
    return out


def test_agreements_load_publishes_then_prints_the_findings(
    worker: tuple[Settings, WorkerProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, _ = worker
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "register.json"
    loaded = _agreement(agreement_id="AG-LIVE-LOAD", purposes=["research", "marketing"])
    path.write_text(json.dumps([loaded.model_dump(mode="json")]), encoding="utf-8")
    assert 0 == main(["agreements", "load", str(path)])
    out = capsys.readouterr().out.splitlines()
    assert f"published 1 agreements to {settings.topics.agreements}" == out[0]
    assert out[1].endswith(": 1 of 1 agreements")
    assert ["NPD-APR-02", "NPD-APR-03"] == [line.split()[1] for line in out[2:4]]
    assert "by category: purpose_not_permitted_by_gateway 2" == out[4]
    # It still publishes: the worker judges it too.
    alerts = _read_until(settings, settings.topics.alerts, lambda rs: len(_of(rs, "AG-LIVE-LOAD")) >= 2)
    assert ["NPD-APR-02", "NPD-APR-03"] == sorted(a["rule_id"] for a in _of(alerts, "AG-LIVE-LOAD"))


def test_after_a_restart_an_unchanged_agreement_is_still_not_judged_again_and_a_withdrawn_one_is(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(broker, tmp_path / "restart", sweep_interval_seconds=3600)
    ensure_topics(settings)
    bad = _agreement(agreement_id="AG-RESTART-BAD", fields_allowed=["pmr", "nationality"])
    decisions_topic = settings.topics.agreement_decisions
    with Publisher(settings) as pub:
        pub.publish_agreements([bad])
    first = WorkerProcess(settings, log_file=tmp_path / "first.log").start()
    try:
        first.wait_ready(1, timeout=120)
        _read_until(settings, decisions_topic, lambda rs: bool(_of(rs, "AG-RESTART-BAD")))
    finally:
        first.stop()
    second = WorkerProcess(settings, log_file=tmp_path / "second.log").start()
    try:
        second.wait_ready(1, timeout=120)
        with Publisher(settings) as pub:
            pub.publish_agreements([bad, _agreement(agreement_id="AG-RESTART-MARK-1")])
        decisions = _read_until(settings, decisions_topic, lambda rs: bool(_of(rs, "AG-RESTART-MARK-1")))
        assert 1 == len(_of(decisions, "AG-RESTART-BAD"))
        with Publisher(settings) as pub:
            pub.publish_raw(None, key=b"AG-RESTART-BAD", topic=settings.topics.agreements)  # withdrawn
            pub.publish_agreements([bad, _agreement(agreement_id="AG-RESTART-MARK-2")])
        decisions = _read_until(settings, decisions_topic, lambda rs: bool(_of(rs, "AG-RESTART-MARK-2")))
    finally:
        second.stop()
    assert 2 == len(_of(decisions, "AG-RESTART-BAD"))
    alerts = read_topic(settings, settings.topics.alerts, expected=2)
    assert 1 == len({a["alert_id"] for a in _of(alerts, "AG-RESTART-BAD")})
