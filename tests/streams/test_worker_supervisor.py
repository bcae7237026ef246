"""`gatewatch up` outlives its worker: a worker that ends on its own is started again, and one that keeps
ending is given up on with a reason (the embedded broker keeps everything in memory, so `up` must not end)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from streams.cli.runner import WorkerSupervisor


class ExitingWorker:
    """What the supervisor uses of WorkerProcess: `proc`, `start()`, `log_file`; each start exits with `code`
    after `seconds`."""

    def __init__(self, code: int, seconds: float) -> None:
        self.code, self.seconds = code, seconds
        self.log_file: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> ExitingWorker:
        self.starts += 1
        script = f"import sys, time; time.sleep({self.seconds}); sys.exit({self.code})"
        self.proc = subprocess.Popen([sys.executable, "-c", script])
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()


def _wait(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)


def test_a_worker_that_exits_is_started_again() -> None:
    worker = ExitingWorker(code=70, seconds=0.2).start()
    supervisor = WorkerSupervisor(worker, max_restarts=5, window=300.0, poll=0.05).start()
    try:
        _wait(lambda: supervisor.restarts >= 2)
    finally:
        supervisor.stop()
        worker.stop()
    assert supervisor.restarts >= 2
    assert worker.starts == supervisor.restarts + 1
    assert supervisor.failed is None


def test_a_worker_that_keeps_exiting_is_given_up_on_with_its_exit_code() -> None:
    worker = ExitingWorker(code=70, seconds=0.0).start()
    supervisor = WorkerSupervisor(worker, max_restarts=2, window=300.0, poll=0.05).start()
    try:
        _wait(lambda: supervisor.failed is not None)
    finally:
        supervisor.stop()
        worker.stop()
    assert 2 == supervisor.restarts
    assert supervisor.failed is not None
    assert "exited 3 times within 300 s (last exit code 70)" in supervisor.failed


def test_a_stopped_supervisor_starts_nothing_again() -> None:
    # `up` on the way out stops the supervisor first: the worker it then stops must stay stopped.
    worker = ExitingWorker(code=70, seconds=0.2).start()
    supervisor = WorkerSupervisor(worker, poll=0.05).start()
    supervisor.stop()
    try:
        _wait(lambda: worker.proc is not None and worker.proc.poll() is not None)
        time.sleep(0.3)  # several polls' worth: a supervisor still watching would have restarted it
    finally:
        worker.stop()
    assert (1, 0) == (worker.starts, supervisor.restarts)
