"""Benchmarks 2 and 4: the Gatewatch worker against bare Faust agents on the same topics, in alternating rounds.

Each round runs the anchors and then Gatewatch over one pre-published topic, each in a consumer group
of its own, and takes events/s from the first to the last event each handled. A shared machine's
speed drifts between runs; a ratio within one round is steadier, and the medians of the rounds are
reported. The anchors (streams/bench/bare_faust.py):
- the bare transform: decode each event, write one small record per event with `await topic.send`
  (`live_vs_bare_transform`, `batched_vs_bare_transform`: the targets);
- the counting agent, single-event messages only (`live_vs_bare_faust`: for information).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from schemas import AccessEvent
from streams.bench.common import Bench, per_second, say, stop_process
from streams.cli.runner import settings_env
from streams.settings import Settings
from streams.transport.publisher import Publisher

__all__ = ["bare_agent", "bench_batched", "bench_live"]


def _read_count(proc: subprocess.Popen[bytes], expected: int, timeout: float, where: str) -> dict[str, Any]:
    """The agent's one JSON line {"count", "first", "last"}, read from its stdout within `timeout`."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buffer = b""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bare Faust agent exited with {proc.returncode}; see {where}")
        if sel.select(timeout=1.0):
            buffer += os.read(proc.stdout.fileno(), 65536)
        *lines, buffer = buffer.split(b"\n")
        for line in lines:  # Faust may print a banner or warnings too: take the line with the count
            with contextlib.suppress(ValueError):  # (after any terminal escape codes on the line)
                candidate = json.loads(line[line.find(b"{") :])
                if isinstance(candidate, dict) and "count" in candidate:
                    return candidate
    raise RuntimeError(f"bare Faust agent did not count {expected} events in {timeout:.0f}s")


def bare_agent(bench: Bench, access_topic: str, expected: int, timeout: float, mode: str) -> dict[str, Any]:
    """Run one bare agent (`count` or `transform`) over `access_topic` in a group of its own: its events/s."""
    settings = bench.settings(f"bare-{mode}", access=access_topic)
    if mode == "transform":
        bench.prepare(settings)  # (its own decisions topic to write to)
    env = {**os.environ, **settings_env(settings), "BENCH_EXPECTED": str(expected), "BENCH_MODE": mode}
    log_path = bench.workdir / f"bare_{mode}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.bench.bare_faust"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    try:
        doc = _read_count(proc, expected, timeout, str(log_path))
    finally:
        stop_process(proc)
    seconds = float(doc["last"]) - float(doc["first"])
    count = int(doc["count"])
    return {"count": count, "seconds": round(seconds, 3), "events_per_s": per_second(count, seconds)}


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def _rounds(
    bench: Bench, first: Settings, n: int, rounds: int, anchors: Sequence[str], label: str
) -> list[dict[str, Any]]:
    """`rounds` times: each anchor, then a Gatewatch worker, over `first`'s access topic."""
    timeout = max(120.0, n / 100)
    out: list[dict[str, Any]] = []
    settings = first
    for round_ in range(rounds):
        if round_:  # its own agreements, decisions and alerts topics; the same events
            settings = bench.settings(label, access=first.topics.access)
            bench.prepare(settings)
        row: dict[str, Any] = {}
        for mode in anchors:
            anchor = bare_agent(bench, settings.topics.access, n, timeout, mode)
            name = "bare_faust" if mode == "count" else "bare_transform"
            row[f"{name}_events_per_s"] = anchor["events_per_s"]
            row[f"{name}_seconds"] = anchor["seconds"]
        count, seconds = bench.decide(settings, n, timeout)
        row.update(
            gatewatch_events_per_s=per_second(count, seconds),
            gatewatch_seconds=round(seconds, 3),
            gatewatch_decisions=count,
        )
        for name in ("bare_faust", "bare_transform"):
            if f"{name}_events_per_s" in row:
                row[f"vs_{name}"] = _ratio(row["gatewatch_events_per_s"], row[f"{name}_events_per_s"])
        row["ratio"] = row.get("vs_bare_transform", row.get("vs_bare_faust", 0.0))
        figures = ", ".join(f"{k.removesuffix('_events_per_s')} {v:,.0f}/s" for k, v in row.items() if "per_s" in k)
        say(f"{label} {round_ + 1}/{rounds}: {figures}")
        out.append(row)
    return out


def _median(rows: Sequence[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def bench_live(bench: Bench, wire: Sequence[tuple[bytes, bytes]], rounds: int = 1) -> tuple[dict[str, Any], Settings]:
    """Single-event messages: rounds of (counting agent, bare transform, Gatewatch) on one topic."""
    n = len(wire)
    first = bench.settings("live")
    bench.prepare(first)
    publish_rate = bench.publish(first, wire)
    say(f"live: {n} events published ({publish_rate:,.0f}/s)")
    rows = _rounds(bench, first, n, rounds, ("count", "transform"), "live")
    return {
        "live_events": n,
        "live_gatewatch_events_per_s": _median(rows, "gatewatch_events_per_s"),
        "live_gatewatch_decisions": min(r["gatewatch_decisions"] for r in rows),
        "live_bare_faust_events_per_s": _median(rows, "bare_faust_events_per_s"),
        "live_bare_transform_events_per_s": _median(rows, "bare_transform_events_per_s"),
        "live_vs_bare_faust": _median(rows, "vs_bare_faust"),
        "live_vs_bare_transform": _median(rows, "vs_bare_transform"),
        "live_rounds": rows,
    }, first


def bench_batched(bench: Bench, events: Sequence[AccessEvent], batch_size: int, rounds: int = 1) -> dict[str, Any]:
    """AccessEventBatch messages of `batch_size` events: rounds of (bare transform, Gatewatch) on one topic."""
    n = len(events)
    first = bench.settings("batched")
    bench.prepare(first)
    t0 = time.perf_counter()
    with Publisher(first, batch_size=512 * 1024, linger_ms=10) as pub:  # (closing waits for every ack)
        pub.publish_batches(events, batch_size=batch_size)
    publish_rate = per_second(n, time.perf_counter() - t0)
    say(f"batched: {n} events published in batches of {batch_size} ({publish_rate:,.0f}/s)")
    rows = _rounds(bench, first, n, rounds, ("transform",), "batched")
    return {
        "batched_events": n,
        "batched_batch_size": batch_size,
        "batched_publish_events_per_s": publish_rate,
        "batched_decisions": min(r["gatewatch_decisions"] for r in rows),
        "batched_seconds": _median(rows, "gatewatch_seconds"),
        "batched_events_per_s": _median(rows, "gatewatch_events_per_s"),
        "batched_bare_transform_events_per_s": _median(rows, "bare_transform_events_per_s"),
        "batched_vs_bare_transform": _median(rows, "vs_bare_transform"),
        "batched_rounds": rows,
    }
