"""`gatewatch agreements check`: every entry of a register file judged offline, one JSON line each."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from rules import DEFAULT_PACK_DIR
from streams.cli.main import main
from streams.offline.register_file import load_agreements_file, sample_register_path
from tests.factories import BASE_AGREEMENT

REFUSED_IN_SAMPLE = {
    "DR230611.02": {"NPD-APR-02", "NPD-APR-03", "NPD-APR-05", "NPD-APR-08", "NPD-APR-09"},
    "DR230902.01": {"NPD-APR-04", "NPD-APR-10"},
    "DR231115.03": {"NPD-APR-06", "NPD-APR-07"},
}


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    code = main(["agreements", "check", *args])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


def _clean(agreement_id: str, **overrides: Any) -> dict[str, Any]:
    return {**BASE_AGREEMENT, "agreement_id": agreement_id, **overrides}


def test_the_sample_register_is_judged_in_input_order_with_the_refused_approvals_flagged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, lines = _check(capsys, str(sample_register_path()), "--at", "2026-01-10")
    register = load_agreements_file(sample_register_path())
    assert [a.agreement_id for a in register] == [line["agreement_id"] for line in lines]
    assert list(range(len(register))) == [line["entry"] for line in lines]
    fired = {line["agreement_id"]: {v["rule_id"] for v in line["violations"]} for line in lines}
    # NPD-APR-01 for the newspaper depends on the gateways catalogue, so it is left out of the comparison.
    assert REFUSED_IN_SAMPLE == {k: fired[k] - {"NPD-APR-01"} for k in REFUSED_IN_SAMPLE}
    assert "compliant" == next(line["verdict"] for line in lines if line["agreement_id"] == "DR190304.01")
    assert 1 == code


def test_a_register_of_clean_agreements_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "register.json"
    path.write_text(json.dumps([_clean("AG-A"), _clean("AG-B", purposes=["statistics"])]), encoding="utf-8")
    code, lines = _check(capsys, str(path), "--at", "2026-01-10")
    expected = [
        {"entry": 0, "line": 1, "agreement_id": "AG-A", "verdict": "compliant", "violations": []},
        {"entry": 1, "line": 1, "agreement_id": "AG-B", "verdict": "compliant", "violations": []},
    ]
    assert (0, expected) == (code, lines)


def test_each_entry_names_the_line_it_starts_on_in_a_json_list_with_a_byte_order_mark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "register.json"
    text = json.dumps([_clean("AG-A"), _clean("AG-B", legal_gateways=[])], indent=2)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # as Windows editors save it
    code, lines = _check(capsys, str(path), "--at", "2026-01-10")
    second = 1 + text.splitlines().index("  {", 2)
    assert (1, [2, second]) == (code, [line["line"] for line in lines])
    assert ["NPD-APR-11"] == [v["rule_id"] for v in lines[1]["violations"]]


def test_an_invalid_entry_is_reported_without_its_values_and_the_others_are_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "register.jsonl"
    rows = [
        json.dumps(_clean("AG-BAD", fields_allowed=["pmr", "nationality"])),
        json.dumps(_clean("AG-INVALID", per_event_record_cap="PUPIL-SECRET-0042", status="pending-SECRET")),
        "{not json SECRET",
        json.dumps(_clean("AG-OK")),
        json.dumps(_clean("AG-OK")),
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, lines = _check(capsys, str(path), "--at", "2026-01-10")
    assert ["violation", "invalid", "invalid", "compliant", "invalid"] == [line["verdict"] for line in lines]
    assert ["AG-BAD", "AG-INVALID", None, "AG-OK", "AG-OK"] == [line["agreement_id"] for line in lines]
    assert [("NPD-APR-04", "prohibited_field", "critical")] == [
        (v["rule_id"], v["category"], v["severity"]) for v in lines[0]["violations"]
    ]
    assert {"per_event_record_cap", "status"} == {e["loc"] for e in lines[1]["errors"]}
    assert ["json_invalid"] == [e["type"] for e in lines[2]["errors"]]
    assert ["duplicate"] == [e["type"] for e in lines[4]["errors"]]
    assert "SECRET" not in json.dumps(lines)
    assert all("errors" not in line for line in (lines[0], lines[3]))
    assert 1 == code


def test_time_dependent_findings_are_judged_at_the_given_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "register.yaml"
    path.write_text(yaml.safe_dump([_clean("AG-AUDIT", last_audit_at="2025-06-01")]), encoding="utf-8")
    before = _check(capsys, str(path), "--at", "2026-06-01")
    after = _check(capsys, str(path), "--at", "2026-06-02")
    assert (0, []) == (before[0], before[1][0]["violations"])
    assert (1, ["NPD-GOV-04"]) == (after[0], [v["rule_id"] for v in after[1][0]["violations"]])


@pytest.mark.parametrize(
    ("args", "content"),
    [
        (["--at", "2026-13-01"], "[]"),
        (["--at", "20260101"], "[]"),
        ([], '{"agreement_id": "not a list"}'),
        ([], "key: [unclosed"),
    ],
)
def test_usage_errors_exit_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], content: str
) -> None:
    path = tmp_path / "register.yaml"
    path.write_text(content, encoding="utf-8")
    try:
        code = main(["agreements", "check", str(path), *args])
    except SystemExit as exc:  # argparse refuses a bad --at itself
        code = int(exc.code or 0)
    assert (2, "") == (code, capsys.readouterr().out)


def test_a_missing_file_exits_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert 2 == main(["agreements", "check", str(tmp_path / "absent.yaml")])
    assert "cannot read agreements" in capsys.readouterr().err


def _sweep_cases() -> list[tuple[str, str, list[dict[str, Any]], list[str]]]:
    """The approval rule tests' sweep cases with `expect`: (name, date, agreements, rule ids)."""
    data = yaml.safe_load((DEFAULT_PACK_DIR / "tests" / "approvals.yaml").read_text(encoding="utf-8"))
    register = {a["agreement_id"]: a for a in data["agreements"]}
    cases = []
    for case in data["cases"]:
        if "expect" not in case:
            continue
        agreements = [{**register[k], **(patch or {})} for k, patch in case["sweep"].items()]
        day = dt.datetime.fromisoformat(case["now"]).date().isoformat()
        cases.append((case["name"], day, agreements, sorted(case["expect"])))
    return cases


@pytest.mark.parametrize(("name", "day", "agreements", "expect"), _sweep_cases(), ids=lambda v: str(v)[:40])
def test_the_command_judges_the_rule_tests_as_the_rule_tests_expect(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    day: str,
    agreements: list[dict[str, Any]],
    expect: list[str],
) -> None:
    path = tmp_path / "case.json"
    path.write_text(json.dumps(agreements), encoding="utf-8")
    code, lines = _check(capsys, str(path), "--at", day)
    fired = sorted({v["rule_id"] for line in lines for v in line["violations"]})
    assert (expect, 1 if expect else 0) == (fired, code), name


def test_an_entry_that_gives_a_key_twice_is_invalid_and_the_others_are_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "register.json"
    twice = json.dumps(_clean("AG-TWICE"), indent=2).replace(
        '"legal_gateways": [', '"legal_gateways": ["DPA2018-Sch2-p2"],\n  "legal_gateways": [', 1
    )
    path.write_text(f"[{json.dumps(_clean('AG-A'))},\n{twice}]", encoding="utf-8")

    code, lines = _check(capsys, str(path), "--at", "2026-01-10")

    assert (1, ["compliant", "invalid"]) == (code, [line["verdict"] for line in lines])
    assert ("AG-TWICE", 2) == (lines[1]["agreement_id"], lines[1]["line"])
    assert [("duplicate_key", "key given twice: legal_gateways; keep one")] == [
        (e["type"], e["message"]) for e in lines[1]["errors"]
    ]


@pytest.mark.parametrize("suffix", [".yaml", ".jsonl"])
def test_loading_a_register_that_gives_a_key_twice_names_the_file_line_and_key(tmp_path: Path, suffix: str) -> None:
    from streams.exceptions import ConfigError

    path = tmp_path / f"register{suffix}"
    if suffix == ".yaml":
        clean = yaml.safe_dump([_clean("AG-A")], sort_keys=False)
        path.write_text(clean + "- agreement_id: AG-B\n  recipient:\n    org_id: x\n    org_id: y\n", encoding="utf-8")
        entry_line = 1 + clean.count("\n")
        expected = f"{path}:{entry_line}: agreement [1]: key given twice: org_id (line {entry_line + 3}); keep one"
    else:
        body = json.dumps(_clean("AG-B")).replace('"status": ', '"status": "suspended", "status": ', 1)
        path.write_text(json.dumps(_clean("AG-A")) + "\n" + body + "\n", encoding="utf-8")
        expected = f"{path}:2: agreement [1]: key given twice: status; keep one"

    with pytest.raises(ConfigError) as raised:
        load_agreements_file(path)

    assert [expected] == str(raised.value).splitlines()
