"""The Faust application: agents that evaluate access events and keep the agreements register.

`build_worker_app` wires settings, the rule engine, the metrics registry and the processor into a Faust
app with two agents:
- `register`: consumes npd.agreements.v1, validates each agreement and keeps it in a GlobalTable (so
  every worker in the group sees the whole register);
- `evaluate`: consumes npd.access.v1 and writes exactly one decision (plus alerts) or one dead letter
  per event. Faust flushes what the agent sent before it commits the offsets, and after a crash or a
  rebalance the events since the last commit are processed again, but what they already wrote is not
  written again (streams/worker/exactly_once.py): the effect on the topics and the windows is exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import signal
import time
from collections import Counter as TallyCounter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import faust
import structlog
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from rules import Engine, PupilLookupBatch, WindowState, load_engine
from schemas import Agreement, Alert, DeadLetterReason, Issue, MessageRef, issues_from_validation_error
from schemas.ledger import link_json
from streams import _compat
from streams.metrics import Metrics
from streams.settings import Settings
from streams.transport.endoffsets import probe_end_offsets_async
from streams.transport.kafka import aiokafka_config, faust_broker_options
from streams.worker.approvals import ApprovalJudge, FindingsGauge, agreements_in
from streams.worker.engine_setup import lateness_of, pupil_key_of
from streams.worker.exactly_once import PartitionGate, WrittenPositions, read_written
from streams.worker.outbox import Outbox
from streams.worker.processing import AgreementCache, Outcome, Processor, make_dead_letter
from streams.worker.reload import ServingPack
from streams.worker.stalls import StoppedPartitions, missing_codecs
from streams.worker.tables import WriteBehind
from streams.worker.timers import TimerGuard

__all__ = ["WorkerApp", "build_worker_app", "faust_worker"]

log = structlog.get_logger("gatewatch.worker")

#: The evaluate agent lets Faust's producer drain this often, so offset commits are never starved.
COMMIT_PAUSE_INTERVAL = 1.0
#: How long the first event may wait while the unapplied agreements are read from their topic.
REGISTER_WAIT_SECONDS = 60.0
#: How long the lag timer (every 5 s) waits for the partitions' end offsets before it gives up the tick.
LAG_QUERY_TIMEOUT = 4.0
#: The longest an output record waits in the outbox before it is sent (streams/worker/outbox.py).
OUTBOX_LINGER_SECONDS = 0.005


class PartitionStates:
    """One WindowState per partition over a shared Faust table, rebuilt after a restart or rebalance."""

    def __init__(self, table: WriteBehind, lateness: dt.timedelta) -> None:
        self._table = table
        self._lateness = lateness
        self._states: dict[int, WindowState] = {}

    def get(self, partition: int) -> WindowState:
        state = self._states.get(partition)
        if state is None:
            state = WindowState(self._table.view(partition), partition=partition, lateness=self._lateness)
            indexed = state.rebuild()  # entries recovered from the changelog for this partition
            log.info("window_state_ready", partition=partition, entries=indexed)
            self._states[partition] = state
        return state

    def drop(self, partitions: Iterable[int]) -> None:
        gone = list(partitions)
        for partition in gone:
            self._states.pop(partition, None)
        self._table.discard(gone)


@dataclass
class WorkerApp:
    """The Faust app and the objects it closes over (exposed for tests and the CLI)."""

    app: faust.App
    pack: ServingPack
    metrics: Metrics
    registry: CollectorRegistry
    processor: Processor
    register: Any  # faust GlobalTable[str, str]: agreement id -> Agreement JSON


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


def build_worker_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    registry: CollectorRegistry | None = None,
) -> WorkerApp:
    key = pupil_key_of(settings)  # the same key as `check` and `replay` (streams/worker/engine_setup.py)
    if key is None:
        log.warning("pupil_hmac_key_unset", hint="set GATEWATCH_PUPIL_HMAC_KEY in production")
    engine = engine or load_engine(settings.rule_pack_dir, pupil_key=key)
    registry = registry or CollectorRegistry()
    metrics = Metrics(registry, gateways=engine.catalogue.gateways, purposes=engine.catalogue.purposes)
    guarded = TimerGuard(metrics.timer_failures)  # a failing timer: one line and a metric (streams/worker/timers.py)
    pack = ServingPack(engine, metrics, pack_dir=settings.rule_pack_dir, pupil_key=key)

    _compat.install()  # every third-party patch, for the process's lifetime; refuses unpinned versions
    t = settings.topics
    pupil_topic_name = f"{settings.app_id}-pupil-lookups"
    # A batch the worker cannot decode stops its partition only (the fix's docstring says why and how).
    roles = {t.access: "access", t.agreements: "agreements", pupil_topic_name: "pupil_lookups"}
    stopped_partitions = StoppedPartitions(metrics, roles)
    if missing := missing_codecs():  # an image built without the project's dependencies
        log.error("codecs_unavailable", codecs=missing, hint="batches in these codecs stop their partitions")
    _compat.stop_partition_at_undecodable_batch(stopped_partitions.stop)
    app = faust.App(settings.app_id, **_faust_options(settings))
    if settings.local_mode:
        # Tansu reports a partition's end offset as the last batch's base offset + 1: without the probe,
        # changelog recovery would stop inside the last batch and lose table updates across a restart.
        _compat.use_end_probe(app, functools.partial(probe_end_offsets_async, aiokafka_config(settings)))
        _compat.shorten_fetch_wait(app)  # Tansu holds every fetch for its full wait (streams/_compat/fetch_wait.py)

    def raw_topic(name: str, partitions: int) -> faust.TopicT:
        # Bytes in and out: the agent decodes itself so that bad input can be dead-lettered intact.
        return app.topic(name, partitions=partitions, key_serializer="raw", value_serializer="raw")

    access = raw_topic(t.access, settings.partitions)
    agreements_topic = raw_topic(t.agreements, 1)
    decisions = raw_topic(t.decisions, settings.partitions)
    alerts = raw_topic(t.alerts, settings.partitions)
    deadletter = raw_topic(t.deadletter, settings.partitions)
    agreement_decisions = raw_topic(t.agreement_decisions, 1)

    # The register is small and every worker needs all of it: one partition, replicated to all.
    register = app.GlobalTable(
        "agreements",
        partitions=1,
        recovery_buffer_size=1,
        default=None,
        key_type=str,
        value_type=str,
    )
    producer = app.producer
    send_failures: list[str] = []

    def _delivered(fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and (exc := fut.exception()) is not None:
            send_failures.append(f"{type(exc).__name__}: {exc}")

    # Outputs, and the tables' changelog records, go out as one record batch per topic partition
    # (streams/worker/outbox.py, streams/worker/tables.py); `before_commit` sends them all and refuses to commit
    # after a send the broker did not acknowledge.
    outbox = Outbox(
        lambda: producer._ensure_producer(),  # type: ignore[attr-defined]  # noqa: SLF001 - Faust starts it
        linger=OUTBOX_LINGER_SECONDS,
        on_delivered=_delivered,
        last_topics=frozenset({t.decisions}),  # a decision marks its event done (streams/worker/exactly_once.py)
    )
    emit = outbox.add
    # The tables' changelog records: sent only once the outputs of the events they cover are acknowledged.
    state_outbox = Outbox(
        lambda: producer._ensure_producer(),  # type: ignore[attr-defined]  # noqa: SLF001 - Faust starts it
        on_delivered=_delivered,
    )
    written = WrittenPositions(
        functools.partial(read_written, aiokafka_config(settings), t.access, t.decisions, t.deadletter, t.alerts)
    )

    # Windowed state in event time. Keys start with the recipient org id, the access topic's key, so
    # each entry lives in the partition of the events that update it; changelogs make it survive
    # restarts and WindowState expires it once event time has moved past the window.
    lateness = lateness_of(settings)
    windows = app.Table("windows", partitions=settings.partitions, default=None)
    window_writes = WriteBehind(windows, state_outbox.put)  # changelog records once per key per commit
    recipient_states = PartitionStates(window_writes, lateness)
    # Cross-recipient rules need all look-ups of one pupil together: re-partition by the pupil's HMAC.
    pupil_topic = raw_topic(pupil_topic_name, settings.partitions)
    pupil_windows = app.Table("pupil-windows", partitions=settings.partitions, default=None)
    pupil_writes = WriteBehind(pupil_windows, state_outbox.put)
    pupil_states = PartitionStates(pupil_writes, lateness)

    outbox.grouped(pupil_topic_name, PupilLookupBatch.wrap)
    # The agreement decisions' chain tail and the version judged per agreement (streams/worker/approvals.py).
    agreement_ledger = WriteBehind(app.Table("agreement-ledger", partitions=1, default=None), outbox.put)
    judge = ApprovalJudge(
        lambda: pack.engine,
        metrics,
        outbox.add,
        agreement_ledger,
        decisions_topic=t.agreement_decisions,
        alerts_topic=t.alerts,
    )
    findings_gauge = FindingsGauge(metrics)

    def snapshot() -> None:
        """Runs as Faust reads the offsets to commit: the buffered table writes of exactly those events."""
        window_writes.flush()
        pupil_writes.flush()
        agreement_ledger.flush()

    async def before_commit() -> None:
        """Runs before every offset commit: outputs out and acknowledged, then the changelogs, then commit."""
        for queue in (outbox, state_outbox):
            await queue.send(everything=True)
            await producer.flush()
            if send_failures:
                log.error("send_failed", failures=len(send_failures), first=send_failures[0])
                raise RuntimeError(f"{len(send_failures)} sends were not acknowledged; not committing")

    @app.task  # type: ignore[untyped-decorator]
    async def send_outputs() -> None:
        """Sends what the agents queued once it has waited the linger (the agents also send when due)."""
        while True:
            await asyncio.sleep(OUTBOX_LINGER_SECONDS)
            if outbox.due():
                try:
                    await outbox.send()
                except Exception as exc:  # the commit gate sees the failure; nothing is committed past it
                    send_failures.append(f"{type(exc).__name__}: {exc}")
                    log.exception("outbox_send_failed")

    _compat.add_commit_hooks(app, before_commit, snapshot=snapshot)

    register_overlay: dict[str, str | None] = {}  # agreement id -> JSON (None: withdrawn), read directly
    overlay_until = [0]  # the overlay stands until the register agent has applied up to this offset

    class RegisterView(Mapping[str, str]):
        """The GlobalTable, with the directly read records in front until the agent has applied them."""

        def __getitem__(self, key: str) -> str:
            value = self.get(key)
            if value is None:
                raise KeyError(key)
            return str(value)

        def get(self, key: str, default: Any = None) -> Any:
            if register_overlay and key in register_overlay:
                if register_position[0] < overlay_until[0]:
                    value = register_overlay[key]
                    return default if value is None else value
                register_overlay.clear()  # the agent has caught up: the table is the register again
            return register.get(key, default)

        def __iter__(self) -> Iterator[str]:
            return iter(list(register.keys()))

        def __len__(self) -> int:
            return len(register)

    processor = Processor(
        pack.engine,
        AgreementCache(RegisterView()),
        metrics,
        max_message_bytes=settings.max_message_bytes,
        max_future_skew=dt.timedelta(seconds=settings.max_future_skew_seconds),
        dead_letter_max_bytes=settings.producer_batch_bytes,  # under the broker's limit, like every batch
        track_positions=True,
    )

    async def send_outcome(outcome: Outcome, key: bytes | None, partition: int) -> None:
        """Queue an event's outputs, unless they are on the topics already (processed again after a crash)."""
        if outcome.dead_letter is not None:
            src = outcome.dead_letter.source
            if not written.written(partition, (src.offset, src.index or 0), dead_letter=True):
                await emit(t.deadletter, key, outcome.dead_letter.model_dump_json().encode(), partition)
            return
        decision = outcome.decision
        assert decision is not None
        assert decision.source is not None
        if written.written(partition, (decision.source.offset, decision.source.index or 0)):
            return  # its decision is on the topic, so are its alerts and look-ups (streams/worker/exactly_once.py)
        for alert in outcome.alerts:  # a kill may have left some on the topic after the last decision
            if not written.alert_written(partition, alert.alert_id, alert.count):
                await emit(t.alerts, alert.alert_id.encode(), alert.model_dump_json().encode())
        for lookup in outcome.pupil_lookups:  # grouped per partition into PupilLookupBatch records
            lookup_partition = await outbox.partition_for(pupil_topic_name, lookup.pupil_hash.encode())
            outbox.collect(pupil_topic_name, lookup_partition, lookup.model_dump_json().encode())
        # The decision goes last, to the partition its event came from, so each decisions partition is the
        # complete, ordered record of one access partition, chained by hash.
        wire, state = link_json(decision, partition, written.ledger(partition))
        written.linked(partition, state)
        await emit(t.decisions, key, wire, partition)

    @app.task  # type: ignore[untyped-decorator]
    async def declare_outputs() -> None:
        """The output topics are written through the producer: make sure they exist (no-op if they do)."""
        for topic in (decisions, alerts, deadletter, agreement_decisions):
            try:
                await topic.maybe_declare()
            except Exception:  # `gatewatch topics create` may have made them already, or the ACLs forbid it
                log.exception("declare_failed", topic=topic.get_topic_name())

    @app.agent(access, name="gatewatch.evaluate")
    async def evaluate(stream: faust.StreamT[bytes]) -> None:
        last_flush = time.monotonic()
        async for event in stream.events():
            # Every await of this loop comes before the event changes any state: the previous event is
            # acknowledged by now, so a commit that runs meanwhile snapshots the state of exactly the
            # events its offsets cover (streams/_compat/commit_hook.py).
            if outbox.due():
                await outbox.send()
            if time.monotonic() - last_flush >= COMMIT_PAUSE_INTERVAL:
                # Faust commits only after its producer buffer drains; an agent that never pauses keeps
                # it non-empty under load and the commit starves (then a crash replays everything).
                await app.producer.flush()
                last_flush = time.monotonic()
            if not register_ready.is_set():
                await wait_for_register()
                await outbox.learn_partitions(t.alerts, pupil_topic_name)  # no lookup (an await) mid-event
            msg = event.message
            if not await gate.admit(msg.partition):
                continue  # revoked while it waited: the partition's new owner processes it
            ref = MessageRef(topic=msg.topic, partition=msg.partition, offset=msg.offset)
            try:
                outcomes = processor.process_message(msg.value, msg.key, ref, state=recipient_states.get(msg.partition))
                for outcome in outcomes:
                    await send_outcome(outcome, msg.key, msg.partition)
            except Exception as exc:  # nothing may stop the stream or lose a message: keep the bytes instead
                log.exception("engine_crash", offset=msg.offset)
                dead = make_dead_letter(
                    msg.value,
                    msg.key,
                    ref,
                    DeadLetterReason.ENGINE_ERROR,
                    [Issue(loc="$", message=f"evaluation failed: {type(exc).__name__}", type="engine_error")],
                    max_bytes=settings.producer_batch_bytes,
                )
                metrics.dead_letters.labels("access", DeadLetterReason.ENGINE_ERROR.value).inc()
                await send_outcome(Outcome(dead_letter=dead), msg.key, msg.partition)  # a failure here is fatal
            processed[msg.partition] = msg.offset + 1
            done = done_gauges.get(msg.partition)
            if done is None:
                done = done_gauges[msg.partition] = metrics.partition_last_processed.labels(str(msg.partition))
            done.set(time.time())

    register_ready = asyncio.Event()
    register_position = [0]  # next offset of the agreements partition the register agent will apply

    async def wait_for_register() -> None:
        """Before the first event: make the agreements published so far visible to the evaluation.

        The register agent cannot be waited for: Faust delivers every topic's messages through one
        loop, and once the evaluate agent's queue is full (it is waiting) the agreements behind the
        access messages are never delivered (seen: a 60 s stall, then events judged against an empty
        register). So the records the agent has not applied yet are read directly from the topic into
        an overlay that the lookups consult until the agent has applied as far.
        """
        tp = TP(t.agreements, 0)
        try:
            if tp in app.consumer.assignment():  # this worker feeds the register
                end = (await app.consumer.highwaters(tp)).get(tp, 0)
                # Records below the group's committed offset were applied before a restart: the
                # GlobalTable has them from its changelog, and the agent starts after them.
                committed = app.consumer._committed_offset.get(tp) or 0  # type: ignore[attr-defined]  # noqa: SLF001
                register_position[0] = max(register_position[0], committed)
                applied, read_directly = register_position[0], 0
                if register_position[0] < end:
                    read = await asyncio.wait_for(read_register(register_position[0], end), REGISTER_WAIT_SECONDS)
                    for key, value in read:
                        if (agreement_json := valid_agreement(key, value)) is not False:
                            register_overlay[key] = agreement_json
                    overlay_until[0] = end
                    read_directly = len(read)
                    log.info("register_read_directly", records=len(read), start=register_position[0], end=end)
                # Whichever way (the agent may have applied them all while the first event was on its way).
                log.info("register_ready", end=end, applied_by_agent=applied, read_directly=read_directly)
        except Exception:  # never block evaluation on this: the register agent still applies everything
            log.exception("register_wait_failed")
        register_ready.set()

    async def read_register(start: int, end: int) -> list[tuple[str, bytes | None]]:
        """(key, value) of the agreements records at offsets start..end-1, read with a throwaway consumer."""
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        ktp = TopicPartition(t.agreements, 0)
        consumer = AIOKafkaConsumer(**aiokafka_config(settings), group_id=None, enable_auto_commit=False)
        await consumer.start()
        out: list[tuple[str, bytes | None]] = []
        try:
            consumer.assign([ktp])
            consumer.seek(ktp, start)
            while await consumer.position(ktp) < end:
                for records in (await consumer.getmany(ktp, timeout_ms=200)).values():
                    out.extend((r.key.decode("utf-8", "replace"), r.value) for r in records if r.key and r.offset < end)
        finally:
            await consumer.stop()
        return out

    def valid_agreement(key: str, value: bytes | None) -> str | Literal[False] | None:
        """The JSON to keep for a register record: None for a tombstone, False if the agent would refuse it."""
        if value is None:
            return None
        try:
            agreement = Agreement.model_validate_json(value)
        except ValidationError:
            return False
        return value.decode("utf-8") if agreement.agreement_id == key else False

    # The agent's last await before an event changes state (streams/worker/exactly_once.py).
    gate = PartitionGate(written, lambda: (tp.partition for tp in app.consumer.assignment() if tp.topic == t.access))
    processed: dict[int, int] = {}  # access partition -> next offset this worker has to process
    done_gauges: dict[int, Any] = {}  # bound once per partition, not per message

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    @guarded
    async def refresh_lag() -> None:
        """Lag per assigned access partition: the stalled-partition watchdog alerts on it."""
        tps = [tp for tp in app.consumer.assignment() if tp.topic == t.access]
        if not tps or getattr(app.consumer, "_commit_fut", None) is not None:
            return  # a commit is talking to the broker: the lag waits a tick rather than queue behind it
        # Bounded below the timer's interval, so one tick never runs into the next or a later commit.
        ends = await asyncio.wait_for(app.consumer.highwaters(*tps), LAG_QUERY_TIMEOUT)
        for tp in tps:
            position = processed.get(tp.partition)
            if position is None:
                position = await app.consumer.position(tp) or 0
            metrics.partition_lag.labels(str(tp.partition)).set(max(0, ends.get(tp, position) - position))

    @app.agent(pupil_topic, name="gatewatch.pupils")
    async def evaluate_pupils(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                lookups = PupilLookupBatch.lookups_of(msg.value)
            except Exception:  # an internal topic: a bad record is a bug, logged, never a stopped stream
                log.exception("pupil_lookup_failed", offset=msg.offset)
                continue
            state = pupil_states.get(msg.partition)
            raised: list[Alert] = []
            for index, lookup in enumerate(lookups):
                try:
                    state.at = lookup.source  # each event's look-up counts once (rules/windows.py)
                    state.advance(lookup.occurred_at.timestamp())
                    raised.extend(pack.engine.run_pupil(lookup, state))
                except Exception:
                    log.exception("pupil_lookup_failed", offset=msg.offset, index=index)
            for alert in raised:
                metrics.alerts.labels(alert.rule_id, alert.category.value, alert.severity.value).inc()
                await emit(t.alerts, alert.alert_id.encode(), alert.model_dump_json().encode())

    @app.timer(interval=settings.sweep_interval_seconds, on_leader=True)  # type: ignore[untyped-decorator]
    @guarded
    async def governance_sweep() -> None:
        """Governance gaps (overdue audits, unconfirmed destruction) raise alerts even with no events."""
        agreements = [a for k in list(register.keys()) if (a := processor.agreements(k)) is not None]
        raised = pack.engine.sweep(agreements, dt.datetime.now(dt.UTC))
        open_gaps = TallyCounter(alert.rule_id for alert in raised)
        for rule_id in pack.sweep_rules:
            metrics.governance_gaps.labels(rule_id).set(open_gaps.get(rule_id, 0))
        for alert in raised:
            if judge.first_count(alert.alert_id):  # refreshed every sweep (and raised on apply); count it once
                metrics.alerts.labels(alert.rule_id, alert.category.value, alert.severity.value).inc()
            await emit(t.alerts, alert.alert_id.encode(), alert.model_dump_json().encode())
        log.info("governance_sweep", agreements=len(agreements), alerts=len(raised))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        stopped_partitions.forget((tp.topic, tp.partition) for tp in revoked)

        # Outputs, then the state of every event processed so far, whether or not Faust commits now: the
        # state stays in memory if the partitions come back, so the changelog must hold it too (the window
        # entries skip what they have seen; the outputs skip what is on the topics).
        async def flush() -> None:
            snapshot()
            await before_commit()

        await gate.revoke((tp.partition for tp in revoked if tp.topic == t.access), flush)
        recipient_states.drop(tp.partition for tp in revoked if tp.topic == t.access)
        for tp in revoked:
            if tp.topic == t.access:
                processed.pop(tp.partition, None)
                done_gauges.pop(tp.partition, None)
                for gauge in (metrics.partition_lag, metrics.partition_last_processed):
                    with contextlib.suppress(KeyError):
                        gauge.remove(str(tp.partition))
        pupil_states.drop(tp.partition for tp in revoked if tp.topic == pupil_topic.get_topic_name())

    @app.timer(interval=10.0)  # type: ignore[untyped-decorator]
    @guarded
    async def refresh_state_gauge() -> None:
        metrics.window_keys.labels("recipient").set(len(windows))
        metrics.window_keys.labels("pupil").set(len(pupil_windows))

    @app.agent(agreements_topic, name="gatewatch.register")
    async def keep_register(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            await apply_agreement(msg)
            register_position[0] = msg.offset + 1

    async def apply_agreement(msg: Any) -> None:
        """Validate one register record and apply it to the GlobalTable (tombstones withdraw)."""
        ref = MessageRef(topic=msg.topic, partition=msg.partition, offset=msg.offset)
        key = msg.key.decode("utf-8", "replace") if msg.key else None
        if msg.value is None:  # tombstone: the agreement is withdrawn from the register
            if key is not None and key in register:
                del register[key]
                log.info("agreement_removed", agreement_id=key)
            if key is not None:
                judge.withdrawn(key)
            return
        try:
            agreement = Agreement.model_validate_json(msg.value)
        except ValidationError as exc:
            await _reject_agreement(msg.value, msg.key, ref, issues_from_validation_error(exc))
            return
        if key != agreement.agreement_id:
            await _reject_agreement(
                msg.value,
                msg.key,
                ref,
                [
                    Issue(
                        loc="agreement_id",
                        type="key_mismatch",
                        message="the record key differs from agreement_id",  # never the values
                    )
                ],
            )
            return
        register[agreement.agreement_id] = msg.value.decode("utf-8")
        log.info("agreement_loaded", agreement_id=agreement.agreement_id, status=agreement.status.value)
        if not judge.unchanged(agreement):  # re-published unchanged: judged already, no new page
            await judge.judge(agreement, ref)

    async def _reject_agreement(value: bytes, key: bytes | None, ref: MessageRef, issues: list[Issue]) -> None:
        metrics.dead_letters.labels("agreements", DeadLetterReason.SCHEMA_VIOLATION.value).inc()
        dead = make_dead_letter(
            value, key, ref, DeadLetterReason.SCHEMA_VIOLATION, issues, max_bytes=settings.producer_batch_bytes
        )
        await emit(t.deadletter, key, dead.model_dump_json().encode())

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]  # faust ships no types for timer
    @guarded
    async def refresh_register_gauge() -> None:
        tally = TallyCounter(a.status.value for k in list(register.keys()) if (a := processor.agreements(k)))
        for status in ("approved", "suspended", "revoked", "rejected"):
            metrics.agreements.labels(status).set(tally.get(status, 0))
        findings_gauge.refresh(pack.engine, agreements_in(register, processor.agreements))

    @app.page("/metrics")
    async def metrics_page(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def health_page(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json({"status": "ok", "agreements": len(register), "pack": pack.engine.pack.model_dump()})

    pack.on_swap(lambda new: setattr(processor, "engine", new))

    @app.task  # type: ignore[untyped-decorator]
    async def reload_on_sighup() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, pack.reload, "SIGHUP")

    if settings.rule_reload_interval_seconds > 0:

        @app.timer(interval=settings.rule_reload_interval_seconds)  # type: ignore[untyped-decorator]
        @guarded
        async def reload_on_change() -> None:
            if pack.changed_on_disk():
                pack.reload("pack files changed")

    return WorkerApp(app=app, pack=pack, metrics=metrics, registry=registry, processor=processor, register=register)
