"""kill -9 while the register is being judged: after the restart every agreement has one decision on
npd.agreement-decisions.v1, its chain verifies, and no approval finding is paged twice."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from schemas import AgreementDecision
from streams.cli.runner import WorkerProcess
from streams.offline.audit import verify_topic
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests.conftest import isolated_settings
from tests.factories import make_agreement
from tests.reliability.support import Tail

pytestmark = pytest.mark.integration

AGREEMENTS = 120


def _register() -> list:  # type: ignore[type-arg]
    """Agreements with findings (no per-event cap for the police) and without, each its own recipient."""
    out = []
    for i in range(AGREEMENTS):
        if i % 3 == 0:
            out.append(
                make_agreement(
                    agreement_id=f"AG{i:04d}",
                    recipient_org_id=f"force-{i}",
                    recipient_org_type="police",
                    legal_gateways=["DPA2018-Sch2-p2"],
                    purposes=["crime_prevention"],
                    per_event_record_cap=None,
                )
            )
        else:
            out.append(make_agreement(agreement_id=f"AG{i:04d}", recipient_org_id=f"uni-{i}"))
    return out


@pytest.mark.timeout(600)
def test_kill_9_while_judging_the_register_leaves_one_decision_per_agreement_and_an_intact_chain(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(broker, tmp_path)
    ensure_topics(settings)
    agreements = _register()
    t = settings.topics
    decisions: Counter[str] = Counter()
    alerts: Counter[tuple[str, str]] = Counter()

    def count(records: list) -> None:  # type: ignore[type-arg]
        """Counts every record read, the ones before the kill too."""
        for record in records:
            doc = json.loads(record.value)
            if record.topic == t.agreement_decisions:
                decisions[doc["agreement_id"]] += 1
            elif not doc.get("event_ids"):  # an approval finding, not an event's
                alerts[(doc["alert_id"], str(doc.get("count")))] += 1

    worker = WorkerProcess(settings, log_file=tmp_path / "worker-1.log").start()
    try:
        with Tail(settings, [t.agreement_decisions, t.alerts]) as tail:
            time.sleep(8)  # joined the group: the register's records are judged as they arrive
            with Publisher(settings) as pub:
                pub.publish_agreements(agreements)
            deadline = time.monotonic() + 120
            while not decisions and time.monotonic() < deadline:
                count(tail.poll(50))
            assert decisions, f"no agreement decision within 120 s; see {worker.log_file}"
            worker.kill(signal.SIGKILL)  # within moments of the first decisions: before their offsets commit
            worker.stop()
            before_restart = len(decisions)
            worker = WorkerProcess(settings, log_file=tmp_path / "worker-2.log").start()
            deadline = time.monotonic() + 180
            while len(decisions) < AGREEMENTS and time.monotonic() < deadline:
                count(tail.poll(300))
            for _ in range(4):  # anything written twice follows its first copy closely
                count(tail.poll(500))
    finally:
        worker.stop()

    assert before_restart < AGREEMENTS, "the kill came after every agreement was judged: it tested nothing"
    reports = verify_topic(settings, AgreementDecision)
    assert {a.agreement_id: 1 for a in agreements} == dict(decisions)
    assert [] == [(r.partition, b.offset, b.kind) for r in reports for b in r.breaks]
    assert [] == [key for key, n in alerts.items() if n > 1]
