"""`gatewatch bench`: runs the benchmark suite in `benchmarks/` (a source checkout's top-level package)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

__all__ = ["run_bench"]


def run_bench(*, quick: bool, out: Path | None, only: list[str] | None) -> dict[str, Any]:
    """Run `benchmarks.suite.run_suite`; the suite lives beside the packages, not inside the wheel."""
    root = Path(__file__).resolve().parent.parent
    if (root / "benchmarks" / "suite.py").is_file() and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        from benchmarks.suite import run_suite
    except ImportError as exc:
        from streams.exceptions import GatewatchStreamsError

        raise GatewatchStreamsError(
            f"the benchmark suite is not importable ({exc}); run `gatewatch bench` from a source checkout"
        ) from exc
    return run_suite(quick=quick, out=out, only=only)
