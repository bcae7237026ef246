"""The two agents that judge access events: `Evaluator` (per event) and `PupilEvaluator` (per pupil).

`Evaluator` consumes npd.access.v1 and writes exactly one decision (plus alerts) or one dead letter
per event, and hands each event's pupil look-ups to the internal pupil topic, partitioned by the
pupil's HMAC, where `PupilEvaluator` runs the cross-recipient rules over all look-ups of one pupil.
After a crash or a rebalance the events since the last commit are processed again, and what they
already wrote is not written again (streams/worker/exactly_once.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import faust
import structlog

from rules import Engine, PupilLookupBatch
from schemas import Alert, DeadLetterReason, Issue, MessageRef
from schemas.ledger import link_json
from streams.metrics import Metrics
from streams.worker.exactly_once import PartitionGate, WrittenPositions
from streams.worker.outbox import Outbox
from streams.worker.processing import Outcome, Processor, make_dead_letter
from streams.worker.register import Register
from streams.worker.tables import PartitionStates

__all__ = ["COMMIT_PAUSE_INTERVAL", "Evaluator", "PupilEvaluator"]

log = structlog.get_logger("gatewatch.worker")

#: The evaluate agent lets Faust's producer drain this often, so offset commits are never starved.
COMMIT_PAUSE_INTERVAL = 1.0


class Evaluator:
    """The evaluate agent: each access message to its outputs, once, in partition order."""

    def __init__(
        self,
        app: faust.App,
        processor: Processor,
        outbox: Outbox,
        written: WrittenPositions,
        register: Register,
        states: PartitionStates,
        metrics: Metrics,
        *,
        topics: Any,
        pupil_topic: str,
        dead_letter_max_bytes: int,
    ) -> None:
        """`topics` are the settings' topic names; `pupil_topic` is the internal topic of pupil look-ups."""
        self._app = app
        self._processor = processor
        self._outbox = outbox
        self._written = written
        self._register = register
        self._states = states
        self._metrics = metrics
        self._topics = topics
        self._pupil_topic = pupil_topic
        self._dead_letter_max_bytes = dead_letter_max_bytes
        # The agent's last await before an event changes state (streams/worker/exactly_once.py).
        self.gate = PartitionGate(written, self._assigned)
        self.processed: dict[int, int] = {}  # access partition -> next offset this worker has to process
        self._done_gauges: dict[int, Any] = {}  # bound once per partition, not per message

    def _assigned(self) -> Iterable[int]:
        return (tp.partition for tp in self._app.consumer.assignment() if tp.topic == self._topics.access)

    async def run(self, stream: faust.StreamT[bytes]) -> None:
        """The agent's body."""
        last_flush = time.monotonic()
        async for event in stream.events():
            # Every await of this loop comes before the event changes any state: the previous event is
            # acknowledged by now, so a commit that runs meanwhile snapshots the state of exactly the
            # events its offsets cover (streams/_compat/commit_hook.py).
            if self._outbox.due():
                await self._outbox.send()
            if time.monotonic() - last_flush >= COMMIT_PAUSE_INTERVAL:
                # Faust commits only after its producer buffer drains; an agent that never pauses keeps
                # it non-empty under load and the commit starves (then a crash replays everything).
                await self._app.producer.flush()
                last_flush = time.monotonic()
            if not self._register.ready.is_set():
                await self._register.wait_until_ready(self._app.consumer)
                await self._outbox.learn_partitions(self._topics.alerts, self._pupil_topic)  # no lookup mid-event
            msg = event.message
            if not await self.gate.admit(msg.partition):
                continue  # revoked while it waited: the partition's new owner processes it
            await self._evaluate(msg)
            self.processed[msg.partition] = msg.offset + 1
            done = self._done_gauges.get(msg.partition)
            if done is None:
                done = self._done_gauges[msg.partition] = self._metrics.partition_last_processed.labels(
                    str(msg.partition)
                )
            done.set(time.time())

    async def _evaluate(self, msg: Any) -> None:
        """One message's outcomes queued; an engine failure dead-letters the message's bytes instead."""
        ref = MessageRef(topic=msg.topic, partition=msg.partition, offset=msg.offset)
        try:
            outcomes = self._processor.process_message(msg.value, msg.key, ref, state=self._states.get(msg.partition))
            for outcome in outcomes:
                await self._send(outcome, msg.key, msg.partition)
        except Exception as exc:  # nothing may stop the stream or lose a message: keep the bytes instead
            log.exception("engine_crash", offset=msg.offset)
            dead = make_dead_letter(
                msg.value,
                msg.key,
                ref,
                DeadLetterReason.ENGINE_ERROR,
                [Issue(loc="$", message=f"evaluation failed: {type(exc).__name__}", type="engine_error")],
                max_bytes=self._dead_letter_max_bytes,
            )
            self._metrics.dead_letters.labels("access", DeadLetterReason.ENGINE_ERROR.value).inc()
            await self._send(Outcome(dead_letter=dead), msg.key, msg.partition)  # a failure here is fatal

    async def _send(self, outcome: Outcome, key: bytes | None, partition: int) -> None:
        """Queue an event's outputs, unless they are on the topics already (processed again after a crash)."""
        t, written = self._topics, self._written
        if outcome.dead_letter is not None:
            src = outcome.dead_letter.source
            if not written.written(partition, (src.offset, src.index or 0), dead_letter=True):
                await self._outbox.add(t.deadletter, key, outcome.dead_letter.model_dump_json().encode(), partition)
            return
        decision = outcome.decision
        assert decision is not None
        assert decision.source is not None
        if written.written(partition, (decision.source.offset, decision.source.index or 0)):
            return  # its decision is on the topic, so are its alerts and look-ups (streams/worker/exactly_once.py)
        for alert in outcome.alerts:  # a kill may have left some on the topic after the last decision
            if not written.alert_written(partition, alert.alert_id, alert.count):
                await self._outbox.add(t.alerts, alert.alert_id.encode(), alert.model_dump_json().encode())
        for lookup in outcome.pupil_lookups:  # grouped per partition into PupilLookupBatch records
            lookup_partition = await self._outbox.partition_for(self._pupil_topic, lookup.pupil_hash.encode())
            self._outbox.collect(self._pupil_topic, lookup_partition, lookup.model_dump_json().encode())
        # The decision goes last, to the partition its event came from, so each decisions partition is the
        # complete, ordered record of one access partition, chained by hash.
        wire, state = link_json(decision, partition, written.ledger(partition))
        written.linked(partition, state)
        await self._outbox.add(t.decisions, key, wire, partition)

    def forget(self, partitions: Iterable[int]) -> None:
        """Revoked access partitions: their positions and per-partition gauges go with them."""
        for partition in partitions:
            self.processed.pop(partition, None)
            self._done_gauges.pop(partition, None)


class PupilEvaluator:
    """The pupil agent: cross-recipient rules over every look-up of one pupil (its partition's window state)."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        states: PartitionStates,
        metrics: Metrics,
        outbox: Outbox,
        *,
        alerts_topic: str,
    ) -> None:
        """`engine` gives the serving engine (it changes on a pack reload)."""
        self._engine = engine
        self._states = states
        self._metrics = metrics
        self._outbox = outbox
        self._alerts_topic = alerts_topic

    async def run(self, stream: faust.StreamT[bytes]) -> None:
        """The agent's body: each record is a PupilLookupBatch of one pupil-hash partition."""
        async for event in stream.events():
            msg = event.message
            try:
                lookups = PupilLookupBatch.lookups_of(msg.value)
            except Exception:  # an internal topic: a bad record is a bug, logged, never a stopped stream
                log.exception("pupil_lookup_failed", offset=msg.offset)
                continue
            state = self._states.get(msg.partition)
            raised: list[Alert] = []
            for index, lookup in enumerate(lookups):
                try:
                    state.at = lookup.source  # each event's look-up counts once (rules/windows.py)
                    state.advance(lookup.occurred_at.timestamp())
                    raised.extend(self._engine().run_pupil(lookup, state))
                except Exception:
                    log.exception("pupil_lookup_failed", offset=msg.offset, index=index)
            for alert in raised:
                self._metrics.alerts.labels(alert.rule_id, alert.category.value, alert.severity.value).inc()
                await self._outbox.add(self._alerts_topic, alert.alert_id.encode(), alert.model_dump_json().encode())
