"""What the report files hold: every section and chart, nothing fetched, nothing about a pupil."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from streams.cli.main import main
from streams.report import periods
from streams.report.month_html import CHARTS
from streams.report.register_out import COLUMNS
from tests.streams.report.conftest import Simulated


@pytest.fixture(scope="module")
def outputs(simulated: Simulated, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("reports")
    history = ["--history", str(simulated.directory), "--out", str(out), "--quiet"]
    assert 0 == main(["report", "month", "2026-11", *history])
    assert 0 == main(["report", "register", "2026Q4", *history])
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(out.iterdir())}


def test_the_commands_write_the_pack_and_the_register(outputs: dict[str, str]) -> None:
    assert ["board-pack-2026-11.html", "register-2026Q4.csv", "register-2026Q4.html"] == sorted(outputs)


def test_no_pupil_reference_that_went_in_appears_in_any_output(simulated: Simulated, outputs: dict[str, str]) -> None:
    refs = simulated.pupil_refs
    assert len(refs) > 100  # the simulated traffic names pupils: the test has something to find
    leaked = {name: sorted(ref for ref in refs if ref in text) for name, text in outputs.items()}
    assert {name: [] for name in outputs} == leaked


def test_the_register_shows_no_field_list(simulated: Simulated, outputs: dict[str, str]) -> None:
    # Field codes that are not also dataset, gateway or purpose codes would only appear from a field list.
    c = simulated.engine.catalogue
    fields = {f for e in simulated.events for f in e.fields} - set(c.datasets) - set(c.gateways) - set(c.purposes)
    for name in ("register-2026Q4.csv", "register-2026Q4.html"):
        cells = set(re.split(r"[,;<>\s()]+", outputs[name]))
        assert set() == fields & cells, name


def test_the_pack_is_self_contained_and_has_every_chart_as_inline_svg(outputs: dict[str, str]) -> None:
    html = outputs["board-pack-2026-11.html"]
    assert [] == re.findall(r"<(?:script|link|img|iframe|object)\b", html)
    assert [] == re.findall(r"(?:src|href)\s*=\s*\"(?!#)[^\"]*", html)  # only references inside the page
    assert [] == re.findall(r"url\((?!#)|@import", html)
    for name in CHARTS:
        match = re.search(rf'<figure class="chart" data-chart="{name}"><svg [^>]*role="img"', html)
        assert match is not None, name
    assert "@media print" in html


def test_the_register_csv_has_the_published_columns_and_one_row_per_html_row(outputs: dict[str, str]) -> None:
    rows = list(csv.DictReader(io.StringIO(outputs["register-2026Q4.csv"])))
    assert list(COLUMNS) == list(rows[0])
    assert len(rows) == outputs["register-2026Q4.html"].count("<tr>") - 1  # less the header row
    home_office = [r for r in rows if r["recipient_type"] == "home_office"]
    assert ["DPA2018-Sch2-p4"] == sorted({r["legal_gateway"] for r in home_office})


@pytest.mark.parametrize(
    ("command", "period", "message"),
    [
        ("month", "2026-13", "bad month '2026-13': give YYYY-MM"),
        ("month", "Nov 2026", "bad month 'Nov 2026': give YYYY-MM"),
        ("register", "2026Q5", "bad quarter '2026Q5': give YYYYQn"),
    ],
)
def test_a_bad_period_is_a_clear_error(
    command: str, period: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert 2 == main(["report", command, period, "--history", str(tmp_path)])
    assert message in capsys.readouterr().err


def test_no_history_anywhere_says_where_to_find_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GATEWATCH_KAFKA_BOOTSTRAP", raising=False)
    assert 2 == main(["report", "month", "2026-11", "--data-dir", str(tmp_path), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert "no history to read" in err
    assert "gatewatch up --simulate" in err


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-11", "2026-11-01T00:00:00+00:00", "2026-12-01T00:00:00+00:00"),
        ("2026-07", "2026-07-01T00:00:00+01:00", "2026-08-01T00:00:00+01:00"),  # British Summer Time
        ("2026-12", "2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    ],
)
def test_months_run_in_uk_time(text: str, start: str, end: str) -> None:
    p = periods.month(text)
    assert (start, end) == (p.start.isoformat(), p.end.isoformat())


def test_quarters_and_trend_months_cross_year_ends() -> None:
    q = periods.quarter("2026q1")
    assert ("2026Q1", "2026-01-01", "2026-04-01") == (q.label, f"{q.start:%Y-%m-%d}", f"{q.end:%Y-%m-%d}")
    trend = periods.months_back(periods.month("2026-02"), 4)
    assert ["2025-11", "2025-12", "2026-01", "2026-02"] == [m.label for m in trend]


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        (b'{"a": 1}', b'{"a": 1}'),  # kept byte for byte
        (b'{\n  "a": 1\n}', b'{"a":1}'),  # one record, one line
        (b"{not\njson", None),  # cannot be one JSONL line: counted as skipped
    ],
)
def test_an_export_writes_each_record_on_one_line(raw: bytes, line: bytes | None) -> None:
    from streams.report.export import _line

    assert line == _line(raw)
