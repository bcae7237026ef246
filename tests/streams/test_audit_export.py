"""`gatewatch audit export` writes exactly what `gatewatch audit verify --file` reads (round trip)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from kafka import KafkaProducer

from rules import load_engine
from schemas import MessageRef
from schemas.ledger import LedgerState, link_json
from streams.cli.main import main
from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics, kafka_python_config
from tests import rawbatch
from tests.conftest import isolated_settings
from tests.factories import make_event

pytestmark = pytest.mark.integration

PARTITIONS = 3
PER_PARTITION = 5


def _publish_chains(settings: Settings) -> dict[int, list[bytes]]:
    """Chained decisions on the decisions topic, as the worker writes them (link_json), per partition."""
    engine = load_engine()
    now = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
    chains: dict[int, list[bytes]] = {}
    producer = KafkaProducer(**kafka_python_config(settings), acks="all")
    try:
        for partition in range(PARTITIONS):
            state = LedgerState()
            for n in range(PER_PARTITION):
                event = make_event(event_id=f"ex-{partition}-{n}", record_count=100 + n)
                ref = MessageRef(topic=settings.topics.access, partition=partition, offset=n)
                decision = engine.run(event, None, evaluated_at=now, source=ref).decision
                wire, state = link_json(decision, partition, state)
                producer.send(settings.topics.decisions, value=wire, key=b"k", partition=partition)
                chains.setdefault(partition, []).append(wire)
        producer.flush()
    finally:
        producer.close()
    return chains


@pytest.fixture
def exported(
    broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, dict[int, list[bytes]]]:
    settings = isolated_settings(broker, tmp_path, partitions=PARTITIONS)
    ensure_topics(settings)
    chains = _publish_chains(settings)
    monkeypatch.setenv("GATEWATCH_TOPIC_DECISIONS", settings.topics.decisions)
    out = tmp_path / "decisions.jsonl"
    assert 0 == main(["audit", "export", "--out", str(out), "--bootstrap", broker.bootstrap])
    assert f"exported {PARTITIONS * PER_PARTITION} decisions of {PARTITIONS} partition(s)" in capsys.readouterr().err
    return out, chains


def test_export_is_the_topic_byte_for_byte_partition_by_partition(
    exported: tuple[Path, dict[int, list[bytes]]],
) -> None:
    out, chains = exported
    expected = [wire for partition in sorted(chains) for wire in chains[partition]]
    assert expected == out.read_bytes().splitlines()


def test_verify_reads_the_export_as_an_intact_chain(
    exported: tuple[Path, dict[int, list[bytes]]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = exported
    assert 0 == main(["audit", "verify", "--file", str(out)])
    expected = [f"partition {p}: {PER_PARTITION} decisions, chain intact" for p in range(PARTITIONS)]
    assert expected == capsys.readouterr().out.splitlines()


def test_verify_finds_an_alteration_in_the_export(
    exported: tuple[Path, dict[int, list[bytes]]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = exported
    lines = out.read_bytes().splitlines()
    doc = json.loads(lines[7])
    doc["record_count"] += 1
    lines[7] = json.dumps(doc, separators=(",", ":")).encode()
    out.write_bytes(b"\n".join(lines) + b"\n")
    assert 1 == main(["audit", "verify", "--file", str(out)])
    assert "partition 1: 5 decisions, CHAIN BROKEN at line 8" in capsys.readouterr().out


STUCK = 1  # the decisions partition that gets a batch no reader can decode


@pytest.fixture(params=["crc_mismatch", "snappy_flag_on_plain_bytes"])
def undecodable_topic(
    request: pytest.FixtureRequest, broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, dict[int, list[bytes]]]:
    """Intact chains on every partition, then on STUCK a batch nobody can decode and a good link behind it."""
    settings = isolated_settings(broker, tmp_path, partitions=PARTITIONS)
    ensure_topics(settings)
    chains = _publish_chains(settings)
    broken = {"bad_crc": True} if request.param == "crc_mismatch" else {"codec": rawbatch.SNAPPY}
    topic = settings.topics.decisions
    bad_offset = rawbatch.produce_raw(broker.bootstrap, topic, STUCK, rawbatch.batch(0, [chains[STUCK][-1]], **broken))
    rawbatch.produce_raw(broker.bootstrap, topic, STUCK, rawbatch.batch(0, [chains[STUCK][-1]]))  # never read
    monkeypatch.setenv("GATEWATCH_TOPIC_DECISIONS", topic)
    monkeypatch.setenv("GATEWATCH_KAFKA_BOOTSTRAP", broker.bootstrap)
    return bad_offset, chains


def test_verify_reports_an_undecodable_batch_as_a_break_and_checks_the_other_partitions(
    undecodable_topic: tuple[int, dict[int, list[bytes]]], capsys: pytest.CaptureFixture[str]
) -> None:
    bad_offset, _ = undecodable_topic
    assert 1 == main(["audit", "verify"])  # not a traceback: a report, and the chain is not verified
    out = capsys.readouterr().out.splitlines()
    assert f"partition 0: {PER_PARTITION} decisions, chain intact" == out[0]
    assert f"partition {STUCK}: {PER_PARTITION} decisions, CHAIN BROKEN at offset {bad_offset} (1 problem(s))" == out[1]
    assert out[2].startswith(f"  offset {bad_offset}: undecodable: the record batch at offset {bad_offset} cannot be")
    assert out[2].endswith("the chain cannot be verified past it")
    assert "corrupt_batch: " in out[2]
    assert f"partition 2: {PER_PARTITION} decisions, chain intact" == out[3]


def test_export_refuses_a_topic_it_cannot_read_to_the_end_and_writes_nothing(
    undecodable_topic: tuple[int, dict[int, list[bytes]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_offset, _ = undecodable_topic
    out = tmp_path / "export.jsonl"
    assert 2 == main(["audit", "export", "--out", str(out)])
    err = capsys.readouterr().err
    assert f"partition {STUCK}: the record batch at offset {bad_offset} cannot be decoded (corrupt_batch: " in err
    assert "Nothing was written" in err
    assert "Traceback" not in err
    assert not out.exists()
