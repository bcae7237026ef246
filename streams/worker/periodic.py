"""What the worker does on a clock rather than per message: gauges, the governance sweep, pack reloads.

Every timer body is guarded (streams/worker/timers.py): a failure logs one line and counts in
`gatewatch_timer_failures_total{timer}`, labelled by the method's name, and never crashes the app.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from collections import Counter as TallyCounter
from typing import Any

import faust
import structlog

from streams.metrics import Metrics
from streams.worker.agents import Evaluator
from streams.worker.approvals import ApprovalJudge, FindingsGauge, agreements_in
from streams.worker.outbox import Outbox
from streams.worker.processing import Processor
from streams.worker.register import Register
from streams.worker.reload import ServingPack
from streams.worker.timers import TimerGuard

__all__ = ["LAG_QUERY_TIMEOUT", "Periodic"]

log = structlog.get_logger("gatewatch.worker")

#: How long the lag timer (every 5 s) waits for the partitions' end offsets before it gives up the tick.
LAG_QUERY_TIMEOUT = 4.0


class Periodic:
    """The worker's timers; `install` registers them with the Faust app."""

    def __init__(
        self,
        app: faust.App,
        pack: ServingPack,
        metrics: Metrics,
        register: Register,
        processor: Processor,
        evaluator: Evaluator,
        judge: ApprovalJudge,
        outbox: Outbox,
        *,
        access_topic: str,
        alerts_topic: str,
        window_tables: dict[str, Any],
    ) -> None:
        """`window_tables` maps the `gatewatch_window_keys` label (recipient, pupil) to its Faust table."""
        self._app = app
        self._pack = pack
        self._metrics = metrics
        self._register = register
        self._processor = processor
        self._evaluator = evaluator
        self._judge = judge
        self._outbox = outbox
        self._access_topic = access_topic
        self._alerts_topic = alerts_topic
        self._window_tables = window_tables
        self._findings = FindingsGauge(metrics)

    def install(self, guard: TimerGuard, *, sweep_interval: float, reload_interval: float) -> None:
        """Register every timer (and the SIGHUP reload) with the app; a reload interval of 0 turns polling off."""
        app = self._app
        app.timer(interval=5.0)(guard(self.refresh_lag))
        app.timer(interval=sweep_interval, on_leader=True)(guard(self.governance_sweep))
        app.timer(interval=10.0)(guard(self.refresh_state_gauge))
        app.timer(interval=5.0)(guard(self.refresh_register_gauge))
        app.task(self.reload_on_sighup)
        app.task(self.dump_tasks_on_sigusr1)
        if reload_interval > 0:
            app.timer(interval=reload_interval)(guard(self.reload_on_change))

    async def refresh_lag(self) -> None:
        """Lag per assigned access partition: the stalled-partition watchdog alerts on it."""
        consumer = self._app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic == self._access_topic]
        if not tps or getattr(consumer, "_commit_fut", None) is not None:
            return  # a commit is talking to the broker: the lag waits a tick rather than queue behind it
        # Bounded below the timer's interval, so one tick never runs into the next or a later commit.
        ends = await asyncio.wait_for(consumer.highwaters(*tps), LAG_QUERY_TIMEOUT)
        starts = await self._unprocessed_starts([tp for tp in tps if tp.partition not in self._evaluator.processed])
        for tp in tps:
            end = ends.get(tp)
            if end is None:
                continue  # not known this tick: the gauge keeps its last value
            position = self._evaluator.processed.get(tp.partition, starts.get(tp, 0))
            self._metrics.partition_lag.labels(str(tp.partition)).set(max(0, end - position))

    async def _unprocessed_starts(self, tps: list[Any]) -> dict[Any, int]:
        """Where a partition this worker has processed nothing of starts for it: the group's committed offset,
        else the start of the log. Never the fetcher's position, which runs ahead of what was processed (and
        past messages Faust dropped), so a partition held but never processed shows its whole backlog."""
        if not tps:
            return {}
        consumer = self._app.consumer
        committed_offsets = getattr(consumer, "_committed_offset", {})  # Faust keeps no public view
        committed = {tp: committed_offsets.get(tp) for tp in tps}
        unknown = [tp for tp, offset in committed.items() if offset is None]
        earliest = await asyncio.wait_for(consumer.earliest_offsets(*unknown), LAG_QUERY_TIMEOUT) if unknown else {}
        return {tp: offset if offset is not None else earliest.get(tp, 0) for tp, offset in committed.items()}

    async def governance_sweep(self) -> None:
        """Governance gaps (overdue audits, unconfirmed destruction) raise alerts even with no events."""
        agreements = [a for k in list(self._register.table.keys()) if (a := self._processor.agreements(k)) is not None]
        raised = self._pack.engine.sweep(agreements, dt.datetime.now(dt.UTC))
        open_gaps = TallyCounter(alert.rule_id for alert in raised)
        for rule_id in self._pack.sweep_rules:
            self._metrics.governance_gaps.labels(rule_id).set(open_gaps.get(rule_id, 0))
        for alert in raised:
            if self._judge.first_count(alert.alert_id):  # refreshed every sweep (and raised on apply); count once
                self._metrics.alerts.labels(alert.rule_id, alert.category.value, alert.severity.value).inc()
            await self._outbox.add(self._alerts_topic, alert.alert_id.encode(), alert.model_dump_json().encode())
        log.info("governance_sweep", agreements=len(agreements), alerts=len(raised))

    async def refresh_state_gauge(self) -> None:
        """How many keys each windowed table holds (state size, for capacity planning)."""
        for label, table in self._window_tables.items():
            self._metrics.window_keys.labels(label).set(len(table))

    async def refresh_register_gauge(self) -> None:
        """Agreements by status, and the register's agreements with a finding of each category."""
        table = self._register.table
        tally = TallyCounter(a.status.value for k in list(table.keys()) if (a := self._processor.agreements(k)))
        for status in ("approved", "suspended", "revoked", "rejected"):
            self._metrics.agreements.labels(status).set(tally.get(status, 0))
        self._findings.refresh(self._pack.engine, agreements_in(table, self._processor.agreements))

    async def reload_on_sighup(self) -> None:
        """A Faust task: SIGHUP reloads the rule pack (streams/worker/reload.py)."""
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._pack.reload, "SIGHUP")

    async def dump_tasks_on_sigusr1(self) -> None:
        """A Faust task: SIGUSR1 logs what every asyncio task is waiting on (`kill -USR1 <pid>`), to tell
        a stuck worker from an idle one without stopping it."""
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)

    async def reload_on_change(self) -> None:
        """Reload the rule pack when its files change on disk."""
        if self._pack.changed_on_disk():
            self._pack.reload("pack files changed")


def dump_tasks() -> None:
    """One `tasks_dumped` warning line: each pending asyncio task and the chain of awaits it is suspended in."""
    chains = sorted((_await_chain(task.get_coro()), task.get_name()) for task in asyncio.all_tasks())
    log.warning("tasks_dumped", count=len(chains), tasks=[{"task": n, "awaiting": c} for c, n in chains])


def _await_chain(coro: Any) -> list[str]:
    """file:line function of each coroutine (or generator) in an await chain, outermost first."""
    out: list[str] = []
    while coro is not None and len(out) < 50:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            where = "/".join(frame.f_code.co_filename.rsplit("/", 2)[-2:])
            out.append(f"{where}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    return out
