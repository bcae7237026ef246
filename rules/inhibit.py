"""Declared inhibition: which alerts page people, decided once per pack (Alertmanager's `inhibit_rules`).

A pack's `pack.yaml` may carry an `inhibit:` list. Each entry has `source_matchers` and
`target_matchers` (Alertmanager matcher strings over `rule_id`, `category` and `severity`) and `equal`
(the keys both alerts must share, e.g. `event`). When a source alert and a target alert share those
keys, the target alert records the source in `inhibited_by` and the sinks do not page it.

Inhibition never touches the decision, the metrics or the alerts topic: rules stay independent (each
condition states its own fact) and `apply_inhibitions` is the one place where noise is cut.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rules._problems import Problem
from rules._yaml import YamlMap
from schemas.decision import Alert, Inhibitor
from schemas.vocab import Category, Severity

__all__ = [
    "EQUAL_KEYS",
    "INHIBIT_KEYS",
    "MATCHER_LABELS",
    "Inhibition",
    "Matcher",
    "apply_inhibitions",
    "inhibition_edges",
    "parse_inhibitions",
]

#: Labels a matcher may test: the alert's rule and its rule's category and severity.
MATCHER_LABELS = ("rule_id", "category", "severity")
#: Keys an inhibition may require equal: `event` (the alerts share an event id) or an alert field.
EQUAL_KEYS: Mapping[str, str] = {
    "event": "event_ids",
    "recipient": "recipient_org_id",
    "agreement": "agreement_id",
    "legal_gateway": "legal_gateway",
    "purpose": "purpose",
}
INHIBIT_KEYS = ("name", "source_matchers", "target_matchers", "equal")
_MATCHER = re.compile(r'^\s*([a-z_]+)\s*(=~|!~|!=|=)\s*(?:"([^"]*)"|([^"\s]+))\s*$')


@dataclass(frozen=True, slots=True)
class Matcher:
    """One Alertmanager-style matcher, e.g. `category="prohibited_field"` or `rule_id=~"NPD-UA-.*"`."""

    label: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.label, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        hit = re.fullmatch(self.value, got) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


@dataclass(frozen=True, slots=True)
class Inhibition:
    """One entry of a pack's `inhibit:` list, with where it was declared."""

    name: str
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]
    file: str
    line: int

    def sources(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.source)

    def targets(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.target)


def _labels(rule_id: str, category: str, severity: str) -> dict[str, str]:
    return {"rule_id": rule_id, "category": category, "severity": severity}


def _suggest(value: str, known: Iterable[str]) -> str:
    m = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{m[0]}'?)" if m else ""


def _matchers(raw: Any, where: str, known_ids: Sequence[str], bad: Any) -> tuple[Matcher, ...]:
    if not isinstance(raw, list) or not raw:
        bad(f"{where} must be a non-empty list of matchers such as 'category=\"prohibited_field\"'")
        return ()
    known = {
        "rule_id": tuple(known_ids),
        "category": tuple(c.value for c in Category),
        "severity": tuple(s.value for s in Severity),
    }
    out: list[Matcher] = []
    for item in raw:
        m = _MATCHER.match(item) if isinstance(item, str) else None
        if m is None:
            bad(f'{where}: {item!r} is not a matcher; write label="value" (or !=, =~, !~)')
            continue
        label, op, value = m[1], m[2], m[3] if m[3] is not None else m[4]
        if label not in MATCHER_LABELS:
            known_labels = ", ".join(MATCHER_LABELS)
            bad(f"{where}: unknown label '{label}'{_suggest(label, MATCHER_LABELS)}; known: {known_labels}")
            continue
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                bad(f"{where}: {item!r} is not a valid regular expression ({exc})")
                continue
        elif value not in known[label]:
            bad(f"{where}: unknown {label} '{value}'{_suggest(value, known[label])}")
            continue
        out.append(Matcher(label, op, value))
    return tuple(out)


def _entry(file: str, item: Any, rules: Sequence[tuple[str, str, str]], problems: list[Problem]) -> Inhibition | None:
    line = item.line if isinstance(item, YamlMap) else 1
    before = len(problems)

    def bad(message: str, key: str | None = None) -> None:
        at = item.key_lines.get(key, line) if isinstance(item, YamlMap) and key else line
        problems.append(Problem(file, at, f"inhibit: {message}"))

    if not isinstance(item, YamlMap):
        bad("each entry must be a mapping with source_matchers, target_matchers and equal")
        return None
    for key in item:
        if key not in INHIBIT_KEYS:
            bad(f"unknown key '{key}'{_suggest(str(key), INHIBIT_KEYS)}; known keys: {', '.join(INHIBIT_KEYS)}", key)
    ids = [r[0] for r in rules]
    source = _matchers(item.get("source_matchers"), "source_matchers", ids, lambda m: bad(m, "source_matchers"))
    target = _matchers(item.get("target_matchers"), "target_matchers", ids, lambda m: bad(m, "target_matchers"))
    equal = item.get("equal")
    if not isinstance(equal, list) or not equal or not all(isinstance(k, str) for k in equal):
        # An inhibition with no shared key would let one alert silence unrelated ones anywhere.
        bad(f"equal must be a non-empty list of keys from {', '.join(EQUAL_KEYS)} (e.g. [event])", "equal")
        equal = []
    for k in equal:
        if k not in EQUAL_KEYS:
            bad(f"unknown equal key '{k}'{_suggest(k, EQUAL_KEYS)}; known: {', '.join(EQUAL_KEYS)}", "equal")
    name = item.get("name", "")
    if not isinstance(name, str):
        bad("name must be text", "name")
        name = ""
    if len(problems) > before:
        return None
    inh = Inhibition(name, source, target, tuple(equal), file, line)
    labelled = [_labels(*r) for r in rules]
    if not any(inh.sources(lb) for lb in labelled):
        bad("source_matchers match no rule of the pack", "source_matchers")
    if not any(inh.targets(lb) for lb in labelled):
        bad("target_matchers match no rule of the pack", "target_matchers")
    return inh if len(problems) == before else None


def inhibition_edges(
    inhibitions: Sequence[Inhibition], rules: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str], list[Inhibition]]:
    """(source rule id, target rule id) -> the entries that let the first inhibit the second.

    `rules` are (id, category, severity). A rule never inhibits its own alert (one alert per rule and
    event), so self-pairs are left out.
    """
    edges: dict[tuple[str, str], list[Inhibition]] = {}
    labelled = [(r[0], _labels(*r)) for r in rules]
    for inh in inhibitions:
        sources = [rid for rid, lb in labelled if inh.sources(lb)]
        targets = [rid for rid, lb in labelled if inh.targets(lb)]
        for s in sources:
            for t in targets:
                if s != t:
                    edges.setdefault((s, t), []).append(inh)
    return edges


def _cycle(edges: Mapping[tuple[str, str], Any]) -> list[str] | None:
    graph: dict[str, list[str]] = {}
    for s, t in edges:
        graph.setdefault(s, []).append(t)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def parse_inhibitions(
    file: str, raw: Any, rules: Sequence[tuple[str, str, str]]
) -> tuple[tuple[Inhibition, ...], list[Problem]]:
    """Validate a pack's `inhibit:` list against its rules (id, category, severity); refuse cycles.

    A cycle (A inhibits B, B inhibits A, directly or through others) is refused: two alerts on one
    event could then silence each other and nobody would be paged.
    """
    problems: list[Problem] = []
    if raw is None:
        return (), problems
    if not isinstance(raw, list):
        return (), [Problem(file, 1, "inhibit must be a list of entries")]
    entries = [e for e in (_entry(file, item, rules, problems) for item in raw) if e is not None]
    if problems:
        return (), problems
    edges = inhibition_edges(entries, rules)
    cycle = _cycle(edges)
    if cycle is not None:
        pairs = list(itertools.pairwise(cycle))
        lines = sorted({inh.line for pair in pairs for inh in edges[pair]})
        where = ", ".join(f"{file}:{n}" for n in lines)
        problems.append(
            Problem(
                file,
                lines[0],
                f"inhibit: entries form a cycle {' -> '.join(cycle)} (declared at {where}); alerts in a cycle "
                "could silence each other so nobody is paged",
            )
        )
        return (), problems
    return tuple(entries), problems


def _key(alert: Alert, key: str) -> frozenset[str]:
    value = getattr(alert, EQUAL_KEYS[key])
    if value is None:
        return frozenset()
    return frozenset(value) if isinstance(value, tuple) else frozenset((value,))


def _shares(a: Alert, b: Alert, equal: Sequence[str]) -> bool:
    # A key neither alert has (no agreement, say) never counts as shared: inhibition needs evidence
    # that both alerts are about the same thing.
    return all(_key(a, k) & _key(b, k) for k in equal)


def apply_inhibitions(alerts: Sequence[Alert], inhibitions: Sequence[Inhibition]) -> list[Alert]:
    """The same alerts, in order; each one an entry inhibits carries `inhibited_by` (sources in order).

    As in Alertmanager, a source inhibits whether or not it is inhibited itself (the loader refuses
    cycles, so some alert of every chain is paged).
    """
    if not inhibitions or len(alerts) < 2:
        return list(alerts)
    labels = [_labels(a.rule_id, a.category.value, a.severity.value) for a in alerts]
    out: list[Alert] = []
    for i, alert in enumerate(alerts):
        by: list[Inhibitor] = []
        for inh in inhibitions:
            if not inh.targets(labels[i]):
                continue
            for j, other in enumerate(alerts):
                if (
                    j != i
                    and other.rule_id != alert.rule_id
                    and inh.sources(labels[j])
                    and _shares(other, alert, inh.equal)
                    and all(b.alert_id != other.alert_id for b in by)
                ):
                    by.append(Inhibitor(alert_id=other.alert_id, rule_id=other.rule_id))
        out.append(alert.model_copy(update={"inhibited_by": tuple(by)}) if by else alert)
    return out
