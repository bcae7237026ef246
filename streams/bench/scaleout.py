"""`gatewatch bench --scale-out 1,2,4`: K workers in one consumer group over one pre-published backlog.

The sample register is cloned 64 times (16 recipients become 1,024) and the simulator's traffic is
spread over the clones, a recipient's events going to its clones in turns of one message each, so
the backlog's keys fall evenly over the access topic's 16 partitions (a backlog of N events in
batches of 500 uses min(1,024, N / 500) of the recipients; 200,000 events use about 400). The
backlog is published once; then, for each K, K worker processes with the same app id (one consumer
group, their own output topics per K) are started together and read it from the start. The figure
per K is the steady-state rate: decisions between the 10th and the 90th percentile of their
`evaluated_at` times, divided by the seconds between them, so start-up and the rebalances as
workers join are left out. Each K also reports the decisions read (nothing lost), the dead letters
and each worker's own decision count (the spread over the workers).

On a 2-core machine shared with the broker this shows little; on a machine with a core per worker and
spare cores for the broker it measures what scaling out gives (README, Performance).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from schemas import AccessEvent, Agreement
from streams.bench.common import Bench, evaluated_at, machine, say, sim_event_stream
from streams.cli.runner import WorkerProcess
from streams.offline.replay import TopicSource
from streams.offline.simulate import load_agreements
from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker, free_port

__all__ = ["clone_register", "cloned_traffic", "run_scale_out"]


def clone_register(agreements: Sequence[Agreement], clones: int) -> list[Agreement]:
    """Each agreement `clones` times, agreement and recipient ids suffixed `-cNN` (16 x 64 = 1,024 recipients)."""
    return [
        a.model_copy(
            update={"agreement_id": f"{a.agreement_id}-c{c:02d}", "recipient_org_id": f"{a.recipient_org_id}-c{c:02d}"}
        )
        for c in range(clones)
        for a in agreements
    ]


def cloned_traffic(
    events: Iterable[AccessEvent], known: set[str], clones: int, batch_size: int
) -> Iterator[tuple[bytes, bytes]]:
    """(key, message) pairs: the events moved onto the clones, in messages of `batch_size` events of one
    recipient (single-event messages when 1). A recipient's k-th event goes to clone (k // batch_size) %
    clones, so batches fill; an agreement id not in the register is left as it is (still unknown)."""
    seen: dict[str, int] = {}
    pending: dict[str, list[bytes]] = {}
    for event in events:
        doc = event.model_dump(mode="json", exclude_none=True)
        org = doc["recipient"]["org_id"]
        k = seen.get(org, 0)
        seen[org] = k + 1
        suffix = f"-c{(k // batch_size) % clones:02d}"
        doc["recipient"]["org_id"] = org + suffix
        if doc.get("agreement_id") in known:
            doc["agreement_id"] += suffix
        body = json.dumps(doc, separators=(",", ":")).encode()
        key = doc["recipient"]["org_id"]
        if batch_size == 1:
            yield key.encode(), body
            continue
        pending.setdefault(key, []).append(body)
        if len(pending[key]) >= batch_size:
            yield key.encode(), b'{"schema_version":"1","events":[' + b",".join(pending.pop(key)) + b"]}"
    for key, bodies in pending.items():
        yield key.encode(), b'{"schema_version":"1","events":[' + b",".join(bodies) + b"]}"


def _decisions_of(worker: WorkerProcess, attempts: int = 3) -> int:
    """The worker's own decision count from its /metrics (-1 if it did not answer, a busy machine's slow moment)."""
    for attempt in range(attempts):
        try:
            text = worker.metrics_text()
        except OSError:
            time.sleep(1.0 + attempt)
            continue
        return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(_DECISIONS)))
    return -1


_DECISIONS = "gatewatch_decisions_total{"


def _trouble(log_file: Path | None, limit: int = 40) -> list[str]:
    """The last warning, error and critical lines of a worker's log (structlog JSON or Faust's own), less
    the per-event `violation` lines (findings, not trouble)."""
    if log_file is None or not log_file.exists():
        return []
    marks = ('"level":"warning"', '"level":"error"', '"level":"critical"', "[WARNING]", "[ERROR]", "[CRITICAL]")
    lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    trouble = [line for line in lines if any(m in line for m in marks) and '"event":"violation"' not in line]
    return [line[:300] for line in trouble][-limit:]


def _steady(times: list[float]) -> tuple[float, float]:
    """(events/s between the 10th and 90th percentile decision, those seconds)."""
    times = sorted(times)
    if len(times) < 10:
        return 0.0, 0.0
    lo, hi = int(len(times) * 0.1), int(len(times) * 0.9) - 1
    seconds = times[hi] - times[lo]
    return (round((hi - lo) / seconds, 1) if seconds > 0 else 0.0), round(seconds, 3)


def _count(settings: Settings, topic: str) -> int:
    with TopicSource(settings, topic, expected=None, timeout=3.0, decode=lambda raw: raw) as source:
        return len(source.read_all())


def _one_k(bench: Bench, access: str, k: int, n: int, partitions: int, timeout: float) -> dict[str, Any]:
    settings = bench.settings(f"scale{k}", access=access, partitions=partitions)
    bench.prepare(settings)
    workers = [
        WorkerProcess(
            settings.model_copy(update={"web_port": free_port(), "data_dir": bench.workdir / f"{settings.app_id}-{i}"}),
            log_file=bench.workdir / f"{settings.app_id}-{i}.log",
        ).start()
        for i in range(k)
    ]
    t0 = time.time()
    try:
        for w in workers:
            w.wait_ready(agreements=len(bench.agreements), timeout=180)
        ready_at = time.time()
        with TopicSource(
            settings, settings.topics.decisions, expected=n, timeout=timeout, decode=evaluated_at
        ) as source:
            times = [t for _, t, _ in source.read_all()]
        per_worker = [_decisions_of(w) for w in workers]
        exits = [None if w.proc is None else w.proc.poll() for w in workers]
    finally:
        for w in workers:
            w.stop()
    if len(times) < n:  # say why where the run's output is read (the work directory goes with the broker)
        say(f"scale-out K={k}: {len(times)} of {n} decided; worker exit codes {exits}")
        for w in workers:
            for line in _trouble(w.log_file):
                say(f"  {w.log_file.name if w.log_file else '?'}: {line}")
    rate, seconds = _steady(times)
    ordered = sorted(times)
    window_start = ordered[int(len(ordered) * 0.1)] if ordered else 0.0
    row = {
        "workers": k,
        "steady_events_per_s": rate,
        "steady_seconds": seconds,
        "decisions": len(times),
        "dead_letters": _count(settings, settings.topics.deadletter),
        "decisions_per_worker": per_worker,
        "worker_exit_codes": exits,  # None: still running when the decisions were read
        "all_ready_after_s": round(ready_at - t0, 1),
        "steady_window_after_all_ready": window_start >= ready_at,
    }
    say(f"scale-out K={k}: {rate:,.0f} events/s steady ({len(times)} decisions, per worker {per_worker})")
    return row


def run_scale_out(
    ks: Sequence[int],
    *,
    events: int | None = None,
    batch_size: int = 500,
    clones: int = 64,
    partitions: int = 16,
    out: Path | None = None,
) -> dict[str, Any]:
    """The scale-out figures for each K in `ks`; prints a table, writes JSON to `out`."""
    n = events or (200_000 if batch_size > 1 else 40_000)
    base = load_agreements()
    register = clone_register(base, clones)
    results: dict[str, Any] = {
        "benchmark": "scale-out",
        "events": n,
        "batch_size": batch_size,
        "recipients": len({a.recipient_org_id for a in register}),
        "partitions": partitions,
        "machine": machine(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "rows": [],
        "errors": {},
    }
    say(f"scale-out: simulating {n} events over {results['recipients']} recipients")
    wire = list(cloned_traffic(sim_event_stream(n, base), {a.agreement_id for a in base}, clones, batch_size))
    with (
        tempfile.TemporaryDirectory(prefix="gatewatch-scaleout-") as tmp,
        EmbeddedBroker(log_file=Path(tmp) / "broker.log") as broker,
    ):
        bench = Bench(broker, Path(tmp), register)
        backlog = bench.settings("scale-backlog", partitions=partitions)
        bench.prepare(backlog)
        rate = bench.publish(backlog, wire)  # messages/s
        say(f"scale-out: {n} events in {len(wire)} messages published ({rate * n / max(1, len(wire)):,.0f} events/s)")
        for k in ks:
            try:
                results["rows"].append(_one_k(bench, backlog.topics.access, k, n, partitions, max(300.0, n / 50)))
            except Exception as exc:  # reported; the other K still run
                results["errors"][str(k)] = f"{type(exc).__name__}: {exc}"
                say(f"scale-out K={k} failed: {exc}")
    results["finished_at"] = dt.datetime.now(dt.UTC).isoformat()
    print(render(results), flush=True)
    if out is not None:
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


def render(results: dict[str, Any]) -> str:
    size = "single-event messages" if results["batch_size"] == 1 else f"batches of {results['batch_size']}"
    lines = [
        f"scale-out: {results['events']} events ({size}) over {results['recipients']} recipients, "
        f"{results['partitions']} partitions",
        f"{'workers':>7} {'events/s (steady)':>18} {'decisions':>10} {'dead letters':>13}  per worker",
    ]
    for r in results["rows"]:
        lines.append(
            f"{r['workers']:>7} {r['steady_events_per_s']:>18,.1f} {r['decisions']:>10} {r['dead_letters']:>13}  "
            f"{r['decisions_per_worker']}"
        )
    m = results["machine"]
    lines.append(f"machine: {m.get('platform')}, {m.get('cpu_count')} CPUs, Python {m.get('python')}")
    for k, error in results["errors"].items():
        lines.append(f"ERROR with {k} workers: {error}")
    return "\n".join(lines)
