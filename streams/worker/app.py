"""The Faust application: the worker's collaborators, wired to the topics, tables, timers and pages.

`WorkerApp` builds a Faust app with three agents and the objects they share:
- `gatewatch.register` (streams/worker/register.py) consumes npd.agreements.v1, validates each agreement,
  keeps it in a GlobalTable (so every worker in the group sees the whole register) and judges it
  (streams/worker/approvals.py);
- `gatewatch.evaluate` (streams/worker/agents.py) consumes npd.access.v1 and writes exactly one decision
  (plus alerts) or one dead letter per event;
- `gatewatch.pupils` runs the cross-recipient rules over the look-ups of one pupil.

Their records leave through `Outputs` (streams/worker/outputs.py), which also gates every offset commit:
Faust commits only after the outputs and the table changelogs of the events it covers are acknowledged.
After a crash or a rebalance the events since the last commit are processed again, but what they
already wrote is not written again (streams/worker/exactly_once.py): the effect on the topics and the
windows is exactly once. The timers live in streams/worker/periodic.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from rules import Engine, PupilLookupBatch, load_engine
from streams import _compat
from streams.metrics import Metrics
from streams.settings import Settings
from streams.transport.endoffsets import probe_end_offsets_async
from streams.transport.kafka import aiokafka_config, faust_broker_options
from streams.worker.agents import Evaluator, PupilEvaluator
from streams.worker.approvals import ApprovalJudge
from streams.worker.engine_setup import lateness_of, pupil_key_of
from streams.worker.exactly_once import WrittenPositions, read_judged, read_written
from streams.worker.outputs import Outputs
from streams.worker.periodic import Periodic
from streams.worker.processing import AgreementCache, Processor
from streams.worker.register import Register
from streams.worker.reload import ServingPack
from streams.worker.stalls import StoppedPartitions, missing_codecs
from streams.worker.tables import PartitionStates
from streams.worker.timers import TimerGuard

__all__ = ["WorkerApp", "build_worker_app", "faust_worker"]

log = structlog.get_logger("gatewatch.worker")

#: An agent's body: it consumes the stream until the worker stops.
AgentBody = Callable[[faust.StreamT[bytes]], Awaitable[None]]

#: How long the first event may wait while the unapplied agreements are read from their topic.
REGISTER_WAIT_SECONDS = 60.0
#: The longest an output record waits in the outbox before it is sent (streams/worker/outbox.py).
OUTBOX_LINGER_SECONDS = 0.005
#: The exit status of a worker whose agent failed (EX_SOFTWARE): restart it; it resumes from the last commit.
AGENT_FAILED_EXIT = 70


def _faust_options(settings: Settings) -> dict[str, Any]:
    opts: dict[str, Any] = {
        **faust_broker_options(settings),
        "store": "memory://",
        "datadir": str(settings.data_dir),
        "web_enabled": True,
        "web_bind": settings.web_host,
        "web_host": settings.web_host,
        "web_port": settings.web_port,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "broker_commit_interval": 1.0,
        "stream_wait_empty": True,
        "table_cleanup_interval": 30.0,
        # Outputs and changelogs go out in few large batches (streams/worker/outbox.py); Faust's default is 16 KiB.
        "producer_max_batch_size": settings.producer_batch_bytes,
    }
    if settings.local_mode:
        # A single-node embedded broker: the first group join waits about the rebalance timeout.
        opts.update(
            broker_rebalance_timeout=4.0,
            broker_session_timeout=6.0,
            broker_heartbeat_interval=1.0,
            broker_request_timeout=15.0,
        )
    return opts


def faust_worker(app: faust.App, loglevel: str) -> Any:
    """A Faust Worker for `app` without the terminal spinner or the stdout/stderr redirection.

    Faust's Worker feeds its start-up spinner from a root-logger handler and, for levels of WARNING and
    above, sets the root logger to DEBUG for it, for the life of the process: every debug call in Faust
    and aiokafka (several per message sent) then builds a log record that no handler prints. Measured on
    the live path: about a tenth of the worker's time.
    """
    from faust.worker import Worker

    # Nor does it redirect stdout and stderr into its logging: each of our JSON log lines would pass
    # through the logging module and come out behind a "[time] [pid] [LEVEL]" prefix, no longer JSON.
    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None
    return worker


class WorkerApp:
    """The Faust app and its collaborators, built from settings; `app` is what a Faust Worker runs.

    Attributes used by the CLI and the tests: `app`, `pack` (the serving rule pack, reloadable),
    `metrics` and `registry`, `processor` (message -> outcomes) and `register` (the GlobalTable of
    agreement JSON by id).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        key = pupil_key_of(settings)  # the same key as `check` and `replay` (streams/worker/engine_setup.py)
        if key is None:
            log.warning("pupil_hmac_key_unset", hint="set GATEWATCH_PUPIL_HMAC_KEY in production")
        engine = engine or load_engine(settings.rule_pack_dir, pupil_key=key)
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry, gateways=engine.catalogue.gateways, purposes=engine.catalogue.purposes)
        self.pack = ServingPack(engine, self.metrics, pack_dir=settings.rule_pack_dir, pupil_key=key)
        self.pupil_topic = f"{settings.app_id}-pupil-lookups"
        self.app = self._faust_app()
        self._declare_topics_and_tables()
        # A decision marks its event (an agreement decision, its register record) done: it goes out last.
        last = frozenset({settings.topics.decisions, settings.topics.agreement_decisions})
        self.outputs = Outputs(self.app.producer, last_topics=last, linger=OUTBOX_LINGER_SECONDS)
        self._build_collaborators()
        self._wire()

    def _faust_app(self) -> faust.App:
        """The Faust app, with every third-party patch installed first (pinned versions only)."""
        settings, t = self.settings, self.settings.topics
        _compat.install()  # every third-party patch, for the process's lifetime; refuses unpinned versions
        # A batch the worker cannot decode stops its partition only (the fix's docstring says why and how).
        roles = {t.access: "access", t.agreements: "agreements", self.pupil_topic: "pupil_lookups"}
        self.stopped_partitions = StoppedPartitions(self.metrics, roles)
        if missing := missing_codecs():  # an image built without the project's dependencies
            log.error("codecs_unavailable", codecs=missing, hint="batches in these codecs stop their partitions")
        _compat.stop_partition_at_undecodable_batch(self.stopped_partitions.stop)
        app = faust.App(settings.app_id, **_faust_options(settings))
        if settings.local_mode:
            # Tansu reports a partition's end offset as the last batch's base offset + 1: without the probe,
            # changelog recovery would stop inside the last batch and lose table updates across a restart.
            _compat.use_end_probe(app, functools.partial(probe_end_offsets_async, aiokafka_config(settings)))
            _compat.shorten_fetch_wait(app)  # Tansu holds every fetch for its full wait (streams/_compat/fetch_wait.py)
        return app

    def _raw_topic(self, name: str, partitions: int) -> faust.TopicT:
        # Bytes in and out: the agent decodes itself so that bad input can be dead-lettered intact.
        return self.app.topic(name, partitions=partitions, key_serializer="raw", value_serializer="raw")

    def _declare_topics_and_tables(self) -> None:
        settings, t, app = self.settings, self.settings.topics, self.app
        self.access_topic = self._raw_topic(t.access, settings.partitions)
        self.agreements_topic = self._raw_topic(t.agreements, 1)
        self.output_topics = [
            self._raw_topic(t.decisions, settings.partitions),
            self._raw_topic(t.alerts, settings.partitions),
            self._raw_topic(t.deadletter, settings.partitions),
            self._raw_topic(t.agreement_decisions, 1),
        ]
        # The register is small and every worker needs all of it: one partition, replicated to all.
        self.register = app.GlobalTable(
            "agreements", partitions=1, recovery_buffer_size=1, default=None, key_type=str, value_type=str
        )
        # Windowed state in event time. Keys start with the recipient org id, the access topic's key, so
        # each entry lives in the partition of the events that update it; changelogs make it survive
        # restarts and WindowState expires it once event time has moved past the window.
        self.windows = app.Table("windows", partitions=settings.partitions, default=None)
        # Cross-recipient rules need all look-ups of one pupil together: re-partition by the pupil's HMAC.
        self.pupil_lookups_topic = self._raw_topic(self.pupil_topic, settings.partitions)
        self.pupil_windows = app.Table("pupil-windows", partitions=settings.partitions, default=None)
        # The agreement decisions' chain tail and the version judged per agreement (streams/worker/approvals.py).
        self.agreement_ledger = app.Table("agreement-ledger", partitions=1, default=None)

    def _build_collaborators(self) -> None:
        settings, t, outputs, metrics = self.settings, self.settings.topics, self.outputs, self.metrics
        lateness = lateness_of(settings)
        # Window changelog records go out once per key per commit, after the outputs they cover.
        self.recipient_states = PartitionStates(outputs.table(self.windows), lateness)
        self.pupil_states = PartitionStates(outputs.table(self.pupil_windows), lateness)
        outputs.records.grouped(self.pupil_topic, PupilLookupBatch.wrap)
        self.judge = ApprovalJudge(
            lambda: self.pack.engine,
            metrics,
            outputs.records.add,
            outputs.table(self.agreement_ledger, with_records=True),
            decisions_topic=t.agreement_decisions,
            alerts_topic=t.alerts,
            read_judged=functools.partial(
                read_judged, aiokafka_config(settings), t.agreements, t.agreement_decisions, t.alerts
            ),
        )
        self.register_view = Register(
            self.register,
            topic=t.agreements,
            consumer_config=aiokafka_config(settings),
            judge=self.judge,
            metrics=metrics,
            emit=outputs.records.add,
            deadletter_topic=t.deadletter,
            dead_letter_max_bytes=settings.producer_batch_bytes,
            wait_seconds=REGISTER_WAIT_SECONDS,
        )
        self.processor = Processor(
            self.pack.engine,
            AgreementCache(self.register_view),
            metrics,
            max_message_bytes=settings.max_message_bytes,
            max_future_skew=dt.timedelta(seconds=settings.max_future_skew_seconds),
            dead_letter_max_bytes=settings.producer_batch_bytes,  # under the broker's limit, like every batch
            track_positions=True,
        )
        self.pack.on_swap(lambda new: setattr(self.processor, "engine", new))
        written = WrittenPositions(
            functools.partial(read_written, aiokafka_config(settings), t.access, t.decisions, t.deadletter, t.alerts)
        )
        self.evaluator = Evaluator(
            self.app,
            self.processor,
            outputs.records,
            written,
            self.register_view,
            self.recipient_states,
            metrics,
            topics=t,
            pupil_topic=self.pupil_topic,
            dead_letter_max_bytes=settings.producer_batch_bytes,
        )
        self.pupil_evaluator = PupilEvaluator(
            lambda: self.pack.engine, self.pupil_states, metrics, outputs.records, alerts_topic=t.alerts
        )
        self.periodic = Periodic(
            self.app,
            self.pack,
            metrics,
            self.register_view,
            self.processor,
            self.evaluator,
            self.judge,
            outputs.records,
            access_topic=t.access,
            alerts_topic=t.alerts,
            window_tables={"recipient": self.windows, "pupil": self.pupil_windows},
        )

    def _wire(self) -> None:
        """Agents, tasks, timers, the commit hooks, the rebalance handler and the web pages, onto the app."""
        app, settings = self.app, self.settings
        app.task(self.outputs.send_outputs)
        _compat.add_commit_hooks(app, self.outputs.before_commit, snapshot=self.outputs.snapshot)
        app.task(self.declare_outputs)
        app.agent(self.access_topic, name="gatewatch.evaluate")(self._fatal("evaluate", self.evaluator.run))
        app.agent(self.pupil_lookups_topic, name="gatewatch.pupils")(self._fatal("pupils", self.pupil_evaluator.run))
        app.on_partitions_revoked.connect(self.on_partitions_revoked)  # type: ignore[arg-type]
        app.agent(self.agreements_topic, name="gatewatch.register")(self._fatal("register", self.register_view.keep))
        self.periodic.install(
            TimerGuard(self.metrics.timer_failures),  # a failing timer: one line and a metric
            sweep_interval=settings.sweep_interval_seconds,
            reload_interval=settings.rule_reload_interval_seconds,
        )
        _add_pages(app, self.registry, self.register, self.pack)

    @staticmethod
    def _fatal(name: str, body: AgentBody) -> AgentBody:
        """The agent body, ending the worker process at once (exit 70) on an exception it did not handle.

        Faust would restart the agent in place; the message it was on is then acknowledged when its stream
        is closed and committed by the error handler, though its outputs may be half queued (faust-streaming/
        faust#315, robinhood/faust#604), or the partition's commit stops for good while the worker looks
        healthy. Faust's own shutdown would commit the same way. So the process ends as a kill -9 would:
        nothing more is committed, the supervisor restarts it, it resumes from the last commit, and what
        was already written is not written again (streams/worker/exactly_once.py).
        """

        @functools.wraps(body)  # Faust names the agent, and its help, after the body
        async def run(stream: faust.StreamT[bytes]) -> None:
            try:
                await body(stream)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.critical("agent_failed", agent=name, error=f"{type(exc).__name__}: {exc}", exc_info=True)
                for out in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        out.flush()
                os._exit(AGENT_FAILED_EXIT)

        return run

    async def declare_outputs(self) -> None:
        """The output topics are written through the producer: make sure they exist (no-op if they do)."""
        for topic in self.output_topics:
            try:
                await topic.maybe_declare()
            except Exception:  # `gatewatch topics create` may have made them already, or the ACLs forbid it
                log.exception("declare_failed", topic=topic.get_topic_name())

    async def on_partitions_revoked(self, sender: Any, revoked: set[Any], **_: Any) -> None:
        """Before partitions go: their outputs and state out, then what this worker kept for them forgotten."""
        access, pupils = self.settings.topics.access, self.pupil_topic
        self.stopped_partitions.forget((tp.topic, tp.partition) for tp in revoked)
        gone = [tp.partition for tp in revoked if tp.topic == access]
        # Outputs, then the state of every event processed so far, whether or not Faust commits now: the
        # state stays in memory if the partitions come back, so the changelog must hold it too (the window
        # entries skip what they have seen; the outputs skip what is on the topics).
        await self.evaluator.gate.revoke(gone, self.outputs.flush_all)
        self.recipient_states.drop(gone)
        self.evaluator.forget(gone)
        for partition in gone:
            for gauge in (self.metrics.partition_lag, self.metrics.partition_last_processed):
                with contextlib.suppress(KeyError):
                    gauge.remove(str(partition))
        self.pupil_states.drop(tp.partition for tp in revoked if tp.topic == pupils)
        if any(tp.topic == self.settings.topics.agreements for tp in revoked):
            self.judge.forget()


def _add_pages(app: faust.App, registry: CollectorRegistry, register: Any, pack: ServingPack) -> None:
    """/metrics for Prometheus and /healthz for probes."""

    @app.page("/metrics")
    async def metrics_page(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def health_page(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json({"status": "ok", "agreements": len(register), "pack": pack.engine.pack.model_dump()})


def build_worker_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    registry: CollectorRegistry | None = None,
) -> WorkerApp:
    """The worker for `settings`: `engine` and `registry` default to the settings' pack and a new registry."""
    return WorkerApp(settings, engine=engine, registry=registry)
