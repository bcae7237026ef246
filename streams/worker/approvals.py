"""Approvals judged live: the worker's register agent hands each agreement it applies to an ApprovalJudge.

A new or changed agreement is judged by the rule pack's agreement rules at the clock's time: one
AgreementDecision on npd.agreement-decisions.v1 (one partition, its own hash chain) and one alert per
finding. An agreement re-published unchanged (the content hash judged last for its id) is not judged
again, so it pages nobody; the alert ids come from the agreement's content and the rule, so the
governance sweep refreshes the same alerts rather than raising new ones.

The content hash judged per agreement lives in a one-partition table whose changelog records are
written when the offsets are committed (streams/worker/tables.py). What is on the topic decides the
rest, as for the share decisions (streams/worker/exactly_once.py): before its first judgement the judge
reads the last agreement decision, so after a crash or a take-over the register records whose
decisions are already there are not judged again (no second decision, no second page), and the chain
continues from the last link actually on the topic. An agreement decision is sent only after its
alerts are acknowledged (it is one of the outbox's last topics), so a decision on the topic means its
alerts are there too; the alerts a kill left ahead of a record's decision are found around the last
decision's time and not sent again when that record is judged again.

The gauge of agreements by finding category is kept per content hash and UK date, so an unchanged
register costs nothing to re-count.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

from rules import Engine
from rules.facts import LONDON
from schemas import Agreement, MessageRef, agreement_sha256
from schemas.ledger import LedgerState, link_json
from schemas.vocab import Category
from streams.metrics import Metrics
from streams.worker.exactly_once import JudgedTail
from streams.worker.tables import WriteBehind

__all__ = ["ApprovalJudge", "FindingsGauge"]

log = structlog.get_logger("gatewatch.approvals")

#: The agreement decisions topic has one partition: the register's, in the register's order.
DECISIONS_PARTITION = 0
_TAIL_KEY = "0"
_JUDGED = "judged:"  # + agreement id -> the content hash last judged

Emit = Callable[[str, bytes | None, bytes, int | None], Awaitable[None]]


class ApprovalJudge:
    """Judges agreements as the register agent applies them; writes decisions and alerts through `emit`."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        metrics: Metrics,
        emit: Emit,
        ledger: WriteBehind,
        *,
        decisions_topic: str,
        alerts_topic: str,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        read_judged: Callable[[], Awaitable[JudgedTail]] | None = None,
    ) -> None:
        """`read_judged` reads what the agreement decisions topic holds (streams/worker/exactly_once.py);
        without it every record the agent applies is judged (at least once)."""
        self._engine = engine
        self._read_judged = read_judged
        self._judged: JudgedTail | None = None
        self._metrics = metrics
        self._emit = emit
        self._ledger = ledger
        self._decisions_topic = decisions_topic
        self._alerts_topic = alerts_topic
        self._clock = clock
        self._counted: set[str] = set()

    def first_count(self, alert_id: str) -> bool:
        """True the first time an agreement alert id is counted in gatewatch_alerts_total (here or by the sweep)."""
        if alert_id in self._counted:
            return False
        self._counted.add(alert_id)
        return True

    def unchanged(self, agreement: Agreement) -> bool:
        """True when this version of the agreement (its content, whatever the spacing or key order) was judged last."""
        return bool(self._ledger.get(_JUDGED + agreement.agreement_id) == agreement_sha256(agreement))

    def withdrawn(self, agreement_id: str) -> None:
        """A tombstone: the agreement left the register; if it comes back, even unchanged, it is judged again."""
        if self._ledger.get(_JUDGED + agreement_id) is not None:
            self._ledger.delete(_JUDGED + agreement_id, DECISIONS_PARTITION)

    def forget(self) -> None:
        """The register's partition went to another worker: read the topic again before the next judgement."""
        self._judged = None

    async def _resume(self) -> JudgedTail | None:
        if self._read_judged is None:
            return None
        if self._judged is None:
            self._judged = await self._read_judged()
            if self._judged.ledger.seq > 0:  # the topic's tail, whatever the table's changelog kept
                tail = {"seq": self._judged.ledger.seq, "last_hash": self._judged.ledger.last_hash}
                self._ledger.set(_TAIL_KEY, tail, DECISIONS_PARTITION)
            log.info("register_resumed", last_judged=self._judged.applied, ledger_seq=self._judged.ledger.seq)
        return self._judged

    async def judge(self, agreement: Agreement, source: MessageRef) -> None:
        """Judge one new or changed agreement: its decision, chained, and one alert per finding."""
        judged = await self._resume()
        if judged is not None and judged.applied is not None and source.offset <= judged.applied:
            # Judged before a crash or a take-over: its decision and alerts are on the topics.
            self._ledger.set(_JUDGED + agreement.agreement_id, agreement_sha256(agreement), DECISIONS_PARTITION)
            return
        now = self._clock()
        evaluation = self._engine().judge_agreement(agreement, now, evaluated_at=now, source=source)
        tail = self._ledger.get(_TAIL_KEY)
        state = LedgerState(seq=tail["seq"], last_hash=tail["last_hash"]) if tail else LedgerState()
        wire, state = link_json(evaluation.decision, DECISIONS_PARTITION, state)
        self._ledger.set(_TAIL_KEY, {"seq": state.seq, "last_hash": state.last_hash}, DECISIONS_PARTITION)
        self._ledger.set(_JUDGED + agreement.agreement_id, evaluation.decision.agreement_sha256, DECISIONS_PARTITION)
        key = agreement.agreement_id.encode()
        await self._emit(self._decisions_topic, key, wire, DECISIONS_PARTITION)
        self._metrics.agreement_decisions.labels(evaluation.decision.verdict.value).inc()
        for alert in evaluation.alerts:
            if self.first_count(alert.alert_id):
                self._metrics.alerts.labels(alert.rule_id, alert.category.value, alert.severity.value).inc()
            if judged is not None and (alert.alert_id, alert.count) in judged.alerts:
                # Sent before a kill that came ahead of this record's decision. Once only: the same
                # agreement withdrawn and published again later is a new approval, paged again.
                judged.alerts.discard((alert.alert_id, alert.count))
                continue
            await self._emit(self._alerts_topic, alert.alert_id.encode(), alert.model_dump_json().encode(), None)
        log.info(
            "agreement_judged",
            agreement_id=agreement.agreement_id,
            findings=[v.rule_id for v in evaluation.decision.violations],
        )


class FindingsGauge:
    """Sets `gatewatch_agreement_findings{category}`: the register's agreements with a finding of each category.

    Judged at the clock's UK date; each agreement version's categories are remembered for that date, so a
    refresh re-judges only what changed (and everything once a day, for the time-dependent rules).
    """

    def __init__(self, metrics: Metrics, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self._metrics = metrics
        self._clock = clock
        self._day: dt.date | None = None
        self._engine: Engine | None = None
        self._memo: dict[tuple[str, str], frozenset[str]] = {}

    def refresh(self, engine: Engine, agreements: Iterable[Agreement]) -> Counter[str]:
        """Count and publish; returns the counts by category (for tests and logs)."""
        now = self._clock()
        day = now.astimezone(LONDON).date()
        if day != self._day or engine is not self._engine:
            self._day, self._engine, self._memo = day, engine, {}
        counts: Counter[str] = Counter()
        seen: set[tuple[str, str]] = set()
        for agreement in agreements:
            key = (agreement.agreement_id, agreement_sha256(agreement))
            categories = self._memo.get(key)
            if categories is None:
                decision = engine.judge_agreement(agreement, now, evaluated_at=now).decision
                categories = self._memo[key] = frozenset(v.category.value for v in decision.violations)
            seen.add(key)
            counts.update(categories)
        for stale in set(self._memo) - seen:
            del self._memo[stale]
        for category in Category:
            self._metrics.agreement_findings.labels(category.value).set(counts.get(category.value, 0))
        return counts


def agreements_in(register: Any, lookup: Callable[[str], Agreement | None]) -> list[Agreement]:
    """The valid agreements of a register table, through the processor's cached lookup."""
    return [a for k in list(register.keys()) if (a := lookup(k)) is not None]
