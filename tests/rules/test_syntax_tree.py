"""The condition language is parsed once into a syntax tree; the compiler, `rules diff` and the CEL
translator are passes over that tree."""

from __future__ import annotations

import pytest

from rules.diff import Node, parse_condition
from rules.exceptions import ConditionError
from rules.language import Syntax, compile_expression, parse


def test_the_tree_keeps_precedence_chains_and_literal_values() -> None:
    tree = parse('event.purpose in ["a", "b"] and not (x == -3 or len(event.fields) > 2)')
    assert tree.kind == "and"
    membership, negation = tree.args
    assert (membership.kind, membership.op) == ("in", "in")
    assert membership.args[1] == Syntax("lit", 17, "list", value=("a", "b"))
    assert negation.kind == "not"
    either = negation.args[0]
    assert (either.kind, len(either.args)) == ("or", 2)
    assert either.args[0].args[1].value == -3
    assert (either.args[1].args[0].kind, either.args[1].args[0].op) == ("call", "len")


def test_parsing_resolves_no_names_so_an_unknown_fact_is_a_compile_error() -> None:
    assert parse("no.such.fact").kind == "name"
    with pytest.raises(ConditionError, match=r"unknown fact 'no\.such\.fact'") as refused:
        compile_expression("true and no.such.fact")
    assert 9 == refused.value.offset


def test_a_type_error_points_at_the_operator_of_the_operand() -> None:
    with pytest.raises(ConditionError, match="'or' needs a bool, got a int") as refused:
        compile_expression("event.pupil_level or 3")
    assert 18 == refused.value.offset


def test_rules_diff_normalises_the_same_tree() -> None:
    a = parse_condition("x == 1 and (y == 2 and not not z)")
    b = parse_condition("z and y == 2 and x == 1")
    assert a == b
    assert Node("name", ("z",)) in a.args[0]
