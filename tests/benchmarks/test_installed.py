"""`gatewatch bench` works from an installed wheel: the suite, the anchors and the samples are in the package."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent.parent

# Runs with only the installed copy first on sys.path, from a directory outside the checkout.
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import streams, streams.bench.suite, streams.bench.bare_faust, streams.bench.scaleout, streams.bench.offline
from streams.cli.main import build_parser
from streams.offline.simulate import SAMPLE_REGISTER, load_agreements
args = build_parser().parse_args(["bench", "--scale-out", "1,2,4"])
print(json.dumps({
    "streams": streams.__file__,
    "suite": streams.bench.suite.__file__,
    "register": str(SAMPLE_REGISTER),
    "agreements": len(load_agreements()),
    "scale_out": args.scale_out,
}))
"""


def test_the_benchmark_suite_imports_from_an_installed_wheel(tmp_path: Path) -> None:
    wheels, target, source = tmp_path / "wheels", tmp_path / "site", tmp_path / "source"
    # A copy of the checkout, so the build's own directories stay out of it.
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "*cache*", "build", "*.egg-info", ".gatewatch")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        check=True,
        cwd=tmp_path,
    )
    wheel = next(wheels.glob("gatewatch-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        cwd=tmp_path,
    )

    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(target)], check=True, cwd=tmp_path, capture_output=True, text=True
    )

    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert str(target) == str(Path(found["streams"]).parent.parent)
    assert str(target) == str(Path(found["suite"]).parent.parent.parent)
    assert str(target) == str(Path(found["register"]).parent.parent.parent)
    assert 0 < found["agreements"]
    assert [1, 2, 4] == found["scale_out"]
    assert not (target / "benchmarks").exists()  # no generic top-level package in site-packages
