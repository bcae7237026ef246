"""The approval judge after a crash or a take-over: what the agreement decisions topic holds decides what
is judged again (the end-to-end kill test is tests/reliability/test_kill_approvals.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

from prometheus_client import CollectorRegistry

from rules import load_engine
from schemas import MessageRef
from schemas.ledger import LedgerState
from streams.metrics import Metrics
from streams.worker.approvals import ApprovalJudge
from streams.worker.exactly_once import JudgedTail
from streams.worker.tables import WriteBehind
from tests.factories import make_agreement
from tests.streams.test_outbox import FakeTable

AT = dt.datetime(2026, 6, 1, 9, tzinfo=dt.UTC)
ENGINE = load_engine()
# A police force with no per-event cap: an approval finding, so an alert goes out with the decision.
FLAWED = {
    "recipient_org_type": "police",
    "legal_gateways": ["DPA2018-Sch2-p2"],
    "purposes": ["crime_prevention"],
    "per_event_record_cap": None,
}


class Judge:
    """An ApprovalJudge over an in-memory ledger table, recording what it emits."""

    def __init__(self, tail: JudgedTail | None) -> None:
        self.emitted: list[tuple[str, bytes | None, bytes]] = []
        self.reads = 0

        async def emit(topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:
            self.emitted.append((topic, key, value))

        async def read() -> JudgedTail:
            self.reads += 1
            assert tail is not None
            return JudgedTail(applied=tail.applied, ledger=tail.ledger, alerts=set(tail.alerts))

        self.judge = ApprovalJudge(
            lambda: ENGINE,
            Metrics(CollectorRegistry()),
            emit,
            WriteBehind(FakeTable(), lambda *record: None),
            decisions_topic="decisions",
            alerts_topic="alerts",
            clock=lambda: AT,
            read_judged=None if tail is None else read,
        )

    def run(self, offsets: range, **overrides: Any) -> None:
        async def go() -> None:
            for offset in offsets:
                agreement = make_agreement(agreement_id=f"AG{offset:03d}", **overrides)
                await self.judge.judge(agreement, MessageRef(topic="agreements", partition=0, offset=offset))

        asyncio.run(go())

    def decisions(self) -> list[dict[str, Any]]:
        return [json.loads(v) for t, _, v in self.emitted if t == "decisions"]


def test_records_whose_decisions_are_on_the_topic_are_not_judged_again_and_the_chain_continues_from_its_tail() -> None:
    tail = LedgerState(seq=6, last_hash="ab" * 32)  # six decisions on the topic, the last for offset 5
    judge = Judge(JudgedTail(applied=5, ledger=tail))

    judge.run(range(10), **FLAWED)

    decisions = judge.decisions()
    assert [f"AG{n:03d}" for n in range(6, 10)] == [d["agreement_id"] for d in decisions]
    assert [6, 7, 8, 9] == [d["ledger"]["seq"] for d in decisions]
    assert "ab" * 32 == decisions[0]["ledger"]["prev_hash"]
    assert 4 == sum(1 for t, _, _ in judge.emitted if t == "alerts")  # no page again for 0..5
    # Those skipped count as judged: re-published unchanged, they are not judged either.
    assert judge.judge.unchanged(make_agreement(agreement_id="AG003", **FLAWED))
    assert 1 == judge.reads  # the topic is read once, before the first judgement


def test_an_empty_topic_means_every_record_is_judged_from_the_genesis_link() -> None:
    judge = Judge(JudgedTail())

    judge.run(range(3))

    assert [0, 1, 2] == [d["ledger"]["seq"] for d in judge.decisions()]


def test_losing_the_register_partition_reads_the_topic_again_before_the_next_judgement() -> None:
    judge = Judge(JudgedTail(applied=1, ledger=LedgerState(seq=2, last_hash="cd" * 32)))
    judge.run(range(3))
    judge.judge.forget()

    judge.run(range(3, 4))

    assert 2 == judge.reads


def test_without_a_reader_every_record_is_judged() -> None:
    judge = Judge(None)

    judge.run(range(3))

    assert 3 == len(judge.decisions())


def test_an_alert_on_the_topic_ahead_of_its_decision_is_not_sent_again_once() -> None:
    first = Judge(None)
    first.run(range(1), **FLAWED)
    sent = [json.loads(v) for t, _, v in first.emitted if t == "alerts"]
    already = {(a["alert_id"], a["count"]) for a in sent}
    judge = Judge(JudgedTail(alerts=already))  # killed after the alert, before the decision

    judge.run(range(1), **FLAWED)
    judge.judge.withdrawn("AG000")  # withdrawn, then approved again: a new approval, paged again
    judge.run(range(1), **FLAWED)

    assert 2 == len(judge.decisions())
    assert [a["alert_id"] for a in sent] == [json.loads(v)["alert_id"] for t, _, v in judge.emitted if t == "alerts"]
