"""`gatewatch up`: broker (embedded unless configured), topics, register, worker, traffic, summary."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from kafka import KafkaConsumer, TopicPartition

from schemas import Agreement
from streams import _compat
from streams._compat import kafka_python_decode
from streams.exceptions import BrokerError
from streams.offline.register_file import load_agreements_file, sample_register_path
from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker, free_port
from streams.transport.kafka import ensure_topics, kafka_python_config
from streams.transport.publisher import Publisher

__all__ = ["RunSummary", "WorkerProcess", "collect_summary", "run_up"]

log = structlog.get_logger("gatewatch.up")

# Malformed messages the simulator mixes in, so a run shows the dead-letter path working.
MALFORMED = (
    b"{not json",
    b"\xff\xfe\x00binary",
    b'{"schema_version": "1", "event_id": "broken-1"}',
    b'{"schema_version": "9", "event_id": "future-format"}',
    b"[1, 2, 3]",
)


@dataclass
class RunSummary:
    published: int = 0
    malformed_published: int = 0
    decisions: int = 0
    dead_letters: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    alerts_by_category: Counter[str] = field(default_factory=Counter)
    alerts_by_severity: Counter[str] = field(default_factory=Counter)
    event_ids_decided: set[str] = field(default_factory=set)
    #: Agreement versions judged (npd.agreement-decisions.v1), those with findings, and findings by category.
    approvals_judged: int = 0
    approvals_with_findings: int = 0
    approval_findings_by_category: Counter[str] = field(default_factory=Counter)
    worker_restarts: int = 0  # the worker ended on its own and was started again (WorkerSupervisor)
    #: Output partitions the summary could not read past: (topic, partition) -> (offset, reason).
    unreadable: dict[tuple[str, int], tuple[int, str]] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "events_published": self.published,
            "malformed_published": self.malformed_published,
            "events_evaluated": self.decisions,
            "decisions_written": self.decisions,
            "distinct_events_decided": len(self.event_ids_decided),
            "dead_letters": self.dead_letters,
            "verdicts": dict(sorted(self.verdicts.items())),
            "dead_letter_reasons": dict(sorted(self.dead_letter_reasons.items())),
            "alerts": self.alerts,
            "alerts_by_category": dict(sorted(self.alerts_by_category.items())),
            "alerts_by_severity": dict(sorted(self.alerts_by_severity.items())),
            "approvals_judged": self.approvals_judged,
            "approvals_with_findings": self.approvals_with_findings,
            "approval_findings_by_category": dict(sorted(self.approval_findings_by_category.items())),
            "worker_restarts": self.worker_restarts,
            "unreadable_batches": [
                {"topic": topic, "partition": partition, "offset": offset, "reason": reason}
                for (topic, partition), (offset, reason) in sorted(self.unreadable.items())
            ],
            "seconds": round(self.seconds, 2),
        }

    def render(self) -> str:
        lines = [
            "Gatewatch run summary",
            f"  events published      {self.published} (+{self.malformed_published} malformed messages)",
            f"  events evaluated      {self.decisions}",
            f"  decisions written     {self.decisions}  "
            + ", ".join(f"{k}={v}" for k, v in sorted(self.verdicts.items())),
            f"  dead letters          {self.dead_letters}  "
            + ", ".join(f"{k}={v}" for k, v in sorted(self.dead_letter_reasons.items())),
            f"  alerts                {self.alerts}",
            "  alerts by severity    " + ", ".join(f"{k}={v}" for k, v in sorted(self.alerts_by_severity.items())),
            "  alerts by category",
        ]
        width = max((len(k) for k in self.alerts_by_category), default=0)
        lines += [f"    {k.ljust(width)}  {v}" for k, v in sorted(self.alerts_by_category.items())]
        lines.append(f"  approvals judged      {self.approvals_judged} ({self.approvals_with_findings} with findings)")
        lines.append("  approval findings by category")
        width = max((len(k) for k in self.approval_findings_by_category), default=0)
        lines += [f"    {k.ljust(width)}  {v}" for k, v in sorted(self.approval_findings_by_category.items())]
        if self.worker_restarts:
            lines.append(f"  worker restarts       {self.worker_restarts} (its log says why)")
        # A batch the summary could not decode (kafka_python_decode): that partition's counts stop there.
        lines += [
            f"  unreadable batch      {t} partition {p} at offset {o} ({r}): counts above stop there"
            for (t, p), (o, r) in sorted(self.unreadable.items())
        ]
        return "\n".join(lines)


def collect_summary(settings: Settings, expected: int, timeout: float, summary: RunSummary) -> RunSummary:
    """Read decisions, dead letters and alerts until `expected` messages are accounted for (or timeout)."""
    t = settings.topics
    undo = _compat.install(kafka_python_decode.PATCHES)
    consumer = KafkaConsumer(
        **kafka_python_config(settings),
        enable_auto_commit=False,
        consumer_timeout_ms=500,
        group_id=None,
        auto_offset_reset="earliest",
    )

    def unreadable(topic: str, partition: int, offset: int, exc: BaseException) -> None:
        summary.unreadable[(topic, partition)] = (offset, kafka_python_decode.reason_of(exc))

    kafka_python_decode.stop_at_undecodable_batch(consumer, unreadable)
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in (t.decisions, t.deadletter, t.alerts, t.agreement_decisions)
            for p in (consumer.partitions_for_topic(topic) or {0})
        ]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        alert_ids: set[str] = set()
        judged: set[str] = set()  # agreement versions (content hashes) already counted
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    doc = json.loads(record.value)
                    if record.topic == t.decisions:
                        summary.decisions += 1
                        summary.verdicts[doc["verdict"]] += 1
                        if doc.get("event_id"):
                            summary.event_ids_decided.add(doc["event_id"])
                    elif record.topic == t.deadletter:
                        summary.dead_letters += 1
                        summary.dead_letter_reasons[doc["reason"]] += 1
                    elif record.topic == t.agreement_decisions:
                        if doc["agreement_sha256"] not in judged:
                            judged.add(doc["agreement_sha256"])
                            summary.approvals_judged += 1
                            summary.approvals_with_findings += bool(doc["violations"])
                            summary.approval_findings_by_category.update(v["category"] for v in doc["violations"])
                    elif doc["alert_id"] not in alert_ids:  # alerts are de-duplicated by their id
                        alert_ids.add(doc["alert_id"])
                        summary.alerts += 1
                        summary.alerts_by_category[doc["category"]] += 1
                        summary.alerts_by_severity[doc["severity"]] += 1
            if summary.decisions + summary.dead_letters >= expected:
                # Alerts are sent with their decision; one more short poll collects the stragglers.
                deadline = min(deadline, time.monotonic() + 1.0)
    finally:
        consumer.close()
        undo()
    return summary


class WorkerProcess:
    """`gatewatch worker` as a child process (what `up` runs and what the integration tests kill)."""

    def __init__(self, settings: Settings, *, log_file: Path | None = None, extra_env: dict[str, str] | None = None):
        self.settings = settings
        self.log_file = log_file
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self) -> WorkerProcess:
        env = {**os.environ, **settings_env(self.settings), **self.extra_env}
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli.main", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]
        return self

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as resp:  # noqa: S310 - loopback
                return json.loads(resp.read())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"{self.base_url}/metrics", timeout=5) as resp:  # noqa: S310 - loopback
            return resp.read().decode()  # type: ignore[no-any-return]

    def wait_ready(self, agreements: int, timeout: float) -> None:
        """Wait until the worker serves /healthz and holds at least `agreements` register entries."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise BrokerError(f"worker exited with code {self.proc.returncode}; see {self.log_file}")
            health = self.health()
            if health is not None and health.get("agreements", 0) >= agreements:
                return
            time.sleep(0.25)
        raise BrokerError(f"worker not ready within {timeout:.0f}s (see {self.log_file})")

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode


def settings_env(settings: Settings) -> dict[str, str]:
    """Settings as GATEWATCH_* environment variables, for a child worker process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(exclude={"topics"}).items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"GATEWATCH_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    for name, value in settings.topics.model_dump().items():
        env[f"GATEWATCH_TOPIC_{name.upper()}"] = value
    return env


class WorkerSupervisor:
    """Restarts the worker `up` runs when it ends on its own (exit 70 after an agent failed, or anything
    else): the embedded broker keeps everything in memory, so `up` must outlive its worker. A restarted
    worker resumes from the last commit without writing anything twice. After `max_restarts` exits within
    `window` seconds it gives up and says why in `failed`."""

    def __init__(self, worker: WorkerProcess, *, max_restarts: int = 5, window: float = 300.0, poll: float = 0.5):
        self.worker = worker
        self.max_restarts = max_restarts
        self.window = window
        self.poll = poll
        self.restarts = 0
        self.failed: str | None = None
        self._exits: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def start(self) -> WorkerSupervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (before the worker is stopped on purpose)."""
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            proc = self.worker.proc
            if proc is None or proc.poll() is None:
                continue
            now = time.monotonic()
            self._exits = [t for t in self._exits if now - t < self.window] + [now]
            where = f"see {self.worker.log_file}" if self.worker.log_file else "its log is not kept"
            if len(self._exits) > self.max_restarts:
                self.failed = (
                    f"the worker exited {len(self._exits)} times within {self.window:.0f} s "
                    f"(last exit code {proc.returncode}); {where}"
                )
                log.error("worker_given_up", exit_code=proc.returncode, exits=len(self._exits))
                return
            self.restarts += 1
            log.warning("worker_restarted", exit_code=proc.returncode, restarts=self.restarts)
            print(f"gatewatch: the worker exited with code {proc.returncode}; restarting it ({where})", file=sys.stderr)
            self.worker.start()


def run_up(
    settings: Settings,
    *,
    simulate: int,
    duration: float,
    seed: int = 0,
    malformed_rate: float = 0.02,
    settle_timeout: float = 60.0,
) -> RunSummary | None:
    """Run Gatewatch end to end; with `simulate` > 0 publish traffic and return the run's summary."""
    from streams.offline.simulate import Simulator

    started = time.monotonic()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if not settings.kafka_bootstrap:
            broker = EmbeddedBroker(log_file=settings.data_dir / "broker.log").start()
            stack.callback(broker.stop)
            settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap, "local_mode": True})
            log.info("embedded_broker_started", bootstrap=broker.bootstrap)
        if settings.web_port == 0:
            settings = settings.model_copy(update={"web_port": free_port(settings.web_host)})
        created = ensure_topics(settings)
        log.info("topics_ready", created=created)

        agreements: list[Agreement] = load_agreements_file(settings.agreements_file or sample_register_path())
        with Publisher(settings) as pub:
            pub.publish_agreements(agreements)
        log.info("agreements_published", count=len(agreements))

        worker = WorkerProcess(settings, log_file=settings.data_dir / "worker.log").start()
        stack.callback(worker.stop)
        worker.wait_ready(len({a.agreement_id for a in agreements}), timeout=120)
        log.info("worker_ready", metrics=f"{worker.base_url}/metrics")
        supervisor = WorkerSupervisor(worker).start()
        stack.callback(supervisor.stop)  # runs first: the worker's own stop is not a failure to restart

        if simulate <= 0:
            print(f"Gatewatch is running: metrics at {worker.base_url}/metrics; Ctrl-C stops it.", flush=True)
            with suppress(KeyboardInterrupt):
                while supervisor.failed is None:
                    time.sleep(1)
                raise BrokerError(supervisor.failed)
            return None

        summary = RunSummary()
        rng = random.Random(seed)  # noqa: S311 - traffic shaping, not security
        pace = duration / simulate if duration > 0 else 0.0
        with Publisher(settings) as pub:
            t0 = time.monotonic()
            # Ending by now: the worker dead-letters events dated in the future.
            traffic = Simulator(agreements, seed=seed, end=dt.datetime.now(dt.UTC)).events(simulate)
            for i, sim in enumerate(traffic):
                pub.publish_event(sim.event)
                summary.published += 1
                if rng.random() < malformed_rate:
                    pub.publish_raw(MALFORMED[summary.malformed_published % len(MALFORMED)], key=b"malformed")
                    summary.malformed_published += 1
                if pace:  # an even pace over `duration`, not bursts
                    time.sleep(max(0.0, t0 + (i + 1) * pace - time.monotonic()))
        expected = summary.published + summary.malformed_published
        collect_summary(settings, expected, settle_timeout, summary)
        if supervisor.failed is not None:
            raise BrokerError(supervisor.failed)
        summary.worker_restarts = supervisor.restarts
        _export_history(settings, agreements)
        summary.seconds = time.monotonic() - started
        return summary


def _export_history(settings: Settings, agreements: list[Agreement]) -> None:
    """Keep the run's history on disk: the embedded broker holds it in memory only, and reports read it later."""
    from streams.report.export import export_history

    directory = settings.data_dir / "history"
    counts = export_history(settings, directory, agreements)
    log.info("history_exported", directory=str(directory), access=counts.access, decisions=counts.decisions)
    print(
        f"history kept in {directory} ({counts.decisions} decisions): `gatewatch report month YYYY-MM` reads it",
        file=sys.stderr,
        flush=True,
    )
