"""Exactly-once effect: what a worker learns from the output topics, and the order that makes it enough."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from schemas.ledger import GENESIS, LedgerState
from streams.transport.broker import EmbeddedBroker
from streams.worker.exactly_once import PartitionGate, Written, WrittenPositions, read_written
from streams.worker.outbox import Outbox


class _Builder(list[bytes | None]):
    def append(self, *, key: bytes | None, value: bytes | None, timestamp: object) -> object:  # type: ignore[override]
        super().append(value)
        return True


class _Producer:
    """Records what is submitted, in order; each send's delivery is a future the test resolves."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, list[bytes | None]]] = []
        self.futures: list[asyncio.Future[Any]] = []

    def create_batch(self) -> _Builder:
        return _Builder()

    async def send_batch(self, builder: _Builder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        self.sent.append((topic, partition, list(builder)))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut


def _topics(producer: _Producer) -> list[str]:
    return [topic for topic, _, _ in producer.sent]


def test_a_decision_is_submitted_only_after_the_other_outputs_of_its_event_are_acknowledged() -> None:
    async def run() -> None:
        producer = _Producer()
        outbox = Outbox(lambda: producer, last_topics=frozenset({"decisions"}))
        await outbox.add("alerts", None, b"alert", partition=1)
        await outbox.add("decisions", None, b"decision", partition=0)
        sending = asyncio.create_task(outbox.send())
        await asyncio.sleep(0.01)
        assert ["alerts"] == _topics(producer)  # the decision waits for the alert's acknowledgement
        producer.futures[0].set_result(None)
        await sending  # the agent is not held up meanwhile: the decision goes out in the background
        await outbox.drain()
        assert ["alerts", "decisions"] == _topics(producer)

    asyncio.run(run())


def test_a_decision_waits_while_its_lookups_are_not_yet_wrapped_and_goes_with_everything() -> None:
    async def run() -> None:
        producer = _Producer()
        outbox = Outbox(lambda: producer, last_topics=frozenset({"decisions"}), group_linger=60.0)
        outbox.grouped("lookups", lambda items: b"[" + b",".join(items) + b"]")
        outbox.collect("lookups", 2, b"1")
        await outbox.add("decisions", None, b"d1", partition=0)
        await outbox.send()
        assert [] == _topics(producer)  # the look-up is not due yet, so neither is the decision
        await outbox.add("decisions", None, b"d2", partition=0)
        sending = asyncio.create_task(outbox.send(everything=True))
        await asyncio.sleep(0.01)
        producer.futures[0].set_result(None)
        await sending
        assert [("lookups", 2, [b"[1]"]), ("decisions", 0, [b"d1"]), ("decisions", 0, [b"d2"])] == producer.sent

    asyncio.run(run())


def test_a_decision_is_held_when_another_output_of_its_send_failed() -> None:
    async def run() -> None:
        producer = _Producer()
        outbox = Outbox(lambda: producer, last_topics=frozenset({"decisions"}))
        await outbox.add("deadletter", None, b"dead", partition=0)
        await outbox.add("decisions", None, b"decision", partition=0)
        sending = asyncio.create_task(outbox.send(everything=True))
        await asyncio.sleep(0.01)
        producer.futures[0].set_exception(RuntimeError("broker said no"))
        await sending
        assert ["deadletter"] == _topics(producer)
        assert outbox.pending  # kept, in order, for the next send

    asyncio.run(run())


def test_a_decision_held_for_its_lookups_stays_held_when_its_alert_was_not_acknowledged() -> None:
    """The alert goes out in one send while the decision waits for its look-ups; the alert fails: the decision
    must not go out with the next send, whose own records are all acknowledged."""

    async def run() -> None:
        producer = _Producer()
        outbox = Outbox(lambda: producer, last_topics=frozenset({"decisions"}), group_linger=60.0)
        outbox.grouped("lookups", lambda items: b"[" + b",".join(items) + b"]")
        await outbox.add("alerts", None, b"alert", partition=1)
        outbox.collect("lookups", 2, b"1")
        await outbox.add("decisions", None, b"decision", partition=0)
        await outbox.send()  # the alert goes; the decision waits for the look-up's wrapping
        producer.futures[0].set_exception(RuntimeError("broker said no"))
        sending = asyncio.create_task(outbox.send(everything=True))
        await asyncio.sleep(0.01)
        for future in producer.futures[1:]:
            future.set_result(None)
        await sending
        assert ["alerts", "lookups"] == _topics(producer)
        assert outbox.pending  # the decision is kept, and stays kept: its event is processed again after a restart

    asyncio.run(run())


def _positions(**written: Written) -> WrittenPositions:
    async def reader(partitions: list[int]) -> dict[int, Written]:
        return {p: written[f"p{p}"] for p in partitions if f"p{p}" in written}

    return WrittenPositions(reader)


def test_positions_at_or_before_the_last_written_output_are_done_per_kind() -> None:
    positions = _positions(p0=Written(decided=(10, 2), dead=(7, 0), ledger=LedgerState(11, "a" * 64)))
    asyncio.run(positions.load([0, 1]))
    assert [True, True, False, False] == [
        positions.written(0, (10, 1)),
        positions.written(0, (10, 2)),
        positions.written(0, (10, 3)),
        positions.written(0, (11, 0)),
    ]
    assert [True, False] == [
        positions.written(0, (7, 0), dead_letter=True),
        positions.written(0, (8, 0), dead_letter=True),
    ]
    assert LedgerState(11, "a" * 64) == positions.ledger(0)
    assert [False] == [positions.alert_written(0, "w1", 2)]
    assert LedgerState(0, GENESIS) == positions.ledger(1)  # nothing written yet: the chain starts at genesis
    assert not positions.written(1, (0, 0))


def test_an_alert_record_already_on_the_topic_is_recognised_by_its_id_and_count() -> None:
    positions = _positions(p0=Written(decided=(10, 0), alerts={("w1", 2), ("s1", 1)}))
    asyncio.run(positions.load([0]))
    assert [True, False, True, False] == [
        positions.alert_written(0, "w1", 2),
        positions.alert_written(0, "w1", 4),  # the same window, a later alert record
        positions.alert_written(0, "s1", 1),
        positions.alert_written(0, "s2", 1),
    ]


def test_the_gate_holds_events_during_a_revocation_and_refuses_partitions_no_longer_assigned() -> None:
    async def run() -> list[str]:
        assigned = {0, 1}
        gate = PartitionGate(_positions(), lambda: assigned)
        steps: list[str] = []
        release = asyncio.Event()

        async def flush() -> None:
            steps.append("flush started")
            await release.wait()
            assigned.discard(1)
            steps.append("flush done")

        revoking = asyncio.create_task(gate.revoke([1], flush))
        await asyncio.sleep(0)
        admitted = asyncio.create_task(gate.admit(1))
        await asyncio.sleep(0.01)
        assert not admitted.done()  # no event changes state while the revocation flushes
        release.set()
        await revoking
        steps.append(f"admit 1: {await admitted}")
        steps.append(f"admit 0: {await gate.admit(0)}")
        return steps

    assert ["flush started", "flush done", "admit 1: False", "admit 0: True"] == asyncio.run(run())


@pytest.mark.integration
def test_read_written_finds_the_last_decision_dead_letter_and_link_behind_other_records(broker: EmbeddedBroker) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("eo.decisions", 2, 1), NewTopic("eo.deadletter", 2, 1), NewTopic("eo.alerts", 4, 1)])
    admin.close()

    def decision(offset: int, index: int | None, seq: int) -> bytes:
        source = {"topic": "eo.access", "partition": 0, "offset": offset, "index": index}
        return json.dumps({"source": source, "ledger": {"seq": seq, "hash": f"{seq:064x}"}}).encode()

    def dead(topic: str, offset: int) -> bytes:
        return json.dumps({"source": {"topic": topic, "partition": 0, "offset": offset}}).encode()

    async def run() -> dict[int, Written]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_batch_size=1 << 20, linger_ms=20)
        await producer.start()
        try:
            # More decisions than one scan step, in large batches; then access dead letters followed by
            # more than a scan step of an agreement topic's dead letters (they share the partition).
            for i in range(1200):
                await producer.send("eo.decisions", decision(i // 3, i % 3, i), partition=0)
            for i in range(3):
                await producer.send("eo.deadletter", dead("eo.access", 5000 + i), partition=0)
            for i in range(700):
                await producer.send("eo.deadletter", dead("eo.agreements", i), partition=0)
            for i, count in enumerate((1, 1, 2)):  # alerts of events after the last decision, left by a kill
                alert = json.dumps({"alert_id": f"a{i % 2}", "count": count}).encode()
                await producer.send("eo.alerts", alert, partition=i)
            # An alert record from long before: outside the window, and its partition has nothing after it.
            old = json.dumps({"alert_id": "old", "count": 1}).encode()
            await producer.send("eo.alerts", old, partition=3, timestamp_ms=int(time.time() * 1000) - 3_600_000)
            await producer.flush()
        finally:
            await producer.stop()
        config = {"bootstrap_servers": broker.bootstrap}
        return await read_written(config, "eo.access", "eo.decisions", "eo.deadletter", "eo.alerts", [0, 1])

    found = asyncio.run(run())
    assert ((399, 2), (5002, 0), LedgerState(1200, f"{1199:064x}")) == (
        found[0].decided,
        found[0].dead,
        found[0].ledger,
    )
    assert {("a0", 1), ("a1", 1), ("a0", 2)} == found[0].alerts == found[1].alerts
    assert (None, None, LedgerState()) == (found[1].decided, found[1].dead, found[1].ledger)
