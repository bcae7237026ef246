"""The readers besides the worker read compressed topics: replay (aiokafka), `audit verify`, sinks (kafka-python).

The Publisher writes each codec (GATEWATCH_PRODUCER_COMPRESSION); a raw fetch shows the batches on the
wire really carry it, so a reader that passes has decoded it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from rules import load_engine
from schemas import Alert
from streams.offline.audit import read_decisions_topic
from streams.offline.replay import TopicSource
from streams.settings import Settings
from streams.sinks.delivery import AlertmanagerSink, SinkRunner
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests.conftest import isolated_settings
from tests.factories import make_agreement, make_event
from tests.httpreceiver import http_receiver

pytestmark = pytest.mark.integration

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}  # the batch attribute's codec bits


def codecs_on_the_wire(settings: Settings, topic: str) -> set[int]:
    """The codec of every record batch in the topic, read with a raw fetch (nothing decoded)."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.fetch import FetchRequest
    from aiokafka.record.memory_records import MemoryRecords
    from aiokafka.structs import TopicPartition

    async def fetch() -> set[int]:
        client = AIOKafkaClient(bootstrap_servers=settings.kafka_bootstrap)
        await client.bootstrap()
        try:
            client.add_topic(topic)
            await client.force_metadata_update()
            found: set[int] = set()
            for partition in sorted(client.cluster.partitions_for_topic(topic) or ()):
                leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
                request = FetchRequest(100, 1, 8 << 20, 0, [(topic, [(partition, 0, 8 << 20)])], rack_id="")
                response = await client.send(leader, request)
                for _, partitions in response.topics:
                    for *_, data in partitions:
                        records = MemoryRecords(data)
                        while records.has_next():
                            batch = records.next_batch()
                            found.add(batch.compression_type)
            return found
        finally:
            await client.close()

    return asyncio.run(fetch())


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_replay_audit_and_sinks_read_a_compressed_topic(broker: EmbeddedBroker, tmp_path: Path, codec: str) -> None:
    settings = isolated_settings(broker, tmp_path, producer_compression=codec)
    ensure_topics(settings)
    t = settings.topics
    engine = load_engine()
    events = [make_event(event_id=f"{codec}-{i}", fields=["pmr", "nationality"]) for i in range(12)]
    alerts: list[Alert] = []
    with Publisher(settings) as pub:
        pub.publish_events(events)
        for event in events:
            decision = engine.evaluate(event, make_agreement())
            pub.publish_raw(decision.model_dump_json().encode(), key=b"org", topic=t.decisions)
            for alert in engine.alerts(event, decision):
                alerts.append(alert)
                pub.publish_raw(alert.model_dump_json().encode(), key=alert.alert_id.encode(), topic=t.alerts)

    with TopicSource(settings) as source:
        replayed = sorted(json.loads(value)["event_id"] for _, value, _ in source.read_all())  # aiokafka
    decisions = sum(len(records) for records in read_decisions_topic(settings).values())  # kafka-python
    with http_receiver() as receiver:
        runner = SinkRunner(settings, AlertmanagerSink(receiver.url), sleep=lambda s: threading.Event().wait(0.05))
        runner.run(idle_exit_after=3.0)
        delivered = sorted(a["labels"]["alert_id"] for r in receiver.on("/api/v2/alerts") for a in r.json())

    assert {CODEC_IDS[codec]} == codecs_on_the_wire(settings, t.access) | codecs_on_the_wire(settings, t.alerts)
    assert sorted(e.event_id for e in events) == replayed
    assert len(events) == decisions
    assert [a for a in alerts if not a.inhibited_by]
    assert sorted(a.alert_id for a in alerts if not a.inhibited_by) == delivered  # the sink sends no inhibited alert
