"""The benchmark suite (issue 6): every figure measured side by side in one run, against one embedded broker.

`gatewatch bench [--quick] [--out FILE]` (or `python -m benchmarks.suite`) runs, on the same simulator
events and the full NPD pack:
1. engine      benchmarks.engine.run: µs per event, and the speed-up over the same conditions in CEL;
2. live        the Gatewatch worker against a bare counting Faust agent (benchmarks/bare_faust.py) on
               the same pre-published topic, each in its own consumer group: events/s first to last;
               `live_rounds` pairs run one after the other, and the medians are reported (a shared
               machine's speed drifts between runs; a ratio within one pair is steadier);
3. replay      replay_events over a TopicSource against a raw aiokafka consume-and-json-decode loop;
4. batched     the worker fed AccessEventBatch messages of 500 events (Publisher.publish_batches);
5. latency     publish-to-alert p50/p99 with events sent at half the live rate of (2);
6. memory      worker RSS (VmRSS) while it processes events over many months of event time with many
               distinct pupils, at each tenth of the run; growth over the second half in percent.
Benchmarks are not tests: nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import random
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rules import load_engine
from schemas import AccessEvent, Agreement
from streams.broker import EmbeddedBroker, free_port
from streams.gctuning import tuned_gc
from streams.kafka import ensure_topics
from streams.publisher import Publisher
from streams.replay import TopicSource, replay_events
from streams.runner import WorkerProcess, settings_env
from streams.settings import Settings, TopicNames
from streams.simulate import DEFAULT_START, Simulator, load_agreements

__all__ = ["FULL", "QUICK", "Sizes", "run_suite"]

ROOT = Path(__file__).resolve().parent.parent
KEYS = (
    "engine_us_per_event_p50",
    "engine_speedup_vs_cel",
    "live_vs_bare_faust",
    "replay_vs_raw_consume",
    "batched_events_per_s",
    "latency_p99_ms",
    "rss_growth_last_half_pct",
)


@dataclass(frozen=True)
class Sizes:
    engine_events: int
    live_events: int  # benchmarks 2, 3 and 4 (the same events)
    latency_events: int
    memory_events: int
    memory_pupils: int
    memory_months: int = 12
    batch_size: int = 500
    live_rounds: int = 3  # benchmark 2's (bare Faust, Gatewatch) pairs, run alternately; medians reported


QUICK = Sizes(
    engine_events=2_000,
    live_events=2_000,
    latency_events=600,
    memory_events=20_000,
    memory_pupils=2_000,
    live_rounds=2,  # (so the smoke run covers a second pair on the same topic)
)
FULL = Sizes(
    engine_events=10_000,
    live_events=20_000,
    latency_events=6_000,
    memory_events=1_000_000,
    memory_pupils=100_000,
)


def _say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def _events(n: int, agreements: Sequence[Agreement], seed: int = 7) -> list[AccessEvent]:
    """n simulator events dated in the past (the worker dead-letters events from the future)."""
    start = DEFAULT_START
    span = dt.timedelta(days=n / 40 + 30)  # about 60 events per working day, with room to spare
    now = dt.datetime.now(dt.UTC)
    while start + span > now:
        start -= dt.timedelta(weeks=52)
    return [s.event for s in Simulator(agreements, seed=seed, start=start).events(n)]


def _wire(events: Sequence[AccessEvent]) -> list[tuple[bytes, bytes]]:
    return [(e.recipient.org_id.encode(), e.model_dump_json(exclude_none=True).encode()) for e in events]


@dataclass
class Bench:
    """The broker, a scratch directory and helpers shared by the benchmarks of one run."""

    broker: EmbeddedBroker
    workdir: Path
    agreements: list[Agreement]
    _names: Iterator[int] = field(default_factory=itertools.count)

    def settings(self, name: str, *, access: str | None = None) -> Settings:
        prefix = f"bench{next(self._names)}-{name}"
        topics = TopicNames(
            access=access or f"{prefix}.access",
            agreements=f"{prefix}.agreements",
            decisions=f"{prefix}.decisions",
            alerts=f"{prefix}.alerts",
            deadletter=f"{prefix}.deadletter",
        )
        return Settings(
            kafka_bootstrap=self.broker.bootstrap,
            local_mode=True,
            app_id=prefix,
            topics=topics,
            web_port=free_port(),
            data_dir=self.workdir / prefix,
            partitions=4,
            log_level="warning",
            rule_reload_interval_seconds=0,
        )

    def prepare(self, settings: Settings) -> None:
        ensure_topics(settings)
        with Publisher(settings) as pub:
            pub.publish_agreements(self.agreements)

    def publish(self, settings: Settings, wire: Sequence[tuple[bytes, bytes]]) -> float:
        """Publish pre-serialised events in producer batches (fast); returns events/s of the publish."""
        t0 = time.perf_counter()
        with Publisher(settings, batch_size=512 * 1024, linger_ms=10, max_in_flight_requests_per_connection=5) as pub:
            for key, value in wire:
                pub.publish_raw(value, key=key)
        return len(wire) / (time.perf_counter() - t0)

    def worker(self, settings: Settings) -> WorkerProcess:
        worker = WorkerProcess(settings, log_file=self.workdir / f"{settings.app_id}.log").start()
        worker.wait_ready(agreements=len(self.agreements), timeout=90)
        return worker

    def decide(self, settings: Settings, expected: int, timeout: float) -> tuple[int, float]:
        """Run a worker over the events already published: (decisions read, first-to-last seconds)."""
        worker = self.worker(settings)
        try:
            return _decision_span(settings, expected, timeout)
        finally:
            worker.stop()


def _evaluated_at(raw: bytes) -> float:
    return dt.datetime.fromisoformat(json.loads(raw)["evaluated_at"]).timestamp()


def _decision_span(settings: Settings, expected: int, timeout: float) -> tuple[int, float]:
    """(decisions read, seconds from the first to the last decision's evaluated_at)."""
    with TopicSource(
        settings, settings.topics.decisions, expected=expected, timeout=timeout, decode=_evaluated_at
    ) as source:
        times: list[float] = [t for _, t, _ in source.read_all()]
    if len(times) < 2:
        return len(times), 0.0
    return len(times), max(times) - min(times)


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def bare_faust(bench: Bench, access_topic: str, expected: int, timeout: float) -> dict[str, Any]:
    """Benchmark 2's ceiling: a counting Faust agent, same options as the worker, its own group."""
    settings = bench.settings("bare", access=access_topic)
    env = {
        **os.environ,
        **settings_env(settings),
        "BENCH_EXPECTED": str(expected),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    log = open(bench.workdir / "bare_faust.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bare_faust"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    try:
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buffer, doc = b"", None
        while doc is None and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"bare Faust agent exited with {proc.returncode}; see {bench.workdir}")
            if sel.select(timeout=1.0):
                buffer += os.read(proc.stdout.fileno(), 65536)
            *lines, buffer = buffer.split(b"\n")
            for line in lines:  # Faust may print a banner or warnings too: take the line with the count
                with contextlib.suppress(ValueError):  # (after any terminal escape codes on the line)
                    candidate = json.loads(line[line.find(b"{") :])
                    if isinstance(candidate, dict) and "count" in candidate:
                        doc = candidate
        if doc is None:
            raise RuntimeError(f"bare Faust agent did not count {expected} messages in {timeout:.0f}s")
    finally:
        _stop(proc)
    seconds = float(doc["last"]) - float(doc["first"])
    return {"count": int(doc["count"]), "seconds": round(seconds, 3), "events_per_s": _rate(int(doc["count"]), seconds)}


def bench_live(bench: Bench, wire: Sequence[tuple[bytes, bytes]], rounds: int = 1) -> tuple[dict[str, Any], Settings]:
    """`rounds` pairs over one topic: a bare Faust agent, then a Gatewatch worker, each in a group of its own."""
    n = len(wire)
    first = bench.settings("live")
    bench.prepare(first)
    publish_rate = bench.publish(first, wire)
    timeout = max(120.0, n / 100)
    _say(f"live: {n} events published ({publish_rate:,.0f}/s)")
    pairs: list[dict[str, Any]] = []
    settings = first
    for round_ in range(rounds):
        if round_:  # its own agreements, decisions and alerts topics; the same events
            settings = bench.settings("live", access=first.topics.access)
            bench.prepare(settings)
        bare = bare_faust(bench, settings.topics.access, n, timeout)
        count, seconds = bench.decide(settings, n, timeout)
        gw = _rate(count, seconds)
        ratio = round(gw / bare["events_per_s"], 3) if bare["events_per_s"] else 0.0
        _say(f"live {round_ + 1}/{rounds}: bare Faust {bare['events_per_s']:,.0f}/s, Gatewatch {gw:,.0f}/s ({ratio}x)")
        pairs.append(
            {
                "bare_faust_events_per_s": bare["events_per_s"],
                "bare_faust_seconds": bare["seconds"],
                "gatewatch_events_per_s": gw,
                "gatewatch_seconds": round(seconds, 3),
                "gatewatch_decisions": count,
                "ratio": ratio,
            }
        )
    return {
        "live_events": n,
        "live_gatewatch_events_per_s": statistics.median(p["gatewatch_events_per_s"] for p in pairs),
        "live_gatewatch_decisions": min(p["gatewatch_decisions"] for p in pairs),
        "live_bare_faust_events_per_s": statistics.median(p["bare_faust_events_per_s"] for p in pairs),
        "live_vs_bare_faust": statistics.median(p["ratio"] for p in pairs),
        "live_rounds": pairs,
    }, first


def bench_replay(bench: Bench, settings: Settings, n: int) -> dict[str, Any]:
    """Both sides read the same topic from the start with a fresh client; `expected` ends each read."""
    t0 = time.perf_counter()
    # The ceiling: large fetches, every record decoded as it arrives, nothing evaluated; under the same
    # garbage collector settings as replay_events (they speed both up alike).
    with (
        tuned_gc(),
        TopicSource(
            settings, expected=n, decode=json.loads, partition_fetch_bytes=16 * 1024 * 1024, max_records=100_000
        ) as source,
    ):
        raw_count = len(source.read_all())
    raw_seconds = time.perf_counter() - t0
    raw_rate = _rate(raw_count, raw_seconds)
    engine = load_engine()
    t0 = time.perf_counter()
    with TopicSource(settings, expected=n) as source:  # read as it is evaluated, as `gatewatch replay` does
        report = replay_events(source, engine, agreements=bench.agreements, source="topic")
    seconds = time.perf_counter() - t0
    rate = _rate(report.events, seconds)
    _say(f"replay: {rate:,.0f} events/s against raw consume {raw_rate:,.0f} events/s")
    return {
        "replay_events": report.events,
        "replay_events_per_s": rate,
        "replay_seconds": round(seconds, 3),
        "replay_most_buffered_events": report.most_buffered,
        "raw_consume_events_per_s": raw_rate,
        "raw_consume_seconds": round(raw_seconds, 3),
        "replay_vs_raw_consume": round(rate / raw_rate, 3) if raw_rate else 0.0,
    }


def bench_batched(bench: Bench, events: Sequence[AccessEvent], batch_size: int) -> dict[str, Any]:
    n = len(events)
    settings = bench.settings("batched")
    bench.prepare(settings)
    t0 = time.perf_counter()
    with Publisher(settings, batch_size=512 * 1024, linger_ms=10) as pub:  # (closing waits for every ack)
        pub.publish_batches(events, batch_size=batch_size)
    publish_rate = _rate(n, time.perf_counter() - t0)
    count, seconds = bench.decide(settings, n, max(120.0, n / 100))
    rate = _rate(count, seconds)
    _say(f"batched: {rate:,.0f} events/s ({count} decisions, batches of {batch_size}), published {publish_rate:,.0f}/s")
    return {
        "batched_events": n,
        "batched_batch_size": batch_size,
        "batched_publish_events_per_s": publish_rate,
        "batched_decisions": count,
        "batched_seconds": round(seconds, 3),
        "batched_events_per_s": rate,
    }


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _read_timestamped(settings: Settings, topic: str, idle: float = 2.0) -> list[tuple[float, bytes]]:
    """(broker record timestamp in seconds, value) of every record of a topic, until idle for `idle` s."""
    from kafka import KafkaConsumer, TopicPartition

    from streams.kafka import kafka_python_config

    consumer = KafkaConsumer(
        **kafka_python_config(settings), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    out: list[tuple[float, bytes]] = []
    try:
        tps = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        last = time.monotonic()
        while time.monotonic() - last < idle:
            polled = consumer.poll(timeout_ms=300)
            for batch in polled.values():
                out.extend((r.timestamp / 1000.0, r.value) for r in batch)
            if polled:
                last = time.monotonic()
    finally:
        consumer.close()
    return out


def bench_latency(bench: Bench, events: Sequence[AccessEvent], rate: float) -> dict[str, Any]:
    """Events sent one by one at `rate`/s to a running worker; delay = alert record time - send time."""
    settings = bench.settings("latency")
    bench.prepare(settings)
    wire = _wire(events)
    ids = [e.event_id for e in events]
    worker = bench.worker(settings)
    sent: dict[str, float] = {}
    try:
        # Small batches with a 1 ms linger: an unbatched producer waits a round trip per record and
        # above a few hundred events/s its own queue (not the worker) would be what gets measured.
        with Publisher(settings, batch_size=64 * 1024, linger_ms=1, max_in_flight_requests_per_connection=5) as pub:
            t0 = time.monotonic()
            for i, ((key, value), event_id) in enumerate(zip(wire, ids, strict=True)):
                time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                sent[event_id] = time.time()
                pub.publish_raw(value, key=key)
        count, _ = _decision_span(settings, len(events), max(120.0, len(events) / 50))
        alerts = _read_timestamped(settings, settings.topics.alerts)
    finally:
        worker.stop()
    delays = []
    for at, raw in alerts:
        known = [sent[e] for e in json.loads(raw).get("event_ids", ()) if e in sent]
        if known:
            delays.append((at - max(known)) * 1000.0)
    p50, p99 = _percentile(delays, 0.50), _percentile(delays, 0.99)
    _say(f"latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(delays)} alerts at {rate:,.0f} events/s")
    return {
        "latency_events": len(events),
        "latency_rate_events_per_s": round(rate, 1),
        "latency_decisions": count,
        "latency_alerts": len(delays),
        "latency_p50_ms": round(p50, 2),
        "latency_p99_ms": round(p99, 2),
        "latency_max_ms": round(max(delays), 2) if delays else 0.0,
    }


def memory_events(
    base: Sequence[AccessEvent], n: int, pupils: int, months: int, seed: int = 7
) -> Iterator[tuple[bytes, bytes]]:
    """n events cycling over `base`, re-dated evenly over `months` months ending a day ago, with pupil
    references drawn in turn from a pool of `pupils`, so windows fill, expire and the state must plateau."""
    rng = random.Random(seed)
    pool = [f"P{rng.getrandbits(48):012x}" for _ in range(pupils)]
    docs = [e.model_dump(mode="json", exclude_none=True) for e in base]
    end = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    start = end - dt.timedelta(days=30.4 * months)
    step = (end - start) / max(1, n)
    turn = 0
    for i in range(n):
        doc = dict(docs[i % len(docs)])
        doc["event_id"] = f"mem-{i:09d}"
        doc["occurred_at"] = (start + i * step).isoformat()
        refs = doc.get("pupil_refs")
        if refs:
            doc["pupil_refs"] = [pool[(turn + j) % pupils] for j in range(len(refs))]
            turn += len(refs)
        yield doc["recipient"]["org_id"].encode(), json.dumps(doc, separators=(",", ":")).encode()


def _processed(worker: WorkerProcess) -> float:
    total = 0.0
    with contextlib.suppress(OSError):
        for line in worker.metrics_text().splitlines():
            if line.startswith(("gatewatch_decisions_total{", 'gatewatch_dead_letters_total{source="access"')):
                total += float(line.rsplit(" ", 1)[1])
    return total


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def bench_memory(bench: Bench, base: Sequence[AccessEvent], sizes: Sizes) -> dict[str, Any]:
    n = sizes.memory_events
    settings = bench.settings("memory")
    bench.prepare(settings)
    publish_rate = bench.publish(settings, list(memory_events(base, n, sizes.memory_pupils, sizes.memory_months)))
    _say(f"memory: {n} events published ({publish_rate:,.0f}/s); worker")
    worker = bench.worker(settings)
    assert worker.proc is not None
    pid = worker.proc.pid
    samples: list[tuple[float, int]] = []
    t0 = time.monotonic()
    try:
        deadline = time.monotonic() + max(300.0, n / 100)
        last_progress, last_change = -1.0, time.monotonic()
        while time.monotonic() < deadline:
            done = _processed(worker)
            samples.append((done, _rss_kib(pid)))
            if done >= n:
                break
            if done != last_progress:
                last_progress, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > 60:
                raise RuntimeError(f"memory run stalled at {done:.0f} of {n} events")
            time.sleep(0.5)
    finally:
        worker.stop()
    seconds = time.monotonic() - t0
    tenths = []
    for k in range(1, 11):
        target = n * k / 10
        hit = next((rss for done, rss in samples if done >= target), samples[-1][1] if samples else 0)
        tenths.append(round(hit / 1024, 1))
    half, last = tenths[4], tenths[9]
    growth = round((last - half) / half * 100, 2) if half else 0.0
    _say(f"memory: RSS MiB at each tenth {tenths}; growth over the second half {growth}%")
    return {
        "memory_events": n,
        "memory_pupils": sizes.memory_pupils,
        "memory_event_time_months": sizes.memory_months,
        "memory_processed": samples[-1][0] if samples else 0,
        "memory_seconds": round(seconds, 1),
        "memory_events_per_s": _rate(int(samples[-1][0]) if samples else 0, seconds),
        "rss_mib_at_tenths": tenths,
        "rss_growth_last_half_pct": growth,
    }


def bench_engine(sizes: Sizes) -> dict[str, Any]:
    from benchmarks.engine import run

    result = run(events=sizes.engine_events, seed=7)
    _say(
        f"engine: {result['engine_us_per_event_p50']} µs/event p50, {result['engine_speedup_vs_cel']}x faster than CEL"
    )
    return {
        "engine_us_per_event_p50": result["engine_us_per_event_p50"],
        "engine_speedup_vs_cel": result["engine_speedup_vs_cel"],
        "engine": {k: v for k, v in result.items() if k not in ("machine",)},
    }


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }


ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("1 engine", "engine_us_per_event_p50", "µs/event p50", "< 20"),
    ("1 engine", "engine_speedup_vs_cel", "x faster than CEL", ">= 20"),
    ("2 live", "live_gatewatch_events_per_s", "events/s Gatewatch", ""),
    ("2 live", "live_bare_faust_events_per_s", "events/s bare Faust", ""),
    ("2 live", "live_vs_bare_faust", "x bare Faust", ">= 0.9"),
    ("3 replay", "replay_events_per_s", "events/s replay", ""),
    ("3 replay", "raw_consume_events_per_s", "events/s raw consume", ""),
    ("3 replay", "replay_vs_raw_consume", "x raw consume", ">= 0.5"),
    ("4 batched", "batched_events_per_s", "events/s per worker", ">= 50000"),
    ("4 batched", "batched_publish_events_per_s", "events/s published", ""),
    ("5 latency", "latency_p50_ms", "ms publish-to-alert p50", ""),
    ("5 latency", "latency_p99_ms", "ms publish-to-alert p99", "< 250"),
    ("6 memory", "rss_growth_last_half_pct", "% RSS growth, 2nd half", "plateau"),
)


def render(results: dict[str, Any]) -> str:
    lines = [f"{'benchmark':<11} {'figure':<26} {'value':>12}  target", "-" * 62]
    for name, key, label, target in ROWS:
        value = results.get(key)
        text = f"{value:,.2f}" if isinstance(value, int | float) else "n/a"
        lines.append(f"{name:<11} {label:<26} {text:>12}  {target}")
    if "live_rounds" in results:
        ratios = ", ".join(f"{p['ratio']}" for p in results["live_rounds"])
        lines.append(f"{'2 live':<11} x bare Faust in each round: [{ratios}] (median above)")
    if "rss_mib_at_tenths" in results:
        lines.append(f"{'6 memory':<11} RSS MiB at each tenth: {results['rss_mib_at_tenths']}")
    sizes = results.get("sizes", {})
    lines.append("sizes: " + ", ".join(f"{k}={v}" for k, v in sizes.items()))
    m = results.get("machine", {})
    lines.append(f"machine: {m.get('platform')}, {m.get('cpu_count')} CPUs, Python {m.get('python')}")
    for name, error in results.get("errors", {}).items():
        lines.append(f"ERROR in {name}: {error.splitlines()[-1] if error else ''}")
    return "\n".join(lines)


ALL = ("engine", "live", "replay", "batched", "latency", "memory")


def run_suite(
    *, quick: bool = False, out: Path | None = None, only: Sequence[str] | None = None, sizes: Sizes | None = None
) -> dict[str, Any]:
    """Run the benchmarks (all, or `only` these), print the table, write JSON to `out`; the figures."""
    sizes = sizes or (QUICK if quick else FULL)
    chosen = [name for name in ALL if not only or name in only]
    results: dict[str, Any] = {
        "quick": quick,
        "sizes": dict(sizes.__dict__),
        "machine": machine(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "errors": {},
    }

    def attempt(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        if name not in chosen:
            return
        t0 = time.monotonic()
        try:
            results.update(fn())
        except Exception:
            results["errors"][name] = traceback.format_exc()
            _say(f"{name} failed:\n{results['errors'][name]}")
        results.setdefault("seconds", {})[name] = round(time.monotonic() - t0, 1)

    attempt("engine", lambda: bench_engine(sizes))
    needs_broker = set(chosen) - {"engine"}
    if needs_broker:
        with tempfile.TemporaryDirectory(prefix="gatewatch-bench-") as tmp:
            workdir = Path(tmp)
            agreements = load_agreements()
            events = _events(sizes.live_events, agreements)
            wire = _wire(events)
            with EmbeddedBroker(log_file=workdir / "broker.log") as broker:
                bench = Bench(broker, workdir, agreements)
                live_settings: list[Settings] = []

                def live() -> dict[str, Any]:
                    figures, settings = bench_live(bench, wire, sizes.live_rounds)
                    live_settings.append(settings)
                    return figures

                attempt("live", live)

                def replay() -> dict[str, Any]:
                    if not live_settings:  # the live benchmark did not run: publish the events here
                        settings = bench.settings("replay")
                        bench.prepare(settings)
                        bench.publish(settings, wire)
                        live_settings.append(settings)
                    return bench_replay(bench, live_settings[0], len(wire))

                attempt("replay", replay)
                attempt("batched", lambda: bench_batched(bench, events, sizes.batch_size))

                def latency() -> dict[str, Any]:
                    sustainable = results.get("live_gatewatch_events_per_s") or 500.0
                    lat_events = _events(sizes.latency_events, agreements, seed=8)
                    return bench_latency(bench, lat_events, max(1.0, sustainable / 2))

                attempt("latency", latency)
                attempt("memory", lambda: bench_memory(bench, events[:5000], sizes))
    results["finished_at"] = dt.datetime.now(dt.UTC).isoformat()
    print(render(results), flush=True)
    if out is not None:
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", action="append", choices=ALL)
    parser.add_argument("--memory-events", type=int, help="override the memory run's size")
    parser.add_argument("--memory-pupils", type=int)
    parser.add_argument("--live-events", type=int)
    parser.add_argument("--live-rounds", type=int, help="(bare Faust, Gatewatch) pairs in benchmark 2")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    overrides = {
        k: v
        for k, v in (
            ("memory_events", args.memory_events),
            ("memory_pupils", args.memory_pupils),
            ("live_events", args.live_events),
            ("live_rounds", args.live_rounds),
        )
        if v is not None
    }
    if overrides:
        sizes = Sizes(**{**sizes.__dict__, **overrides})
    results = run_suite(quick=args.quick, out=args.out, only=args.only, sizes=sizes)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
