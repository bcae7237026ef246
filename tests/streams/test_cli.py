"""The offline commands: `gatewatch check`, `gatewatch rules validate`, register file loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from streams.cli.main import main
from streams.exceptions import ConfigError
from streams.offline.register_file import load_agreements_file, sample_register_path
from tests.factories import BASE_AGREEMENT, event_dict


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture
def agreements_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "agreements.yaml"
    path.write_text(yaml.safe_dump([BASE_AGREEMENT]), encoding="utf-8")
    return path


def test_check_prints_one_decision_per_line_in_order_and_goes_on_after_invalid_lines(
    tmp_path: Path, agreements_yaml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_lines(
        tmp_path / "events.jsonl",
        [
            json.dumps(event_dict(event_id="a")).encode(),
            b"{broken",
            json.dumps(event_dict(event_id="c", recod_count=1)).encode(),
            json.dumps(event_dict(event_id="d", fields=["pmr", "country_of_birth"])).encode(),
        ],
    )
    code = main(["check", str(events), "--agreements", str(agreements_yaml)])
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert [(d.get("event_id"), d["verdict"]) for d in out] == [
        ("a", "compliant"),
        (None, "invalid"),
        ("c", "invalid"),
        ("d", "violation"),
    ]
    # An unknown field is named by its place and length, never by its name (the name is input too).
    unknown = [e for e in out[2]["errors"] if e["type"] == "extra_forbidden"]
    assert [("$", True)] == [(e["loc"], "did you mean 'record_count'?" in e["message"]) for e in unknown]
    assert "recod_count" not in json.dumps(out[2])
    violation = out[3]["violations"][0]
    assert {"rule_id", "category", "severity", "explanation"} <= set(violation)
    assert "prohibited_field" in {v["category"] for v in out[3]["violations"]}


def test_check_accepts_a_json_register(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    register = tmp_path / "agreements.json"
    register.write_text(json.dumps([BASE_AGREEMENT]), encoding="utf-8")
    events = write_lines(tmp_path / "events.jsonl", [json.dumps(event_dict()).encode()])
    assert main(["check", str(events), "--agreements", str(register)]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "compliant"


def test_register_file_errors_name_every_bad_entry(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            [
                {**BASE_AGREEMENT, "status": "maybe"},
                {**BASE_AGREEMENT},  # copies: the same object twice would be dumped as a YAML alias
                {**BASE_AGREEMENT, "monthly_record_cap": -5},
                {**BASE_AGREEMENT},
            ]
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_agreements_file(path)
    message = str(info.value)
    starts = [n for n, line in enumerate(path.read_text().splitlines(), start=1) if line.startswith("- ")]
    assert f"{path}:{starts[0]}: agreement [0]: status" in message
    assert f"{path}:{starts[2]}: agreement [2]: monthly_record_cap" in message
    assert f"{path}:{starts[3]}: agreement [3]: duplicate agreement_id" in message


def test_register_errors_in_a_json_list_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([BASE_AGREEMENT, {**BASE_AGREEMENT, "agreement_id": "X", "status": "maybe"}], indent=1))
    second = 1 + path.read_text().splitlines().index(" {", 2)
    with pytest.raises(ConfigError) as info:
        load_agreements_file(path)
    assert f"{path}:{second}: agreement [1]: status: " in str(info.value)


def test_a_register_with_a_byte_order_mark_or_as_json_lines_loads(tmp_path: Path) -> None:
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps([BASE_AGREEMENT]).encode())
    lines = tmp_path / "register.jsonl"
    lines.write_text(json.dumps(BASE_AGREEMENT) + "\n" + json.dumps({**BASE_AGREEMENT, "agreement_id": "B"}) + "\n")
    assert ([BASE_AGREEMENT["agreement_id"]], [BASE_AGREEMENT["agreement_id"], "B"]) == (
        [a.agreement_id for a in load_agreements_file(bom)],
        [a.agreement_id for a in load_agreements_file(lines)],
    )


@pytest.mark.parametrize("which", ["events", "register"])
def test_a_missing_file_is_a_usage_error_with_no_traceback(
    tmp_path: Path, agreements_yaml: Path, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    events = write_lines(tmp_path / "events.jsonl", [json.dumps(event_dict()).encode()])
    missing = tmp_path / "missing.jsonl"
    args = [str(missing), "--agreements", str(agreements_yaml)]
    if which == "register":
        args = [str(events), "--agreements", str(missing)]
    assert 2 == main(["check", *args])
    captured = capsys.readouterr()
    assert ("", f"gatewatch: {missing}: cannot read") == (captured.out, captured.err[: len(str(missing)) + 24])
    assert "No such file or directory" in captured.err


@pytest.mark.parametrize(
    ("text", "advice"),
    [
        (json.dumps([event_dict(), event_dict(event_id="b")], indent=2), "jq -c '.[]'"),
        (json.dumps([event_dict()]), "jq -c '.[]'"),
        (json.dumps(event_dict(), indent=2), "jq -c ."),
    ],
)
def test_check_given_a_json_document_says_how_to_make_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, advice: str
) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(b"\xef\xbb\xbf\n" + text.encode())
    assert 2 == main(["check", str(path)])
    captured = capsys.readouterr()
    assert "" == captured.out
    assert "not JSON lines" in captured.err
    assert f"{advice} {path}" in captured.err


def test_check_judges_each_event_of_a_batch_line_as_the_worker_does(
    tmp_path: Path, agreements_yaml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = event_dict(event_id="b2")
    del bad["channel"]
    batch = {"schema_version": "1", "events": [event_dict(event_id="b0"), event_dict(event_id="b1"), bad]}
    mixed = {
        "schema_version": "1",
        "events": [event_dict(event_id="m0"), event_dict(event_id="m1", recipient={"org_id": "other"})],
    }
    events = write_lines(
        tmp_path / "events.jsonl",
        [json.dumps(event_dict(event_id="a")).encode(), json.dumps(batch).encode(), json.dumps(mixed).encode()],
    )
    assert 1 == main(["check", str(events), "--agreements", str(agreements_yaml)])
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    seen = [(d.get("event_id"), d["verdict"], d["source"]["offset"], d["source"].get("index")) for d in out]
    assert [
        ("a", "compliant", 0, None),
        ("b0", "compliant", 1, 0),
        ("b1", "compliant", 1, 1),
        ("b2", "invalid", 1, 2),
        (None, "invalid", 2, None),
    ] == seen
    assert "mixed_recipients" in {e["type"] for e in out[4]["errors"]}


def test_check_without_a_register_notes_that_cited_agreements_were_not_looked_up(
    tmp_path: Path, agreements_yaml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_lines(tmp_path / "events.jsonl", [json.dumps(event_dict()).encode()] * 2)
    main(["check", str(events)])
    without = capsys.readouterr().err
    main(["check", str(events), "--agreements", str(agreements_yaml)])
    with_register = capsys.readouterr().err
    assert ("2 event(s) cite an agreement" in without, "") == (True, with_register)
    assert "--agreements FILE" in without


def test_check_piped_into_head_stops_quietly(tmp_path: Path) -> None:
    import subprocess
    import sys

    events = write_lines(
        tmp_path / "events.jsonl", [json.dumps(event_dict(event_id=f"e{i}")).encode() for i in range(3000)]
    )
    gatewatch = Path(sys.executable).parent / "gatewatch"
    proc = subprocess.Popen([str(gatewatch), "check", str(events)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read().decode()
    assert (141, "") == (
        proc.wait(timeout=60),
        err.replace(err[err.find("gatewatch: note") :], "") if "note" in err else err,
    )


def test_sample_register_loads() -> None:
    agreements = load_agreements_file(sample_register_path())
    assert len(agreements) >= 8


def test_rules_validate_passes_on_the_bundled_pack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate"]) == 0
    assert "no problems" in capsys.readouterr().out


def test_rules_validate_lists_problems_as_file_line_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = Path(__file__).parents[1] / "files" / "packs"
    candidates = sorted(p for p in broken.iterdir() if (p.is_dir() and "error" in p.name) or "broken" in p.name)
    assert candidates, "expected a broken pack fixture under tests/files/packs/"
    code = main(["rules", "validate", str(candidates[0])])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines
    assert all(":" in line and line.split(":")[1].isdigit() for line in lines)


def test_rules_readme_generated_sections_are_current() -> None:
    from streams.cli.readme import RULES_README, RULES_SECTIONS, render_readme

    text = RULES_README.read_text(encoding="utf-8")
    assert render_readme(text, RULES_SECTIONS) == text, "run `python -m streams.cli.readme` to regenerate"


def test_rules_readme_lists_every_rule_of_the_pack_windowed_and_sweep_included() -> None:
    from rules import load_engine
    from streams.cli.readme import pack_rules_table

    table = pack_rules_table()
    assert [r.id for r in load_engine().rules] == [r.id for r in load_engine().rules if f"| {r.id} |" in table]


def test_readme_generated_sections_are_current() -> None:
    from streams.cli.readme import README, render_readme

    text = README.read_text(encoding="utf-8")
    assert render_readme(text) == text, "run `python -m streams.cli.readme` to regenerate the README sections"


DIFF_PACKS = Path(__file__).parents[1] / "files" / "diff"


def test_rules_diff_prints_one_line_per_change_and_a_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["rules", "diff", str(DIFF_PACKS / "base"), str(DIFF_PACKS / "removed")])
    assert ["major  T-NA-01  rule removed", "version 1.0.0 -> 2.0.0 is a major bump; the changes need major: ok"] == (
        capsys.readouterr().out.splitlines()
    )
    assert 0 == code


def test_rules_diff_exits_1_when_the_version_bump_is_too_small(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["rules", "diff", str(DIFF_PACKS / "base"), str(DIFF_PACKS / "added_patch_bump"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert 1 == code
    assert "version 1.0.0 -> 1.0.1 is a patch bump but the changes need minor" == doc["verdict"]
    assert [{"class": "minor", "rule_id": "T-ONW-01", "change": "rule added"}] == doc["changes"]


def test_rules_diff_of_a_broken_pack_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    broken = Path(__file__).parents[1] / "files" / "packs" / "broken"
    assert 2 == main(["rules", "diff", str(DIFF_PACKS / "base"), str(broken)])
    assert "problem" in capsys.readouterr().err


def _failing_pack(tmp_path: Path) -> Path:
    """The diff fixture's base pack with rule tests: T-PF-01 passes both ways, T-NA-01 has a failing case."""
    import shutil

    pack = tmp_path / "pack"
    shutil.copytree(DIFF_PACKS / "base", pack)
    (pack / "tests").mkdir()
    base_event = event_dict()
    (pack / "tests" / "_shared.yaml").write_text(
        yaml.safe_dump({"agreements": [BASE_AGREEMENT], "base_event": base_event}), encoding="utf-8"
    )
    cases = [
        {"name": "prohibited field", "event": {"fields": ["pmr", "nationality"]}, "fires": ["T-PF-01"]},
        {"name": "compliant", "does_not_fire": ["T-PF-01", "T-NA-01"]},
        {"name": "wrongly expects no agreement", "fires": ["T-NA-01"]},
    ]
    (pack / "tests" / "cases.yaml").write_text(yaml.safe_dump({"cases": cases}, sort_keys=False), encoding="utf-8")
    return pack


def test_rules_test_reports_per_rule_then_failures_then_totals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["rules", "test", str(_failing_pack(tmp_path))])
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[1 : lines.index("")]}
    assert 1 == code
    assert ["1/1", "passed", "1/1", "passed", "ok"] == rows["T-PF-01"]
    assert ["0/1", "passed", "1/1", "passed", "FAIL"] == rows["T-NA-01"]
    assert ["-", "-", "FAIL"] == rows["T-BULK-01"]  # enabled, but no case at all
    assert ["-", "-", "ok", "(disabled)"] == rows["T-UA-01"]
    failures = lines[lines.index("failures:") + 1 : -1]
    assert any("wrongly expects no agreement" in f and "expected to fire but did not: T-NA-01" in f for f in failures)
    assert any("coverage T-BULK-01" in f for f in failures)
    assert f"2 passed, {len(failures)} failed" == lines[-1]


def test_an_unusable_setting_is_named_by_its_variable_without_its_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("")
    monkeypatch.setenv("GATEWATCH_PARTITIONS", "abc-sentinel")
    monkeypatch.setenv("GATEWATCH_LOG_LEVEL", "loud")

    rc = main(["check", str(events), "--agreements", str(sample_register_path())])

    err = capsys.readouterr().err
    assert 2 == rc
    assert "GATEWATCH_PARTITIONS" in err
    assert "GATEWATCH_LOG_LEVEL" in err
    assert "abc-sentinel" not in err
    assert "Traceback" not in err
