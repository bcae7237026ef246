"""Broker freeze: SIGSTOP the embedded broker for 30 s mid-stream; the worker recovers by itself, losing nothing."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from streams.cli.runner import WorkerProcess
from streams.offline.simulate import Simulator
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests.conftest import isolated_settings
from tests.reliability.support import SIM_START, Accounts, Tail, report, sample_agreements

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FREEZE_SECONDS = 30.0
RATE = 5.0  # events per second: steady, well under what the worker sustains
RECOVERY_BOUND = 120.0


def _timer_log_lines(log: Path) -> list[dict[str, object]]:
    lines = []
    for text in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        if isinstance(doc, dict) and str(doc.get("event", "")).startswith("timer_"):
            lines.append(doc)
    return lines


class SteadyPublisher(threading.Thread):
    """Publishes events at a fixed pace; records which ones the broker acknowledged."""

    def __init__(self, publisher: Publisher, events: list, rate: float) -> None:  # type: ignore[type-arg]
        super().__init__(daemon=True)
        self.publisher, self.events, self.rate = publisher, events, rate
        self.acked: set[str] = set()
        self.failed: dict[str, str] = {}
        self.sent = 0
        self.sent_ids: list[str] = []
        self.halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        start = time.monotonic()
        topic = self.publisher.settings.topics.access
        for i, event in enumerate(self.events):
            if self.halt.is_set():
                break
            future = self.publisher._producer.send(
                topic, key=event.recipient.org_id.encode(), value=event.model_dump_json(exclude_none=True).encode()
            )
            future.add_callback(self._ok, event.event_id)
            future.add_errback(self._failed, event.event_id)
            self.sent += 1
            self.sent_ids.append(event.event_id)
            time.sleep(max(0.0, start + (i + 1) / self.rate - time.monotonic()))

    def _ok(self, event_id: str, _meta: object) -> None:
        with self._lock:
            self.acked.add(event_id)

    def _failed(self, event_id: str, exc: BaseException) -> None:
        with self._lock:
            self.failed[event_id] = repr(exc)


@pytest.mark.timeout(420)
def test_worker_recovers_by_itself_after_the_broker_is_frozen_for_30_seconds(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A broker of its own: freezing the session broker would freeze every other test's worker.
    with EmbeddedBroker(log_file=tmp_path / "tansu.log") as broker:
        settings = isolated_settings(broker, tmp_path)
        ensure_topics(settings)
        agreements = sample_agreements()
        events = [s.event for s in Simulator(agreements, seed=11, start=SIM_START).events(int(RATE * 120))]
        with Publisher(settings) as pub:
            pub.publish_agreements(agreements)
        worker = WorkerProcess(settings, log_file=tmp_path / "worker.log").start()
        t = settings.topics
        accounts = Accounts(settings)
        try:
            worker.wait_ready(len({a.agreement_id for a in agreements}), timeout=120)
            with Publisher(settings, request_timeout_ms=60_000, delivery_timeout_ms=300_000) as pub:
                steady = SteadyPublisher(pub, events, RATE)
                steady.start()
                time.sleep(20)  # a steady stream is flowing
                frozen_wall = time.time()
                broker.signal(signal.SIGSTOP)
                try:
                    time.sleep(FREEZE_SECONDS)
                finally:
                    broker.signal(signal.SIGCONT)
                thaw_wall = time.time()
                sent_before_thaw = set(steady.sent_ids)
                steady.join(timeout=300)
                pub.flush(120)
            with Tail(settings, [t.decisions, t.deadletter]) as tail:
                waited = accounts.wait_for(tail, steady.acked, timeout=RECOVERY_BOUND)
            alive = worker.proc is not None and worker.proc.poll() is None
        finally:
            worker.stop()
    missing = steady.acked - accounts.accounted()
    times = accounts.evaluated_at
    after_thaw = [v for v in times.values() if v >= thaw_wall]
    first_after = min(after_thaw) - thaw_wall if after_thaw else None
    backlog = [times[e] for e in sent_before_thaw if e in times]
    recovery = max(backlog) - thaw_wall if backlog else None
    report(
        request,
        freeze_seconds=FREEZE_SECONDS,
        rate_per_second=RATE,
        events_sent=steady.sent,
        events_acked=len(steady.acked),
        events_failed=len(steady.failed),
        decisions_before_freeze=sum(1 for v in times.values() if v < frozen_wall),
        decisions_during_freeze=sum(1 for v in times.values() if frozen_wall <= v < thaw_wall),
        decisions_total=sum(accounts.decisions.values()),
        duplicate_decisions=accounts.duplicates(),
        first_decision_after_thaw_seconds=None if first_after is None else round(first_after, 1),
        backlog_decided_after_thaw_seconds=None if recovery is None else round(recovery, 1),
        drain_wait_seconds=round(waited, 1),
    )
    timer_lines = _timer_log_lines(tmp_path / "worker.log")
    assert alive, f"the worker exited; see {tmp_path / 'worker.log'}"
    # A timer that fails while the broker is frozen says so in one line, not a traceback every tick.
    assert [] == [line for line in timer_lines if line["event"] == "timer_failed" or "exception" in line]
    per_timer = Counter(line["timer"] for line in timer_lines if line["event"] == "timer_failing")
    assert {} == {timer: n for timer, n in per_timer.items() if n > 2}
    assert first_after is not None, "no decision after the thaw"
    assert first_after < RECOVERY_BOUND
    assert not missing, f"{len(missing)} acknowledged events never decided, e.g. {sorted(missing)[:5]}"
    assert recovery is not None
    assert recovery < RECOVERY_BOUND, f"backlog decided {recovery} s after the thaw"
    assert not steady.failed, f"the producer gave up on {len(steady.failed)} events: {list(steady.failed.values())[:3]}"
