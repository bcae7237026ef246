"""Engine benchmark (issue 6, item 1): µs per event for the full NPD pack, against the same conditions in CEL.

`python -m streams.bench.engine [--events N] [--seed S] [--json OUT]` prints a table and writes JSON.
Both sides are timed per event on the same simulator events, whole per-event cost: the engine's
`Engine.evaluate` (facts, every stateless rule, the Decision) against building the same Facts, an
activation holding every fact the CEL programs name, and executing every compiled CEL program.
`Engine.run` with a WindowState (windowed rules per recipient; pupil_state=None) is timed too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rules.engine import Engine, load_engine
from rules.exceptions import ConditionError
from rules.facts import FACTS, Facts
from rules.language import Syntax, parse
from rules.loader import LoadedPack, Rule
from rules.windows import WindowState
from schemas import AccessEvent, Agreement

__all__ = ["main", "run", "to_cel"]

WARMUP = 1000
_FUNCS = {"len", "any", "empty", "intersects", "subset"}


# --- the CEL translation: a renderer of the condition language's syntax tree -----------------------


class _Untranslatable(Exception):
    pass


def _cel(node: Syntax, facts: set[str]) -> str:
    """CEL text of a condition's syntax tree (rules.language.parse), mirroring the engine's null semantics."""
    kind, args = node.kind, node.args
    if kind in ("or", "and"):
        joiner = " || " if kind == "or" else " && "
        return "(" + joiner.join(_cel(a, facts) for a in args) + ")"
    if kind == "not":
        return f"!({_cel(args[0], facts)})"
    if kind in ("cmp", "in", "sub"):
        left, right = _cel(args[0], facts), _cel(args[1], facts)
        if kind == "in":
            return f"({left} in {right})" if node.op == "in" else f"!({left} in {right})"
        if kind == "sub":
            if not (left.startswith(("[", "(", "v_")) or left.endswith(")")):
                raise _Untranslatable("'-' on a non-list")
            return f"{left}.filter(x, !(x in {right}))"
        if node.op in ("==", "!="):
            return f"({left} {node.op} {right})"
        # The engine: any ordering with a null side is false. CEL would raise, so test for null first.
        return f"({left} != null && {right} != null && {left} {node.op} {right})"
    if kind == "call":
        return _cel_call(node.op, [_cel(a, facts) for a in args])
    if kind == "lit":
        return _cel_literal(node.value)
    if node.op not in FACTS:
        raise _Untranslatable(f"unknown fact {node.op}")
    facts.add(node.op)
    return _ident(node.op)


def _cel_call(name: str, args: list[str]) -> str:
    if name not in _FUNCS:
        raise _Untranslatable(f"unknown function {name}")
    if name == "len":
        return f"size({args[0]})"
    if name == "any":
        return f"(size({args[0]}) > 0)"
    if name == "empty":
        return f"(size({args[0]}) == 0)"
    if name == "intersects":
        return f"{args[0]}.exists(x, x in {args[1]})"
    return f"{args[0]}.all(x, x in {args[1]})"


def _cel_literal(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_cel_literal(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return json.dumps(value) if isinstance(value, str) else str(value)


def _ident(fact: str) -> str:
    return "v_" + fact.replace(".", "_")


def to_cel(condition: str) -> tuple[str, frozenset[str]]:
    """A condition as a CEL expression, and the facts it names (CEL variables `v_<fact with _>`)."""
    facts: set[str] = set()
    try:
        return _cel(parse(condition), facts), frozenset(facts)
    except ConditionError as exc:
        raise _Untranslatable(exc.message) from None


def _cel_value(value: Any) -> Any:
    if isinstance(value, tuple | list | frozenset):
        return [str(v) if isinstance(v, str) else v for v in value]
    if isinstance(value, str):
        return str(value)  # StrEnum -> plain str
    return value


# --- measurement ----------------------------------------------------------------------------------------


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    s = sorted(samples_ns)
    return s[len(s) // 2] / 1000.0, s[min(len(s) - 1, int(len(s) * 0.99))] / 1000.0


def _time(
    fn: Callable[[AccessEvent, Agreement | None], Any], pairs: Sequence[tuple[AccessEvent, Agreement | None]]
) -> tuple[float, float]:
    """p50 and p99 µs of fn per event over every event, after calling it on the first WARMUP events."""
    for e, a in pairs[:WARMUP]:
        fn(e, a)
    clock = time.perf_counter_ns
    out: list[int] = []
    for e, a in pairs:
        t0 = clock()
        fn(e, a)
        out.append(clock() - t0)
    return _percentiles(out)


def run(events: int = 10000, seed: int = 7) -> dict[str, Any]:
    """Measure the engine and CEL on `events` simulator events (after WARMUP of them); the figures as a dict."""
    try:
        import cel  # optional: the `bench` (and `test`) extra
    except ImportError:
        return _run_without_cel(events, seed)

    from streams.offline.simulate import Simulator, load_agreements

    agreements = load_agreements()
    register = {a.agreement_id: a for a in agreements}
    pairs = [
        (s.event, register.get(s.event.agreement_id) if s.event.agreement_id else None)
        for s in Simulator(agreements, seed=seed).events(events)
    ]
    full = load_engine()
    stateless = [r for r in full.rules if r.enabled and r.scope == "event" and r.window is None]
    programs: list[tuple[Rule, Any, frozenset[str]]] = []
    excluded: dict[str, str] = {}
    for rule in stateless:
        try:
            text, facts = to_cel(rule.condition_text)
            programs.append((rule, cel.compile(text), facts))
        except Exception as exc:  # reported: a rule CEL cannot take is left out of both sides
            excluded[rule.id] = f"{type(exc).__name__}: {exc}"
    included = {r.id for r, _, _ in programs}
    engine = full
    if excluded:
        pack = full._pack  # noqa: SLF001  # the same compiled rules, minus those CEL cannot take
        rules = tuple(replace(r, enabled=r.enabled and (r.id in included or r.window is not None)) for r in pack.rules)
        subset = LoadedPack(
            pack.name, pack.version, pack.engine_version, pack.description, pack.sha256, rules, pack.catalogue
        )
        engine = Engine(subset)
    catalogue, views = engine.catalogue, engine.views
    names = sorted(set().union(*(f for _, _, f in programs)))
    getters = [(_ident(n), FACTS[n].getter) for n in names]
    # Each program gets an activation of only the facts it names: CEL converts the whole mapping per call.
    plans = [(rule, program, tuple(_ident(n) for n in sorted(f))) for rule, program, f in programs]
    ts = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def cel_event(event: AccessEvent, agreement: Agreement | None) -> list[str]:
        facts = Facts(event, agreement, catalogue, views)
        values = {ident: _cel_value(get(facts)) for ident, get in getters}
        return [rule.id for rule, program, idents in plans if program.execute({i: values[i] for i in idents})]

    # Agreement check first: both sides must fire the same rules on every event.
    mismatches = 0
    for e, a in pairs:
        got = {v.rule_id for v in engine.evaluate(e, a, evaluated_at=ts).violations}
        if got != set(cel_event(e, a)):
            mismatches += 1

    ev_p50, ev_p99 = _time(lambda e, a: full.evaluate(e, a, evaluated_at=ts), pairs)
    cmp_p50 = ev_p50 if engine is full else _time(lambda e, a: engine.evaluate(e, a, evaluated_at=ts), pairs)[0]
    cel_p50, cel_p99 = _time(cel_event, pairs)
    run_p50, run_p99 = _time_run(full, pairs, ts)
    return {
        "benchmark": "engine",
        "events": len(pairs),
        "warmup_events": WARMUP,
        "seed": seed,
        "rules": len(full.rules),
        "rules_stateless": len(stateless),
        "rules_windowed": sum(1 for r in full.rules if r.enabled and r.window is not None and r.window.per != "pupil"),
        "engine_us_per_event_p50": round(ev_p50, 2),
        "engine_us_per_event_p99": round(ev_p99, 2),
        "engine_run_us_per_event_p50": round(run_p50, 2),
        "engine_run_us_per_event_p99": round(run_p99, 2),
        "engine_cel_subset_us_per_event_p50": round(cmp_p50, 2),
        "cel_us_per_event_p50": round(cel_p50, 2),
        "cel_us_per_event_p99": round(cel_p99, 2),
        "engine_speedup_vs_cel": round(cel_p50 / cmp_p50, 1),
        "cel_rules": len(programs),
        "cel_excluded_rules": excluded,
        "cel_disagreeing_events": mismatches,
        "cel_measures": "whole per-event cost on both sides: engine = Engine.evaluate (facts, rules, Decision); "
        "CEL = the same Facts, an activation of every fact the programs name, every program executed",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "uname": " ".join(platform.uname()),
            "cpu_count": os.cpu_count(),
        },
        "cel_package": _version("common-expression-language"),
    }


def _run_without_cel(events: int, seed: int) -> dict[str, Any]:
    """The engine's own figures when the CEL bindings are not installed (an installed wheel without extras)."""
    from streams.offline.simulate import Simulator, load_agreements

    agreements = load_agreements()
    register = {a.agreement_id: a for a in agreements}
    pairs = [
        (s.event, register.get(s.event.agreement_id) if s.event.agreement_id else None)
        for s in Simulator(agreements, seed=seed).events(events)
    ]
    engine = load_engine()
    ts = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ev_p50, ev_p99 = _time(lambda e, a: engine.evaluate(e, a, evaluated_at=ts), pairs)
    run_p50, run_p99 = _time_run(engine, pairs, ts)
    return {
        "benchmark": "engine",
        "events": len(pairs),
        "seed": seed,
        "engine_us_per_event_p50": round(ev_p50, 2),
        "engine_us_per_event_p99": round(ev_p99, 2),
        "engine_run_us_per_event_p50": round(run_p50, 2),
        "engine_run_us_per_event_p99": round(run_p99, 2),
        "engine_speedup_vs_cel": None,
        "cel_measures": "not measured: install the CEL bindings with `pip install 'gatewatch[bench]'`",
    }


def _time_run(
    engine: Engine, pairs: Sequence[tuple[AccessEvent, Agreement | None]], ts: dt.datetime
) -> tuple[float, float]:
    """Engine.run over the events in order with one WindowState; the first WARMUP events are not timed.

    The caller advances the watermark (the worker does it per message), so that is outside the timing.
    """
    state = WindowState({})
    clock = time.perf_counter_ns
    out: list[int] = []
    for i, (e, a) in enumerate(pairs):
        state.advance(e.occurred_at.timestamp())
        t0 = clock()
        engine.run(e, a, state=state, evaluated_at=ts)
        if i >= WARMUP:
            out.append(clock() - t0)
    return _percentiles(out or [0])


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _table(r: dict[str, Any]) -> str:
    rows = [
        ("Engine.evaluate (stateless, full pack)", r["engine_us_per_event_p50"], r["engine_us_per_event_p99"]),
        ("Engine.run (with WindowState)", r["engine_run_us_per_event_p50"], r["engine_run_us_per_event_p99"]),
        ("CEL (same conditions, compiled once)", r["cel_us_per_event_p50"], r["cel_us_per_event_p99"]),
    ]
    m = r["machine"]
    lines = [
        f"engine benchmark: {r['events']} events (seed {r['seed']}, {r['warmup_events']} warm-up), "
        f"{r['rules']} rules ({r['rules_stateless']} stateless, {r['rules_windowed']} windowed per recipient)",
        f"{'':42} {'p50 µs':>10} {'p99 µs':>10}",
        *(f"{name:42} {p50:>10.2f} {p99:>10.2f}" for name, p50, p99 in rows),
        f"speed-up vs CEL (p50): {r['engine_speedup_vs_cel']}x over {r['cel_rules']} rules; "
        f"excluded from both sides: {', '.join(r['cel_excluded_rules']) or 'none'}; "
        f"events where CEL and the engine disagree: {r['cel_disagreeing_events']}",
        f"measured: {r['cel_measures']}",
        f"python {r['python']} on {m['processor']}, {m['cpu_count']} CPUs ({m['uname']})",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.bench.engine", description=__doc__)
    parser.add_argument("--events", type=int, default=10000, help="events to time (default 10000)")
    parser.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON to this file")
    args = parser.parse_args(argv)
    result = run(args.events + WARMUP, args.seed)
    print(_table(result) if result.get("engine_speedup_vs_cel") is not None else json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
