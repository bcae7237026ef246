"""`gatewatch audit verify`: check the decision ledger on the decisions topic or in a JSONL export.

With `model=AgreementDecision` the same checks run over the agreement decisions' chain
(npd.agreement-decisions.v1, `gatewatch audit verify --agreement-decisions`).

A record batch the reader cannot decode (corrupt, or in a codec whose library is missing) stops its
partition there (streams/_compat/kafka_python_decode.py), never the command: `verify` reports it as a
break of kind `undecodable` (the chain cannot be verified past it) and checks the other partitions;
`export` refuses to write a file with a hole in it (UndecodableTopic, exit 2).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from schemas import AgreementDecision, Decision
from schemas.ledger import Break, PartitionReport, verify_partition
from streams import _compat
from streams._compat import kafka_python_decode
from streams.exceptions import GatewatchStreamsError
from streams.settings import Settings
from streams.transport.endoffsets import probe_end_offsets
from streams.transport.kafka import kafka_python_config

__all__ = [
    "TopicContents",
    "UndecodableBatch",
    "UndecodableTopic",
    "export_topic",
    "read_chained_topic",
    "read_decisions_topic",
    "verify_export",
    "verify_records",
    "verify_topic",
]


Chained = type[Decision] | type[AgreementDecision]


def verify_records(
    by_partition: dict[int, list[tuple[int, bytes]]], model: Chained = Decision
) -> list[PartitionReport]:
    return [verify_partition(p, records, model) for p, records in sorted(by_partition.items())]


@dataclass(frozen=True)
class UndecodableBatch:
    """Where a partition could not be read past, and why (reason: unsupported_codec, corrupt_batch, decode_error)."""

    offset: int
    reason: str
    error: str  # the exception's type and (shortened) text

    def describe(self) -> str:
        return f"the record batch at offset {self.offset} cannot be decoded ({self.reason}: {self.error})"


@dataclass
class TopicContents:
    """A chained topic as read: each partition's (offset, value) records, and where any could not be read past."""

    records: dict[int, list[tuple[int, bytes]]]
    undecodable: dict[int, UndecodableBatch] = field(default_factory=dict)


class UndecodableTopic(GatewatchStreamsError):
    """A partition holds a record batch this process cannot decode: what is behind it cannot be read."""

    def __init__(self, topic: str, undecodable: dict[int, UndecodableBatch]) -> None:
        where = "; ".join(f"partition {p}: {u.describe()}" for p, u in sorted(undecodable.items()))
        super().__init__(
            f"{topic} cannot be read to its end: {where}. Nothing was written. Fix the cause (a codec library "
            "missing from this installation, or a corrupt batch: see the runbook for undecodable batches), "
            "then run the command again"
        )
        self.topic = topic
        self.undecodable = undecodable


def read_chained_topic(settings: Settings, topic: str, timeout: float = 30.0) -> TopicContents:
    """Every record of `topic`, per partition, from the start to the current end or a batch it cannot decode."""
    from kafka import KafkaConsumer, TopicPartition

    undo = _compat.install(kafka_python_decode.PATCHES)
    consumer = KafkaConsumer(**kafka_python_config(settings), group_id=None, enable_auto_commit=False)
    stopped: dict[int, UndecodableBatch] = {}

    def stop(_topic: str, partition: int, offset: int, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
        stopped.setdefault(partition, UndecodableBatch(offset, kafka_python_decode.reason_of(exc), error))

    kafka_python_decode.stop_at_undecodable_batch(consumer, stop)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return TopicContents({})
        consumer.assign(tps)
        ends = probe_end_offsets(consumer, consumer.end_offsets(tps))  # exact on Tansu too
        consumer.seek_to_beginning(*tps)
        out: dict[int, list[tuple[int, bytes]]] = {tp.partition: [] for tp in tps}

        def unread(tp: TopicPartition) -> bool:
            return tp.partition not in stopped and consumer.position(tp) < ends[tp]

        deadline = time.monotonic() + timeout
        while any(unread(tp) for tp in tps) and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                out[tp.partition].extend((r.offset, r.value) for r in batch if r.offset < ends[tp])
        return TopicContents(out, dict(stopped))
    finally:
        consumer.close()
        undo()


def read_decisions_topic(
    settings: Settings, timeout: float = 30.0, *, topic: str | None = None
) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of the decisions topic (or `topic`), per partition, from the start to the current end.

    Raises UndecodableTopic if a partition cannot be read to its end: a caller that chains onto, or copies,
    the topic must not act on part of it.
    """
    topic = topic or settings.topics.decisions
    contents = read_chained_topic(settings, topic, timeout)
    if contents.undecodable:
        raise UndecodableTopic(topic, contents.undecodable)
    return contents.records


def verify_topic(settings: Settings, model: Chained = Decision) -> list[PartitionReport]:
    """The chain's reports; a partition stopped at an undecodable batch ends with an `undecodable` break."""
    topic = settings.topics.agreement_decisions if model is AgreementDecision else settings.topics.decisions
    contents = read_chained_topic(settings, topic)
    reports = verify_records(contents.records, model)
    for report in reports:
        if (stuck := contents.undecodable.get(report.partition)) is not None:
            detail = f"{stuck.describe()}: the chain cannot be verified past it"
            report.breaks.append(Break(stuck.offset, "undecodable", detail))
    return reports


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
