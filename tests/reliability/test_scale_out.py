"""Scale-out: two workers in one consumer group split the partitions; one dies, the other takes over with state."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2

from streams.cli.runner import WorkerProcess
from streams.offline.audit import verify_topic
from streams.offline.simulate import Simulator
from streams.transport.broker import EmbeddedBroker, free_port
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests.conftest import isolated_settings
from tests.factories import make_agreement, make_event
from tests.reliability.support import SIM_START, Accounts, Tail, report, sample_agreements

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CAP = 10_000
CAPPED = make_agreement(monthly_record_cap=CAP, per_event_record_cap=None)


def research(n: int, day: int, records: int) -> object:
    return make_event(event_id=f"cap-{n}", occurred_at=f"2025-03-{day:02d}T10:00:00+00:00", record_count=records)


def partition_of(key: str, partitions: int) -> int:
    """kafka-python's default partitioner (what Publisher uses for keyed events)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def assigned(worker: WorkerProcess) -> set[int]:
    """Access partitions a worker reports lag for: the ones it is assigned (refreshed every 5 s)."""
    try:
        text = worker.metrics_text()
    except OSError:
        return set()
    return {int(p) for p in re.findall(r'^gatewatch_partition_lag_messages\{partition="(\d+)"\}', text, re.M)}


def processed(worker: WorkerProcess) -> set[int]:
    text = worker.metrics_text()
    pattern = r'^gatewatch_partition_last_processed_timestamp_seconds\{partition="(\d+)"\}'
    return {int(p) for p in re.findall(pattern, text, re.M)}


@pytest.mark.timeout(480)
def test_two_workers_split_the_partitions_and_the_survivor_takes_over_with_windowed_state(
    broker: EmbeddedBroker, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = isolated_settings(broker, tmp_path / "a")
    ensure_topics(settings)
    agreements = [*sample_agreements(), CAPPED]
    other = settings.model_copy(update={"web_port": free_port(), "data_dir": tmp_path / "b"})
    sims = [s.event for s in Simulator(agreements[:-1], seed=3, start=SIM_START).events(400)]
    first, second = sims[:200], sims[200:]
    with Publisher(settings) as pub:
        pub.publish_agreements(agreements)
    workers = {
        "a": WorkerProcess(settings, log_file=tmp_path / "worker-a.log").start(),
        "b": WorkerProcess(other, log_file=tmp_path / "worker-b.log").start(),
    }
    t = settings.topics
    accounts = Accounts(settings)
    try:
        for w in workers.values():
            w.wait_ready(len(agreements), timeout=120)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            split = {name: assigned(w) for name, w in workers.items()}
            if all(split.values()) and set.union(*split.values()) == set(range(4)):
                break
            time.sleep(1)
        split = {name: assigned(w) for name, w in workers.items()}
        assert all(split.values()), f"both workers should own partitions: {split}"
        cap_partition = partition_of(CAPPED.recipient_org_id, settings.partitions)
        owner = next(name for name, parts in split.items() if cap_partition in parts)
        survivor = "b" if owner == "a" else "a"
        with Publisher(settings) as pub:
            pub.publish_events([*first, research(1, 2, 4000), research(2, 20, 4000)])
        with Tail(settings, [t.decisions, t.deadletter, t.alerts]) as tail:
            accounts.wait_for(tail, {e.event_id for e in first} | {"cap-1", "cap-2"}, timeout=120)
            worked = {name: processed(w) for name, w in workers.items()}
            workers[owner].kill(signal.SIGKILL)  # the worker holding the capped recipient's window dies
            workers[owner].stop()
            stopped = time.monotonic()
            with Publisher(settings) as pub:
                pub.publish_events([*second, research(3, 25, 4000)])
            ids = {e.event_id for e in sims} | {"cap-1", "cap-2", "cap-3"}
            accounts.wait_for(tail, ids, timeout=180)
            takeover = time.monotonic() - stopped
        taken = processed(workers[survivor])
    finally:
        for w in workers.values():
            w.stop()
    decisions = accounts.decisions
    missing = ids - accounts.accounted()
    reports = verify_topic(settings)
    breaks = [(r.partition, b.offset, b.kind, b.detail) for r in reports for b in r.breaks]
    report(
        request,
        events=len(ids),
        split_before=split,
        processed_before=worked,
        capped_partition=cap_partition,
        killed=owner,
        survivor_partitions_after=sorted(taken),
        takeover_seconds=round(takeover, 1),
        duplicate_decisions=accounts.duplicates(),
        ledger_breaks=breaks[:10],
    )
    assert all(worked.values()), f"each worker processed some partitions: {worked}"
    assert not missing, f"{len(missing)} events undecided, e.g. {sorted(missing)[:5]}"
    assert cap_partition in taken
    # A take-over behaves as a restart: what the dead worker wrote is not written again, the chain goes on.
    assert 0 == accounts.duplicates()
    assert [] == breaks
    assert decisions["cap-3"] >= 1
    cap_alerts = [a for a in accounts.alerts if a["category"] == "volume_cap_exceeded" and "cap-3" in a["event_ids"]]
    assert cap_alerts, "cap-3 brings March to 12,000 of 10,000 only if the 8,000 from before the kill survived"
