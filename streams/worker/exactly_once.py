"""Exactly-once effect without transactions: a worker learns from the output topics what it already wrote.

Every output of an access event is keyed by the event's source position: (access partition, offset,
index in its message). The decisions of access partition p go to decisions partition p in the order of
their events and carry `source` and their ledger link; the dead letters of p go to dead-letter
partition p, also in order. So the last decision and the last access dead letter of p say which
positions of p already have their outputs on the topics, and the last decision's link is the tail the
ledger continues from. `WrittenPositions` reads them when the worker takes a partition (at start, after
a crash, after a rebalance: one code path), and the worker then skips the outputs of every position at
or before them, and links the next decision to the last link actually in the topic (no fork).

Why the tails are enough (the order the worker writes in, streams/worker/outbox.py and streams/worker/app.py):
- an event's decision is sent only once its alerts, dead letters and pupil look-ups are acknowledged,
  so a decision on the topic means every output of its event is there;
- the tables' changelogs are sent only after the outputs of the events they cover are acknowledged,
  so window state never holds an event whose decision is missing; the window entries record the
  positions they applied (rules/windows.py) and skip an event they have already seen.
What a kill can leave after the last decision: alerts and pupil look-ups of the next events, acknowledged
before their decisions were sent. The alerts are recognised by (alert_id, count) among the alert records
created around the last decision, and not sent again; the pupil windows apply a look-up's
position once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from schemas.ledger import LedgerState

__all__ = ["JudgedTail", "PartitionGate", "Position", "Written", "WrittenPositions", "read_judged", "read_written"]

log = structlog.get_logger("gatewatch.worker")

#: (offset, index in the message; 0 for a single-event message) within one access partition.
Position = tuple[int, int]
#: Records read per step when scanning a partition backwards for its last matching record.
SCAN_CHUNK = 500
#: Alert records are read from this long before the last decision was created (clock differences)...
ALERT_SCAN_BEFORE_MS = 60_000
#: ... to this long after it (a kill leaves alerts acknowledged moments after it: their decisions wait
#: only for them and for the look-ups' linger).
ALERT_SCAN_AFTER_MS = 300_000
#: The most records read per alerts partition and time window.
ALERT_SCAN_MAX = 50_000


@dataclass
class Written:
    """What one access partition's outputs already on the topics say."""

    decided: Position | None = None  # the source position of the last decision
    dead: Position | None = None  # the source position of the last dead letter of an access event
    ledger: LedgerState = field(default_factory=LedgerState)  # the tail of the decisions partition's chain
    skipped: int = 0  # outputs not sent again because they were on the topic
    decided_ms: int | None = None  # when the last decision's record was created (epoch ms)
    #: (alert_id, count) of the alert records created since shortly before the last decision
    alerts: set[tuple[str, int]] = field(default_factory=set)


def position_of(doc: Mapping[str, Any], topic: str, partition: int) -> Position | None:
    """The source position of an output record, if it came from `partition` of `topic`."""
    source = doc.get("source")
    if not isinstance(source, dict) or source.get("topic") != topic or source.get("partition") != partition:
        return None
    offset, index = source.get("offset"), source.get("index")
    if not isinstance(offset, int):
        return None
    return offset, index if isinstance(index, int) else 0


def _later(a: Position | None, b: Position | None) -> Position | None:
    return b if a is None else a if b is None else max(a, b)


async def _scan_back(
    consumer: Any,
    tp: Any,
    reported_end: int,
    wanted: Callable[[dict[str, Any], Any], bool],
    timeout: float,
) -> None:
    """Offer the partition's records to `wanted`, newest first, a chunk at a time, until it returns True.

    `reported_end` may be the last batch's base offset + 1 (Tansu, streams/transport/endoffsets.py): a chunk is
    read until a record at or past (its end - 1) has come, which brings the whole last batch with it.
    """
    stop = reported_end
    deadline = time.monotonic() + timeout
    while stop > 0:
        start = max(0, stop - SCAN_CHUNK)
        consumer.seek(tp, start)
        chunk: list[Any] = []
        while not chunk or chunk[-1].offset < stop - 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading the tail of {tp.topic}[{tp.partition}] took over {timeout} s")
            for records in (await consumer.getmany(tp, timeout_ms=200)).values():
                chunk.extend(records)
        # The first chunk keeps the whole last batch; a later one only what the chunk after it did not offer.
        fresh = [r for r in chunk if r.offset >= start and (stop == reported_end or r.offset < stop)]
        done = False
        for record in reversed(fresh):  # the whole chunk, even after a match: see read_written
            try:
                doc = orjson.loads(record.value) if record.value else None
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict) and wanted(doc, record):
                done = True
        if done:
            return
        stop = start


async def read_written(
    config: Mapping[str, Any],
    access: str,
    decisions: str,
    deadletter: str,
    alerts: str,
    partitions: Iterable[int],
    timeout: float = 60.0,
) -> dict[int, Written]:
    """For each access partition, the last decision, the last access dead letter and the ledger tail,
    and the alert records created around those last decisions.

    An event's alerts are acknowledged before its decision is sent, and that decision waits for little
    else, so the alerts a kill left after the last decision were created moments after it.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    wanted = list(partitions)
    consumer = AIOKafkaConsumer(
        **config, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=100
    )
    await consumer.start()
    out: dict[int, Written] = {}
    try:
        await consumer.topics()  # metadata, for the alerts topic's partitions
        alert_tps = [TopicPartition(alerts, p) for p in sorted(consumer.partitions_for_topic(alerts) or ())]
        tps = [TopicPartition(topic, p) for p in wanted for topic in (decisions, deadletter)]
        consumer.assign(tps + alert_tps)
        ends = await consumer.end_offsets(tps + alert_tps)
        for p in wanted:
            written = out[p] = Written()

            def decision(doc: dict[str, Any], record: Any, written: Written = written, p: int = p) -> bool:
                link = doc.get("ledger")
                if written.ledger.seq == 0 and isinstance(link, dict):
                    seq, digest = link.get("seq"), link.get("hash")
                    if isinstance(seq, int) and isinstance(digest, str):
                        written.ledger = LedgerState(seq=seq + 1, last_hash=digest)
                # The highest position in the chunk, not the last record's: `gatewatch replay --publish`
                # may have appended decisions of older events behind the worker's.
                position = position_of(doc, access, p)
                if position is not None and (written.decided is None or position > written.decided):
                    written.decided, written.decided_ms = position, record.timestamp
                return written.decided is not None and written.ledger.seq > 0

            def dead(doc: dict[str, Any], record: Any, written: Written = written, p: int = p) -> bool:
                written.dead = _later(written.dead, position_of(doc, access, p))
                return written.dead is not None

            for topic, found in ((decisions, decision), (deadletter, dead)):
                tp = TopicPartition(topic, p)
                await _scan_back(consumer, tp, ends[tp], found, timeout)
        try:
            seen = await _alerts_around(consumer, alert_tps, ends, [w.decided_ms for w in out.values()], timeout)
        except Exception:  # worth a repeated alert record (same alert_id), never a stopped partition
            log.exception("alerts_scan_failed")
            seen = set()
        for w in out.values():
            w.alerts = seen
    finally:
        await consumer.stop()
    return out


@dataclass
class JudgedTail:
    """What npd.agreement-decisions.v1 says: the last register record judged, and the chain's tail.

    The register agent judges records in offset order and each agreement decision carries its record's
    position, so every record at or before `applied` has its decision (and, sent before it, its alerts)
    on the topic already. A record after it may have its alerts there too (a kill between the two):
    `alerts` holds the (alert_id, count) of the alert records created around the last decision.
    """

    applied: int | None = None  # the agreements offset of the latest agreement decision
    ledger: LedgerState = field(default_factory=LedgerState)  # the tail of the chain actually on the topic
    decided_ms: int | None = None  # when the latest agreement decision's record was created (epoch ms)
    alerts: set[tuple[str, int]] = field(default_factory=set)


async def read_judged(
    config: Mapping[str, Any], agreements: str, agreement_decisions: str, alerts: str, timeout: float = 60.0
) -> JudgedTail:
    """The highest register offset with an agreement decision, the last link of the one partition, and
    the alerts created around that decision."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(
        **config, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=100
    )
    await consumer.start()
    tail = JudgedTail()
    try:
        await consumer.topics()  # metadata, for the alerts topic's partitions
        alert_tps = [TopicPartition(alerts, p) for p in sorted(consumer.partitions_for_topic(alerts) or ())]
        tp = TopicPartition(agreement_decisions, 0)
        consumer.assign([tp, *alert_tps])
        ends = await consumer.end_offsets([tp, *alert_tps])

        def judged(doc: dict[str, Any], record: Any) -> bool:
            link = doc.get("ledger")
            if tail.ledger.seq == 0 and isinstance(link, dict):
                seq, digest = link.get("seq"), link.get("hash")
                if isinstance(seq, int) and isinstance(digest, str):
                    tail.ledger = LedgerState(seq=seq + 1, last_hash=digest)
            position = position_of(doc, agreements, 0)
            if position is not None and (tail.applied is None or position[0] > tail.applied):
                tail.applied, tail.decided_ms = position[0], record.timestamp
            return tail.applied is not None and tail.ledger.seq > 0

        await _scan_back(consumer, tp, ends[tp], judged, timeout)
        try:
            tail.alerts = await _alerts_around(consumer, alert_tps, ends, [tail.decided_ms], timeout)
        except Exception:  # worth a repeated alert record (same alert_id), never a stopped register
            log.exception("alerts_scan_failed")
    finally:
        await consumer.stop()
    return tail


def _windows(stamps: Iterable[int | None]) -> list[tuple[int, int]]:
    """The time windows (epoch ms) around the last decisions in which a kill can have left alerts, merged."""
    spans = sorted((t - ALERT_SCAN_BEFORE_MS, t + ALERT_SCAN_AFTER_MS) for t in stamps if t is not None)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _alert_key(value: bytes | None) -> tuple[str, int] | None:
    try:
        doc = orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("alert_id"), str) and isinstance(doc.get("count"), int):
        return doc["alert_id"], doc["count"]
    return None


async def _alerts_around(
    consumer: Any, tps: list[Any], ends: Mapping[Any, int], stamps: list[int | None], timeout: float
) -> set[tuple[str, int]]:
    """(alert_id, count) of the alert records created in the windows around the last decisions.

    A partition never decided has no window: a kill before its first decision may repeat an alert.
    """
    seen: set[tuple[str, int]] = set()
    deadline = time.monotonic() + timeout
    for start_ms, end_ms in _windows(stamps):
        starts = await consumer.offsets_for_times(dict.fromkeys(tps, start_ms))
        for tp in tps:
            found = starts.get(tp)
            if found is None:
                continue  # nothing created since the window opened
            consumer.seek(tp, found.offset)
            read, last, inside, idle = 0, found.offset - 1, True, 0
            # Until past the window, the cap, or the end: the reported one, whose last batch comes whole, or
            # none coming (a broker may answer a time after the last record with the end offset).
            target = max(ends[tp], found.offset + 1)
            while inside and last < target - 1 and read < ALERT_SCAN_MAX and idle < 2:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {tp.topic}[{tp.partition}] took over {timeout} s")
                records = (await consumer.getmany(tp, timeout_ms=200)).get(tp, [])
                idle = 0 if records else idle + 1
                for record in records:
                    last, read = record.offset, read + 1
                    if record.timestamp > end_ms:
                        inside = False
                        break
                    if record.timestamp < start_ms:
                        continue  # a broker may answer with the start of a batch, or with any earlier offset
                    if (key := _alert_key(record.value)) is not None:
                        seen.add(key)
    return seen


class WrittenPositions:
    """Per access partition the worker holds: which positions have their outputs written, and the ledger tail.

    `reader(partitions)` reads the topics (`read_written` in the worker, a dict in tests). The worker
    calls `load` before the first event of a partition it has taken, `forget` when it loses one.
    """

    def __init__(self, reader: Callable[[list[int]], Awaitable[dict[int, Written]]]) -> None:
        self._reader = reader
        self._written: dict[int, Written] = {}

    def known(self, partition: int) -> bool:
        return partition in self._written

    async def load(self, partitions: Iterable[int]) -> None:
        """Read what the topics hold for these partitions (one reader call for all of them)."""
        todo = sorted(p for p in set(partitions) if p not in self._written)
        if not todo:
            return
        started = time.monotonic()
        found = await self._reader(todo)
        for p in todo:
            w = self._written[p] = found.get(p, Written())
            log.info(
                "partition_resumed",
                partition=p,
                last_decided=list(w.decided) if w.decided else None,
                last_dead_letter=list(w.dead) if w.dead else None,
                ledger_seq=w.ledger.seq,
                seconds=round(time.monotonic() - started, 3),
            )

    def written(self, partition: int, position: Position, *, dead_letter: bool = False) -> bool:
        """True if the output of this position (its decision, or its dead letter) is on the topic already."""
        w = self._written[partition]
        last = w.dead if dead_letter else w.decided
        if last is not None and position <= last:
            w.skipped += 1
            return True
        return False

    def alert_written(self, partition: int, alert_id: str, count: int) -> bool:
        """True if this alert record (its id and count: windowed alerts grow their count) is on the topic."""
        w = self._written[partition]
        if (alert_id, count) in w.alerts:
            w.skipped += 1
            return True
        return False

    def ledger(self, partition: int) -> LedgerState:
        return self._written[partition].ledger

    def linked(self, partition: int, state: LedgerState) -> None:
        """The partition's chain has grown to `state` (a decision was queued)."""
        self._written[partition].ledger = state

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            w = self._written.pop(p, None)
            if w is not None and w.skipped:
                log.info("partition_released", partition=p, outputs_not_repeated=w.skipped)


class PartitionGate:
    """Admits an event only when its partition is this worker's, its written positions are known, and no
    revocation is under way.

    A revocation flushes the outputs and the state of every event processed so far (`flush`), then
    forgets the partitions. No event may be processed while it awaits: state changed meanwhile would be
    neither in that flush nor in the changelog later (its dirty keys are dropped with the partition), yet
    it would stay in memory if the partition came back, where the window entries would take it as
    applied. `admit` is the agent's last await before an event changes any state.
    """

    def __init__(self, written: WrittenPositions, assigned: Callable[[], Iterable[int]]) -> None:
        self.written = written
        self._assigned = assigned
        self._settled = asyncio.Event()
        self._settled.set()

    async def admit(self, partition: int) -> bool:
        """True to process an event of `partition`; False if the partition is no longer this worker's."""
        while True:
            if not self._settled.is_set():
                await self._settled.wait()
                continue
            if self.written.known(partition):
                return True
            mine = sorted(set(self._assigned()))
            if partition not in mine:
                return False
            await self.written.load(mine)

    async def revoke(self, partitions: Iterable[int], flush: Callable[[], Awaitable[None]]) -> None:
        """Hold the agent, `flush()` (outputs, then state), then forget the partitions' written positions."""
        gone = list(partitions)
        self._settled.clear()
        try:
            await flush()
        except Exception:
            log.exception("revocation_flush_failed")
        finally:
            self.written.forget(gone)
            self._settled.set()
