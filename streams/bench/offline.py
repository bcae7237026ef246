"""The all-in offline cost of one event: decode, evaluate, decision bytes, alerts and the ledger link.

`python -m streams.bench.offline [--events N]` prints the figures as JSON. Each single-event message
is decoded and validated (`AccessEvent.model_validate_json`), then its agreement looked up and the
event evaluated by the offline loop `gatewatch check` and replay use (`rules.OfflineRun`: `Engine.run`
with the windowed and pupil state one offline process holds), its decision linked into a ledger chain
and serialised (`link_json`, what the worker writes) and its alerts serialised. No broker, no Faust,
no metrics, no log lines: what a core spends per event before any transport.
The parts are timed separately on the same events too, so a profile can be read against them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from rules import Engine, OfflineRun, load_engine
from schemas import AccessEvent, MessageRef
from schemas.ledger import LedgerState, link_json
from streams.bench.common import sim_events, to_wire
from streams.offline.simulate import load_agreements

__all__ = ["run"]

WARMUP = 1000


def _p(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1000.0, 2) if ordered else 0.0


def _all_in(engine: Engine, wire: Sequence[tuple[bytes, bytes]]) -> list[int]:
    """ns per event of the whole offline path (what `gatewatch check` and replay do), after WARMUP events."""
    offline, tails = OfflineRun(engine, load_agreements()), LedgerState()
    now = dt.datetime.now(dt.UTC)
    clock = time.perf_counter_ns
    out: list[int] = []
    for i, (_, value) in enumerate(wire):
        ref = MessageRef(topic="npd.access.v1", partition=0, offset=i)
        t0 = clock()
        event = AccessEvent.model_validate_json(value)
        evaluation = offline.evaluate(event, evaluated_at=now, source=ref)
        _, tails = link_json(evaluation.decision, 0, tails)
        for alert in evaluation.alerts:
            alert.model_dump_json()
        if i >= WARMUP:
            out.append(clock() - t0)
    return out


def _part(fn: Callable[[int], Any], n: int) -> list[int]:
    clock = time.perf_counter_ns
    out: list[int] = []
    for i in range(n):
        t0 = clock()
        fn(i)
        if i >= WARMUP:
            out.append(clock() - t0)
    return out


def _parts(engine: Engine, wire: Sequence[tuple[bytes, bytes]]) -> dict[str, float | None]:
    """p50 µs of each part on its own, over the same events (the parts add up to about the whole)."""
    values = [v for _, v in wire]
    decode_pydantic = _part(lambda i: AccessEvent.model_validate_json(values[i]), len(values))
    try:  # msgspec comes with the `bench` and `test` extras; without it the fast decoder is not measured
        from streams.worker.fastdecode import decode_event
    except ImportError:
        decode_fast: list[int] | None = None
    else:
        decode_fast = _part(lambda i: decode_event(values[i]), len(values))
    events = [AccessEvent.model_validate_json(v) for v in values]
    offline = OfflineRun(engine, load_agreements())
    now = dt.datetime.now(dt.UTC)
    evaluations = []

    def evaluate(i: int) -> None:
        evaluations.append(offline.evaluate(events[i], evaluated_at=now))

    evaluate_ns = _part(evaluate, len(events))
    tails = [LedgerState()]

    def ledger(i: int) -> None:
        _, tails[0] = link_json(evaluations[i].decision, 0, tails[0])

    ledger_ns = _part(ledger, len(evaluations))
    alerts_ns = _part(lambda i: [a.model_dump_json() for a in evaluations[i].alerts], len(evaluations))
    return {
        "offline_decode_pydantic_us_p50": _p(decode_pydantic, 0.5),
        "offline_decode_fast_us_p50": _p(decode_fast, 0.5) if decode_fast is not None else None,
        "offline_evaluate_us_p50": _p(evaluate_ns, 0.5),
        "offline_decision_bytes_and_link_us_p50": _p(ledger_ns, 0.5),
        "offline_alerts_us_p50": _p(alerts_ns, 0.5),
    }


def run(events: int = 10_000, seed: int = 7) -> dict[str, Any]:
    """The offline figures over `events` simulator events (the first WARMUP not timed)."""
    wire = to_wire(sim_events(events + WARMUP, load_agreements(), seed=seed))
    engine = load_engine()
    whole = _all_in(engine, wire)
    return {
        "offline_events": len(whole),
        "offline_us_per_event_p50": _p(whole, 0.5),
        "offline_us_per_event_p99": _p(whole, 0.99),
        "offline_us_per_event_mean": round(sum(whole) / len(whole) / 1000.0, 2) if whole else 0.0,
        **_parts(engine, wire),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.bench.offline", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.events), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
