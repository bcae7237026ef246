"""The condition language: operators and functions work; hostile text is refused and never run."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import ConditionError, Facts, compile_condition, compile_template, load_catalogue
from rules.language import compile_expression
from tests.rules.conftest import make_agreement, make_event

DOMAINS = load_catalogue().domains()


def _facts(**patch: object) -> Facts:
    return Facts(make_event(**patch), make_agreement(), load_catalogue())


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('event.action == "extract"', True),
        ('event.action != "extract"', False),
        ("event.record_count > 1000", True),
        ("event.record_count >= 250000", True),
        ("event.record_count < 250000", False),
        ("event.record_count <= 250000", True),
        ('"pmr" in event.fields', True),
        ('"upn" not in event.fields', True),
        ("event.legal_gateway in agreement.legal_gateways", True),
        ("event.purpose not in agreement.purposes", False),
        ("not agreement.active", False),
        ("agreement.active and agreement.present", True),
        ("false or agreement.cited", True),
        ("not (true and false)", True),
        ("len(event.fields) == 4", True),
        ("any(event.fields)", True),
        ("empty(fields.prohibited)", True),
        ('intersects(event.fields, ["fsm", "upn"])', True),
        ("subset(event.fields, agreement.fields_allowed)", True),
        ('any(event.fields - ["pmr", "attainment", "fsm", "gender"])', False),
        ('len(event.fields - ["pmr"]) == 3', True),
        ("event.min_cell_count < 10", False),  # null orders as false, never an error
        ("event.min_cell_count == null", True),
        ("event.record_count - 250000 == 0", True),
        ("event.record_count > -1", True),
        ('"it\'s" == "it\'s"', True),
    ],
)
def test_operators_and_functions(condition: str, expected: bool) -> None:
    assert expected == compile_condition(condition, DOMAINS)(_facts())


def test_agreement_missing_gives_empty_lists_and_false() -> None:
    facts = Facts(make_event(agreement_id=None), None, load_catalogue())
    results = [
        compile_condition(c, DOMAINS)(facts)
        for c in ("agreement.present", "agreement.cited", "empty(agreement.fields_allowed)", "agreement.id == null")
    ]
    assert [False, False, True, True] == results


def test_unknown_agreement_id_is_cited_but_not_present() -> None:
    facts = Facts(make_event(agreement_id="AG-NOPE"), None, load_catalogue())
    assert [True, False, "AG-NOPE"] == [
        compile_expression(c, DOMAINS).fn(facts) for c in ("agreement.cited", "agreement.present", "agreement.id")
    ]


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("event.feilds == 1", "unknown fact 'event.feilds'; did you mean event.fields"),
        ("lower(event.action)", "unknown function 'lower'; the only functions are any, empty, intersects, len, subset"),
        ("len(event.fields, event.datasets) == 1", "len() takes 1 argument(s), got 2"),
        ("len(event.record_count) == 1", "len() needs a list, got a int"),
        ("event.record_count", "a condition must be true or false, but this is a int"),
        ("event.action and true", "'and' needs a bool, got a str"),
        ("event.action == 3", "'==' compares a str with a int; they can never be equal"),
        ('event.fields in ["a"]', "'in' tests one value against a list"),
        ('event.legal_gateway == "EA1996-s999"', "unknown gateway code 'EA1996-s999'"),
        ('"nationalty" in event.fields', "unknown field code 'nationalty'"),
        ('event.recipient.org_type in ["press", "newspaper"]', "unknown org_type code 'newspaper'"),
        ("event.action ==", "expected a value (fact name, literal, list or function call), found the end"),
        ("true true", "unexpected 'true' after a complete expression"),
        ('"unterminated', "unterminated string literal"),
        ('"a\\q" == "a"', "unknown escape '\\q' in string"),
    ],
)
def test_compile_errors_name_the_problem(condition: str, message: str) -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition(condition, DOMAINS)
    assert message in info.value.message


def test_error_column_points_at_the_bad_token() -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition("agreement.present and\n  event.nope", DOMAINS)
    assert (2, 3) == (info.value.text.count("\n", 0, info.value.offset) + 1, info.value.column)


SENTINEL_NAME = "gatewatch-pwned"


def _hostile(sentinel: Path) -> list[str]:
    s = str(sentinel)
    return [
        f"__import__('os').system('touch {s}')",
        f"open('{s}', 'w')",
        f"exec(\"open('{s}','w')\")",
        f"eval(\"open('{s}','w')\")",
        "().__class__.__bases__[0].__subclasses__()",
        "''.__class__",
        "event.fields.__class__",
        "event.__dict__",
        "lambda: 1",
        "[x for x in event.fields]",
        "10**100000",
        "9" * 4000 + " > 1",
        "(" * 1000 + "true" + ")" * 1000,
        "not " * 1000 + "true",
        "a" * 5000,
        '"' + "x" * 300 + '" == event.action',
        "[" + ", ".join(["1"] * 300) + "] == event.fields",
        f"compile('open(\"{s}\",\"w\")', 'x', 'exec')",
        "getattr(event, 'fields')",
        "import os",
        "event.action; __import__('os')",
        "globals()['__builtins__']",
        "event.action if true else 1",
        "@decorator",
        "`id`",
    ]


@pytest.mark.parametrize("index", range(25))
def test_hostile_rule_text_is_refused_and_never_executed(index: int, tmp_path: Path) -> None:
    sentinel = tmp_path / SENTINEL_NAME
    text = _hostile(sentinel)[index]
    with pytest.raises(ConditionError) as info:
        compile_condition(text, DOMAINS)
    assert info.value.message  # a clear, non-empty reason
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10**100000", "unexpected character '*'"),
        ("9" * 4000 + " > 1", "integer literal has 4000 digits; the limit is 12"),
        ("(" * 1000 + "true" + ")" * 1000, "expression nested deeper than 32 levels"),
        ("a" * 5000, "condition has 5000 characters; the limit is 4096"),
        ('"' + "x" * 300 + '" == event.action', "string literal has 300 characters; the limit is 256"),
        ("[" + ", ".join(["1"] * 300) + "] == event.fields", "list literal has more than 256 items"),
        ("''.__class__", "attribute access is not allowed"),
        ("__import__('os')", "unknown function '__import__'"),
        ("event.fields.__class__", "name 'event.fields.__class__' is not allowed"),
        ("event.action in null", "'in' needs a list on its right, not null"),
        ("event.action not in null", "'in' needs a list on its right, not null"),
        ("len(event.fields - null) > 0", "'-' (list difference) needs lists on both sides, not null"),
        ("len(null - event.fields) > 0", "'-' (list difference) needs lists on both sides, not null"),
    ],
)
def test_limits_and_hostile_text_give_clear_messages(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition(text, DOMAINS)
    assert message in info.value.message


def test_template_renders_lists_and_nulls_safely() -> None:
    template = compile_template(
        'fields {event.fields - ["pmr"]} cap {agreement.monthly_record_cap} {{literal}} ok {agreement.active}',
        DOMAINS,
    )
    assert "fields attainment, fsm, gender cap none {literal} ok true" == template.render(_facts())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seen {event.nope}", "placeholder {event.nope}: unknown fact 'event.nope'"),
        ("seen {event.fields.__class__}", "is not allowed"),
        ("seen {0.__class__}", "attribute access is not allowed"),
        ("seen {event.fields", "unclosed '{' in message"),
        ("seen }", "unmatched '}' in message"),
        ("seen {}", "empty expression"),
    ],
)
def test_bad_template_placeholders_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as info:
        compile_template(text, DOMAINS)
    assert message in info.value.message
