"""Reading an agreements register file: a YAML or JSON list of Agreement v1 objects, or JSON lines.

One reader for every command that takes a register (`check`, `replay`, `report`, `simulate`, `up`,
`agreements load` and `agreements check`), so each accepts the same files: a UTF-8 byte-order mark is
ignored (Windows editors add one), and every problem is reported as `FILE:LINE: ...`, the line where the
entry starts. A key given twice in one object makes its entry invalid: YAML and JSON readers keep the
last value without a word, and which one the author meant is not for a reader to guess.
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

__all__ = ["UNPARSABLE", "Entry", "RepeatedKeys", "load_agreements_file", "read_register", "sample_register_path"]

_JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


class _Unparsable:
    """An entry of a JSON lines file that is not JSON: kept in its place, reported as invalid."""

    __slots__ = ()


UNPARSABLE: Any = _Unparsable()


@dataclass(frozen=True, slots=True)
class RepeatedKeys:
    """An entry with a key given twice in one of its objects: kept in its place, reported as invalid."""

    keys: tuple[str, ...]  # each repeated key, as "name" or "name (line N)"
    item: Any  # what a reader that keeps the last value makes of it (for its agreement_id)

    def message(self) -> str:
        return "key given twice: " + ", ".join(self.keys) + "; keep one"


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


class _RepeatSpotter:
    """A JSON decoder that notes the keys an object gives twice (json keeps the last without a word)."""

    def __init__(self) -> None:
        self.repeated: list[str] = []
        self.decoder = json.JSONDecoder(object_pairs_hook=self._object)

    def _object(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out and key not in self.repeated:
                self.repeated.append(key)
            out[key] = value
        return out

    def entry(self, line: int, item: Any) -> Entry:
        """The entry just decoded, invalid if it repeated a key; forgets the keys for the next one."""
        repeated, self.repeated = self.repeated, []
        return Entry(line, RepeatedKeys(tuple(repeated), item) if repeated else item)


def _json_lines(text: str) -> list[Entry]:
    spotter = _RepeatSpotter()
    out: list[Entry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(spotter.entry(number, spotter.decoder.decode(line)))
        except ValueError:
            spotter.repeated = []
            out.append(Entry(number, UNPARSABLE))
    return out


def _json_list_entries(text: str, data: list[Any]) -> list[Entry]:
    """Each element of a JSON list (already parsed as `data`) with the line its text starts on."""
    spotter = _RepeatSpotter()
    at = text.index("[") + 1
    out: list[Entry] = []
    for item in data:
        while text[at] in " \t\r\n,":
            at += 1
        _, end = spotter.decoder.raw_decode(text, at)
        out.append(spotter.entry(text.count("\n", 0, at) + 1, item))
        at = end
    return out


def _repeated_yaml_keys(node: yaml.Node) -> list[str]:
    """The keys a YAML node's mappings give twice, each with its second line (merge keys `<<` excepted)."""
    out: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in seen:
                    out.append(f"{key.value} (line {key.start_mark.line + 1})")
                seen.add(key.value)
            out += _repeated_yaml_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for child in node.value:
            out += _repeated_yaml_keys(child)
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
    out = []
    for n, item in zip(node.value, data, strict=True):
        repeated = _repeated_yaml_keys(n)
        out.append(Entry(n.start_mark.line + 1, RepeatedKeys(tuple(repeated), item) if repeated else item))
    return out


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
        if isinstance(entry.item, RepeatedKeys):
            problems.append(f"{where}: {entry.item.message()}")
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
