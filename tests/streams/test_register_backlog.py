"""A worker started on a backlog judges the first events against the register published before them.

Faust delivers every topic through one loop: with more access messages waiting than an agent's queue
holds (4,096), a worker that waited for its register agent before the first event stalled, because
the agreements behind the access messages were never delivered, and then judged events against an
empty register ("no agreement"; 4,209 events in one of three runs of tests/reliability/test_kill.py).
The stall depends on how Faust's fetches interleave, so it does not show on every run; this test checks
the outcome (no event judged without its agreement) and that the whole register was visible before the
first event: applied by the agent, or read straight from the agreements topic (the direct path, taken
when the agent has not applied them yet; whether it has depends on timing too).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rules import load_engine
from streams.cli.runner import WorkerProcess
from streams.offline.simulate import Simulator
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests.conftest import isolated_settings, read_topic
from tests.reliability.support import SIM_START, sample_agreements

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BACKLOG = 6_000  # more than Faust's stream buffer (stream_buffer_maxsize 4,096)


@pytest.mark.timeout(300)
def test_a_backlog_larger_than_the_stream_buffer_is_judged_against_the_whole_register(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(broker, tmp_path)
    ensure_topics(settings)
    agreements = sample_agreements()
    events = [s.event for s in Simulator(agreements, seed=11, start=SIM_START).events(BACKLOG)]
    with Publisher(settings) as pub:
        pub.publish_agreements(agreements)
        pub.publish_events(events)
    engine, register = load_engine(), {a.agreement_id: a for a in agreements}
    expected = {
        e.event_id
        for e in events
        if any(
            v.category.value == "no_agreement"
            for v in engine.evaluate(e, register.get(e.agreement_id) if e.agreement_id else None).violations
        )
    }
    worker = WorkerProcess(settings, log_file=tmp_path / "worker.log").start()
    try:
        decisions = read_topic(settings, settings.topics.decisions, expected=BACKLOG, timeout=240)
    finally:
        worker.stop()
    judged = {d["event_id"]: d for d in decisions}
    assert len(judged) == BACKLOG
    no_agreement = {
        event_id
        for event_id, d in judged.items()
        if any(v["category"] == "no_agreement" for v in d["violations"])  # type: ignore[union-attr]
    }
    assert no_agreement == expected, f"{len(no_agreement - expected)} events judged without their agreement"
    # Before the first event the whole register was visible: applied by its agent, or (when the agent had
    # not got to it, the case that used to stall) read straight from the topic.
    ready = [
        doc
        for line in (tmp_path / "worker.log").read_text().splitlines()
        if line.startswith("{") and (doc := json.loads(line)).get("event") == "register_ready"
    ]
    assert len(ready) == 1, ready
    assert ready[0]["end"] >= 1
    assert ready[0]["applied_by_agent"] >= ready[0]["end"] or ready[0]["read_directly"] >= 1, ready
