"""docs/examples/public-record: the CLI's findings on the public-record cases are the README's tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from streams.cli.main import main

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "public-record"

#: (verdict, categories, rules) per event or agreement id.
Expected = dict[str, tuple[str, list[str], list[str]]]


def _table(name: str) -> Expected:
    """A table of the example's README, between its `expected:NAME` markers."""
    text = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    body = re.search(rf"<!-- BEGIN expected:{name} -->\n(.*?)<!-- END expected:{name} -->", text, re.S)
    assert body is not None, f"README.md has no expected:{name} table"
    rows: Expected = {}
    for line in body.group(1).splitlines()[2:]:  # after the header and its rule
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        ident, _case, verdict, categories, rules = cells
        rows[ident] = (verdict, _codes(categories), _codes(rules))
    return rows


def _codes(cell: str) -> list[str]:
    return [c.strip() for c in cell.split(",") if c.strip()]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, object]], str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_check_finds_what_the_example_readme_says(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alerts = tmp_path / "alerts.jsonl"
    code, decisions, err = _run(
        capsys,
        "check",
        str(EXAMPLE / "events.jsonl"),
        "--agreements",
        str(EXAMPLE / "agreements.json"),
        "--alerts",
        str(alerts),
    )
    seen: Expected = {}
    for d in decisions:
        violations = d["violations"]
        assert isinstance(violations, list)
        seen[str(d["event_id"])] = (
            str(d["verdict"]),
            sorted({v["category"] for v in violations}),
            [v["rule_id"] for v in violations],
        )
    assert (1, "", _table("check")) == (code, err, seen)
    alert_rules = sorted(json.loads(line)["rule_id"] for line in alerts.read_text().splitlines())
    assert sorted(r for _, _, rules in seen.values() for r in rules) == alert_rules


def test_agreements_check_finds_what_the_example_readme_says(capsys: pytest.CaptureFixture[str]) -> None:
    code, judged, _ = _run(capsys, "agreements", "check", str(EXAMPLE / "agreements.json"), "--at", "2016-03-01")
    seen: Expected = {}
    for j in judged:
        violations = j["violations"]
        assert isinstance(violations, list)
        seen[str(j["agreement_id"])] = (
            str(j["verdict"]),
            sorted({v["category"] for v in violations}),
            [v["rule_id"] for v in violations],
        )
    lines = (EXAMPLE / "agreements.json").read_text(encoding="utf-8").splitlines()
    starts = [n for n, text in enumerate(lines, start=1) if text.lstrip().startswith("{")]
    assert (1, _table("approvals"), starts) == (code, seen, [j["line"] for j in judged])


def test_check_without_the_register_says_the_agreements_were_not_looked_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, decisions, err = _run(capsys, "check", str(EXAMPLE / "events.jsonl"))
    cited = sum(1 for d in decisions if d.get("agreement_id"))
    assert (1, True) == (code, cited > 0)
    assert f"note: {cited} event(s) cite an agreement but no --agreements register was given" in err
