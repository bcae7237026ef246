"""The embedded broker, and the one Tansu quirk Gatewatch works around."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from streams.transport.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


def _end_offsets(broker: EmbeddedBroker, topic: str, **producer_options: object) -> tuple[int, int, int]:
    """(reported end offset, kafka-python probe, aiokafka probe) after five records to a new topic."""
    import asyncio

    from streams.transport.endoffsets import probe_end_offsets, probe_end_offsets_async

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, **producer_options)
    for _ in range(5):
        producer.send(topic, value=b"x")
    producer.flush()
    producer.close()
    tp = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        consumer.assign([tp])
        reported = int(consumer.end_offsets([tp])[tp])
        probed = probe_end_offsets(consumer, {tp: reported})[tp]
    finally:
        consumer.close()
    probed_async = asyncio.run(probe_end_offsets_async({"bootstrap_servers": broker.bootstrap}, {tp: reported}))[tp]
    return reported, probed, probed_async


def test_tansu_end_offsets_count_batches_and_the_probe_finds_the_true_end(broker: EmbeddedBroker) -> None:
    # Five records in one batch: a Kafka broker reports end offset 5, Tansu 1 (the batch's base + 1).
    # Faust recovers tables up to that offset and `audit verify` reads up to it, so both go through
    # streams/transport/endoffsets.py, which fetches the last batch. If Tansu is fixed the first assertion fails
    # and the probe becomes a no-op (it is correct on Kafka either way).
    reported, probed, probed_async = _end_offsets(broker, "quirk-batched", linger_ms=50)
    assert reported < 5
    assert probed == probed_async == 5
    assert _end_offsets(broker, "quirk-unbatched", batch_size=0) == (5, 5, 5)


def test_the_probe_leaves_empty_partitions_at_zero(broker: EmbeddedBroker) -> None:
    import asyncio

    from streams.transport.endoffsets import probe_end_offsets_async

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("quirk-empty", 1, 1)])
    admin.close()
    tp = TopicPartition("quirk-empty", 0)
    assert asyncio.run(probe_end_offsets_async({"bootstrap_servers": broker.bootstrap}, {tp: 0})) == {tp: 0}


def test_producer_clients_keep_tracking_every_topic_they_send_to(
    broker: EmbeddedBroker, unpatched_libraries: None
) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer

    from streams import _compat

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("early-topic", 1, 1)])
    admin.close()

    async def run() -> set[str]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            # early-topic was in the first (all-topics) refresh; unpatched aiokafka would never track it,
            # and a later topic would then narrow every refresh and drop it from the producer's view.
            await producer.send_and_wait("early-topic", b"x")
            await producer.send_and_wait("late-topic", b"y")
            return set(producer.client._topics)
        finally:
            await producer.stop()

    assert "early-topic" not in asyncio.run(run())  # the aiokafka bug (streams/_compat/aiokafka_metadata.py)
    with _compat.installed():
        assert {"early-topic", "late-topic"} <= asyncio.run(run())


def test_tansu_holds_a_fetch_for_its_whole_wait_so_local_mode_shortens_the_workers(unpatched_libraries: None) -> None:
    # Measured once: a record produced during a 1,500 ms fetch (Faust's hard-coded wait) arrives after
    # about 615 ms on Tansu, 1 ms with a 20 ms wait. streams/_compat/fetch_wait.py lowers the wait of a local-mode
    # worker's consumer; other apps keep Faust's.
    import asyncio

    import faust
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    from streams import _compat

    async def waits() -> tuple[int, int]:
        local, other = faust.App("local-wait", broker="kafka://127.0.0.1:1"), faust.App("other-wait")
        _compat.shorten_fetch_wait(local)
        made = [AIOKafkaConsumerThread(a.consumer)._create_worker_consumer(a.transport) for a in (local, other)]
        return made[0]._fetch_max_wait_ms, made[1]._fetch_max_wait_ms

    with _compat.installed():
        assert asyncio.run(waits()) == (_compat.LOCAL_FETCH_WAIT_MS, 1500)


def test_the_probe_finds_the_end_of_a_last_batch_larger_than_one_poll(broker: EmbeddedBroker) -> None:
    # kafka-python returns at most 500 records a poll; the worker's outbox writes batches of thousands.
    import asyncio

    from aiokafka import AIOKafkaProducer

    from streams.transport.endoffsets import probe_end_offsets

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("quirk-big-batch", 1, 1)])
    admin.close()

    async def one_batch() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_batch_size=1 << 20)
        await producer.start()
        try:
            batch = producer.create_batch()
            for i in range(1200):
                assert batch.append(key=None, value=f"{i}".encode(), timestamp=None) is not None
            await (await producer.send_batch(batch, "quirk-big-batch", partition=0))
        finally:
            await producer.stop()

    asyncio.run(one_batch())
    tp = TopicPartition("quirk-big-batch", 0)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        consumer.assign([tp])
        assert {tp: 1200} == probe_end_offsets(consumer, consumer.end_offsets([tp]))
    finally:
        consumer.close()
