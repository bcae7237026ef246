"""`gatewatch agreements check` and the summary of `gatewatch agreements load`: approvals judged offline.

Each entry of a register file (a YAML or JSON list, or JSON lines) is validated and judged on its own
by the agreement rules at a UK date, in input order; an invalid entry is reported and the others are
still judged. Validation errors locate the problem and never echo the entry's values.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rules import Engine
from rules.facts import LONDON
from schemas import Agreement, Issue, issues_from_validation_error
from streams.offline.register_file import UNPARSABLE, RepeatedKeys, read_register

__all__ = ["Judged", "judge_entries", "judged_at", "read_entries", "summary_lines", "uk_today"]

_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Judged:
    """One entry's line of output: its id (when usable), verdict, findings and validation errors."""

    entry: int
    agreement_id: str | None
    verdict: str  # compliant | violation | invalid
    violations: tuple[dict[str, str], ...] = ()
    errors: tuple[Issue, ...] = field(default=())
    #: The line of the file the entry starts on (None when judged from objects, not a file).
    line: int | None = None

    def as_json(self) -> str:
        doc: dict[str, Any] = {"entry": self.entry}
        if self.line is not None:
            doc["line"] = self.line
        doc |= {
            "agreement_id": self.agreement_id,
            "verdict": self.verdict,
            "violations": list(self.violations),
        }
        if self.verdict == "invalid":
            doc["errors"] = [e.model_dump() for e in self.errors]
        return json.dumps(doc, ensure_ascii=False)


def uk_today() -> dt.date:
    """Today's date in the UK (Europe/London), the default date agreements are judged at."""
    return dt.datetime.now(LONDON).date()


def judged_at(day: dt.date) -> dt.datetime:
    """The moment a day's judgement stands for: noon, UK time (any moment of the day gives the same findings)."""
    return dt.datetime.combine(day, dt.time(12), LONDON)


def read_entries(path: Path) -> list[Any]:
    """The entries of a register file, in order (streams/offline/register_file.py reads every register).

    Raises ConfigError when the file cannot be read or is neither a YAML or JSON list nor JSON lines. A
    JSON lines file's line that is not JSON is kept as an unparsable entry, so that the others are judged.
    """
    return [entry.item for entry in read_register(path)]


def _json_default(value: Any) -> str:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError("a value that is not JSON")


def _usable_id(item: Any) -> str | None:
    if isinstance(item, RepeatedKeys):
        item = item.item
    value = item.get("agreement_id") if isinstance(item, dict) else None
    return value if isinstance(value, str) and _IDENTIFIER.match(value) else None


def _validate(item: Any) -> Agreement | list[Issue]:
    if item is UNPARSABLE:
        return [Issue(loc="$", message="line is not valid JSON", type="json_invalid")]
    if isinstance(item, RepeatedKeys):
        return [Issue(loc="$", message=item.message(), type="duplicate_key")]
    if not isinstance(item, dict):
        return [Issue(loc="$", message="an agreement must be an object", type="model_type")]
    try:
        # Through JSON so that the strict contract applies exactly as it does on the topic.
        return Agreement.model_validate_json(json.dumps(item, default=_json_default))
    except TypeError:
        return [Issue(loc="$", message="holds a value that JSON cannot represent", type="json_invalid")]
    except ValidationError as exc:
        return issues_from_validation_error(exc)


def judge_entries(
    entries: Sequence[Any], engine: Engine, day: dt.date, *, lines: Sequence[int] | None = None
) -> Iterator[Judged]:
    """One Judged per entry, in order. A later entry repeating an earlier agreement_id is invalid.

    `lines`: the line each entry starts on in its file (register_file.read_register), for the reader.
    """
    at = judged_at(day)
    seen: set[str] = set()
    for index, item in enumerate(entries):
        line = lines[index] if lines is not None else None
        result = _validate(item)
        if isinstance(result, list):
            yield Judged(index, _usable_id(item), "invalid", errors=tuple(result), line=line)
            continue
        if result.agreement_id in seen:
            issue = Issue(
                loc="agreement_id", message="duplicate agreement_id: an earlier entry has it", type="duplicate"
            )
            yield Judged(index, result.agreement_id, "invalid", errors=(issue,), line=line)
            continue
        seen.add(result.agreement_id)
        decision = engine.judge_agreement(result, at).decision
        violations = tuple(
            {
                "rule_id": v.rule_id,
                "category": v.category.value,
                "severity": v.severity.value,
                "explanation": v.explanation,
            }
            for v in decision.violations
        )
        yield Judged(index, result.agreement_id, decision.verdict.value, violations, line=line)


def summary_lines(judged: Sequence[Judged], day: dt.date) -> list[str]:
    """The findings of a judged register as text for people (`gatewatch agreements load`)."""
    with_findings = [j for j in judged if j.violations]
    lines = [f"approval findings on {day.isoformat()}: {len(with_findings)} of {len(judged)} agreements"]
    for j in with_findings:
        for v in j.violations:
            lines.append(f"  {j.agreement_id}  {v['rule_id']}  {v['category']}  {v['severity']}: {v['explanation']}")
    categories = Counter(v["category"] for j in with_findings for v in j.violations)
    if categories:
        lines.append("by category: " + ", ".join(f"{c} {n}" for c, n in sorted(categories.items())))
    return lines
