"""Privacy scan: after a run over traffic carrying pupil references, no output channel holds one in clear."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from streams.cli.runner import WorkerProcess
from streams.offline.simulate import Simulator
from streams.transport.broker import EmbeddedBroker
from streams.transport.endoffsets import probe_end_offsets
from streams.transport.kafka import ensure_topics, kafka_python_config
from streams.transport.publisher import Publisher
from tests.conftest import isolated_settings
from tests.factories import event_dict
from tests.reliability.support import SIM_START, Accounts, Tail, sample_agreements

pytestmark = pytest.mark.integration


def read_all(settings: object, topics: list[str], timeout: float = 30.0) -> dict[str, bytes]:
    """Every record (key and value bytes) of each topic, from the beginning to the current end."""
    consumer = KafkaConsumer(**kafka_python_config(settings), group_id=None, enable_auto_commit=False)  # type: ignore[arg-type]
    out: dict[str, bytearray] = {topic: bytearray() for topic in topics}
    try:
        tps = [TopicPartition(tp, p) for tp in topics for p in sorted(consumer.partitions_for_topic(tp) or ())]
        consumer.assign(tps)
        ends = probe_end_offsets(consumer, consumer.end_offsets(tps))  # exact on Tansu's batches too
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500, max_records=5000).items():
                for r in batch:
                    out[tp.topic] += (r.key or b"") + b"\n" + (r.value or b"") + b"\n"
    finally:
        consumer.close()
    return {k: bytes(v) for k, v in out.items()}


@pytest.mark.timeout(300)
def test_no_pupil_reference_leaves_the_worker_on_any_channel(broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = isolated_settings(broker, tmp_path, pupil_hmac_key="scan-test-key")
    ensure_topics(settings)
    agreements = sample_agreements()
    events = [s.event for s in Simulator(agreements, seed=9, start=SIM_START).events(600)]
    refs = {r for e in events for r in e.pupil_refs or ()}
    assert len(refs) > 100, "the simulator's traffic should carry pupil references"
    # Invalid events that carry pupil references too: their dead letters' reasons must not repeat them.
    bad = [
        event_dict(event_id="leak-1", pupil_refs=["PUPLEAK000001 bad"], record_count=-1),
        event_dict(event_id="leak-2", pupil_refs=["PUPLEAK000002"], extra_field="PUPLEAK000002"),
        event_dict(event_id="leak-3", pupil_refs=["PUPLEAK000003"], occurred_at="2999-01-01T00:00:00+00:00"),
        event_dict(event_id="leak-4", pupil_refs="PUPLEAK000004"),
        # Field names are input too: unknown fields named with a reference, at the top and nested.
        event_dict(event_id="leak-5", pupil_refs=["PUPLEAK000005"], PUPLEAK000005=1),
        {**event_dict(event_id="leak-6"), "recipient": {"org_id": "org-x", "org_type": "police", "PUPLEAK000006": 1}},
    ]
    bad_refs = {f"PUPLEAK00000{n}" for n in range(1, 7)}
    log_file = tmp_path / "worker.log"
    worker = WorkerProcess(settings, log_file=log_file).start()
    t = settings.topics
    try:
        with Publisher(settings) as pub:
            pub.publish_agreements(agreements)
            worker.wait_ready(len({a.agreement_id for a in agreements}), timeout=120)
            pub.publish_events(events)
            for doc in bad:
                pub.publish_raw(json.dumps(doc).encode(), key=b"leaky")
        accounts = Accounts(settings)
        with Tail(settings, [t.decisions, t.deadletter]) as tail:
            accounts.wait_for(tail, {e.event_id for e in events}, timeout=120, dead=len(bad))
        time.sleep(6)  # one more lag/state refresh and table flush
        metrics = worker.metrics_text().encode()
    finally:
        worker.stop()

    admin = KafkaAdminClient(**kafka_python_config(settings))
    try:
        internal = sorted(n for n in admin.list_topics() if n.startswith(settings.app_id))
    finally:
        admin.close()
    assert f"{settings.app_id}-pupil-lookups" in internal
    assert any(n.endswith("-changelog") for n in internal), internal
    outputs = read_all(settings, [t.decisions, t.alerts, *internal])
    dead = read_all(settings, [t.deadletter])[t.deadletter]
    # A dead letter keeps the original bytes on purpose (base64); everything else in it is scanned in clear.
    dead_docs = [json.loads(line) for line in dead.splitlines() if line.startswith(b"{")]
    assert len(dead_docs) == len(bad)
    outputs["deadletter (without value_b64)"] = json.dumps([{**d, "value_b64": None} for d in dead_docs]).encode()
    outputs["worker log"] = log_file.read_bytes()
    outputs["/metrics"] = metrics
    leaks = {channel: sorted(r for r in refs | bad_refs if r.encode() in data)[:5] for channel, data in outputs.items()}
    assert {channel: found for channel, found in leaks.items() if found} == {}
    records = [json.loads(v) for v in outputs[f"{settings.app_id}-pupil-lookups"].splitlines() if v.startswith(b"{")]
    lookups = [lk for record in records for lk in record["lookups"]]  # PupilLookupBatch records
    assert lookups, "cross-recipient look-ups went through the re-partition topic"
    assert all(len(lk["pupil_hash"]) == 64 for lk in lookups)
    # the kept originals are the only place the bad events' references live
    assert all(base64.b64decode(d["value_b64"]) for d in dead_docs)
