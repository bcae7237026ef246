"""The worker's outgoing records and the gate every offset commit passes.

Two outboxes share Faust's aiokafka producer (streams/worker/outbox.py): `records` carries what the
agents write (decisions, alerts, dead letters, pupil look-ups, agreement decisions), `changelogs`
carries the write-behind tables' changelog records (streams/worker/tables.py). Before Faust commits
offsets (streams/_compat/commit_hook.py):

1. `snapshot` takes the buffered table writes of exactly the events the offsets cover;
2. `before_commit` sends the records and waits for the broker to acknowledge them, then the
   changelogs, so no window entry is on its changelog before the outputs of the event that made it;
3. after any send the broker did not acknowledge, `before_commit` raises and nothing is committed:
   after a restart the events since the last commit are processed again, and the outputs already on
   the topics are not written twice (streams/worker/exactly_once.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from streams.worker.outbox import Outbox
from streams.worker.tables import WriteBehind

__all__ = ["Outputs", "SendFailed"]

log = structlog.get_logger("gatewatch.worker")


class SendFailed(RuntimeError):
    """A record the broker did not acknowledge: nothing may be committed past it."""


class Outputs:
    """The records outbox, the changelogs outbox, the write-behind tables, and the commit gate over them."""

    def __init__(self, producer: Any, *, last_topics: frozenset[str], linger: float) -> None:
        """`producer` is Faust's producer (it starts its aiokafka producer late, hence the lazy lookups).

        Records of `last_topics` (the decisions, which mark their events done) go out only after the
        records queued before them are acknowledged.
        """
        self._producer = producer
        self.failures: list[str] = []  # every unacknowledged send, in order; any one stops every commit
        self.records = Outbox(self._aiokafka, linger=linger, on_delivered=self._delivered, last_topics=last_topics)
        self.changelogs = Outbox(self._aiokafka, on_delivered=self._delivered)
        self._tables: list[WriteBehind] = []

    def _aiokafka(self) -> Any:
        return self._producer._ensure_producer()  # noqa: SLF001 - Faust starts it on its first use

    def _delivered(self, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and (exc := fut.exception()) is not None:
            self.failures.append(f"{type(exc).__name__}: {exc}")

    def table(self, table: Any, *, with_records: bool = False) -> WriteBehind:
        """A write-behind view of a Faust table whose dirty keys `snapshot` flushes.

        Its changelog records go with the changelogs (after the outputs they cover), or, `with_records`,
        in the records outbox (the agreement ledger, whose chain tail travels with its decisions).
        """
        buffered = WriteBehind(table, self.records.put if with_records else self.changelogs.put)
        self._tables.append(buffered)
        return buffered

    def snapshot(self) -> None:
        """Runs as Faust reads the offsets to commit: the buffered table writes of exactly those events."""
        for table in self._tables:
            table.flush()

    async def before_commit(self) -> None:
        """Runs before every offset commit: outputs out and acknowledged, then the changelogs, then commit."""
        for queue in (self.records, self.changelogs):
            await queue.send(everything=True)
            await self._producer.flush()
            if self.failures:
                log.error("send_failed", failures=len(self.failures), first=self.failures[0])
                raise SendFailed(f"{len(self.failures)} sends were not acknowledged; not committing")

    async def flush_all(self) -> None:
        """Everything processed so far out and acknowledged, whether or not Faust commits now (revocation)."""
        self.snapshot()
        await self.before_commit()

    async def send_outputs(self) -> None:
        """A Faust task: sends what the agents queued once it has waited the linger (agents also send when due)."""
        while True:
            await asyncio.sleep(self.records.linger)
            if self.records.due():
                try:
                    await self.records.send()
                except Exception as exc:  # the commit gate sees the failure; nothing is committed past it
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    log.exception("outbox_send_failed")
