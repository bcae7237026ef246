"""Runner for the YAML rule tests that live beside a pack (`<pack>/tests/*.yaml`).

Each test file holds `cases`; `tests/_shared.yaml` (optional) holds the `agreements` register and
the `base_event` every case starts from. A case patches the base event (`event:`, deep merge; null
clears a key), may patch its agreement (`agreement:`), and states `expect` (exactly these rule ids
fire), `fires` (at least these) and/or `does_not_fire`. Every enabled rule needs at least one case
where it must fire and one where it must not; missing coverage is reported as a failing result.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rules._yaml import YamlMap, read_yaml
from rules.engine import Engine, load_engine
from schemas.agreement import Agreement
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

    def __str__(self) -> str:
        status = "ok" if self.passed else "FAIL"
        return f"{self.file}:{self.line}: {status} {self.name}" + (f": {self.message}" if self.message else "")


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
            result = _run_case(engine, str(path), case, base, register)
            results.append(result)
            if result.passed:
                must_fire.update(_ids(case.get("expect")) + _ids(case.get("fires")))
                must_not.update(_ids(case.get("does_not_fire")))
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
    return CaseResult(file, line, name, not problems, "; ".join(problems), fired, tuple(named))
