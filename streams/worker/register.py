"""The agreements register as the worker keeps it and reads it.

The register agent consumes npd.agreements.v1 (one partition) and keeps every valid agreement in a
Faust GlobalTable, so every worker in the group sees the whole register. Each new or changed agreement
is judged as it is applied (streams/worker/approvals.py); a record that is not a valid agreement, or
whose key is not its agreement id, becomes a dead letter.

The evaluate agent reads the register through `Register` (a read-only mapping). Before the first event
it waits for `wait_until_ready`: the register agent cannot be waited for, because Faust delivers every
topic's messages through one loop, and once the evaluate agent's queue is full (it is waiting) the
agreements behind the access messages are never delivered (seen: a 60 s stall, then events judged
against an empty register). So the records the agent has not applied yet are read directly from the
topic into an overlay that lookups consult until the agent has applied as far.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Literal

import faust
import structlog
from faust.types import TP
from pydantic import ValidationError

from schemas import Agreement, DeadLetterReason, Issue, MessageRef, issues_from_validation_error
from streams.metrics import Metrics
from streams.worker.approvals import ApprovalJudge
from streams.worker.processing import make_dead_letter

__all__ = ["Register", "valid_agreement"]

log = structlog.get_logger("gatewatch.worker")

#: Writes one output record: (topic, key, value).
Emit = Callable[[str, bytes | None, bytes], Awaitable[None]]


def valid_agreement(key: str, value: bytes | None) -> str | Literal[False] | None:
    """The JSON to keep for a register record: None for a tombstone, False if the agent would refuse it."""
    if value is None:
        return None
    try:
        agreement = Agreement.model_validate_json(value)
    except ValidationError:
        return False
    return value.decode("utf-8") if agreement.agreement_id == key else False


class Register(Mapping[str, str]):
    """Agreement id -> Agreement JSON: the GlobalTable, with directly read records in front until applied."""

    def __init__(
        self,
        table: Any,
        *,
        topic: str,
        consumer_config: Mapping[str, Any],
        judge: ApprovalJudge,
        metrics: Metrics,
        emit: Emit,
        deadletter_topic: str,
        dead_letter_max_bytes: int,
        wait_seconds: float,
    ) -> None:
        """`table` is the Faust GlobalTable[str, str]; `consumer_config` reads the topic directly."""
        self.table = table
        self.topic = topic
        self.ready = asyncio.Event()  # set once the evaluation may read the register (wait_until_ready)
        self._consumer_config = dict(consumer_config)
        self._judge = judge
        self._metrics = metrics
        self._emit = emit
        self._deadletter_topic = deadletter_topic
        self._dead_letter_max_bytes = dead_letter_max_bytes
        self._wait_seconds = wait_seconds
        self._position = 0  # next offset of the agreements partition the agent will apply
        self._overlay: dict[str, str | None] = {}  # agreement id -> JSON (None: withdrawn), read directly
        self._overlay_until = 0  # the overlay stands until the agent has applied up to this offset

    # The mapping the evaluation reads.

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return str(value)

    def get(self, key: str, default: Any = None) -> Any:
        if self._overlay and key in self._overlay:
            if self._position < self._overlay_until:
                value = self._overlay[key]
                return default if value is None else value
            self._overlay.clear()  # the agent has caught up: the table is the register again
        return self.table.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.table.keys()))

    def __len__(self) -> int:
        return len(self.table)

    # Before the first event.

    async def wait_until_ready(self, consumer: Any) -> None:
        """Make the agreements published so far visible to the evaluation; never raises, always sets `ready`."""
        tp = TP(self.topic, 0)
        try:
            if tp in consumer.assignment():  # this worker feeds the register
                end = (await consumer.highwaters(tp)).get(tp, 0)
                # Records below the group's committed offset were applied before a restart: the
                # GlobalTable has them from its changelog, and the agent starts after them.
                committed = consumer._committed_offset.get(tp) or 0  # noqa: SLF001 - Faust keeps no public view
                self._position = max(self._position, committed)
                applied, read_directly = self._position, 0
                if self._position < end:
                    read = await asyncio.wait_for(self._read_directly(self._position, end), self._wait_seconds)
                    for key, value in read:
                        if (agreement_json := valid_agreement(key, value)) is not False:
                            self._overlay[key] = agreement_json
                    self._overlay_until = end
                    read_directly = len(read)
                    log.info("register_read_directly", records=len(read), start=self._position, end=end)
                # Whichever way (the agent may have applied them all while the first event was on its way).
                log.info("register_ready", end=end, applied_by_agent=applied, read_directly=read_directly)
        except Exception:  # never block evaluation on this: the register agent still applies everything
            log.exception("register_wait_failed")
        self.ready.set()

    async def _read_directly(self, start: int, end: int) -> list[tuple[str, bytes | None]]:
        """(key, value) of the agreements records at offsets start..end-1, read with a throwaway consumer."""
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        ktp = TopicPartition(self.topic, 0)
        consumer = AIOKafkaConsumer(**self._consumer_config, group_id=None, enable_auto_commit=False)
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

    # The register agent.

    async def keep(self, stream: faust.StreamT[bytes]) -> None:
        """The agent's body: apply each record of the agreements topic, in order."""
        async for event in stream.events():
            msg = event.message
            await self.apply(msg)
            self._position = msg.offset + 1

    async def apply(self, msg: Any) -> None:
        """Validate one register record and apply it to the GlobalTable (tombstones withdraw)."""
        ref = MessageRef(topic=msg.topic, partition=msg.partition, offset=msg.offset)
        key = msg.key.decode("utf-8", "replace") if msg.key else None
        if msg.value is None:  # tombstone: the agreement is withdrawn from the register
            if key is not None and key in self.table:
                del self.table[key]
                log.info("agreement_removed", agreement_id=key)
            if key is not None:
                self._judge.withdrawn(key)
            return
        try:
            agreement = Agreement.model_validate_json(msg.value)
        except ValidationError as exc:
            await self._reject(msg.value, msg.key, ref, issues_from_validation_error(exc))
            return
        if key != agreement.agreement_id:
            # Never the values: the issue names the field only.
            mismatch = Issue(
                loc="agreement_id", type="key_mismatch", message="the record key differs from agreement_id"
            )
            await self._reject(msg.value, msg.key, ref, [mismatch])
            return
        self.table[agreement.agreement_id] = msg.value.decode("utf-8")
        log.info("agreement_loaded", agreement_id=agreement.agreement_id, status=agreement.status.value)
        if not self._judge.unchanged(agreement):  # re-published unchanged: judged already, no new page
            await self._judge.judge(agreement, ref)

    async def _reject(self, value: bytes, key: bytes | None, ref: MessageRef, issues: list[Issue]) -> None:
        self._metrics.dead_letters.labels("agreements", DeadLetterReason.SCHEMA_VIOLATION.value).inc()
        dead = make_dead_letter(
            value, key, ref, DeadLetterReason.SCHEMA_VIOLATION, issues, max_bytes=self._dead_letter_max_bytes
        )
        await self._emit(self._deadletter_topic, key, dead.model_dump_json().encode())
