"""The benchmark suite keeps working: a quick run yields every figure as a number (speed is never asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from streams.cli.main import main

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

KEYS = (
    "engine_us_per_event_p50",
    "engine_speedup_vs_cel",
    "offline_us_per_event_p50",
    "live_vs_bare_transform",
    "batched_vs_bare_transform",
    "live_vs_bare_faust",
    "replay_vs_raw_consume",
    "batched_events_per_s",
    "batched_publish_events_per_s",
    "latency_p99_ms",
    "rss_growth_last_half_pct",
)


def test_quick_bench_writes_every_figure_as_a_number(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"

    code = main(["bench", "--quick", "--out", str(out)])

    doc = json.loads(out.read_text())
    assert {} == doc["errors"]
    assert 0 == code
    for key in KEYS:
        assert isinstance(doc[key], int | float), key
        assert math.isfinite(doc[key]), key
    assert {"platform", "cpu_count", "python"} <= set(doc["machine"])
    assert doc["sizes"]["live_events"] > 0
    n = doc["sizes"]["live_events"]
    for name in ("live_rounds", "batched_rounds"):  # each round: the anchors, then Gatewatch, same topic
        assert [n, n] == [r["gatewatch_decisions"] for r in doc[name]], name
