"""The benchmark suite: every figure measured side by side in one run, against one embedded broker.

`gatewatch bench [--quick] [--out FILE]` (or `python -m streams.bench.suite`) runs, on the same
simulator events and the full NPD pack:
1. engine      streams.bench.engine.run: µs per event, and the speed-up over the same conditions in CEL
               (when the `common-expression-language` package is installed: `pip install gatewatch[bench]`);
   offline     streams.bench.offline.run: the all-in offline cost per event (decode, evaluate, decision
               bytes, alerts, ledger link), and each part on its own;
2. live        the Gatewatch worker against bare Faust agents (streams/bench/bare_faust.py) on the same
               pre-published topic of single-event messages, each in its own consumer group: a bare
               transform (decode, one small record per event through `await topic.send`) and a
               counting agent; `live_rounds` rounds alternate them with Gatewatch and the medians are
               reported (a shared machine's speed drifts between runs; a ratio within one round is steadier);
3. replay      replay_events over a TopicSource against a raw aiokafka consume-and-json-decode loop;
4. batched     the worker and the bare transform fed AccessEventBatch messages of 500 events, in
               alternating rounds as in (2);
5. latency     publish-to-alert p50/p99 with events sent at half the live rate of (2);
6. memory      worker RSS (VmRSS) while it processes events over many months of event time with many
               distinct pupils, at each tenth of the run; growth over the second half in percent.
`gatewatch bench --scale-out 1,2,4` runs streams/bench/scaleout.py instead.
Benchmarks are not tests: nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import random
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules import load_engine
from schemas import AccessEvent
from streams.bench.common import Bench, decision_span, machine, per_second, say, sim_events, to_wire
from streams.bench.live import bench_batched, bench_live
from streams.cli.runner import WorkerProcess
from streams.offline.replay import TopicSource, replay_events
from streams.offline.simulate import load_agreements
from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker
from streams.transport.publisher import Publisher
from streams.worker.gctuning import tuned_gc

__all__ = ["FULL", "QUICK", "Sizes", "run_suite"]

KEYS = (
    "engine_us_per_event_p50",
    "engine_speedup_vs_cel",
    "offline_us_per_event_p50",
    "live_vs_bare_transform",
    "batched_vs_bare_transform",
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
    live_rounds: int = 3  # benchmark 2's (anchors, Gatewatch) rounds, run alternately; medians reported
    batched_rounds: int = 3  # benchmark 4's (bare transform, Gatewatch) rounds


QUICK = Sizes(
    engine_events=2_000,
    live_events=2_000,
    latency_events=600,
    memory_events=20_000,
    memory_pupils=2_000,
    live_rounds=2,  # (so the smoke run covers a second round on the same topic)
    batched_rounds=2,
)
FULL = Sizes(
    engine_events=10_000,
    live_events=20_000,
    latency_events=6_000,
    memory_events=1_000_000,
    memory_pupils=100_000,
)


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
    raw_rate = per_second(raw_count, raw_seconds)
    engine = load_engine()
    t0 = time.perf_counter()
    with TopicSource(settings, expected=n) as source:  # read as it is evaluated, as `gatewatch replay` does
        report = replay_events(source, engine, agreements=bench.agreements, source="topic")
    seconds = time.perf_counter() - t0
    rate = per_second(report.events, seconds)
    say(f"replay: {rate:,.0f} events/s against raw consume {raw_rate:,.0f} events/s")
    return {
        "replay_events": report.events,
        "replay_events_per_s": rate,
        "replay_seconds": round(seconds, 3),
        "replay_most_buffered_events": report.most_buffered,
        "raw_consume_events_per_s": raw_rate,
        "raw_consume_seconds": round(raw_seconds, 3),
        "replay_vs_raw_consume": round(rate / raw_rate, 3) if raw_rate else 0.0,
    }


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _read_timestamped(settings: Settings, topic: str, idle: float = 2.0) -> list[tuple[float, bytes]]:
    """(broker record timestamp in seconds, value) of every record of a topic, until idle for `idle` s."""
    from kafka import KafkaConsumer, TopicPartition

    from streams.transport.kafka import kafka_python_config

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
    wire = to_wire(events)
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
        count, _ = decision_span(settings, len(events), max(120.0, len(events) / 50))
        alerts = _read_timestamped(settings, settings.topics.alerts)
    finally:
        worker.stop()
    delays = []
    for at, raw in alerts:
        known = [sent[e] for e in json.loads(raw).get("event_ids", ()) if e in sent]
        if known:
            delays.append((at - max(known)) * 1000.0)
    p50, p99 = _percentile(delays, 0.50), _percentile(delays, 0.99)
    say(f"latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(delays)} alerts at {rate:,.0f} events/s")
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
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
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
    say(f"memory: {n} events published ({publish_rate:,.0f}/s); worker")
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
    say(f"memory: RSS MiB at each tenth {tenths}; growth over the second half {growth}%")
    return {
        "memory_events": n,
        "memory_pupils": sizes.memory_pupils,
        "memory_event_time_months": sizes.memory_months,
        "memory_processed": samples[-1][0] if samples else 0,
        "memory_seconds": round(seconds, 1),
        "memory_events_per_s": per_second(int(samples[-1][0]) if samples else 0, seconds),
        "rss_mib_at_tenths": tenths,
        "rss_growth_last_half_pct": growth,
    }


def bench_engine(sizes: Sizes) -> dict[str, Any]:
    from streams.bench.engine import run

    result = run(events=sizes.engine_events, seed=7)
    speedup = result["engine_speedup_vs_cel"]
    versus = f"{speedup}x faster than CEL" if speedup is not None else "CEL not installed (gatewatch[bench])"
    say(f"engine: {result['engine_us_per_event_p50']} µs/event p50, {versus}")
    return {
        "engine_us_per_event_p50": result["engine_us_per_event_p50"],
        "engine_speedup_vs_cel": result["engine_speedup_vs_cel"],
        "engine": {k: v for k, v in result.items() if k not in ("machine",)},
    }


def bench_offline(sizes: Sizes) -> dict[str, Any]:
    from streams.bench.offline import run

    result = run(events=sizes.engine_events, seed=7)
    say(
        f"offline: {result['offline_us_per_event_p50']} µs/event p50 all-in (decode: pydantic "
        f"{result['offline_decode_pydantic_us_p50']}, msgspec {result['offline_decode_fast_us_p50']} µs)"
    )
    return result


ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("1 engine", "engine_us_per_event_p50", "µs/event p50", "<= 10"),
    ("1 engine", "engine_speedup_vs_cel", "x faster than CEL", ">= 20"),
    ("1 offline", "offline_us_per_event_p50", "µs/event p50, all-in", "<= 30"),
    ("2 live", "live_gatewatch_events_per_s", "events/s Gatewatch", ""),
    ("2 live", "live_bare_transform_events_per_s", "events/s bare transform", ""),
    ("2 live", "live_vs_bare_transform", "x bare transform", ">= 1.0"),
    ("2 live", "live_bare_faust_events_per_s", "events/s counting agent", ""),
    ("2 live", "live_vs_bare_faust", "x counting agent", "(info)"),
    ("3 replay", "replay_events_per_s", "events/s replay", ""),
    ("3 replay", "raw_consume_events_per_s", "events/s raw consume", ""),
    ("3 replay", "replay_vs_raw_consume", "x raw consume", ">= 0.5"),
    ("4 batched", "batched_events_per_s", "events/s per worker", ""),
    ("4 batched", "batched_bare_transform_events_per_s", "events/s bare transform", ""),
    ("4 batched", "batched_vs_bare_transform", "x bare transform", ">= 1.0"),
    ("4 batched", "batched_publish_events_per_s", "events/s published", ""),
    ("5 latency", "latency_p50_ms", "ms publish-to-alert p50", ""),
    ("5 latency", "latency_p99_ms", "ms publish-to-alert p99", "<= 100"),
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
        lines.append(f"{'2 live':<11} x bare transform in each round: [{ratios}] (median above)")
    if "batched_rounds" in results:
        ratios = ", ".join(f"{p['ratio']}" for p in results["batched_rounds"])
        lines.append(f"{'4 batched':<11} x bare transform in each round: [{ratios}] (median above)")
    if "rss_mib_at_tenths" in results:
        lines.append(f"{'6 memory':<11} RSS MiB at each tenth: {results['rss_mib_at_tenths']}")
    sizes = results.get("sizes", {})
    lines.append("sizes: " + ", ".join(f"{k}={v}" for k, v in sizes.items()))
    m = results.get("machine", {})
    lines.append(f"machine: {m.get('platform')}, {m.get('cpu_count')} CPUs, Python {m.get('python')}")
    for name, error in results.get("errors", {}).items():
        lines.append(f"ERROR in {name}: {error.splitlines()[-1] if error else ''}")
    return "\n".join(lines)


ALL = ("engine", "offline", "live", "replay", "batched", "latency", "memory")


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
            say(f"{name} failed:\n{results['errors'][name]}")
        results.setdefault("seconds", {})[name] = round(time.monotonic() - t0, 1)

    attempt("engine", lambda: bench_engine(sizes))
    attempt("offline", lambda: bench_offline(sizes))
    needs_broker = set(chosen) - {"engine", "offline"}
    if needs_broker:
        with tempfile.TemporaryDirectory(prefix="gatewatch-bench-") as tmp:
            workdir = Path(tmp)
            agreements = load_agreements()
            events = sim_events(sizes.live_events, agreements)
            wire = to_wire(events)
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
                attempt("batched", lambda: bench_batched(bench, events, sizes.batch_size, sizes.batched_rounds))

                def latency() -> dict[str, Any]:
                    sustainable = results.get("live_gatewatch_events_per_s") or 500.0
                    lat_events = sim_events(sizes.latency_events, agreements, seed=8)
                    return bench_latency(bench, lat_events, max(1.0, sustainable / 2))

                attempt("latency", latency)
                attempt("memory", lambda: bench_memory(bench, events[:5000], sizes))
    results["finished_at"] = dt.datetime.now(dt.UTC).isoformat()
    print(render(results), flush=True)
    if out is not None:
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.bench.suite", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", action="append", choices=ALL)
    parser.add_argument("--memory-events", type=int, help="override the memory run's size")
    parser.add_argument("--memory-pupils", type=int)
    parser.add_argument("--live-events", type=int)
    parser.add_argument("--live-rounds", type=int, help="(anchors, Gatewatch) rounds in benchmark 2")
    parser.add_argument("--batched-rounds", type=int, help="(bare transform, Gatewatch) rounds in benchmark 4")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    overrides = {
        k: v
        for k, v in (
            ("memory_events", args.memory_events),
            ("memory_pupils", args.memory_pupils),
            ("live_events", args.live_events),
            ("live_rounds", args.live_rounds),
            ("batched_rounds", args.batched_rounds),
        )
        if v is not None
    }
    if overrides:
        sizes = Sizes(**{**sizes.__dict__, **overrides})
    results = run_suite(quick=args.quick, out=args.out, only=args.only, sizes=sizes)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
