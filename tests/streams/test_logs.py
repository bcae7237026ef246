"""Log lines: one JSON object per line, UTC timestamps, pupil references and secrets never printed."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator

import pytest
import structlog

from streams.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_a_log_line_is_one_json_object_with_level_and_utc_timestamp(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", json=True)
    before = dt.datetime.now(dt.UTC)
    structlog.get_logger("t").warning("violation", rule_id="NPD-NA-02", count=3, when=dt.date(2026, 3, 1))
    after = dt.datetime.now(dt.UTC)
    [line] = lines(capsys)
    assert line["event"] == "violation"
    assert line["level"] == "warning"
    assert line["rule_id"] == "NPD-NA-02"
    assert line["count"] == 3
    assert line["when"] == "2026-03-01"  # a value JSON has no form for is written as text
    stamp = line["timestamp"]
    assert stamp.endswith("Z")
    assert len(stamp) == len("2026-11-23T01:02:03.456789Z")
    at = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before - dt.timedelta(milliseconds=1) <= at <= after + dt.timedelta(milliseconds=1)


def test_timestamps_move_on_within_and_across_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", json=True)
    log = structlog.get_logger("t")
    for _ in range(3):
        log.info("tick")
        time.sleep(0.6)
    stamps = [line["timestamp"] for line in lines(capsys)]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 3
    assert len({s[:19] for s in stamps}) >= 2  # 1.2 s apart: the cached second was renewed


def test_pupil_references_and_secrets_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", json=True)
    structlog.get_logger("t").info("lookup", pupil_refs=["A123456789012"], hmac_key="k", kept="yes")
    [line] = lines(capsys)
    assert line["pupil_refs"] == "[redacted]"
    assert line["hmac_key"] == "[redacted]"
    assert line["kept"] == "yes"
    assert "A123456789012" not in json.dumps(line)


def test_below_the_level_nothing_is_written(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("error", json=True)
    structlog.get_logger("t").warning("quiet")
    assert capsys.readouterr().err == ""
