"""`gatewatch up --simulate` end to end, as a user runs it: its own embedded broker, worker and summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rules import load_engine

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
            "streams.cli",
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
