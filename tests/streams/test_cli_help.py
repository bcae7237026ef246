"""`--help` says what a newcomer needs, and README's commands table and the parser agree."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.cli.main import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every runnable command as its words, e.g. ("audit", "export"), with its parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix
        return
    for name, child in subs[0].choices.items():
        yield from _commands(child, (*prefix, name))


def _parser_of(words: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return parser


def _readme_rows() -> dict[tuple[str, ...], str]:
    """README's commands table: the command words of each row, and its usage cell."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for cell in re.findall(r"^\| `(gatewatch [^`]*)` \|", section, flags=re.MULTILINE):
        words = tuple(re.match(r"gatewatch((?: [a-z][a-z-]*)+)", cell).group(1).split())  # type: ignore[union-attr]
        rows[words] = cell
    return rows


def test_readme_commands_table_lists_exactly_the_commands_of_the_cli() -> None:
    assert sorted(_commands(build_parser())) == sorted(_readme_rows())


@pytest.mark.parametrize("words", sorted(_readme_rows()), ids=" ".join)
def test_options_in_a_readme_row_exist_on_that_command(words: tuple[str, ...]) -> None:
    usage = _readme_rows()[words]
    known = {o for a in _parser_of(words)._actions for o in a.option_strings}
    assert [] == [o for o in re.findall(r"--[a-z][a-z-]*", usage) if o not in known]


def test_top_level_description_names_every_command() -> None:
    parser = build_parser()
    description = parser.description or ""
    assert [] == [w[0] for w in _commands(parser) if re.search(rf"\b{w[0]}\b", description) is None]
    for name in ("sink", "audit"):
        assert name in description


@pytest.mark.parametrize("words", sorted(_commands(build_parser())), ids=" ".join)
def test_every_option_and_argument_has_help(words: tuple[str, ...]) -> None:
    parser = _parser_of(words)
    missing = [
        a.option_strings[0] if a.option_strings else a.dest
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction) and not a.help
    ]
    assert [] == missing


@pytest.mark.parametrize("words", [("up",), ("worker",)])
def test_metrics_port_names_its_setting(words: tuple[str, ...]) -> None:
    option = next(a for a in _parser_of(words)._actions if "--metrics-port" in a.option_strings)
    assert "GATEWATCH_WEB_PORT" in (option.help or "")


def test_worker_help_explains_the_embedded_broker_and_local_mode() -> None:
    text = " ".join(_parser_of(("worker",)).format_help().split())
    assert "embedded broker" in text
    assert "GATEWATCH_LOCAL_MODE" in text


def test_simulate_help_says_the_traffic_ends_by_now() -> None:
    text = " ".join(_parser_of(("simulate",)).format_help().split())
    assert "no later than now" in text
    assert {"--start", "--end"} <= set(re.findall(r"--[a-z]+", text))
