"""Reading an agreements register file: a YAML or JSON list of Agreement v1 objects, or JSON lines.

One reader for every command that takes a register (`check`, `replay`, `report`, `simulate`, `up`,
`agreements load` and `agreements check`), so each accepts the same files: a UTF-8 byte-order mark is
ignored (Windows editors add one), and every problem is reported as `FILE:LINE: ...`, the line where the
entry starts.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas import Agreement, issues_from_validation_error
from streams.exceptions import ConfigError

__all__ = ["UNPARSABLE", "Entry", "load_agreements_file", "read_register", "sample_register_path"]

_JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


class _Unparsable:
    """An entry of a JSON lines file that is not JSON: kept in its place, reported as invalid."""

    __slots__ = ()


UNPARSABLE: Any = _Unparsable()


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a register file: the line it starts on (1-based) and its parsed value."""

    line: int
    item: Any


def sample_register_path() -> Path:
    """The synthetic sample register shipped with the rules package."""
    import rules

    return Path(rules.__file__).parent / "samples" / "agreements.yaml"


def read_register(path: Path) -> list[Entry]:
    """The entries of a register file, in order, each with the line it starts on.

    A YAML or JSON list, or JSON lines (one object a line; by suffix .jsonl/.ndjson, or any file whose
    every line is an object). Raises ConfigError when the file cannot be read or is none of these. A JSON
    lines file's line that is not JSON is kept as UNPARSABLE, so that the other lines are still judged.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a leading byte-order mark is dropped
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{path}: cannot read agreements register: {reason}") from exc
    if path.suffix.lower() in _JSON_LINES_SUFFIXES:
        return _json_lines(text)
    try:
        data = json.loads(text)
    except ValueError as exc:
        lines = [line for line in text.splitlines() if line.strip()]
        if lines and all(line.lstrip().startswith("{") for line in lines):
            return _json_lines(text)
        if path.suffix.lower() == ".json" and isinstance(exc, json.JSONDecodeError):
            raise ConfigError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno})") from None
        return _yaml_entries(path, text)
    if not isinstance(data, list):
        raise ConfigError(f"{path}: an agreements register must be a list (or JSON lines), got {type(data).__name__}")
    return _json_list_entries(text, data)


def _json_lines(text: str) -> list[Entry]:
    out: list[Entry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(Entry(number, json.loads(line)))
        except ValueError:
            out.append(Entry(number, UNPARSABLE))
    return out


def _json_list_entries(text: str, data: list[Any]) -> list[Entry]:
    """Each element of a JSON list (already parsed as `data`) with the line its text starts on."""
    decoder = json.JSONDecoder()
    at = text.index("[") + 1
    out: list[Entry] = []
    for item in data:
        while text[at] in " \t\r\n,":
            at += 1
        _, end = decoder.raw_decode(text, at)
        out.append(Entry(text.count("\n", 0, at) + 1, item))
        at = end
    return out


def _yaml_entries(path: Path, text: str) -> list[Entry]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f":{where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or "not YAML"
        raise ConfigError(f"{path}{line}: neither a YAML or JSON list nor JSON lines (YAML: {problem})") from None
    if not isinstance(data, list) or not isinstance(node, yaml.SequenceNode):
        raise ConfigError(f"{path}: an agreements register must be a list (or JSON lines), got {type(data).__name__}")
    return [Entry(n.start_mark.line + 1, item) for n, item in zip(node.value, data, strict=True)]


def _json_default(value: Any) -> str:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot represent {type(value).__name__} in an agreement")


def load_agreements_file(path: Path) -> list[Agreement]:
    """Parse and validate every agreement; raise ConfigError listing every invalid entry at once, as FILE:LINE."""
    agreements: list[Agreement] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(read_register(path)):
        where = f"{path}:{entry.line}: agreement [{index}]"
        if entry.item is UNPARSABLE:
            problems.append(f"{where}: line is not valid JSON")
            continue
        try:
            # Through JSON so that the strict contract applies exactly as it does on the topic.
            agreement = Agreement.model_validate_json(json.dumps(entry.item, default=_json_default))
        except (ValidationError, TypeError) as exc:
            if isinstance(exc, ValidationError):
                problems += [f"{where}: {i.loc}: {i.message}" for i in issues_from_validation_error(exc)]
            else:
                problems.append(f"{where}: {exc}")
            continue
        if agreement.agreement_id in seen:
            problems.append(f"{where}: duplicate agreement_id {agreement.agreement_id!r}")
        seen.add(agreement.agreement_id)
        agreements.append(agreement)
    if problems:
        raise ConfigError("\n".join(problems))
    return agreements
