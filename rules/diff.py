"""Classify the change between two versions of a rule pack and check its semantic version was bumped to match.

falcosecurity/rules style: a removed, disabled, demoted or narrowed rule is a major change (alerts
people rely on may stop), an added, enabled, promoted or widened rule is minor, metadata is a patch.
Conditions are compared on a syntax tree built from the engine's own tokenizer; a change we cannot
prove only widens is classified major, so the tool errs on the side of a bigger bump.

The pack's `inhibit:` list is compared as the (source rule, target rule, equal keys) pairs it produces
over each version's rules: an alert inhibited where it used to page hides pages (major); an alert that
pages again where it used to be inhibited is minor, like a widened rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from rules._yaml import YamlMap, read_yaml
from rules.exceptions import ConditionError, RulePackError
from rules.inhibit import inhibition_edges
from rules.language import Syntax, parse
from rules.loader import RULES_GLOB, load_pack

__all__ = [
    "Change",
    "ChangeClass",
    "PackDiff",
    "bump_kind",
    "classify_rule",
    "compare_conditions",
    "diff_packs",
    "inhibition_changes",
    "parse_condition",
    "render_condition",
]


class ChangeClass(IntEnum):
    """How big a change is; the required version bump is the largest class among the changes."""

    PATCH = 1
    MINOR = 2
    MAJOR = 3

    def __str__(self) -> str:
        return self.name.lower()


MAJOR, MINOR, PATCH = ChangeClass.MAJOR, ChangeClass.MINOR, ChangeClass.PATCH
PACK = "(pack)"  # the "rule id" of a change to the pack header
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
#: Keys whose change never alters which events fire (only what people read): a patch.
METADATA_KEYS = ("title", "legal_basis", "description", "message", "runbook", "tags", "maturity", "references")
#: Rule keys compared with their own logic; any other key is unknown here and classified major.
SEMANTIC_KEYS = ("id", "category", "severity", "condition", "enabled", "window")
CANNOT_PROVE = "condition changed (cannot prove it only widens)"


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeClass
    rule_id: str
    what: str

    def __str__(self) -> str:
        return f"{self.kind}  {self.rule_id}  {self.what}"


@dataclass(frozen=True, slots=True)
class PackDiff:
    """The changes between two versions of a pack, the bump they need and the bump that was made."""

    name: str
    old_version: str
    new_version: str
    old_sha256: str
    new_sha256: str
    changes: tuple[Change, ...]
    bump: str  # major, minor, patch, none or downgrade
    required: ChangeClass | None = None
    ok: bool = True
    verdict: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "pack": self.name,
            "old": {"version": self.old_version, "sha256": self.old_sha256},
            "new": {"version": self.new_version, "sha256": self.new_sha256},
            "changes": [{"class": str(c.kind), "rule_id": c.rule_id, "change": c.what} for c in self.changes],
            "required_bump": str(self.required) if self.required else "none",
            "bump": self.bump,
            "ok": self.ok,
            "verdict": self.verdict,
        }

    def render(self) -> str:
        return "\n".join([*(str(c) for c in self.changes), self.verdict])


# --- versions -----------------------------------------------------------------------------------


_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


def _semver(version: str) -> tuple[int, int, int]:
    m = _SEMVER.match(version)
    if m is None:  # the loader only accepts semantic versions, so this is a caller error
        raise ValueError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    return int(m[1]), int(m[2]), int(m[3])


def bump_kind(old: str, new: str) -> str:
    """`major`, `minor`, `patch`, `none` (same MAJOR.MINOR.PATCH) or `downgrade`."""
    a, b = _semver(old), _semver(new)
    if b < a:
        return "downgrade"
    if b == a:
        return "none"
    if b[0] > a[0]:
        return "major"
    return "minor" if b[1] > a[1] else "patch"


def _bump_suffices(old: str, bump: str, required: ChangeClass | None) -> bool:
    if bump == "downgrade":
        return False
    if required is None:
        return True
    got = {"none": 0, "patch": 1, "minor": 2, "major": 3}[bump]
    # semver: while MAJOR is 0 anything may change, so a minor bump may carry a breaking change.
    if required is MAJOR and _semver(old)[0] == 0 and bump == "minor":
        return True
    return got >= int(required)


# --- condition syntax trees ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """A normalised condition node (from rules.language.Syntax). `and`/`or` keep their operands as a
    frozenset: conditions are pure, so order and repetition do not change what they mean."""

    op: str  # and, or, not, cmp, in, sub, call, name, lit
    args: tuple[Any, ...] = ()


def _normal(node: Syntax) -> Node:
    """A condition's syntax tree with `and`/`or` flattened into sets and `not not x` as x."""
    kind, args = node.kind, node.args
    if kind in ("and", "or"):
        flat: set[Node] = set()
        for part in map(_normal, args):  # `a and (b and c)` is `a and b and c`
            flat |= set(part.args[0]) if part.op == kind else {part}
        return Node(kind, (frozenset(flat),)) if len(flat) > 1 else next(iter(flat))
    if kind == "not":
        inner = _normal(args[0])
        return inner.args[0] if inner.op == "not" else Node("not", (inner,))
    if kind == "cmp":
        return Node("cmp", (node.op, _normal(args[0]), _normal(args[1])))
    if kind == "in":
        return Node("in", (node.op == "not in", _normal(args[0]), _normal(args[1])))
    if kind == "sub":
        return Node("sub", (_normal(args[0]), _normal(args[1])))
    if kind == "call":
        return Node("call", (node.op, tuple(_normal(a) for a in args)))
    if kind == "lit":
        return Node("lit", (node.value,))
    return Node("name", (node.op,))


def parse_condition(text: str) -> Node:
    """The normalised syntax tree of a condition (rules.language.parse, then `_normal`)."""
    return _normal(parse(text))


def _literal_set(node: Node) -> frozenset[Any] | None:
    """The values a literal stands for in a membership test: a list's items, or one scalar."""
    if node.op != "lit":
        return None
    value = node.args[0]
    return frozenset(value) if isinstance(value, tuple) else frozenset([value])


def _membership(node: Node) -> tuple[bool, Node, frozenset[Any]] | None:
    """`x in [..]`, `x not in [..]`, `x == lit` and `x != lit` as (negated, x, literal values)."""
    if node.op == "in":
        negate, left, right = node.args
        values = _literal_set(right) if right.op == "lit" and isinstance(right.args[0], tuple) else None
        return (negate, left, values) if values is not None else None
    if node.op == "cmp" and node.args[0] in ("==", "!="):
        op, left, right = node.args
        if left.op == "lit" and right.op != "lit":
            left, right = right, left
        if right.op == "lit" and not isinstance(right.args[0], tuple):
            values = _literal_set(right)
            return (op == "!=", left, values) if values is not None else None
    return None


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _bound(node: Node) -> tuple[str, Node, int] | None:
    """An integer ordering against a literal as ('lower', x, n) for x >= n or ('upper', x, n) for x <= n.

    Orderings only take integers, so `x > n` is `x >= n + 1`; a null side is false in every form.
    """
    if node.op != "cmp" or node.args[0] in ("==", "!="):
        return None
    op, left, right = node.args
    if left.op == "lit" and right.op != "lit":
        op, left, right = _FLIP[op], right, left
    if right.op != "lit" or isinstance(right.args[0], bool) or not isinstance(right.args[0], int):
        return None
    n = right.args[0]
    return {
        ">": ("lower", left, n + 1),
        ">=": ("lower", left, n),
        "<": ("upper", left, n - 1),
        "<=": ("upper", left, n),
    }[op]


def _leaf_subset(a: Node, b: Node) -> bool:
    """Whether leaf condition `a` provably fires only when `b` does (same operand, literal changed)."""
    ma, mb = _membership(a), _membership(b)
    if ma is not None and mb is not None and ma[1] == mb[1]:
        if not ma[0] and not mb[0]:
            return ma[2] <= mb[2]  # x in A  implies  x in B  when A is within B
        if ma[0] and mb[0]:
            return mb[2] <= ma[2]  # x not in A  implies  x not in B  when B is within A
        if not ma[0] and mb[0]:
            return not (ma[2] & mb[2])  # x in A  implies  x not in B  when they share nothing
        return False
    ba, bb = _bound(a), _bound(b)
    if ba is not None and bb is not None and ba[:2] == bb[:2]:
        return ba[2] >= bb[2] if ba[0] == "lower" else ba[2] <= bb[2]
    if a.op == "call" and b.op == "call" and a.args[0] == b.args[0] and a.args[0] in ("intersects", "subset"):
        (fx, fy), (gx, gy) = a.args[1], b.args[1]
        if fx == gx and fy.op == "lit" and gy.op == "lit":
            # intersects(x, A) implies intersects(x, B) when A is within B; subset(x, A) likewise.
            return set(fy.args[0]) <= set(gy.args[0])
        if a.args[0] == "intersects" and fy == gy and fx.op == "lit" and gx.op == "lit":
            return set(fx.args[0]) <= set(gx.args[0])
    return False


def _subset(a: Node, b: Node, depth: int = 0) -> bool:
    """Sound (not complete) proof that condition `a` fires only when `b` fires."""
    if a == b:
        return True
    if depth > 64:
        return False
    d = depth + 1
    if a.op == "or":  # every disjunct of a must imply b
        return all(_subset(x, b, d) for x in a.args[0])
    if b.op == "and":  # a must imply every conjunct of b
        return all(_subset(a, y, d) for y in b.args[0])
    if a.op == "and" and any(_subset(x, b, d) for x in a.args[0]):
        return True
    if b.op == "or" and any(_subset(a, y, d) for y in b.args[0]):
        return True
    if a.op == "not" and b.op == "not":
        return _subset(b.args[0], a.args[0], d)
    return _leaf_subset(a, b)


def render_condition(node: Node) -> str:
    """Condition text of a syntax tree (operands of and/or sorted, so equal trees render alike)."""
    op, args = node.op, node.args
    if op in ("and", "or"):
        parts = sorted(f"({render_condition(x)})" if x.op in ("and", "or") else render_condition(x) for x in args[0])
        return f" {op} ".join(parts)
    if op == "not":
        inner = render_condition(args[0])
        return f"not ({inner})" if args[0].op in ("and", "or", "cmp", "in") else f"not {inner}"
    if op == "cmp":
        return f"{render_condition(args[1])} {args[0]} {render_condition(args[2])}"
    if op == "in":
        return f"{render_condition(args[1])} {'not in' if args[0] else 'in'} {render_condition(args[2])}"
    if op == "sub":
        return f"{render_condition(args[0])} - {render_condition(args[1])}"
    if op == "call":
        return f"{args[0]}({', '.join(render_condition(a) for a in args[1])})"
    if op == "lit":
        return _render_literal(args[0])
    return str(args[0])


def _render_literal(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_render_literal(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def _detail(a: Node, b: Node) -> str:
    """What differs at the top level: `+ added part`, `- dropped part` (and/or operands)."""
    op = b.op if b.op in ("and", "or") else a.op
    items_a = set(a.args[0]) if a.op == op and op in ("and", "or") else {a}
    items_b = set(b.args[0]) if b.op == op and op in ("and", "or") else {b}
    dropped = sorted(render_condition(x) for x in items_a - items_b)
    added = sorted(render_condition(x) for x in items_b - items_a)
    return "; ".join([*(f"- {t}" for t in dropped), *(f"+ {t}" for t in added)])


def compare_conditions(old: str, new: str) -> tuple[ChangeClass | None, str]:
    """(class, reason) of a condition change; (None, "") when the text differs only in spacing."""
    if " ".join(old.split()) == " ".join(new.split()):
        return None, ""
    try:
        a, b = parse_condition(old), parse_condition(new)
    except ConditionError:  # syntax this tree builder does not know yet: stay conservative
        return MAJOR, CANNOT_PROVE
    narrower, wider = _subset(b, a), _subset(a, b)
    if narrower and wider:
        return PATCH, "condition rewritten with the same meaning"
    detail = _detail(a, b)
    if narrower:
        return MAJOR, f"condition narrowed (fires in fewer cases): {detail}"
    if wider:
        return MINOR, f"condition widened (fires in more cases): {detail}"
    return MAJOR, f"{CANNOT_PROVE}: {detail}"


# --- windows ----------------------------------------------------------------------------------------

#: Window keys compared with `>=`-style counts: raising one means the rule fires in fewer cases.
_THRESHOLD = re.compile(r"(^|_)(threshold|count|limit|cap|max|min|factor|multiplier|ratio|times|lookups|persons)($|_)")
_LENGTH = re.compile(r"(^|_)(length|duration|size|period|span|within|window|days|hours|lookback|trailing|every)($|_)")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_NAMED = {
    "hour": 3600,
    "day": 86400,
    "week": 604800,
    "month": 30 * 86400,
    "calendar_month": 30 * 86400,
    "quarter": 91 * 86400,
    "year": 365 * 86400,
    "calendar_year": 365 * 86400,
}
_DURATION = re.compile(r"^(\d+)\s*(s|m|min|h|d|w|seconds?|minutes?|hours?|days?|weeks?)$")
_ISO = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def _seconds(value: Any) -> float | None:
    """A window length in seconds: `30d`, `90 days`, `P30D`, `month`, or a bare number (same unit both sides)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text in _NAMED:
        return float(_NAMED[text])
    if m := _DURATION.match(text):
        unit = m[2] if m[2] in _UNITS else m[2][0]
        return float(int(m[1]) * _UNITS[unit])
    if (m := _ISO.match(value.strip().upper())) and any(m.groups()):
        w, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
        return float(((w * 7 + d) * 24 + h) * 3600 + mi * 60 + s)
    return None


def _window_changes(rid: str, old: Any, new: Any) -> Iterator[Change]:
    if old == new:
        return
    if old is None or new is None:
        what = "window added" if old is None else "window removed"
        yield Change(MAJOR, rid, f"{what} (cannot prove it only widens)")
        return
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        yield Change(MAJOR, rid, "window changed (cannot prove it only widens)")
        return
    baseline = any("factor" in str(k) or "median" in str(v) for k, v in {**old, **new}.items())
    for key in [*old, *(k for k in new if k not in old)]:
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        name = f"window.{key}"
        if key not in old or key not in new:
            yield Change(MAJOR, rid, f"{name} {'added' if key not in old else 'removed'} (cannot prove it only widens)")
        elif _THRESHOLD.search(str(key)) and _number(a) is not None and _number(b) is not None:
            if _number(b) > _number(a):  # type: ignore[operator]
                yield Change(MAJOR, rid, f"{name} raised {a} -> {b} (fires in fewer cases)")
            else:
                yield Change(MINOR, rid, f"{name} lowered {a} -> {b} (fires in more cases)")
        elif _LENGTH.search(str(key)) and (sa := _seconds(a)) is not None and (sb := _seconds(b)) is not None:
            if sb < sa:
                yield Change(MAJOR, rid, f"{name} shortened {a} -> {b} (fires in fewer cases)")
            elif baseline:  # a longer trailing baseline can move a median either way
                yield Change(MAJOR, rid, f"{name} lengthened {a} -> {b} (cannot prove it only widens)")
            else:
                yield Change(MINOR, rid, f"{name} lengthened {a} -> {b} (fires in more cases)")
        else:
            yield Change(MAJOR, rid, f"{name} changed {a!r} -> {b!r} (cannot prove it only widens)")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# --- packs ------------------------------------------------------------------------------------------


def _raw_rules(pack_dir: Path) -> dict[str, YamlMap]:
    """Every rule of a pack as its YAML mapping, in pack order (keys the Rule object may not carry)."""
    out: dict[str, YamlMap] = {}
    for path in sorted(pack_dir.glob(RULES_GLOB), key=lambda p: p.name):
        data, _ = read_yaml(path)
        for item in data if isinstance(data, list) else []:
            if isinstance(item, YamlMap) and isinstance(item.get("id"), str):
                out[item["id"]] = item
    return out


def _text(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def classify_rule(rid: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[Change]:
    """The changes of one rule between two versions, given as its raw YAML mappings (every key, `window` too)."""
    was_on, is_on = old.get("enabled", True), new.get("enabled", True)
    if was_on != is_on:
        yield Change(MAJOR if was_on else MINOR, rid, "rule disabled" if was_on else "rule enabled")
    if old.get("category") != new.get("category"):
        yield Change(MAJOR, rid, f"category changed {old.get('category')} -> {new.get('category')}")
    sa, sb = old.get("severity"), new.get("severity")
    if sa != sb:
        lowered = SEVERITY_RANK.get(str(sb), 0) < SEVERITY_RANK.get(str(sa), 0)
        yield Change(MAJOR if lowered else MINOR, rid, f"severity {'lowered' if lowered else 'raised'} {sa} -> {sb}")
    kind, reason = compare_conditions(str(old.get("condition", "")), str(new.get("condition", "")))
    if kind is not None:
        yield Change(kind, rid, reason)
    yield from _window_changes(rid, old.get("window"), new.get("window"))
    for key in METADATA_KEYS:
        a, b = _text(old.get(key)), _text(new.get(key))
        if a == b:
            continue
        if key == "tags":
            ta, tb = list(a or []), list(b or [])
            added = [t for t in tb if t not in ta]
            removed = [t for t in ta if t not in tb]
            parts = [f"+{t}" for t in added] + [f"-{t}" for t in removed]
            yield Change(PATCH, rid, "tags changed " + (" ".join(parts) if parts else "(order)"))
        else:
            yield Change(PATCH, rid, f"{key} changed")
    known = set(SEMANTIC_KEYS) | set(METADATA_KEYS)
    for key in [*old, *(k for k in new if k not in old)]:
        if key not in known and old.get(key) != new.get(key):
            yield Change(MAJOR, rid, f"{key} changed (not known to be metadata; cannot prove it only widens)")


def _edges(pack: Any) -> dict[tuple[str, str], list[frozenset[str]]]:
    rules = [(r.id, r.category.value, r.severity.value) for r in pack.rules]
    return {
        pair: [frozenset(inh.equal) for inh in entries]
        for pair, entries in inhibition_edges(pack.inhibitions, rules).items()
    }


def _covered(keys: list[frozenset[str]], by: list[frozenset[str]] | None) -> bool:
    # `by` inhibits at least whenever `keys` does: every key set of `keys` contains one of `by`'s.
    return by is not None and all(any(b <= k for b in by) for k in keys)


def inhibition_changes(old: Any, new: Any) -> Iterator[Change]:
    """The changes in which alerts the `inhibit:` lists keep from paging (rule id: the inhibited rule)."""
    before, after = _edges(old), _edges(new)
    for (source, target), keys in after.items():
        if not _covered(keys, before.get((source, target))):
            equal = " or ".join("+".join(sorted(k)) for k in keys)
            yield Change(MAJOR, target, f"now inhibited by {source} (same {equal}): hides pages")
    for (source, target), keys in before.items():
        if not _covered(keys, after.get((source, target))):
            yield Change(MINOR, target, f"no longer inhibited by {source} in every case it was: pages again")


def diff_packs(old_dir: Path, new_dir: Path) -> PackDiff:
    """Load both versions (RulePackError if either has problems), classify each change, check the bump."""
    loaded: list[Any] = []
    for d in (Path(old_dir), Path(new_dir)):
        pack, problems = load_pack(d)
        if pack is None:
            raise RulePackError(problems, source=str(d))
        loaded.append(pack)
    old, new = loaded
    raw_old, raw_new = _raw_rules(Path(old_dir)), _raw_rules(Path(new_dir))
    changes: list[Change] = []
    if old.name != new.name:
        changes.append(Change(MAJOR, PACK, f"pack renamed {old.name} -> {new.name}"))
    if " ".join(old.description.split()) != " ".join(new.description.split()):
        changes.append(Change(PATCH, PACK, "description changed"))
    for rid, rule in raw_old.items():
        if rid not in raw_new:
            changes.append(Change(MAJOR, rid, "rule removed"))
        else:
            changes.extend(classify_rule(rid, rule, raw_new[rid]))
    for rid, rule in raw_new.items():
        if rid not in raw_old:
            note = " (disabled)" if rule.get("enabled", True) is False else ""
            changes.append(Change(MINOR, rid, f"rule added{note}"))
    changes.extend(inhibition_changes(old, new))
    common_old = [r for r in raw_old if r in raw_new]
    common_new = [r for r in raw_new if r in raw_old]
    if common_old != common_new:  # violations are listed in pack order
        changes.append(Change(PATCH, PACK, "rule order changed"))
    order = {rid: i for i, rid in enumerate([PACK, *raw_old, *(r for r in raw_new if r not in raw_old)])}
    changes.sort(key=lambda c: (-int(c.kind), order[c.rule_id]))
    required = max((c.kind for c in changes), default=None)
    bump = bump_kind(old.version, new.version)
    ok = _bump_suffices(old.version, bump, required)
    need = str(required) if required else "no bump"
    vs = f"version {old.version} -> {new.version}"
    if bump == "downgrade":
        verdict = f"{vs} goes backwards; the changes need {need}"
    elif ok:
        verdict = f"{vs} is {'no' if bump == 'none' else 'a ' + bump} bump; the changes need {need}: ok"
    else:
        verdict = f"{vs} is {'no' if bump == 'none' else 'a ' + bump} bump but the changes need {need}"
    return PackDiff(
        name=new.name,
        old_version=old.version,
        new_version=new.version,
        old_sha256=old.sha256,
        new_sha256=new.sha256,
        changes=tuple(changes),
        bump=bump,
        required=required,
        ok=ok,
        verdict=verdict,
    )
