"""`gatewatch replay`: re-evaluate history (a JSONL file or the access topic) with a rule pack, in bulk.

No live agent, no consumer group: records are read in bulk, each partition's events are evaluated in
offset order with windowed state exactly as `gatewatch check` does (recipient windows in a dict-backed
WindowState per partition, per-pupil windows inline in one shared WindowState), and the report says what
would have fired, per rule. With a second pack it says, per rule, which events fire under A only, under
B only and under both: the question to answer before changing a rule.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from rules import Engine, WindowState
from schemas import AccessEvent, AccessEventBatch, Agreement, Alert, Decision, MessageRef
from streams.exceptions import BrokerError, GatewatchStreamsError
from streams.kafka import aiokafka_config
from streams.settings import Settings

__all__ = [
    "ReplayReport",
    "RuleDiff",
    "TopicRead",
    "read_agreements_topic",
    "read_file",
    "read_topic_bulk",
    "replay_events",
]

log = structlog.get_logger("gatewatch.replay")

#: How a batch envelope is recognised cheaply (the same test as streams/processing.py).
_BATCH_MARKER = b'"events"'
#: After a partition reaches its reported end, keep fetching until it has been quiet this long: on the
#: embedded broker (Tansu) end offsets count batches, not records, so the reported end can be short.
_QUIET_SECONDS = 1.0

#: A record to replay: (partition, raw bytes) or (partition, raw bytes, offset).
Record = tuple[int, bytes] | tuple[int, bytes, int]
#: Called with each event's partition, pack-A decision and alerts (used by --publish).
ResultSink = Callable[[int, Decision, list[Alert]], None]


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


def _decode(raw: bytes) -> list[AccessEvent] | None:
    """The events of one message (a single event or an AccessEventBatch); None if it is not valid."""
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
    """One pack's evaluation state over a replay: windows per partition, one shared pupil window state."""

    def __init__(self, engine: Engine, agreements: Mapping[str, Agreement]) -> None:
        self.engine = engine
        self.agreements = agreements
        self.states: dict[int, WindowState] = {}
        self.pupil_state = WindowState({})
        self.alert_ids: set[str] = set()

    def run(
        self, partition: int, event: AccessEvent, now: dt.datetime, source: MessageRef | None
    ) -> tuple[Decision, list[Alert]]:
        state = self.states.get(partition)
        if state is None:
            state = self.states[partition] = WindowState({}, partition=partition)
        t = event.occurred_at.timestamp()
        state.advance(t)
        self.pupil_state.advance(t)
        agreement = self.agreements.get(event.agreement_id) if event.agreement_id else None
        evaluation = self.engine.run(
            event, agreement, state=state, pupil_state=self.pupil_state, evaluated_at=now, source=source
        )
        return evaluation.decision, evaluation.alerts

    def first_seen(self, alerts: Iterable[Alert]) -> list[str]:
        """Rule ids of the alerts whose id this pass has not raised before (re-sends count once)."""
        fresh = [a for a in alerts if a.alert_id not in self.alert_ids]
        self.alert_ids.update(a.alert_id for a in fresh)
        return [a.rule_id for a in fresh]


def _partition_streams(
    records: Iterable[Record], report: ReplayReport, source_topic: str
) -> dict[int, list[tuple[float, AccessEvent, MessageRef]]]:
    """Decode every record once, grouped by partition in the order given (offset order)."""
    streams: dict[int, list[tuple[float, AccessEvent, MessageRef]]] = {}
    for i, record in enumerate(records):
        partition, raw = record[0], record[1]
        offset = record[2] if len(record) == 3 else i
        report.messages += 1
        events = _decode(raw)
        if events is None:
            report.invalid += 1
            continue
        out = streams.setdefault(partition, [])
        many = len(events) > 1
        for index, event in enumerate(events):
            ref = MessageRef(topic=source_topic, partition=partition, offset=offset, index=index if many else None)
            out.append((event.occurred_at.timestamp(), event, ref))
    return streams


def replay_events(
    records: Iterable[Record],
    engine: Engine,
    *,
    compare: Engine | None = None,
    agreements: Iterable[Agreement] = (),
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    source: str = "records",
    sink: ResultSink | None = None,
) -> ReplayReport:
    """Evaluate (partition, raw bytes[, offset]) records with `engine` (and `compare`); the per-rule report.

    Each partition's events are evaluated in the order given; partitions are interleaved by event time
    (a merge that never reorders a partition), so the shared per-pupil windows see time move forward as
    the live re-partitioned agent does. `since`/`until` (inclusive/exclusive) filter on occurred_at.
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
    streams = _partition_streams(records, report, source.removeprefix("topic:"))
    pass_a = _Pass(engine, register)
    pass_b = _Pass(compare, register) if compare is not None else None
    lo = since.timestamp() if since is not None else None
    hi = until.timestamp() if until is not None else None
    now = dt.datetime.now(dt.UTC)
    rules = report.rules
    merged: Iterator[tuple[int, tuple[float, AccessEvent, MessageRef]]] = heapq.merge(
        *(((p, item) for item in items) for p, items in sorted(streams.items())), key=lambda pi: pi[1][0]
    )
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
    return report


def read_file(path: Path) -> Iterator[tuple[int, bytes, int]]:
    """The lines of a JSONL file as partition-0 records (line number - 1 as the offset); blank lines skipped."""
    with open(path, "rb") as lines:
        for number, line in enumerate(lines):
            raw = line.rstrip(b"\r\n")
            if raw.strip():
                yield 0, raw, number


@dataclass
class TopicRead:
    """Records read from a topic, and whether --since/--until were applied by the broker (offsets)."""

    records: list[tuple[int, Any, int]]  # the value as bytes, or as `decode` made it
    time_bounds_applied: bool
    seconds: float


async def _read_topic(
    settings: Settings,
    topic: str,
    from_offsets: Mapping[int, int] | int | None,
    to_offsets: Mapping[int, int] | int | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    expected: int | None,
    timeout: float,
    decode: Callable[[bytes], Any] | None,
) -> tuple[list[Any], bool]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        **aiokafka_config(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise BrokerError(f"topic {topic!r} does not exist on {settings.kafka_bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)

        def per(value: Mapping[int, int] | int | None, p: int) -> int | None:
            return value.get(p) if isinstance(value, Mapping) else value

        starts = {tp: per(from_offsets, tp.partition) for tp in tps}
        stops: dict[Any, int | None] = {tp: per(to_offsets, tp.partition) for tp in tps}
        time_bounds = since is None and until is None
        if not time_bounds:
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
                time_bounds = True
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
        ends = await consumer.end_offsets(tps)
        active = {tp for tp in tps if stops[tp] is None or (starts[tp] or 0) < (stops[tp] or 0)}
        quiet_since: dict[Any, float] = {}
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while active and time.monotonic() < deadline:
            if expected is not None and len(out) >= expected:
                break
            batches = await consumer.getmany(*active, timeout_ms=200, max_records=100_000)
            now = time.monotonic()
            for tp, batch in batches.items():
                stop = stops[tp]
                for r in batch:
                    if stop is not None and r.offset >= stop:
                        active.discard(tp)
                        break
                    out.append((tp.partition, decode(r.value) if decode else r.value, r.offset))
                if batch:
                    quiet_since.pop(tp, None)
            for tp in list(active):
                position = await consumer.position(tp)
                stop = stops[tp]
                at_stop = stop is not None and position >= stop
                # At the reported end: done once fetches have come back empty for a while.
                quiet = (
                    expected is None
                    and position >= ends[tp]
                    and tp not in batches
                    and now - quiet_since.setdefault(tp, now) >= _QUIET_SECONDS
                )
                if at_stop or quiet:
                    active.discard(tp)
        return out, time_bounds
    finally:
        await consumer.stop()


def read_topic_bulk(
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
) -> TopicRead:
    """Every record of `topic` (default: the access topic) in bulk, as (partition, value, offset) tuples.

    No consumer group: all partitions are assigned and read with large fetches. `from_offsets` is
    inclusive, `to_offsets` exclusive (one number for every partition or a mapping partition -> offset).
    `since`/`until` become offsets through the broker's offsets_for_times (record timestamps); if it
    cannot answer, everything is read and `time_bounds_applied` is False so the caller filters on
    occurred_at. A partition is done at `to_offsets`, or once fetches come back empty for about a second
    after its reported end (Tansu's end offsets can fall short); with `expected`, reading goes on until
    that many records were read (or `timeout`), for topics still being written.
    `decode`, if given, is applied to each value as it arrives (the raw-consume benchmark uses it).
    """
    started = time.perf_counter()
    records, applied = asyncio.run(
        _read_topic(
            settings,
            topic or settings.topics.access,
            from_offsets,
            to_offsets,
            since,
            until,
            expected,
            timeout,
            decode,
        )
    )
    return TopicRead(records=records, time_bounds_applied=applied, seconds=time.perf_counter() - started)


def read_agreements_topic(settings: Settings) -> list[Agreement]:
    """The register as the agreements topic holds it now: the latest valid agreement per id, tombstones applied."""
    register: dict[str, Agreement] = {}
    for _, value, _ in read_topic_bulk(settings, settings.topics.agreements, timeout=60.0).records:
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
        from streams.audit import read_decisions_topic
        from streams.publisher import Publisher

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
    from streams.register_file import load_agreements_file

    if path is not None:
        return load_agreements_file(path)
    if settings is not None:
        return read_agreements_topic(settings)
    return []
