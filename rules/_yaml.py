"""The one YAML reader of `rules`: safe, refuses duplicate keys, remembers the line of every key.

Plain PyYAML keeps the last of two equal keys without a word, so a rule with two `condition:` keys
would silently lose one. Duplicates are recorded as problems (not raised) so every one is reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rules._problems import Problem

__all__ = ["ValueMark", "YamlMap", "read_yaml"]


class ValueMark:
    """Where a mapping value starts in its file (1-based line), and its scalar style (`|`, `>`, quote)."""

    __slots__ = ("column", "line", "style")

    def __init__(self, line: int, column: int, style: str | None) -> None:
        self.line = line
        self.column = column
        self.style = style


class YamlMap(dict[Any, Any]):
    """A YAML mapping that knows its own line and the line of each key and value."""

    line: int
    key_lines: dict[Any, int]
    value_marks: dict[Any, ValueMark]


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str]] = []


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> YamlMap:
    # Keys merged in with `<<: *anchor` may be overridden by the mapping's own keys (YAML merge
    # semantics); only two *own* keys with the same name are a duplicate.
    own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
    loader.flatten_mapping(node)
    out = YamlMap()
    merged: set[Any] = set()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    out.value_marks = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key_line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            loader.duplicates.append((key_line, "mapping key must be a plain scalar"))
            continue
        if key in out and key in merged and id(key_node) in own:
            merged.discard(key)
        elif key in out:
            loader.duplicates.append(
                (key_line, f"duplicate key '{key}' (first at line {out.key_lines[key]}); remove one of them")
            )
            continue
        elif id(key_node) not in own:
            merged.add(key)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_line
        style = value_node.style if isinstance(value_node, yaml.ScalarNode) else None
        out.value_marks[key] = ValueMark(value_node.start_mark.line + 1, value_node.start_mark.column + 1, style)
    return out


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def read_yaml(path: Path) -> tuple[Any, list[Problem]]:
    """Parse one YAML file; returns the data (None if unreadable) and the problems found."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(name, 1, f"cannot read file: {exc}")]
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 1
        return None, [Problem(name, line, f"invalid YAML: {exc.problem or exc.context}")]
    except yaml.YAMLError as exc:
        return None, [Problem(name, 1, f"invalid YAML: {exc}")]
    finally:
        loader.dispose()
    return data, [Problem(name, line, message) for line, message in loader.duplicates]
