"""`gatewatch audit verify`: check the decision ledger on the decisions topic or in a JSONL export.

With `model=AgreementDecision` the same checks run over the agreement decisions' chain
(npd.agreement-decisions.v1, `gatewatch audit verify --agreement-decisions`).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from schemas import AgreementDecision, Decision
from schemas.ledger import PartitionReport, verify_partition
from streams.settings import Settings
from streams.transport.endoffsets import probe_end_offsets
from streams.transport.kafka import kafka_python_config

__all__ = ["export_topic", "read_decisions_topic", "verify_export", "verify_records", "verify_topic"]


Chained = type[Decision] | type[AgreementDecision]


def verify_records(
    by_partition: dict[int, list[tuple[int, bytes]]], model: Chained = Decision
) -> list[PartitionReport]:
    return [verify_partition(p, records, model) for p, records in sorted(by_partition.items())]


def read_decisions_topic(
    settings: Settings, timeout: float = 30.0, *, topic: str | None = None
) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of the decisions topic (or `topic`), per partition, from the start to the current end."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka_python_config(settings), group_id=None, enable_auto_commit=False)
    try:
        topic = topic or settings.topics.decisions
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return {}
        consumer.assign(tps)
        ends = probe_end_offsets(consumer, consumer.end_offsets(tps))  # exact on Tansu too
        consumer.seek_to_beginning(*tps)
        out: dict[int, list[tuple[int, bytes]]] = {tp.partition: [] for tp in tps}
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                out[tp.partition].extend((r.offset, r.value) for r in batch if r.offset < ends[tp])
        return out
    finally:
        consumer.close()


def verify_topic(settings: Settings, model: Chained = Decision) -> list[PartitionReport]:
    topic = settings.topics.agreement_decisions if model is AgreementDecision else settings.topics.decisions
    return verify_records(read_decisions_topic(settings, topic=topic), model)


def export_topic(settings: Settings, out: IO[bytes]) -> dict[int, int]:
    """Write the decisions topic as `audit verify --file` reads it; the number of decisions per partition.

    One decision per line, byte for byte as on the topic (a decision's hash covers its exact JSON),
    partition after partition, each in offset order.
    """
    counts: dict[int, int] = {}
    for partition, records in sorted(read_decisions_topic(settings).items()):
        counts[partition] = 0
        for _, raw in records:
            if raw is None:
                continue  # a tombstone is no decision (the topic is not compacted; nothing writes one)
            out.write(raw.rstrip(b"\r\n") + b"\n")
            counts[partition] += 1
    return counts


def verify_export(lines: Iterable[bytes], model: Chained = Decision) -> list[PartitionReport]:
    """An export: Decision JSON lines in their partitions' order; the line number stands for the offset."""
    by_partition: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    for number, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\r\n")
        if not raw:
            continue
        try:
            partition = int(json.loads(raw)["ledger"]["partition"])
        except (ValueError, KeyError, TypeError):
            partition = -1  # unreadable or unchained: reported by the verifier under partition -1
        by_partition[partition].append((number, raw))
    return verify_records(by_partition, model)


def render(reports: list[PartitionReport], *, unit: str) -> str:
    lines = []
    for report in reports:
        if report.ok:
            lines.append(f"partition {report.partition}: {report.records} decisions, chain intact")
            continue
        first = report.breaks[0]
        lines.append(
            f"partition {report.partition}: {report.records} decisions, CHAIN BROKEN at {unit} {first.offset} "
            f"({len(report.breaks)} problem(s))"
        )
        lines += [f"  {unit} {b.offset}: {b.kind}: {b.detail}" for b in report.breaks]
    return "\n".join(lines) if lines else "no decisions found"


def verify_path(path: Path, model: Chained = Decision) -> list[PartitionReport]:
    with path.open("rb") as handle:
        return verify_export(handle, model)
