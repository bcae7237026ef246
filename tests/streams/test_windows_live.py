"""Windowed rules on the real broker: Faust tables in event time, across a kill -9 and restart."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas import AccessEvent
from streams.cli.runner import WorkerProcess
from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests.conftest import isolated_settings, read_topic
from tests.factories import make_agreement, make_event

pytestmark = pytest.mark.integration

CAP = 10_000
AGREEMENTS = [
    make_agreement(monthly_record_cap=CAP, per_event_record_cap=None),
    make_agreement(
        agreement_id="DSA-POLICE-1",
        recipient_org_id="police-north",
        recipient_org_type="police",
        legal_gateways=["DPA2018-Sch2-p2"],
        purposes=["crime_prevention"],
        fields_allowed=["name", "address", "school_urn", "upn"],
        access_route="direct_allowed",
        monthly_record_cap=None,
        per_event_record_cap=None,
        recipient_ico_registration=None,
    ),
    make_agreement(
        agreement_id="DSA-HO-1",
        recipient_org_id="home-office",
        recipient_org_type="home_office",
        legal_gateways=["DPA2018-Sch2-p4"],
        purposes=["immigration_enforcement"],
        fields_allowed=["address", "school_urn", "school_name"],
        access_route="direct_allowed",
        monthly_record_cap=None,
        per_event_record_cap=None,
        recipient_ico_registration=None,
    ),
]


def research(n: int, day: int, records: int, month: int = 3) -> AccessEvent:
    return make_event(
        event_id=f"res-{n}", occurred_at=f"2026-{month:02d}-{day:02d}T10:00:00+00:00", record_count=records
    )


def police(n: int, day: int, pupil: str) -> AccessEvent:
    return make_event(
        event_id=f"pol-{n}",
        occurred_at=f"2026-03-{day:02d}T11:00:00+00:00",
        action="search",
        recipient={"org_id": "police-north", "org_type": "police", "name": None, "ico_registration": None},
        actor={"user_id": "pc-1", "org_id": "police-north"},
        agreement_id="DSA-POLICE-1",
        legal_gateway="DPA2018-Sch2-p2",
        purpose="crime_prevention",
        fields=["name", "school_urn"],
        record_count=1,
        pupil_refs=[pupil],
        channel="portal",
        case_reference="CR-1",
        evidence_attestation=True,
    )


def home_office(n: int, day: int, pupil: str) -> AccessEvent:
    return make_event(
        event_id=f"ho-{n}",
        occurred_at=f"2026-03-{day:02d}T12:00:00+00:00",
        action="match_check",
        recipient={"org_id": "home-office", "org_type": "home_office", "name": None, "ico_registration": None},
        actor={"user_id": "ho-1", "org_id": "home-office"},
        agreement_id="DSA-HO-1",
        legal_gateway="DPA2018-Sch2-p4",
        purpose="immigration_enforcement",
        fields=["address", "school_urn"],
        record_count=1,
        pupil_refs=[pupil],
        channel="portal",
        case_reference="HO-77",
        evidence_attestation=True,
    )


def categories(decisions: list[dict[str, object]], event_id: str) -> set[str]:
    found = [d for d in decisions if d["event_id"] == event_id]
    assert found, f"no decision for {event_id}"
    return {v["category"] for v in found[-1]["violations"]}  # type: ignore[index, union-attr]


@pytest.fixture(scope="module")
def run(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, list[str]]]:
    data = tmp_path_factory.mktemp("windows")
    settings = isolated_settings(broker, data)
    ensure_topics(settings)
    with Publisher(settings) as pub:
        pub.publish_agreements(AGREEMENTS)
    before = [research(1, 2, 4000), research(2, 20, 4000), police(1, 3, "PUPILREF0001"), police(2, 4, "PUPILREF0001")]
    # Out of order: the 3rd March extract arrives before the 1st; it still counts in March.
    after = [
        research(4, 25, 4000),
        research(3, 3, 100),
        research(5, 2, 9000, month=4),
        police(3, 5, "PUPILREF0001"),
        police(4, 6, "PUPILREF0001"),
        home_office(1, 9, "PUPILREF0001"),
    ]
    worker = WorkerProcess(settings, log_file=Path(data) / "worker-1.log").start()
    try:
        worker.wait_ready(len(AGREEMENTS), timeout=120)
        with Publisher(settings) as pub:
            pub.publish_events(before)
        read_topic(settings, settings.topics.decisions, expected=len(before))
        worker.kill(signal.SIGKILL)  # no clean shutdown: the state must come back from the changelog
        worker.stop()
        worker = WorkerProcess(settings, log_file=Path(data) / "worker-2.log").start()
        worker.wait_ready(len(AGREEMENTS), timeout=120)
        with Publisher(settings) as pub:
            pub.publish_events(after)
        read_topic(settings, settings.topics.decisions, expected=len(before) + len(after))
        yield settings, [e.event_id for e in before + after]
    finally:
        worker.stop()


def test_monthly_cap_counts_events_from_before_the_restart(run: tuple[Settings, list[str]]) -> None:
    settings, ids = run
    decisions = read_topic(settings, settings.topics.decisions, expected=len(ids))
    assert "volume_cap_exceeded" not in categories(decisions, "res-2")  # 8,000 of 10,000
    assert "volume_cap_exceeded" in categories(decisions, "res-4")  # 12,000 (4,000 were seen before the kill)
    assert "volume_cap_exceeded" in categories(decisions, "res-3")  # late, but March is over the cap
    assert "volume_cap_exceeded" not in categories(decisions, "res-5")  # April starts again at 9,000


def test_repeated_lookup_of_one_pupil_counts_across_the_restart(run: tuple[Settings, list[str]]) -> None:
    settings, ids = run
    decisions = read_topic(settings, settings.topics.decisions, expected=len(ids))
    assert "repeated_pupil_lookup" not in categories(decisions, "pol-3")  # 3rd look-up in 30 days
    assert "repeated_pupil_lookup" in categories(decisions, "pol-4")  # 4th: more than 3


def test_windowed_alerts_are_deduplicated_and_cross_recipient_lookups_alert(run: tuple[Settings, list[str]]) -> None:
    settings, ids = run
    alerts = read_topic(settings, settings.topics.alerts, expected=3)
    monthly = [a for a in alerts if a["category"] == "volume_cap_exceeded"]
    assert len({a["alert_id"] for a in monthly}) == 1, "one alert per recipient and month"
    assert max(a["count"] for a in monthly) == 2  # type: ignore[type-var]
    cross = [a for a in alerts if a["category"] == "repeated_pupil_lookup" and "ho-1" in a["event_ids"]]  # type: ignore[operator]
    assert cross, "police and Home Office looked up the same pupil within 90 days"
    text = str(alerts) + str(read_topic(settings, settings.topics.decisions, expected=len(ids)))
    assert "PUPILREF0001" not in text
