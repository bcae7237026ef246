"""Pack loading: every problem at once as `file:line: message`; valid packs compile."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rules import DEFAULT_PACK_DIR, RulePackError, load_engine, pack_sha256, validate_pack
from rules._yaml import read_yaml
from schemas import Category, Severity

PACKS = Path(__file__).parent.parent / "files" / "packs"


def test_valid_pack_loads_with_rules_in_file_order() -> None:
    engine = load_engine(PACKS / "valid")
    assert ("test-valid", "0.1.0") == (engine.pack.name, engine.pack.version)
    assert [
        ("T-PF-01", Category.PROHIBITED_FIELD, Severity.CRITICAL, True, ("fields",)),
        ("T-NA-01", Category.NO_AGREEMENT, Severity.HIGH, True, ()),
    ] == [(r.id, r.category, r.severity, r.enabled, r.tags) for r in engine.rules]


def test_valid_pack_has_no_problems() -> None:
    assert [] == validate_pack(PACKS / "valid")


def test_default_pack_has_no_problems() -> None:
    assert [] == validate_pack()


def test_broken_pack_reports_every_problem_at_once() -> None:
    d = PACKS / "broken"
    rules = d / "a.rules.yaml"
    expected = [
        f"{d / 'pack.yaml'}:2: version '1.0' is not semantic versioning (MAJOR.MINOR.PATCH, quoted)",
        f"{rules}:3: rule B-01: unknown category 'prohibited_fields' (did you mean 'prohibited_field'?)",
        f"{rules}:10: rule B-01: missing required key 'legal_basis'",
        f"{rules}:10: rule B-01: duplicate rule id 'B-01' (first defined at {rules}:1); ids must be unique",
        f"{rules}:13: rule B-01: unknown severity 'urgent'; use one of critical, high, medium, low",
        f"{rules}:23: rule B-03: condition, column 49: expected ')', found end of condition",
        f"{rules}:34: rule B-04: condition, column 9: unknown fact 'agreement.citted'; did you mean "
        "agreement.cited, agreement.id, agreement.active? (see rules/README.md for the vocabulary)",
        f"{rules}:44: rule B-05: message, column 9: placeholder {{fields.outside}}: unknown fact 'fields.outside'; "
        "did you mean fields.tier2, fields.tier1, fields.outside_agreement? (see rules/README.md for the vocabulary)",
        f"{rules}:46: rule B-05: unknown key 'colour'; allowed keys: id, title, category, severity, legal_basis, "
        "description, scope, condition, window, due, message, runbook, enabled, tags",
        f"{rules}:53: rule B-06: condition, column 15: unknown purpose code 'journalsm' (compared with "
        "event.purpose); did you mean journalism?",
    ]
    assert expected == [str(p) for p in validate_pack(d)]


def test_load_engine_raises_with_all_problems() -> None:
    with pytest.raises(RulePackError) as info:
        load_engine(PACKS / "broken")
    assert 10 == len(info.value.problems)
    assert "rule pack has 10 problem(s)" in str(info.value)


def test_duplicate_yaml_keys_are_rejected_not_silently_overwritten() -> None:
    d = PACKS / "duplicate_keys" / "a.rules.yaml"
    assert [
        f"{d}:7: duplicate key 'condition' (first at line 6); remove one of them",
        f"{d}:10: duplicate key 'runbook' (first at line 9); remove one of them",
    ] == [str(p) for p in validate_pack(PACKS / "duplicate_keys")]


def test_yaml_merge_keys_may_be_overridden_without_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("a: &x {k: 1, j: 2}\nb:\n  <<: *x\n  k: 3\n", encoding="utf-8")
    data, problems = read_yaml(path)
    assert ([], {"k": 3, "j": 2}) == (problems, dict(data["b"]))


def test_problem_renders_as_file_line_message() -> None:
    problem = validate_pack(PACKS / "duplicate_keys")[0]
    assert f"{problem.file}:{problem.line}: {problem.message}" == str(problem)
    assert "error" == problem.severity


def test_keys_out_of_order_are_reported(tmp_path: Path) -> None:
    shutil.copy(PACKS / "valid" / "pack.yaml", tmp_path / "pack.yaml")
    (tmp_path / "x.rules.yaml").write_text(
        "- id: X-1\n  category: no_agreement\n  title: T\n  severity: high\n  legal_basis: B\n"
        "  condition: 'true'\n  message: m\n  runbook: r\n",
        encoding="utf-8",
    )
    assert [
        f"{tmp_path / 'x.rules.yaml'}:1: rule X-1: keys out of order; write them as id, title, category, "
        "severity, legal_basis, condition, message, runbook"
    ] == [str(p) for p in validate_pack(tmp_path)]


def test_missing_pack_header_is_a_problem(tmp_path: Path) -> None:
    shutil.copy(PACKS / "valid" / "main.rules.yaml", tmp_path / "main.rules.yaml")
    assert [
        f"{tmp_path / 'pack.yaml'}:1: pack header pack.yaml is missing; create it with name, version, "
        "engine_version and description"
    ] == [str(p) for p in validate_pack(tmp_path)]


def test_pack_hash_changes_when_a_rule_changes(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_PACK_DIR, tmp_path, dirs_exist_ok=True)
    before = pack_sha256(tmp_path)
    assert before == pack_sha256(DEFAULT_PACK_DIR)
    rules = tmp_path / "core.rules.yaml"
    rules.write_text(
        rules.read_text(encoding="utf-8").replace("severity: high", "severity: medium", 1), encoding="utf-8"
    )
    assert before != pack_sha256(tmp_path)


def test_engine_reports_pack_ref_with_hash() -> None:
    engine = load_engine()
    assert ("npd", pack_sha256(DEFAULT_PACK_DIR)) == (engine.pack.name, engine.pack.sha256)
