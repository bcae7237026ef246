"""Real Prometheus and Alertmanager processes (Debian packages) on free loopback ports, for tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streams.transport.broker import free_port


def tool(name: str) -> str:
    """The path of a Debian-packaged tool; skipped locally if missing, a failure in CI (which installs it)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not on PATH (apt-get install prometheus prometheus-alertmanager; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"{url} did not become ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)


@contextmanager
def running(args: list[str], url: str, workdir: Path) -> Iterator[str]:
    log_path = workdir / "service.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(url, proc, log_path)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextmanager
def alertmanager(config: Path, workdir: Path) -> Iterator[str]:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        tool("prometheus-alertmanager"),
        f"--config.file={config}",
        f"--storage.path={workdir}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with running(args, f"http://127.0.0.1:{port}", workdir) as url:
        yield url


@contextmanager
def prometheus(config: Path, workdir: Path) -> Iterator[str]:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        tool("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with running(args, f"http://127.0.0.1:{port}", workdir) as url:
        yield url
