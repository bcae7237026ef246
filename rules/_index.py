"""The engine's rule index and cheap model construction (private to `rules`).

Rules are grouped by the values of a few cheap facts (rules.facts.INDEX_FACTS, INDEX_PARTIAL) that
their conditions test. For one combination of those values (a bucket, built on first use), and again
for one agreement within it, a rule either cannot fire, or is left with what the key does not decide:
its condition with the decided parts dropped and sides the key knows compiled in as constants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from rules.facts import UNKNOWN, Facts
from rules.language import Compiled, _false, chain
from rules.loader import Rule

__all__ = ["Plan", "RuleIndex", "construct"]

Fn = Callable[[Facts], Any]
#: One rule in a bucket: the rule and the closure still to evaluate (its condition or what remains of it).
Plan = tuple[Rule, Fn]
#: Most buckets kept; the index facts have few values, so this is only hit by unvalidated input.
MAX_BUCKETS = 4096
#: Most (key, agreement) specialisations kept; they are built again after it is reached.
MAX_SPECIALISED = 16384

M = TypeVar("M", bound=BaseModel)


def _always(_f: Facts) -> bool:
    return True


def _decided(node: Compiled, key: tuple[Any, ...]) -> Any:
    """The node's value from the key, or UNKNOWN (also if working it out fails: the event then shows it)."""
    if node.keyfn is None:
        return UNKNOWN
    try:
        return node.keyfn(key)
    except Exception:  # evaluated per event instead, where an error becomes an engine_error
        return UNKNOWN


def _bound(node: Compiled, key: tuple[Any, ...]) -> Fn | None:
    """The node compiled against the value of an operand the key determines (Compiled.bind), if any."""
    if node.bind is None:
        return None
    try:
        return node.bind(key)
    except Exception:  # the node as compiled, evaluated per event, shows the error
        return None


def _residual(node: Compiled, key: tuple[Any, ...]) -> bool | Fn:
    """What is left of a condition for events with this key: True or False if the key decides it, else a closure.

    and/or chains and `not` are taken apart, so the parts the key decides are dropped wherever they are.
    An operand the key does not decide is kept even when a later one decides the chain: it is evaluated
    first per event, and an error it raises must still show.
    """
    value = _decided(node, key)
    if value is not UNKNOWN:
        return bool(value)
    if node.operand is not None:
        inner = _residual(node.operand, key)
        if isinstance(inner, bool):
            return not inner
        return lambda f: not inner(f)
    parts = node.conjuncts or node.disjuncts
    if not parts:
        return _bound(node, key) or node.fn
    any_of = not node.conjuncts  # an `or` chain is decided by a true operand, an `and` chain by a false one
    fns: list[Fn] = []
    for part in parts:
        r = _residual(part, key)
        if r is any_of:
            if not fns:
                return any_of
            fns.append(_always if any_of else _false)
            break
        if not isinstance(r, bool):
            fns.append(r)
    if not fns:
        return not any_of
    return fns[0] if len(fns) == 1 else chain(fns, any_of=any_of)


class _RulePlan:
    """A rule and the compiled condition the index specialises per key."""

    __slots__ = ("node", "rule")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        node = rule.node
        # A rule whose condition was swapped after compiling (tests do) is judged by that condition only.
        self.node = node if node is not None and node.fn is rule.condition else None

    def plan(self, key: tuple[Any, ...]) -> Plan | None:
        """What is left to evaluate for events with this index key; None if the rule cannot fire."""
        if self.node is None:
            return (self.rule, self.rule.condition)
        left = _residual(self.node, key)
        if left is False:
            return None
        return (self.rule, _always if left is True else left)


class RuleIndex:
    """Rules (kept in pack order) by index key; `indexed=False` gives every rule its full condition."""

    __slots__ = ("_all", "_buckets", "_by_agreement", "_plans", "indexed")

    def __init__(self, rules: Sequence[Rule], *, indexed: bool = True) -> None:
        self.indexed = indexed
        self._plans = tuple(_RulePlan(r) for r in rules)
        self._all: tuple[Plan, ...] = tuple((r, r.condition) for r in rules)
        #: index key -> the rules that key alone does not rule out (planned again per agreement)
        self._buckets: dict[tuple[Any, ...], tuple[_RulePlan, ...]] = {}
        self._by_agreement: dict[tuple[tuple[Any, ...], object], tuple[Plan, ...]] = {}

    def candidates(self, key: tuple[Any, ...], agreement: object) -> tuple[Plan, ...]:
        """The rules that can fire for an event with these index values and agreement view, in pack order.

        `agreement` is the event's Facts.agreement_view: the plans are specialised to it, so facts of the agreement
        view are known too (rules.facts.INDEX_PARTIAL reads them from `key + (agreement,)`).
        """
        if not self.indexed:
            return self._all
        got = self._by_agreement.get((key, agreement))
        if got is None:
            if len(self._by_agreement) >= MAX_SPECIALISED:
                self._by_agreement.clear()
            full = (*key, agreement)
            got = tuple(p for p in (rp.plan(full) for rp in self._live(key)) if p is not None)
            self._by_agreement[key, agreement] = got
        return got

    def _live(self, key: tuple[Any, ...]) -> tuple[_RulePlan, ...]:
        live = self._buckets.get(key)
        if live is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.clear()
            live = self._buckets[key] = tuple(rp for rp in self._plans if rp.plan(key) is not None)
        return live


def construct(cls: type[M], values: dict[str, Any], fields_set: frozenset[str] | set[str]) -> M:
    """An instance of a frozen pydantic model from values known to be valid, without validation.

    What `model_construct` does, minus its per-field default handling: `values` must hold every field
    in declaration order (so JSON output is identical). tests/rules/test_properties.py checks the
    result equals, and dumps the same JSON as, the validated model.
    """
    m = _new(cls)
    _set_dict(m, values)
    _set_fields_set(m, set(fields_set))  # a set of its own: model_copy updates it
    _set_extra(m, None)
    _set_private(m, None)
    return m


_new = object.__new__
# BaseModel's slots, set through their descriptors: what object.__setattr__ does, minus looking them up.
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__
