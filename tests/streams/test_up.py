"""`gatewatch up --simulate` end to end, as a user runs it: its own embedded broker, worker and summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rules import load_engine
from streams.transport.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

# Categories whose rules need windowed state (issue 3); a stateless run cannot show them.
WINDOWED: set[str] = set()  # every category, windowed ones included, must appear


def test_up_runs_end_to_end_and_every_implemented_category_appears_in_the_summary(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWATCH_")}
    env["GATEWATCH_WEB_PORT"] = "0"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli.main",
            "up",
            "--simulate",
            "120",
            "--duration",
            "2",
            "--json",
            "--data-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["events_published"] == 120
    assert summary["decisions_written"] == 120
    assert summary["distinct_events_decided"] == 120
    assert summary["dead_letters"] == summary["malformed_published"]
    implemented = {r.category.value for r in load_engine().rules if r.enabled}
    assert implemented - WINDOWED <= set(summary["alerts_by_category"])
    assert set(summary["alerts_by_severity"]) <= {"critical", "high", "medium", "low"}
    # The run's history outlives its in-memory broker: a board pack can be made from it afterwards.
    history = tmp_path / "run" / "history"
    decisions = [json.loads(line) for line in (history / "decisions.jsonl").read_text().splitlines()]
    assert 120 == len(decisions)
    month = decisions[0]["occurred_at"][:7]
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli.main",
            "report",
            "month",
            month,
            "--data-dir",
            str(tmp_path / "run"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert 0 == report.returncode, report.stderr[-3000:]
    assert f"board-pack-{month}.html" == Path(report.stdout.strip()).name
    assert "Records by legal gateway" in (tmp_path / f"board-pack-{month}.html").read_text(encoding="utf-8")


def test_the_summary_names_a_batch_it_cannot_decode_and_reads_on(broker: EmbeddedBroker, tmp_path: Path) -> None:
    from streams.cli.runner import RunSummary, collect_summary
    from streams.transport.kafka import ensure_topics
    from tests import rawbatch
    from tests.conftest import isolated_settings

    settings = isolated_settings(broker, tmp_path)
    ensure_topics(settings)
    topic = settings.topics.deadletter
    rawbatch.produce_raw(broker.bootstrap, topic, 0, rawbatch.batch(0, [json.dumps({"reason": "not_json"}).encode()]))
    bad = rawbatch.produce_raw(broker.bootstrap, topic, 2, rawbatch.batch(0, [b"{}"], bad_crc=True))
    summary = collect_summary(settings, expected=1, timeout=20, summary=RunSummary())
    assert (1, {(settings.topics.deadletter, 2): (bad, "corrupt_batch")}) == (summary.dead_letters, summary.unreadable)
    line = f"  unreadable batch      {settings.topics.deadletter} partition 2 at offset {bad} (corrupt_batch)"
    assert line in summary.render()
