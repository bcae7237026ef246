"""The worker's output path: batched records keep their order and partitions, and state writes stay safe."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2
from kafka.admin import KafkaAdminClient, NewTopic

from streams.transport.broker import EmbeddedBroker
from streams.worker.outbox import Outbox
from streams.worker.tables import WriteBehind

pytestmark = pytest.mark.integration


def _create(broker: EmbeddedBroker, topic: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    admin.close()


async def _read(broker: EmbeddedBroker, topic: str, expected: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[Any] = []
    try:
        for _ in range(100):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(records)
            if len(out) >= expected:
                break
    finally:
        await consumer.stop()
    return out


def test_records_keep_their_order_per_partition_and_keyed_ones_land_where_kafka_would_put_them(
    broker: EmbeddedBroker,
) -> None:
    _create(broker, "outbox-order", 3)

    async def run() -> tuple[list[Any], int, list[BaseException | None]]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_batch_size=4096)
        await producer.start()
        delivered: list[BaseException | None] = []
        outbox = Outbox(lambda: producer, linger=60.0, on_delivered=lambda f: delivered.append(f.exception()))
        try:
            for i in range(300):  # 300 records of ~200 bytes: several full builders per partition
                await outbox.add("outbox-order", None, f"{i:05d}".encode() + b"x" * 200, partition=i % 3)
                await outbox.add("outbox-order", f"key-{i}".encode(), f"k{i}".encode())
            assert outbox.pending
            assert outbox.due()
            batches = await outbox.send()
            await producer.flush()
            assert not outbox.pending
        finally:
            await producer.stop()
        return await _read(broker, "outbox-order", 600), batches, delivered

    records, batches, delivered = asyncio.run(run())
    assert len(records) == 600
    assert batches > 3
    assert len(delivered) == batches
    assert not any(delivered)
    for partition in range(3):
        ordered = [int(r.value[:5]) for r in records if r.partition == partition and r.key is None]
        assert ordered == list(range(partition, 300, 3))
    for r in records:
        if r.key is not None:
            assert r.partition == (murmur2(r.key) & 0x7FFFFFFF) % 3


def test_nothing_is_sent_before_the_linger_unless_asked() -> None:
    class Builder:
        def append(self, **_: Any) -> object:
            return object()

    class Producer:
        def create_batch(self) -> Builder:
            return Builder()

    async def run() -> tuple[bool, bool]:
        outbox = Outbox(lambda: Producer(), linger=0.05)
        await outbox.add("t", None, b"v", partition=0)
        early = outbox.due()
        await asyncio.sleep(0.06)
        return early, outbox.due()

    assert asyncio.run(run()) == (False, True)


def test_grouped_items_go_out_in_order_in_as_few_records_as_fit_and_all_of_them_before_a_commit(
    broker: EmbeddedBroker,
) -> None:
    _create(broker, "outbox-grouped", 2)

    def wrap(items: list[bytes]) -> bytes:
        return b"[" + b",".join(items) + b"]"

    async def run() -> tuple[bool, bool, list[Any]]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        outbox = Outbox(lambda: producer, linger=60.0, group_linger=60.0, group_max_bytes=1000)
        outbox.grouped("outbox-grouped", wrap)
        try:
            for i in range(60):  # 60 items of ~100 bytes on partition 0, 5 on partition 1
                outbox.collect("outbox-grouped", 0 if i % 12 else 1, b'"%03d' % i + b"x" * 95 + b'"')
            await outbox.send()  # not due: the items wait for their linger
            due_before, pending = outbox.due(), outbox.pending
            await outbox.send(everything=True)  # as before an offset commit
            await producer.flush()
        finally:
            await producer.stop()
        return due_before, pending, await _read(broker, "outbox-grouped", 2)

    due_before, pending, records = asyncio.run(run())
    assert (due_before, pending) == (False, True)
    for partition, expected in ((0, [i for i in range(60) if i % 12]), (1, [0, 12, 24, 36, 48])):
        values = [r.value for r in records if r.partition == partition]
        assert all(len(v) <= 1000 + 2 for v in values)  # the wrapper's two bytes on top of the items
        items = [int(item[:3]) for v in values for item in json.loads(v)]
        assert items == expected
    assert len([r for r in records if r.partition == 0]) == 7  # 55 items of 100 bytes (+ a comma), 9 to a record


def test_grouped_items_are_due_after_their_own_linger_and_only_declared_topics_take_them() -> None:
    class Producer:
        def create_batch(self) -> Any:
            raise AssertionError("nothing is built before the items are due")

    async def run() -> tuple[bool, bool]:
        outbox = Outbox(lambda: Producer(), linger=0.001, group_linger=0.05)
        outbox.grouped("g", lambda items: b"".join(items))
        outbox.collect("g", 3, b"item")
        await asyncio.sleep(0.01)
        early = outbox.due()
        await asyncio.sleep(0.05)
        return early, outbox.due()

    assert asyncio.run(run()) == (False, True)
    with pytest.raises(ValueError, match="not a grouped topic"):
        Outbox(lambda: None).collect("other", 0, b"x")


def test_pupil_lookups_travel_in_batches_and_single_records_from_older_workers_still_read() -> None:
    from pydantic import ValidationError

    from rules import PupilLookup, PupilLookupBatch

    def lookup(n: int) -> PupilLookup:
        return PupilLookup(
            pupil_hash=f"{n:064x}",
            recipient_org_id="LA-1",
            recipient_type="local_authority",
            occurred_at="2026-11-01T10:00:00Z",
            event_id=f"e{n}",
            rule_ids=("NPD-X",),
        )

    lookups = [lookup(n) for n in range(3)]
    raw = PupilLookupBatch.wrap([item.model_dump_json().encode() for item in lookups])
    assert PupilLookupBatch.lookups_of(raw) == tuple(lookups)
    assert PupilLookupBatch.lookups_of(lookups[0].model_dump_json().encode()) == (lookups[0],)
    with pytest.raises(ValidationError, match="pupil_hash"):
        PupilLookupBatch.lookups_of(b'{"lookups":[{"pupil_hash":"nope"}]}')


def test_write_behind_with_a_sink_writes_the_bytes_faust_would_send_to_the_changelog() -> None:
    asyncio.run(_write_behind_with_a_sink())  # Faust's app and topics want an event loop


async def _write_behind_with_a_sink() -> None:
    import faust

    app = faust.App("wb-sink-test", store="memory://")
    table = app.Table("state", partitions=4, default=None)
    sent: list[tuple[str, int, bytes | None, bytes | None]] = []
    writes = WriteBehind(table, lambda *record: sent.append(record))
    view = writes.view(2)
    view["recipient|LA-1|NPD-VOL-01"] = {"counts": [1, 2, 3], "median": 2.5, "label": "caf\u00e9"}
    view["gone"] = 1
    del view["gone"]
    writes.set("0", {"seq": 7, "last_hash": "ab" * 32}, 0)
    assert writes.flush() == 3
    assert writes.flush() == 0
    topic = table.changelog_topic
    expected = []
    for key, partition in (("recipient|LA-1|NPD-VOL-01", 2), ("gone", 2), ("0", 0)):
        value = table.data.get(key)
        serializer = "raw" if value is None else None  # a tombstone, as Table.__delitem__ sends it
        fut = topic.as_future_message(key=key, value=value, partition=partition, value_serializer=serializer)
        expected.append((topic.get_topic_name(), partition, fut.message.key, fut.message.value))
    assert sorted(sent, key=lambda r: r[2] or b"") == sorted(expected, key=lambda r: r[2] or b"")
    assert [r[3] for r in sent if r[2] == expected[1][2]] == [None]


class FakeTopic:
    """What WriteBehind uses of a changelog topic: its name and serialisers (JSON here)."""

    def get_topic_name(self) -> str:
        return "state-changelog"

    def prepare_key(self, key: Any, serializer: Any) -> tuple[bytes, None]:
        return json.dumps(key).encode(), None

    def prepare_value(self, value: Any, serializer: Any) -> tuple[bytes, None]:
        return json.dumps(value).encode(), None


class FakeTable:
    """What WriteBehind uses of a Faust table: its store, changelog topic and serialisers."""

    key_serializer = value_serializer = "json"

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.changelog_topic = FakeTopic()


def test_write_behind_sends_one_changelog_record_per_dirty_key_and_tombstones_deletes() -> None:
    table = FakeTable()
    sent: list[tuple[str, int, bytes | None, bytes | None]] = []
    writes = WriteBehind(table, lambda *record: sent.append(record))
    view = writes.view(2)
    for n in range(5):
        view["count"] = n  # reads see each write at once
        assert view["count"] == n
    view["gone"] = 1
    del view["gone"]
    writes.set("tail", {"seq": 1}, 3)
    assert sent == []
    assert writes.flush() == 3
    assert sorted(sent, key=lambda r: r[2] or b"") == [
        ("state-changelog", 2, b'"count"', b"4"),
        ("state-changelog", 2, b'"gone"', None),
        ("state-changelog", 3, b'"tail"', b'{"seq": 1}'),
    ]
    assert writes.flush() == 0


def test_write_behind_forgets_the_dirty_keys_of_revoked_partitions() -> None:
    sent: list[tuple[str, int, bytes | None, bytes | None]] = []
    writes = WriteBehind(FakeTable(), lambda *record: sent.append(record))
    writes.view(0)["a"] = 1
    writes.view(1)["b"] = 2
    assert writes.discard([1]) == 1
    writes.flush()
    assert sent == [("state-changelog", 0, b'"a"', b"1")]


def test_the_commit_waits_for_the_hook_and_does_not_happen_when_it_fails(
    unpatched_libraries: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faust.transport.consumer import Consumer

    from streams import _compat

    committed: list[Any] = []

    async def commit(self: Any, offsets: Any, start_new_transaction: bool = True) -> bool:
        committed.append(offsets)
        return True

    monkeypatch.setattr(Consumer, "_commit_offsets", commit)  # a stand-in for Faust's own, patched below
    order: list[str] = []
    failing = [False]

    class App:
        pass

    async def flush_first() -> None:
        order.append("flushed")
        if failing[0]:
            raise RuntimeError("a send was not acknowledged")

    app = App()
    undo = _compat.install()
    _compat.add_commit_hooks(app, flush_first)

    class ConsumerOf:
        def __init__(self, app: object) -> None:
            self.app = app

    asyncio.run(Consumer._commit_offsets(ConsumerOf(app), {"tp": 5}))  # type: ignore[arg-type]
    assert order == ["flushed"]
    assert committed == [{"tp": 5}]
    failing[0] = True
    with pytest.raises(RuntimeError, match="not acknowledged"):
        asyncio.run(Consumer._commit_offsets(ConsumerOf(app), {"tp": 9}))  # type: ignore[arg-type]
    assert committed == [{"tp": 5}]  # nothing committed past the failure
    asyncio.run(Consumer._commit_offsets(ConsumerOf(object()), {"tp": 7}))  # type: ignore[arg-type]
    assert committed[-1] == {"tp": 7}  # an app without hooks commits as before
    undo()
    assert Consumer._commit_offsets is commit


def test_the_state_snapshot_runs_as_the_offsets_are_read_with_no_await_between(
    unpatched_libraries: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faust.transport.consumer import Consumer

    from streams import _compat

    order: list[str] = []

    async def commit_tps(self: Any, tps: Any, start_new_transaction: bool) -> bool:
        order.append("offsets read")  # Faust's own reads the acknowledged offsets before its first await
        await asyncio.sleep(0)
        order.append("committed")
        return True

    async def commit(self: Any, offsets: Any, start_new_transaction: bool = True) -> bool:
        return True

    monkeypatch.setattr(Consumer, "_commit_tps", commit_tps)  # stand-ins for Faust's own, patched below
    monkeypatch.setattr(Consumer, "_commit_offsets", commit)

    class App:
        pass

    async def before_commit() -> None:
        pass

    app = App()
    undo = _compat.install()
    _compat.add_commit_hooks(app, before_commit, snapshot=lambda: order.append("snapshot"))

    class ConsumerOf:
        def __init__(self, app: object) -> None:
            self.app = app

    async def main() -> None:
        # An agent that would change state whenever the commit task yields.
        asyncio.get_running_loop().call_soon(order.append, "agent ran")
        await Consumer._commit_tps(ConsumerOf(app), ["tp"], start_new_transaction=True)  # type: ignore[arg-type]

    asyncio.run(main())
    undo()
    assert order[:2] == ["snapshot", "offsets read"]  # nothing ran in between
    assert order.index("agent ran") > 1
