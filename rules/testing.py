"""Runner for the YAML rule tests that live beside a pack (`<pack>/tests/*.yaml`).

Each test file holds `cases`; `tests/_shared.yaml` (optional) holds the `agreements` register and
the `base_event` every case starts from. A case patches the base event (`event:`, deep merge; null
clears a key), may patch its agreement (`agreement:`), and states `expect` (exactly these rule ids
fire), `fires` (at least these) and/or `does_not_fire`. Every enabled rule needs at least one case
where it must fire and one where it must not; missing coverage is reported as a failing result.

Inhibition (pack.yaml `inhibit:`): a case may state `inhibited`, the exact rule ids whose alerts the
pack inhibits for that event (`[]`: every alert pages), either as a list or as a mapping from each
inhibited rule id to the rule ids of the alerts that inhibit it; a step of a sequence may state it for
its (last) event. The decision is not affected: `expect`
still lists every rule that fired.

Windowed rules, in the spirit of `promtool test rules`: a case with `steps` runs a sequence of timed
events in order over fresh window state, through the offline loop `gatewatch check` uses
(`rules/offline.py`), with the default lateness. Each step patches the case's event; `repeat: N` sends
it N times with distinct ids. A case may state, per step, `expect`/`fires`/`does_not_fire` (violations
of that step's decision) and `expect_alerts`; at case level, `expect_alerts` is the exact list of windowed
alerts of the whole sequence (`{rule, count}`), `alert_ids` how many distinct alert ids they carry,
and `does_not_fire` that no step fired those rules. A sweep case gives `now:` and `sweep:` (agreement
id -> patch, `{}` for none) and states `fires`/`does_not_fire`/`expect`/`expect_alerts` on the sweep.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rules._yaml import YamlMap, read_yaml
from rules.engine import Engine, load_engine
from rules.offline import OfflineRun
from schemas.agreement import Agreement
from schemas.decision import Alert
from schemas.event import AccessEvent

__all__ = ["CaseResult", "run_pack_tests"]

_EVALUATED_AT = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class CaseResult:
    """Outcome of one rule test case (or one coverage check)."""

    file: str
    line: int
    name: str
    passed: bool
    message: str = ""
    fired: tuple[str, ...] = ()
    rules: tuple[str, ...] = field(default=())
    must_fire: tuple[str, ...] = ()  # rule ids the case expects to fire (in some step, for a sequence)
    must_not_fire: tuple[str, ...] = ()  # rule ids the case expects never to fire

    def __str__(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        rules = f" [{', '.join(self.rules)}]" if self.rules else ""
        return f"{self.file}:{self.line}: {status}{rules} {self.name}" + (f": {self.message}" if self.message else "")


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base.get(k), v) if isinstance(v, dict) else v
        return out
    return patch


def _json_default(value: Any) -> str:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} in a rule test")


def _plain(value: Any) -> Any:
    """YAML data to plain JSON-compatible data, parsed by the models exactly as a Kafka message is."""
    return json.loads(json.dumps(value, default=_json_default))


def _ids(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def run_pack_tests(pack_dir: Path | None = None, *, engine: Engine | None = None) -> list[CaseResult]:
    """Run every case under `<pack_dir>/tests/`, then check each enabled rule is covered both ways."""
    engine = engine or load_engine(pack_dir)
    test_dir = Path(engine.rules[0].file).parent / "tests" if pack_dir is None and engine.rules else None
    test_dir = test_dir or (Path(pack_dir) if pack_dir else Path()) / "tests"
    results: list[CaseResult] = []
    shared: dict[str, Any] = {"agreements": [], "base_event": {}}
    shared_path = test_dir / "_shared.yaml"
    if shared_path.is_file():
        data, problems = read_yaml(shared_path)
        results += [CaseResult(p.file, p.line, "shared fixtures", False, p.message) for p in problems]
        if isinstance(data, dict):
            shared.update(data)
    must_fire: set[str] = set()
    must_not: set[str] = set()
    for path in sorted(test_dir.glob("*.yaml")):
        if path.name == "_shared.yaml":
            continue
        data, problems = read_yaml(path)
        results += [CaseResult(p.file, p.line, "test file", False, p.message) for p in problems]
        if not isinstance(data, YamlMap):
            continue
        register: dict[str, dict[str, Any]] = {
            a["agreement_id"]: a for a in [*shared["agreements"], *data.get("agreements", [])]
        }
        base = _merge(shared["base_event"], data.get("base_event", {}))
        for case in data.get("cases", []):
            if "now" in case or "sweep" in case:
                result = _run_sweep_case(engine, str(path), case, register)
                fire, never = _sweep_coverage(case)
            elif "steps" in case:
                result = _run_steps_case(engine, str(path), case, base, register)
                fire, never = _steps_coverage(case)
            else:
                result = _run_case(engine, str(path), case, base, register)
                fire = _ids(case.get("expect")) + _ids(case.get("fires"))
                never = _ids(case.get("does_not_fire"))
            if "expect" in case:  # "exactly these": anything else that fired is a rule that must not have
                never = [*never, *(r for r in result.fired if r not in fire)]
            results.append(replace(result, must_fire=tuple(fire), must_not_fire=tuple(never)))
            if result.passed:
                must_fire.update(fire)
                must_not.update(never)
    where = str(test_dir)
    for rule in engine.rules:
        if not rule.enabled:
            continue
        if rule.id not in must_fire:
            results.append(
                CaseResult(where, 1, f"coverage {rule.id}", False, "no passing case where the rule must fire")
            )
        if rule.id not in must_not:
            results.append(
                CaseResult(
                    where,
                    1,
                    f"coverage {rule.id}",
                    False,
                    "no passing case where the rule must not fire (does_not_fire)",
                )
            )
    return results


def _run_case(
    engine: Engine, file: str, case: YamlMap, base: dict[str, Any], register: dict[str, dict[str, Any]]
) -> CaseResult:
    name = str(case.get("name", "unnamed case"))
    line = case.line
    event_data = _plain(_merge(base, case.get("event", {})))
    event_data = {k: v for k, v in event_data.items() if v is not None}
    try:
        event = AccessEvent.model_validate_json(json.dumps(event_data))
    except ValidationError as exc:
        return CaseResult(file, line, name, False, f"event is not valid: {exc.errors(include_input=False)}")
    agreement = None
    if event.agreement_id is not None and event.agreement_id in register:
        raw = _plain(_merge(register[event.agreement_id], case.get("agreement", {})))
        raw = {k: v for k, v in raw.items() if v is not None}
        try:
            agreement = Agreement.model_validate_json(json.dumps(raw))
        except ValidationError as exc:
            return CaseResult(file, line, name, False, f"agreement is not valid: {exc.errors(include_input=False)}")
    decision = engine.evaluate(event, agreement, evaluated_at=_EVALUATED_AT)
    fired = tuple(v.rule_id for v in decision.violations)
    known = {r.id for r in engine.rules}
    problems: list[str] = []
    named = _ids(case.get("expect")) + _ids(case.get("fires")) + _ids(case.get("does_not_fire"))
    if unknown := sorted(set(named) - known):
        problems.append(f"names unknown rule id(s) {', '.join(unknown)}")
    if decision.errors:
        problems.append("engine errors: " + "; ".join(e.message for e in decision.errors))
    if "expect" in case and sorted(_ids(case["expect"])) != sorted(fired):
        problems.append(f"expected exactly [{', '.join(_ids(case['expect']))}], fired [{', '.join(fired)}]")
    if missing := [r for r in _ids(case.get("fires")) if r not in fired]:
        problems.append(f"expected to fire but did not: {', '.join(missing)}")
    if extra := [r for r in _ids(case.get("does_not_fire")) if r in fired]:
        problems.append(f"must not fire but did: {', '.join(extra)}")
    if "inhibited" in case:
        problems += _check_inhibited(case["inhibited"], engine.alerts(event, decision), known)
    return CaseResult(file, line, name, not problems, "; ".join(problems), fired, tuple(named))


def _check_inhibited(want: Any, alerts: list[Alert], known: set[str]) -> list[str]:
    """`want`: the inhibited rule ids (a list), or inhibited id -> the inhibiting rule ids (a mapping)."""
    got = {a.rule_id: sorted({b.rule_id for b in a.inhibited_by}) for a in alerts if a.inhibited_by}
    if isinstance(want, dict):
        wanted = {str(k): sorted(_ids(v)) for k, v in want.items()}
    else:
        wanted = {r: got.get(r, ["?"]) for r in _ids(want)}
    named = set(wanted) | {s for v in wanted.values() for s in v if s != "?"}
    if unknown := sorted(named - known):
        return [f"inhibited names unknown rule id(s) {', '.join(unknown)}"]
    if wanted == got:
        return []

    def fmt(m: dict[str, list[str]]) -> str:
        return ", ".join(f"{t} by {'+'.join(s)}" for t, s in sorted(m.items())) or "none"

    return [f"expected inhibited [{fmt(wanted)}], got [{fmt(got)}]"]


# --- windowed (steps) and sweep cases ----------------------------------------------------------------


def _alert_rules(value: Any) -> list[str]:
    return [str(a.get("rule")) for a in value] if isinstance(value, list) else []


def _steps_coverage(case: YamlMap) -> tuple[list[str], list[str]]:
    fire = _alert_rules(case.get("expect_alerts"))
    never = _ids(case.get("does_not_fire"))
    for step in case.get("steps") or []:
        if isinstance(step, dict):
            fire += _ids(step.get("expect")) + _ids(step.get("fires")) + _alert_rules(step.get("expect_alerts"))
            never += _ids(step.get("does_not_fire"))
    return fire, never


def _sweep_coverage(case: YamlMap) -> tuple[list[str], list[str]]:
    fire = _ids(case.get("expect")) + _ids(case.get("fires")) + _alert_rules(case.get("expect_alerts"))
    return fire, _ids(case.get("does_not_fire"))


def _agreement(
    raw_register: dict[str, dict[str, Any]], agreement_id: str | None, patch: Any
) -> tuple[Agreement | None, str]:
    if agreement_id is None or agreement_id not in raw_register:
        return None, ""
    raw = _plain(_merge(raw_register[agreement_id], patch or {}))
    raw = {k: v for k, v in raw.items() if v is not None}
    try:
        return Agreement.model_validate_json(json.dumps(raw)), ""
    except ValidationError as exc:
        return None, f"agreement {agreement_id} is not valid: {exc.errors(include_input=False)}"


def _check_alerts(want: Any, got: list[Alert], where: str) -> list[str]:
    """`want` is a list of {rule, count}: exactly the windowed alerts emitted, in order (count optional)."""
    wanted = [(str(a.get("rule")), a.get("count")) for a in want] if isinstance(want, list) else []
    seen = [(a.rule_id, a.count) for a in got]
    same = len(wanted) == len(seen) and all(
        r == sr and (c is None or c == sc) for (r, c), (sr, sc) in zip(wanted, seen, strict=True)
    )
    if same:
        return []
    fmt = ", ".join(f"{r} x{c}" for r, c in seen) or "none"
    need = ", ".join(f"{r} x{c}" if c is not None else r for r, c in wanted) or "none"
    return [f"{where}: expected alerts [{need}], got [{fmt}]"]


def _run_steps_case(
    engine: Engine, file: str, case: YamlMap, base: dict[str, Any], register: dict[str, dict[str, Any]]
) -> CaseResult:
    name = str(case.get("name", "unnamed case"))
    fire, never = _steps_coverage(case)
    named = sorted(set(fire + never))
    problems: list[str] = []
    if unknown := sorted(set(named) - {r.id for r in engine.rules}):
        problems.append(f"names unknown rule id(s) {', '.join(unknown)}")
    offline = OfflineRun(engine)  # fresh windows per case; each step's agreement is the case's, patched
    windowed = {r.id for r in engine.rules if r.window is not None}
    all_alerts: list[Alert] = []
    fired_any: set[str] = set()
    case_event = _merge(base, case.get("event", {}))
    steps = case.get("steps") or []
    n = 0
    for number, step in enumerate(steps, start=1):
        if not isinstance(step, dict):
            problems.append(f"step {number} must be a mapping")
            continue
        repeat = step.get("repeat", 1)
        if not (isinstance(repeat, int) and 1 <= repeat <= 10_000):
            problems.append(f"step {number}: repeat must be an integer 1 to 10000")
            continue
        step_alerts: list[Alert] = []
        step_fired: set[str] = set()
        last_alerts: list[Alert] = []
        for _ in range(repeat):
            n += 1
            data = _plain(_merge(case_event, step.get("event", {})))
            data.setdefault("event_id", "ev")
            if "event_id" not in (step.get("event") or {}):
                data["event_id"] = f"{data['event_id']}-s{n:04d}"
            data = {k: v for k, v in data.items() if v is not None}
            try:
                event = AccessEvent.model_validate_json(json.dumps(data))
            except ValidationError as exc:
                problems.append(f"step {number}: event is not valid: {exc.errors(include_input=False)}")
                break
            agreement, error = _agreement(register, event.agreement_id, case.get("agreement"))
            if error:
                problems.append(f"step {number}: {error}")
                break
            result = offline.evaluate(event, agreement=agreement, evaluated_at=_EVALUATED_AT)
            if result.decision.errors:
                problems.append(
                    f"step {number}: engine errors: " + "; ".join(e.message for e in result.decision.errors)
                )
            step_fired = {v.rule_id for v in result.decision.violations}
            last_alerts = result.alerts
            fired_any |= step_fired
            step_alerts += [a for a in result.alerts if a.rule_id in windowed]
        all_alerts += step_alerts
        where = f"step {number}"
        if "expect" in step and sorted(_ids(step["expect"])) != sorted(step_fired):
            want = ", ".join(_ids(step["expect"]))
            problems.append(f"{where}: expected exactly [{want}], fired [{', '.join(sorted(step_fired))}]")
        if missing := [r for r in _ids(step.get("fires")) if r not in step_fired]:
            problems.append(f"{where}: expected to fire but did not: {', '.join(missing)}")
        if extra := [r for r in _ids(step.get("does_not_fire")) if r in step_fired]:
            problems.append(f"{where}: must not fire but did: {', '.join(extra)}")
        if "expect_alerts" in step:
            problems += _check_alerts(step["expect_alerts"], step_alerts, where)
        if "inhibited" in step:
            known = {r.id for r in engine.rules}
            problems += [f"{where}: {p}" for p in _check_inhibited(step["inhibited"], last_alerts, known)]
    if extra := [r for r in _ids(case.get("does_not_fire")) if r in fired_any]:
        problems.append(f"must not fire in any step but did: {', '.join(extra)}")
    if "expect_alerts" in case:
        problems += _check_alerts(case["expect_alerts"], all_alerts, "case")
    if "alert_ids" in case and len({a.alert_id for a in all_alerts}) != case["alert_ids"]:
        problems.append(
            f"expected {case['alert_ids']} distinct alert id(s), got {len({a.alert_id for a in all_alerts})}"
        )
    return CaseResult(file, case.line, name, not problems, "; ".join(problems), tuple(sorted(fired_any)), tuple(named))


def _run_sweep_case(engine: Engine, file: str, case: YamlMap, register: dict[str, dict[str, Any]]) -> CaseResult:
    name = str(case.get("name", "unnamed case"))
    fire, never = _sweep_coverage(case)
    named = sorted(set(fire + never))
    problems: list[str] = []
    if unknown := sorted(set(named) - {r.id for r in engine.rules}):
        problems.append(f"names unknown rule id(s) {', '.join(unknown)}")
    try:
        now = dt.datetime.fromisoformat(str(_plain(case.get("now"))))
        if now.tzinfo is None:
            raise ValueError("naive")
    except ValueError:
        return CaseResult(file, case.line, name, False, "now must be an RFC 3339 time with offset", (), tuple(named))
    sweep = case.get("sweep") or {}
    agreements: list[Agreement] = []
    for agreement_id, patch in sweep.items() if isinstance(sweep, dict) else []:
        if agreement_id not in register:
            problems.append(f"sweep names agreement {agreement_id} not in the register")
            continue
        agreement, error = _agreement(register, str(agreement_id), patch)
        if error:
            problems.append(error)
        elif agreement is not None:
            agreements.append(agreement)
    alerts = engine.sweep(agreements, now)
    fired = tuple(sorted({a.rule_id for a in alerts}))
    if "expect" in case and sorted(set(_ids(case["expect"]))) != list(fired):
        problems.append(f"expected exactly [{', '.join(_ids(case['expect']))}], fired [{', '.join(fired)}]")
    if missing := [r for r in _ids(case.get("fires")) if r not in fired]:
        problems.append(f"expected to fire but did not: {', '.join(missing)}")
    if extra := [r for r in _ids(case.get("does_not_fire")) if r in fired]:
        problems.append(f"must not fire but did: {', '.join(extra)}")
    if "expect_alerts" in case:
        problems += _check_alerts(case["expect_alerts"], alerts, "sweep")
    return CaseResult(file, case.line, name, not problems, "; ".join(problems), fired, tuple(named))


@dataclass
class _RuleTally:
    fire: int = 0
    fire_failed: int = 0
    not_fire: int = 0
    not_fire_failed: int = 0
    coverage: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.fire_failed or self.not_fire_failed or self.coverage)


def report_by_rule(results: Sequence[CaseResult], engine: Engine) -> str:
    """Per-rule summary of rule-test results (cases where each rule must and must not fire), the
    failures, then a closing `N passed, N failed` line."""
    rule_ids = [r.id for r in engine.rules]
    disabled = {r.id for r in engine.rules if not r.enabled}
    tallies: dict[str, _RuleTally] = {rid: _RuleTally() for rid in rule_ids}
    for r in results:
        if r.name.startswith("coverage "):
            tallies.setdefault(r.name.removeprefix("coverage "), _RuleTally()).coverage.append(r.message)
            continue
        fired = set(r.fired)
        # A case whose event or agreement did not validate ran no rule: every rule it names failed. In a
        # failed sequence `fired` is the union over its steps, so the rules its message names are blamed.
        ran = r.passed or not r.message.startswith(("event is not valid", "agreement is not valid"))
        for rid in dict.fromkeys(r.must_fire):
            t = tallies.setdefault(rid, _RuleTally())
            t.fire += 1
            t.fire_failed += not (ran and rid in fired) or (not r.passed and rid in r.message)
        for rid in dict.fromkeys(x for x in r.must_not_fire if x not in r.must_fire):
            t = tallies.setdefault(rid, _RuleTally())
            t.not_fire += 1
            t.not_fire_failed += not (ran and rid not in fired) or (not r.passed and rid in r.message)

    def cell(total: int, failed: int) -> str:
        return "-" if not total else f"{total - failed}/{total} passed"

    width = max([4, *(len(rid) for rid in tallies)])
    lines = [f"{'rule':<{width}}  {'must fire':<14}  {'must not fire':<14}  result"]
    for rid, t in tallies.items():
        result = "FAIL" if t.failed else "ok"
        if rid in disabled:
            result += " (disabled)"
        elif rid not in rule_ids:
            result += " (not in the pack)"
        lines.append(
            f"{rid:<{width}}  {cell(t.fire, t.fire_failed):<14}  {cell(t.not_fire, t.not_fire_failed):<14}  {result}"
        )
    failed = [r for r in results if not r.passed]
    if failed:
        lines += ["", "failures:", *(f"  {r}" for r in failed)]
    lines.append(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return "\n".join(lines)
