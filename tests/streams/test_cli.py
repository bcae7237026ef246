"""The offline commands: `gatewatch check`, `gatewatch rules validate`, register file loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from streams.cli import main
from streams.exceptions import ConfigError
from streams.register_file import load_agreements_file, sample_register_path
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
    assert any(e["loc"] == "recod_count" for e in out[2]["errors"])
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
                BASE_AGREEMENT,
                {**BASE_AGREEMENT, "monthly_record_cap": -5},
                BASE_AGREEMENT,
            ]
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_agreements_file(path)
    message = str(info.value)
    assert "agreement [0]: status" in message
    assert "agreement [2]: monthly_record_cap" in message
    assert "agreement [3]: duplicate agreement_id" in message


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


def test_readme_generated_sections_are_current() -> None:
    from streams.readme import README, render_readme

    text = README.read_text(encoding="utf-8")
    assert render_readme(text) == text, "run `python -m streams.readme` to regenerate the README sections"
