"""`gatewatch bench`: the benchmark suite, shipped inside the package so an installed Gatewatch runs it.

The suite lives in `streams.bench` rather than in a top-level `benchmarks` package: a wheel that put
a package of that generic name into site-packages could shadow, or be shadowed by, another
distribution's. Only the CEL comparison of the engine benchmark needs something beyond the runtime
dependencies (`pip install 'gatewatch[bench]'`); without it the engine's own figures are still measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["run_bench", "run_scale_out"]


def run_bench(*, quick: bool, out: Path | None, only: list[str] | None) -> dict[str, Any]:
    """Run the suite (streams/bench/suite.py): print the table, write JSON to `out`, return the figures."""
    from streams.bench.suite import run_suite

    return run_suite(quick=quick, out=out, only=only)


def run_scale_out(ks: list[int], *, events: int | None, batch_size: int, out: Path | None) -> dict[str, Any]:
    """K workers in one group over one backlog, for each K (streams/bench/scaleout.py)."""
    from streams.bench.scaleout import run_scale_out as run

    return run(ks, events=events, batch_size=batch_size, out=out)
