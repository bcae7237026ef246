"""`gatewatch replay`: re-evaluate history (a JSONL file or the access topic) with a rule pack, in bulk.

No live agent, no consumer group: records are read in bulk, each partition's events are evaluated in
offset order by the offline loop `gatewatch check` uses too (rules/offline.py: recipient windows per
partition, per-pupil windows inline in one state shared by all partitions), and the report says what
would have fired, per rule. With a second pack it says, per rule, which events fire under A only, under
B only and under both: the question to answer before changing a rule.

Memory stays bounded whatever the length of history: a topic or file is read as it is evaluated
(`RecordSource`), and the merge of partitions by event time holds at most one fetch per partition.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import json
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import structlog
from pydantic import ValidationError

from rules import Engine, OfflineRun
from rules.windows import DEFAULT_LATENESS
from schemas import AccessEvent, AccessEventBatch, Agreement, Alert, Decision, MessageRef
from streams.exceptions import BrokerError, GatewatchStreamsError
from streams.settings import Settings
from streams.transport.kafka import aiokafka_config
from streams.worker.gctuning import tuned_gc
from streams.worker.processing import without_bom

__all__ = [
    "FileSource",
    "RecordSource",
    "ReplayReport",
    "RuleDiff",
    "TopicSource",
    "decode_access_message",
    "read_agreements_topic",
    "read_file",
    "replay_events",
]

log = structlog.get_logger("gatewatch.replay")

#: How a batch envelope is recognised cheaply (the same test as streams/worker/processing.py).
_BATCH_MARKER = b'"events"'
#: After a partition reaches its reported end, keep fetching until it has been quiet this long: on the
#: embedded broker (Tansu) end offsets count batches, not records, so the reported end can be short.
_QUIET_SECONDS = 1.0

#: A record to replay: (partition, raw bytes) or (partition, raw bytes, offset).
Record = tuple[int, bytes] | tuple[int, bytes, int]
#: What a TopicSource gives: (partition, the value as bytes or as its `decode` made it, offset).
TopicRecord = tuple[int, Any, int]
#: Called with each event's partition, pack-A decision and alerts (used by --publish).
ResultSink = Callable[[int, Decision, list[Alert]], None]
#: Records a FileSource hands over per pull.
_FILE_CHUNK = 4096


@runtime_checkable
class RecordSource(Protocol):
    """Records to replay, pulled as the merge needs them (so history is never held in memory whole).

    `open_partitions` are the partitions that may still give records; `pull(wanted)` returns the next
    records, of the `wanted` partitions if the source can choose (it may return others, or none while
    it waits for a partition to show its end); once `exhausted`, nothing more comes.
    """

    @property
    def open_partitions(self) -> set[int]: ...

    @property
    def exhausted(self) -> bool: ...

    def pull(self, wanted: set[int]) -> Sequence[Record]: ...


class _AllAtOnce:
    """Any iterable of records, handed over whole on the first pull (lists in memory, mixed partitions)."""

    def __init__(self, records: Iterable[Record]) -> None:
        self._records: Iterable[Record] | None = records
        self.open_partitions: set[int] = set()

    @property
    def exhausted(self) -> bool:
        return self._records is None

    def pull(self, wanted: set[int]) -> list[Record]:
        records, self._records = self._records, None
        return list(records or ())


class FileSource:
    """A JSONL file as partition-0 records (line number - 1 as the offset), read a chunk at a time."""

    def __init__(self, path: Path) -> None:
        self._lines: Iterator[tuple[int, bytes, int]] | None = read_file(path)

    @property
    def open_partitions(self) -> set[int]:
        return {0} if self._lines is not None else set()

    @property
    def exhausted(self) -> bool:
        return self._lines is None

    def pull(self, wanted: set[int]) -> list[Record]:
        if self._lines is None:
            return []
        chunk: list[Record] = []
        for record in self._lines:
            chunk.append(record)
            if len(chunk) >= _FILE_CHUNK:
                return chunk
        self._lines = None
        return chunk


@dataclass
class RuleDiff:
    """One rule's events and alerts under pack A and (when comparing) pack B."""

    rule_id: str
    a: int = 0  # events that fired the rule under A
    b: int = 0
    a_only: int = 0
    b_only: int = 0
    both: int = 0
    alerts_a: int = 0  # distinct alert ids raised under A
    alerts_b: int = 0

    def as_dict(self, compare: bool) -> dict[str, Any]:
        if not compare:
            return {"events": self.a, "alerts": self.alerts_a}
        return {
            "a": self.a,
            "b": self.b,
            "a_only": self.a_only,
            "b_only": self.b_only,
            "both": self.both,
            "alerts_a": self.alerts_a,
            "alerts_b": self.alerts_b,
        }


@dataclass
class ReplayReport:
    """What a replay found: counts per rule (and per-rule differences between two packs)."""

    source: str
    pack_a: dict[str, str]
    pack_b: dict[str, str] | None = None
    messages: int = 0
    events: int = 0
    invalid: int = 0
    filtered: int = 0  # events outside --since/--until (when the broker could not narrow the read)
    partitions: Counter[int] = field(default_factory=Counter)
    verdicts_a: Counter[str] = field(default_factory=Counter)
    verdicts_b: Counter[str] = field(default_factory=Counter)
    rules: dict[str, RuleDiff] = field(default_factory=dict)
    seconds: float = 0.0
    read_seconds: float = 0.0
    most_buffered: int = 0  # the most events held at once while merging partitions (memory stays bounded)

    @property
    def compared(self) -> bool:
        return self.pack_b is not None

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def fired(self, pack: str = "a") -> dict[str, int]:
        """Events per rule that fired at least once under pack `a` or `b` (rules that never fired left out)."""
        return {rid: getattr(d, pack) for rid, d in self.rules.items() if getattr(d, pack)}

    def differences(self) -> dict[str, tuple[int, int]]:
        """Rules whose firing differs between the packs: rule id -> (A only, B only)."""
        return {rid: (d.a_only, d.b_only) for rid, d in self.rules.items() if d.a_only or d.b_only}

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "pack_a": self.pack_a,
            "pack_b": self.pack_b,
            "messages": self.messages,
            "events": self.events,
            "invalid": self.invalid,
            "filtered": self.filtered,
            "partitions": {str(p): n for p, n in sorted(self.partitions.items())},
            "verdicts_a": dict(sorted(self.verdicts_a.items())),
            "verdicts_b": dict(sorted(self.verdicts_b.items())) if self.compared else None,
            "rules": {rid: d.as_dict(self.compared) for rid, d in self.rules.items()},
            "seconds": round(self.seconds, 4),
            "read_seconds": round(self.read_seconds, 4),
            "most_buffered": self.most_buffered,
            "events_per_s": round(self.events_per_s, 1),
        }

    def render(self) -> str:
        def pack(p: dict[str, str]) -> str:
            return f"{p['name']} {p['version']} (sha256 {p['sha256'][:12]})"

        lines = [
            f"Replay of {self.source}: {self.events} events in {self.messages} messages"
            f" ({self.invalid} invalid, {self.filtered} outside the time range), evaluated in {self.seconds:.2f} s"
            f" ({self.events_per_s:,.0f} events/s)",
            f"  pack A: {pack(self.pack_a)}  verdicts: "
            + ", ".join(f"{k}={v}" for k, v in sorted(self.verdicts_a.items())),
        ]
        if self.pack_b is not None:
            lines.append(
                f"  pack B: {pack(self.pack_b)}  verdicts: "
                + ", ".join(f"{k}={v}" for k, v in sorted(self.verdicts_b.items()))
            )
        rows = [d for d in self.rules.values() if d.a or d.b or d.alerts_a or d.alerts_b]
        width = max([4, *(len(d.rule_id) for d in rows)])
        lines.append("")
        if self.pack_b is None:
            lines.append(f"{'rule':<{width}}  {'events':>8}  {'alerts':>8}")
            lines += [f"{d.rule_id:<{width}}  {d.a:>8}  {d.alerts_a:>8}" for d in rows]
            if not rows:
                lines.append("(no rule fired)")
            return "\n".join(lines)
        head = ("A", "B", "A only", "B only", "both", "alerts A", "alerts B")
        lines.append(f"{'rule':<{width}}  " + "  ".join(f"{h:>8}" for h in head) + "  change")
        for d in rows:
            values = (d.a, d.b, d.a_only, d.b_only, d.both, d.alerts_a, d.alerts_b)
            change = "same" if not (d.a_only or d.b_only or d.alerts_a != d.alerts_b) else "DIFFERS"
            lines.append(f"{d.rule_id:<{width}}  " + "  ".join(f"{v:>8}" for v in values) + f"  {change}")
        if not rows:
            lines.append("(no rule fired under either pack)")
        changed = self.differences()
        lines += ["", f"{len(changed)} rule(s) fire on different events" if changed else "no rule changes its firing"]
        return "\n".join(lines)


def _pack_dict(engine: Engine) -> dict[str, str]:
    return {"name": engine.pack.name, "version": engine.pack.version, "sha256": engine.pack.sha256}


def decode_access_message(raw: bytes) -> list[AccessEvent] | None:
    """The events of one message (a single event or an AccessEventBatch); None if it is not valid."""
    raw = without_bom(raw)  # as the worker does (streams/worker/processing.py)
    try:
        if _BATCH_MARKER in raw[:256]:
            return list(AccessEventBatch.model_validate_json(raw).events)
        return [AccessEvent.model_validate_json(raw)]
    except ValidationError:
        if _BATCH_MARKER not in raw[:256]:
            return None
    # A batch with bad events: keep the valid ones, as the live agent does (the rest would dead-letter).
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    items = doc.get("events") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        return None
    out = []
    for item in items:
        try:
            out.append(AccessEvent.model_validate(item))
        except ValidationError:
            continue
    return out or None


class _Pass:
    """One pack's run over a replay (rules/offline.py) and the alert ids it has raised so far."""

    def __init__(self, engine: Engine, agreements: Mapping[str, Agreement], lateness: dt.timedelta) -> None:
        self.offline = OfflineRun(engine, agreements, lateness=lateness)
        self.alert_ids: set[str] = set()

    def run(
        self, partition: int, event: AccessEvent, now: dt.datetime, source: MessageRef | None
    ) -> tuple[Decision, list[Alert]]:
        evaluation = self.offline.evaluate(event, partition=partition, evaluated_at=now, source=source)
        return evaluation.decision, evaluation.alerts

    def first_seen(self, alerts: Iterable[Alert]) -> list[str]:
        """Rule ids of the alerts whose id this pass has not raised before (re-sends count once)."""
        fresh = [a for a in alerts if a.alert_id not in self.alert_ids]
        self.alert_ids.update(a.alert_id for a in fresh)
        return [a.rule_id for a in fresh]


class _Merge:
    """Events of every partition in event-time order, each partition kept in its own (offset) order.

    An event is given out only when every partition that may still give records has one buffered, so
    nothing earlier can arrive later: the same order as `heapq.merge` over the whole partitions (ties
    go to the lower partition), holding only what the source handed over in its last pulls.
    """

    def __init__(self, source: RecordSource, report: ReplayReport, source_topic: str) -> None:
        self.source = source
        self.report = report
        self.topic = source_topic
        self.buffers: dict[int, deque[tuple[float, AccessEvent, MessageRef]]] = {}
        self.heads: list[tuple[float, int]] = []  # (event time, partition) of each non-empty buffer
        self.buffered = 0
        self.most_buffered = 0

    def _fill(self) -> None:
        source, buffers = self.source, self.buffers
        while not source.exhausted:
            empty = {p for p in source.open_partitions if not buffers.get(p)}
            if self.heads and not empty:
                return
            for record in source.pull(empty or set(source.open_partitions)):
                self._add(record)

    def _add(self, record: Record) -> None:
        partition, raw = record[0], record[1]
        offset = record[2] if len(record) == 3 else self.report.messages
        self.report.messages += 1
        events = decode_access_message(raw)
        if events is None:
            self.report.invalid += 1
            return
        buffer = self.buffers.get(partition)
        if buffer is None:
            buffer = self.buffers[partition] = deque()
        was_empty = not buffer
        many = len(events) > 1
        for index, event in enumerate(events):
            ref = MessageRef(topic=self.topic, partition=partition, offset=offset, index=index if many else None)
            buffer.append((event.occurred_at.timestamp(), event, ref))
        self.buffered += len(events)
        self.most_buffered = max(self.most_buffered, self.buffered)
        if was_empty:
            heapq.heappush(self.heads, (buffer[0][0], partition))

    def __iter__(self) -> Iterator[tuple[int, tuple[float, AccessEvent, MessageRef]]]:
        buffers, heads, source = self.buffers, self.heads, self.source
        self._fill()  # from here on every open partition has an event buffered until one runs dry
        while heads:
            _, partition = heapq.heappop(heads)
            buffer = buffers[partition]
            item = buffer.popleft()
            self.buffered -= 1
            if buffer:
                heapq.heappush(heads, (buffer[0][0], partition))
            elif not source.exhausted:
                self._fill()
            yield partition, item


def replay_events(
    records: Iterable[Record] | RecordSource,
    engine: Engine,
    *,
    compare: Engine | None = None,
    agreements: Iterable[Agreement] = (),
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    source: str = "records",
    sink: ResultSink | None = None,
    lateness: dt.timedelta = DEFAULT_LATENESS,
) -> ReplayReport:
    """Evaluate (partition, raw bytes[, offset]) records with `engine` (and `compare`); the per-rule report.

    Each partition's events are evaluated in the order given; partitions are interleaved by event time
    (a merge that never reorders a partition), so the shared per-pupil windows see time move forward as
    the live re-partitioned agent does. `since`/`until` (inclusive/exclusive) filter on occurred_at.
    `lateness` and the engines' pupil key should be the worker's (streams/worker/engine_setup.py) for live alert ids.
    A `RecordSource` (a topic, a file) is read as the merge goes; any other iterable is taken whole.
    """
    started = time.perf_counter()
    report = ReplayReport(
        source=source, pack_a=_pack_dict(engine), pack_b=_pack_dict(compare) if compare is not None else None
    )
    for rule in engine.rules:
        report.rules[rule.id] = RuleDiff(rule.id)
    for rule in compare.rules if compare is not None else ():
        report.rules.setdefault(rule.id, RuleDiff(rule.id))
    register = {a.agreement_id: a for a in agreements}
    merged = _Merge(
        records if isinstance(records, RecordSource) else _AllAtOnce(records), report, source.removeprefix("topic:")
    )
    pass_a = _Pass(engine, register, lateness)
    pass_b = _Pass(compare, register, lateness) if compare is not None else None
    lo = since.timestamp() if since is not None else None
    hi = until.timestamp() if until is not None else None
    now = dt.datetime.now(dt.UTC)
    with tuned_gc():  # (streams/worker/gctuning.py; the caller's thresholds are restored)
        rules = report.rules
        for partition, (t, event, ref) in merged:
            if (lo is not None and t < lo) or (hi is not None and t >= hi):
                report.filtered += 1
                continue
            report.events += 1
            report.partitions[partition] += 1
            decision, alerts = pass_a.run(partition, event, now, ref)
            report.verdicts_a[decision.verdict.value] += 1
            fired_a = {v.rule_id for v in decision.violations}
            for rid in pass_a.first_seen(alerts):
                rules.setdefault(rid, RuleDiff(rid)).alerts_a += 1
            if sink is not None:
                sink(partition, decision, alerts)
            for rid in fired_a:
                rules.setdefault(rid, RuleDiff(rid)).a += 1
            if pass_b is None:
                continue
            decision_b, alerts_b = pass_b.run(partition, event, now, ref)
            report.verdicts_b[decision_b.verdict.value] += 1
            fired_b = {v.rule_id for v in decision_b.violations}
            for rid in pass_b.first_seen(alerts_b):
                rules.setdefault(rid, RuleDiff(rid)).alerts_b += 1
            for rid in fired_b:
                d = rules.setdefault(rid, RuleDiff(rid))
                d.b += 1
                if rid in fired_a:
                    d.both += 1
                else:
                    d.b_only += 1
            for rid in fired_a - fired_b:
                rules[rid].a_only += 1
    report.seconds = time.perf_counter() - started
    report.most_buffered = merged.most_buffered
    return report


def read_file(path: Path) -> Iterator[tuple[int, bytes, int]]:
    """The lines of a JSONL file as partition-0 records (line number - 1 as the offset); blank lines skipped."""
    with open(path, "rb") as lines:
        for number, line in enumerate(lines):
            raw = line.rstrip(b"\r\n")
            if raw.strip():
                yield 0, raw, number


class TopicSource:
    """A topic between offsets or times, fetched partition by partition as the replay's merge asks for it.

    No consumer group: all partitions are assigned. `from_offsets` is inclusive, `to_offsets` exclusive
    (one number for every partition or a mapping partition -> offset). `since`/`until` become offsets
    through the broker's offsets_for_times (record timestamps); if it cannot answer, everything is read
    and `time_bounds_applied` is False so the caller filters on occurred_at. A partition is done at
    `to_offsets`, or once fetches come back empty for about a second after its reported end (Tansu's end
    offsets can fall short); with `expected`, reading goes on until that many records were read (or
    `timeout`), for topics still being written. `decode`, if given, is applied to each value as it
    arrives. Runs its own event loop: use it from synchronous code, and close it (a context manager).
    A pull returns at most `max_records` records (one Kafka record may be a batch of events).
    """

    def __init__(
        self,
        settings: Settings,
        topic: str | None = None,
        *,
        from_offsets: Mapping[int, int] | int | None = None,
        to_offsets: Mapping[int, int] | int | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        expected: int | None = None,
        timeout: float = 600.0,
        decode: Callable[[bytes], Any] | None = None,
        partition_fetch_bytes: int = 2 * 1024 * 1024,
        max_records: int = 10_000,
    ) -> None:
        self.settings = settings
        self.topic = topic or settings.topics.access
        self.expected = expected
        self.decode = decode
        self.time_bounds_applied = since is None and until is None
        self.read = 0
        self.max_records = max_records  # per pull: with one pull per empty partition, what the merge holds
        self._deadline = time.monotonic() + timeout
        self._active: set[Any] = set()
        self._stops: dict[Any, int | None] = {}
        self._ends: dict[Any, int] = {}
        self._quiet_since: dict[Any, float] = {}
        self._consumer: Any = None
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._open(from_offsets, to_offsets, since, until, partition_fetch_bytes))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> TopicSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def open_partitions(self) -> set[int]:
        return {tp.partition for tp in self._active}

    @property
    def exhausted(self) -> bool:
        return not self._active

    def pull(self, wanted: set[int]) -> list[TopicRecord]:
        """One fetch from the wanted partitions still open (all open ones if none of them is)."""
        if not self._active:
            return []
        return self._loop.run_until_complete(self._pull(wanted))

    def read_all(self) -> list[TopicRecord]:
        """Every record left, at once: for short reads (the register, tests, the raw-consume benchmark)."""
        out: list[TopicRecord] = []
        while not self.exhausted:
            out.extend(self.pull(self.open_partitions))
        return out

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            if self._consumer is not None:
                self._loop.run_until_complete(self._consumer.stop())
        finally:
            self._consumer = None
            self._active.clear()
            self._loop.close()

    async def _open(
        self,
        from_offsets: Mapping[int, int] | int | None,
        to_offsets: Mapping[int, int] | int | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        partition_fetch_bytes: int,
    ) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        topic = self.topic
        consumer = self._consumer = AIOKafkaConsumer(
            **aiokafka_config(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=partition_fetch_bytes,
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise BrokerError(f"topic {topic!r} does not exist on {self.settings.kafka_bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)

        def per(value: Mapping[int, int] | int | None, p: int) -> int | None:
            return value.get(p) if isinstance(value, Mapping) else value

        starts = {tp: per(from_offsets, tp.partition) for tp in tps}
        stops: dict[Any, int | None] = {tp: per(to_offsets, tp.partition) for tp in tps}
        if not self.time_bounds_applied:
            try:
                if since is not None:
                    found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
                    for tp in tps:
                        hit = found.get(tp)
                        starts[tp] = max(starts[tp] or 0, hit.offset) if hit is not None else None
                        if hit is None:  # nothing published at or after `since`: read nothing
                            stops[tp] = 0
                if until is not None:
                    found = await consumer.offsets_for_times({tp: int(until.timestamp() * 1000) for tp in tps})
                    for tp in tps:
                        hit = found.get(tp)
                        if hit is not None:
                            stop = stops[tp]
                            stops[tp] = hit.offset if stop is None else min(stop, hit.offset)
                self.time_bounds_applied = True
            except Exception as exc:  # the broker cannot answer: read everything, filter on occurred_at
                log.warning("offsets_for_times_unsupported", topic=topic, error=f"{type(exc).__name__}: {exc}")
                starts = {tp: per(from_offsets, tp.partition) for tp in tps}
                stops = {tp: per(to_offsets, tp.partition) for tp in tps}
        for tp in tps:
            start = starts[tp]
            if start is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, start)
        self._ends = await consumer.end_offsets(tps)
        self._stops = stops
        self._active = {tp for tp in tps if stops[tp] is None or (starts[tp] or 0) < (stops[tp] or 0)}

    async def _pull(self, wanted: set[int]) -> list[TopicRecord]:
        consumer, active, stops = self._consumer, self._active, self._stops
        if time.monotonic() >= self._deadline or (self.expected is not None and self.read >= self.expected):
            active.clear()
            return []
        asked = [tp for tp in active if tp.partition in wanted] or list(active)
        batches = await consumer.getmany(*asked, timeout_ms=200, max_records=self.max_records)
        now = time.monotonic()
        decode = self.decode
        out: list[TopicRecord] = []
        for tp, batch in batches.items():
            stop = stops[tp]
            for r in batch:
                if stop is not None and r.offset >= stop:
                    active.discard(tp)
                    break
                out.append((tp.partition, decode(r.value) if decode else r.value, r.offset))
            if batch:
                self._quiet_since.pop(tp, None)
        self.read += len(out)
        for tp in asked:
            if tp not in active:
                continue
            position = await consumer.position(tp)
            stop = stops[tp]
            at_stop = stop is not None and position >= stop
            # At the reported end: done once fetches have come back empty for a while.
            quiet = (
                self.expected is None
                and position >= self._ends[tp]
                and tp not in batches
                and now - self._quiet_since.setdefault(tp, now) >= _QUIET_SECONDS
            )
            if at_stop or quiet:
                active.discard(tp)
        return out


def read_agreements_topic(settings: Settings) -> list[Agreement]:
    """The register as the agreements topic holds it now: the latest valid agreement per id, tombstones applied."""
    register: dict[str, Agreement] = {}
    with TopicSource(settings, settings.topics.agreements, timeout=60.0) as source:
        records = source.read_all()
    for _, value, _ in records:
        if value is None:
            continue
        try:
            agreement = Agreement.model_validate_json(value)
        except ValidationError:
            continue
        register[agreement.agreement_id] = agreement
    return list(register.values())


class DecisionPublisher:
    """Writes pack A's decisions (chained onto the decisions topic's ledger) and alerts: `--publish`."""

    def __init__(self, settings: Settings) -> None:
        from schemas.ledger import LedgerState
        from streams.offline.audit import read_decisions_topic
        from streams.transport.publisher import Publisher

        self.settings = settings
        self.tails: dict[int, LedgerState] = {}
        for partition, records in read_decisions_topic(settings).items():
            if records:
                last = json.loads(records[-1][1]).get("ledger") or {}
                if "seq" in last and "hash" in last:
                    self.tails[partition] = LedgerState(seq=int(last["seq"]) + 1, last_hash=str(last["hash"]))
        self.publisher = Publisher(settings)
        self.decisions = 0
        self.alerts = 0

    def __call__(self, partition: int, decision: Decision, alerts: list[Alert]) -> None:
        from schemas.ledger import LedgerState, link

        linked, self.tails[partition] = link(decision, partition, self.tails.get(partition, LedgerState()))
        key = decision.recipient_org_id.encode() if decision.recipient_org_id else None
        self.publisher.publish_raw(
            linked.model_dump_json(exclude_none=True).encode(), key=key, topic=self.settings.topics.decisions
        )
        self.decisions += 1
        for alert in alerts:
            self.publisher.publish_raw(
                alert.model_dump_json().encode(), key=alert.alert_id.encode(), topic=self.settings.topics.alerts
            )
            self.alerts += 1

    def close(self) -> None:
        self.publisher.close()


def parse_offsets(text: str | None) -> dict[int, int] | int | None:
    """`--from-offset`/`--to-offset`: one offset for every partition (`100`) or per partition (`0:100,1:250`)."""
    if text is None:
        return None
    try:
        if ":" not in text:
            return int(text)
        out = {}
        for part in text.split(","):
            p, _, o = part.partition(":")
            out[int(p)] = int(o)
        return out
    except ValueError as exc:
        raise GatewatchStreamsError(
            f"bad offset {text!r}: give one number (every partition) or PARTITION:OFFSET pairs, e.g. 0:100,1:250"
        ) from exc


def parse_time(text: str | None) -> dt.datetime | None:
    """`--since`/`--until`: ISO 8601; a time without an offset is taken as UTC."""
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise GatewatchStreamsError(f"bad time {text!r}: use ISO 8601, e.g. 2026-10-19T08:00:00+01:00") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def load_agreements_for(settings: Settings | None, path: Path | None) -> Sequence[Agreement]:
    """The register a replay uses: a file if given, else the agreements topic (topic replays), else none."""
    from streams.offline.register_file import load_agreements_file

    if path is not None:
        return load_agreements_file(path)
    if settings is not None:
        return read_agreements_topic(settings)
    return []
