"""The engine's rule index and cheap model construction (private to `rules`).

Rules are grouped by the values of a few cheap facts (rules.facts.INDEX_FACTS) that the leading
conjuncts of their conditions test. For one combination of those values (a bucket, built on first
use) a rule either cannot fire, or is left with its remaining conjuncts as one flat closure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from rules.facts import Facts
from rules.language import chain
from rules.loader import Rule

__all__ = ["Plan", "RuleIndex", "construct"]

Fn = Callable[[Facts], Any]
#: One rule in a bucket: the rule and the closure still to evaluate (its condition or what remains of it).
Plan = tuple[Rule, Fn]
#: Most buckets kept; the index facts have few values, so this is only hit by unvalidated input.
MAX_BUCKETS = 4096

M = TypeVar("M", bound=BaseModel)


def _always(_f: Facts) -> bool:
    return True


class _RulePlan:
    """A rule's leading conjuncts that the index key decides, and the closures of the others."""

    __slots__ = ("keyed", "rest", "rule")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        node = rule.node
        keyed: list[Callable[[tuple[Any, ...]], Any]] = []
        # A rule whose condition was swapped after compiling (tests do) is judged by that condition only.
        if node is not None and node.fn is rule.condition:
            conjuncts = node.conjuncts or (node,)
            i = 0
            # Only a leading run: key-decided conjuncts read attributes and cannot raise, so a false one
            # makes the condition false without hiding an exception a later conjunct would have raised.
            while i < len(conjuncts):
                keyfn = conjuncts[i].keyfn
                if keyfn is None:
                    break
                keyed.append(keyfn)
                i += 1
            self.rest: tuple[Fn, ...] = tuple(c.fn for c in conjuncts[i:])
        else:
            self.rest = (rule.condition,)
        self.keyed = tuple(keyed)

    def plan(self, key: tuple[Any, ...]) -> Plan | None:
        """What is left to evaluate for events with this index key; None if the rule cannot fire."""
        for keyfn in self.keyed:
            if not keyfn(key):
                return None
        fns = list(self.rest)
        if not fns:
            return (self.rule, _always)
        return (self.rule, fns[0] if len(fns) == 1 else chain(fns, any_of=False))


class RuleIndex:
    """Rules (kept in pack order) by index key; `indexed=False` gives every rule its full condition."""

    __slots__ = ("_all", "_buckets", "_plans", "indexed")

    def __init__(self, rules: Sequence[Rule], *, indexed: bool = True) -> None:
        self.indexed = indexed
        self._plans = tuple(_RulePlan(r) for r in rules)
        self._all: tuple[Plan, ...] = tuple((r, r.condition) for r in rules)
        self._buckets: dict[tuple[Any, ...], tuple[Plan, ...]] = {}

    def candidates(self, key: tuple[Any, ...]) -> tuple[Plan, ...]:
        """The rules that can fire for an event with these index values, in pack order."""
        if not self.indexed:
            return self._all
        got = self._buckets.get(key)
        if got is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.clear()
            got = self._buckets[key] = tuple(p for p in (rp.plan(key) for rp in self._plans) if p is not None)
        return got


def construct(cls: type[M], values: dict[str, Any], fields_set: frozenset[str] | set[str]) -> M:
    """An instance of a frozen pydantic model from values known to be valid, without validation.

    What `model_construct` does, minus its per-field default handling: `values` must hold every field
    in declaration order (so JSON output is identical). tests/rules/test_engine_fast.py checks the
    result equals, and dumps the same JSON as, the validated model.
    """
    m = _new(cls)
    _set(m, "__dict__", values)
    _set(m, "__pydantic_fields_set__", set(fields_set))  # a set of its own: model_copy updates it
    _set(m, "__pydantic_extra__", None)
    _set(m, "__pydantic_private__", None)
    return m


_set = object.__setattr__
_new = object.__new__
