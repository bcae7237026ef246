"""From one consumed message to exactly one decision (with its alerts) or one dead letter.

This is the agent's body without Faust: decode and validate once, look up the agreement, call the pure
engine, record metrics and log one line per violation. The Faust agent, `gatewatch check` and the tests
all go through `Processor.process`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError

from rules import Engine, PupilLookup, WindowState
from schemas import (
    MAX_BATCH_EVENTS,
    AccessEvent,
    AccessEventBatch,
    Agreement,
    Alert,
    DeadLetter,
    DeadLetterReason,
    Decision,
    Issue,
    MessageRef,
    OrgType,
    issues_from_validation_error,
)
from streams.metrics import NONE, Metrics

__all__ = [
    "BATCH_MARKER",
    "DEAD_LETTER_MAX_BYTES",
    "AgreementCache",
    "AgreementLookup",
    "Outcome",
    "Processor",
    "batch_items",
    "classify_invalid",
    "make_dead_letter",
    "without_bom",
]

log = structlog.get_logger("gatewatch.worker")

#: How a batch envelope is recognised cheaply before parsing (a single event has no `events` field).
BATCH_MARKER = b'"events"'

#: The largest dead letter (its JSON) by default: half of Kafka's default 1 MiB message limit, like the
#: worker's default producer batch (GATEWATCH_PRODUCER_BATCH_BYTES); the worker passes its own bound.
DEAD_LETTER_MAX_BYTES = 524_288

#: Given an agreement id, the agreement currently in the register (or None).
AgreementLookup = Callable[[str], Agreement | None]


@dataclass(slots=True)
class Outcome:
    """What one consumed message became: a decision (and its alerts) or a dead letter, never neither."""

    decision: Decision | None = None
    alerts: list[Alert] = field(default_factory=list)
    dead_letter: DeadLetter | None = None
    event: AccessEvent | None = None
    pupil_lookups: list[PupilLookup] = field(default_factory=list)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


#: A UTF-8 byte-order mark. RFC 8259 (8.1) forbids sending one but lets a parser ignore it; producers on
#: Windows (.NET's Encoding.UTF8, PowerShell) add it, so it is ignored rather than the event lost.
UTF8_BOM = b"\xef\xbb\xbf"


def without_bom(raw: bytes) -> bytes:
    """The message with a leading UTF-8 byte-order mark removed (the dead letter keeps the original)."""
    return raw[3:] if raw[:3] == UTF8_BOM else raw


class _NotJsonConstant(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJsonConstant(name)


def _has_non_json_constant(raw: bytes) -> bool:
    """True when the text uses NaN, Infinity or -Infinity, which the parser accepts but RFC 8259 does not."""
    if b"NaN" not in raw and b"Infinity" not in raw:
        return False
    try:
        json.loads(raw, parse_constant=_refuse_constant)
    except _NotJsonConstant:
        return True
    except (ValueError, RecursionError):
        return False
    return False


def classify_invalid(raw: bytes, exc: ValidationError) -> tuple[DeadLetterReason, list[Issue]]:
    """Name the reason a message failed validation, with issues that never echo the input."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0] if errors else None
    if first is not None and first["type"] != "json_invalid" and _has_non_json_constant(raw):
        return DeadLetterReason.NOT_JSON, [
            Issue(loc="$", message="NaN, Infinity and -Infinity are not JSON (RFC 8259)", type="not_json")
        ]
    if first is not None and first["type"] == "json_invalid":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as uexc:
            return DeadLetterReason.NOT_UTF8, [
                Issue(loc="$", message=f"not valid UTF-8 at byte {uexc.start}", type="not_utf8")
            ]
        msg = str(first.get("msg", "invalid JSON"))
        reason = DeadLetterReason.TOO_DEEP if "recursion" in msg.lower() else DeadLetterReason.NOT_JSON
        return reason, [Issue(loc="$", message=msg[:4096], type=reason.value)]
    if first is not None and first["type"] == "model_type" and tuple(first["loc"]) == ():
        return DeadLetterReason.NOT_AN_OBJECT, [
            Issue(loc="$", message="an event must be a JSON object", type="not_an_object")
        ]
    issues = issues_from_validation_error(exc)
    if any(e["type"] == "literal_error" and tuple(e["loc"]) == ("schema_version",) for e in errors):
        return DeadLetterReason.UNSUPPORTED_VERSION, issues
    return DeadLetterReason.SCHEMA_VIOLATION, issues


class Processor:
    """Evaluates consumed access messages. One instance per worker; not thread-safe."""

    def __init__(
        self,
        engine: Engine,
        agreements: AgreementLookup,
        metrics: Metrics | None = None,
        *,
        max_message_bytes: int = 1_048_576,
        max_future_skew: dt.timedelta = dt.timedelta(minutes=5),
        clock: Callable[[], dt.datetime] = _utcnow,
        dead_letter_max_bytes: int = DEAD_LETTER_MAX_BYTES,
        track_positions: bool = False,
    ) -> None:
        self.engine = engine
        self.dead_letter_max_bytes = dead_letter_max_bytes
        #: Record each event's source position in the window entries it updates (the worker: after a
        #: crash an entry skips the events it has already applied, rules/windows.py).
        self.track_positions = track_positions
        self.agreements = agreements
        self.metrics = metrics
        self.max_message_bytes = max_message_bytes
        self.max_future_skew = max_future_skew
        self.clock = clock
        self._profile_cache: dict[tuple[str, ...], tuple[str, str]] = {}
        self._bound: dict[tuple[Any, ...], tuple[Any, Any]] = {}  # metric children per label combination
        self._bound_records: dict[tuple[Any, ...], tuple[Any, Any]] = {}

    def process(
        self,
        value: bytes | None,
        key: bytes | None,
        source: MessageRef,
        *,
        state: WindowState | None = None,
        pupil_state: WindowState | None = None,
    ) -> Outcome:
        """Decode, validate and evaluate one single-event message.

        `state` holds the windowed state of the message's partition; `pupil_state` is given only when
        one process sees every event (offline), otherwise cross-recipient look-ups are returned in
        `Outcome.pupil_lookups` for the worker to re-partition by pupil.
        """
        started = time.perf_counter()
        raw = value if value is not None else b""
        now = self.clock()
        if len(raw) > self.max_message_bytes:
            return self._too_large(raw, key, source, now)
        body = without_bom(raw)
        try:
            event = AccessEvent.model_validate_json(body)
        except ValidationError as exc:
            reason, issues = classify_invalid(body, exc)
            return self._dead(raw, key, source, now, reason, issues)
        return self._evaluate(event, raw, key, source, now, state, pupil_state, started)

    def process_message(
        self,
        value: bytes | None,
        key: bytes | None,
        source: MessageRef,
        *,
        state: WindowState | None = None,
        pupil_state: WindowState | None = None,
    ) -> list[Outcome]:
        """One outcome per event: a message is a single event or an AccessEventBatch of one recipient's events.

        A batch that fails validation as a whole is split: each valid event is still evaluated, each
        invalid one becomes its own dead letter (its bytes, the message's position and its index), so one
        bad event never costs the others.
        """
        raw = value if value is not None else b""
        if BATCH_MARKER not in raw[:256]:
            return [self.process(raw, key, source, state=state, pupil_state=pupil_state)]
        started = time.perf_counter()
        now = self.clock()
        if len(raw) > self.max_message_bytes:
            return [self._too_large(raw, key, source, now)]
        try:
            batch = AccessEventBatch.model_validate_json(without_bom(raw))
        except ValidationError:
            items = batch_items(raw)
            if items is None:  # not a batch after all: judge it as a single event (it will dead-letter)
                return [self.process(raw, key, source, state=state, pupil_state=pupil_state)]
            return self._process_items(items, key, source, now, state, pupil_state)
        recipients = {event.recipient.org_id for event in batch.events}
        if len(recipients) > 1:
            return [
                self._dead(
                    raw,
                    key,
                    source,
                    now,
                    DeadLetterReason.SCHEMA_VIOLATION,
                    [
                        Issue(
                            loc="events",
                            type="mixed_recipients",
                            message=f"a batch must carry one recipient's events; found {len(recipients)} recipients",
                        )
                    ],
                )
            ]
        return [
            self._evaluate(
                event,
                None,
                key,
                source.model_copy(update={"index": i}),
                now,
                state,
                pupil_state,
                started if i == 0 else time.perf_counter(),
            )
            for i, event in enumerate(batch.events)
        ]

    def _process_items(
        self,
        items: list[Any],
        key: bytes | None,
        source: MessageRef,
        now: dt.datetime,
        state: WindowState | None,
        pupil_state: WindowState | None,
    ) -> list[Outcome]:
        outcomes = []
        for i, item in enumerate(items):
            item_raw = json.dumps(item, separators=(",", ":")).encode()
            ref = source.model_copy(update={"index": i})
            try:
                event = AccessEvent.model_validate_json(item_raw)
            except ValidationError as exc:
                reason, issues = classify_invalid(item_raw, exc)
                outcomes.append(self._dead(item_raw, key, ref, now, reason, issues))
                continue
            outcomes.append(self._evaluate(event, item_raw, key, ref, now, state, pupil_state, time.perf_counter()))
        return outcomes

    def _too_large(self, raw: bytes, key: bytes | None, source: MessageRef, now: dt.datetime) -> Outcome:
        return self._dead(
            raw,
            key,
            source,
            now,
            DeadLetterReason.TOO_LARGE,
            [
                Issue(
                    loc="$",
                    type="too_large",
                    message=f"message is {len(raw)} bytes, over the limit of {self.max_message_bytes}",
                )
            ],
        )

    def _evaluate(
        self,
        event: AccessEvent,
        raw: bytes | None,
        key: bytes | None,
        source: MessageRef,
        now: dt.datetime,
        state: WindowState | None,
        pupil_state: WindowState | None,
        started: float,
    ) -> Outcome:
        if event.occurred_at - now > self.max_future_skew:
            return self._dead(
                raw if raw is not None else event.model_dump_json(exclude_none=True).encode(),
                key,
                source,
                now,
                DeadLetterReason.FUTURE_TIMESTAMP,
                [
                    Issue(
                        loc="occurred_at",
                        type="future_timestamp",
                        message=f"event time is more than {self.max_future_skew} ahead of the worker's clock",
                    )
                ],
            )
        agreement = self.agreements(event.agreement_id) if event.agreement_id else None
        event_time = event.occurred_at.timestamp()
        if state is not None:
            if self.track_positions:
                state.at = (source.partition, source.offset, source.index or 0)
            state.advance(event_time)
        if pupil_state is not None:
            pupil_state.advance(event_time)
        evaluation = self.engine.run(
            event, agreement, state=state, pupil_state=pupil_state, evaluated_at=now, source=source
        )
        decision, alerts, lookups = evaluation.decision, evaluation.alerts, evaluation.lookups
        if self.metrics is not None:
            self._count(event, decision, alerts, time.perf_counter() - started)
        for v in decision.violations:
            log.warning(
                "violation",
                event_id=event.event_id,
                rule_id=v.rule_id,
                category=v.category.value,
                severity=v.severity.value,
                recipient_org_id=event.recipient.org_id,
                agreement_id=event.agreement_id,
            )
        for err in decision.errors:
            log.error("engine_error", event_id=event.event_id, loc=err.loc, message=err.message)
        return Outcome(decision=decision, alerts=alerts, event=event, pupil_lookups=lookups)

    def _profile(self, fields: tuple[str, ...]) -> tuple[str, str]:
        """(most sensitive tier, "true" if any special-category field) of a field list, as labels.

        Tier 1 is the most sensitive. Field lists repeat, so the answer is cached (bounded).
        """
        profile = self._profile_cache.get(fields)
        if profile is None:
            known = self.engine.catalogue.fields
            entries = [entry for f in fields if (entry := known.get(f)) is not None]
            tiers = [e.tier for e in entries if e.tier is not None]
            special = any(e.special_category for e in entries)
            profile = (str(min(tiers)) if tiers else NONE, "true" if special else "false")
            if len(self._profile_cache) < 4096:
                self._profile_cache[fields] = profile
        return profile

    def _count(self, event: AccessEvent, decision: Decision, alerts: list[Alert], seconds: float) -> None:
        m = self.metrics
        assert m is not None
        # Label values are bounded (enums, catalogue codes or "other"), so the bound children are
        # cached per label combination: `labels()` costs microseconds on every call.
        org_type = event.recipient.org_type
        key = (event.action, org_type, m.gateway(event.legal_gateway), m.purpose(event.purpose), decision.verdict)
        bound = self._bound.get(key)
        if bound is None:
            action, _, gateway, purpose, verdict = key
            bound = self._bound[key] = (
                m.events.labels(action.value, org_type.value, gateway, purpose, verdict.value),
                m.decisions.labels(verdict.value),
            )
        bound[0].inc()
        bound[1].inc()
        if event.record_count:
            tier, special = self._profile(event.fields)
            rkey = (org_type, key[2], key[3], tier, event.channel, special)
            records = self._bound_records.get(rkey)
            if records is None:
                records = self._bound_records[rkey] = (
                    m.records.labels(org_type.value, key[2], key[3], tier),
                    m.records_by_channel.labels(event.channel.value, tier, special),
                )
            records[0].inc(event.record_count)
            records[1].inc(event.record_count)
            if org_type is OrgType.HOME_OFFICE:
                m.home_office_persons.inc(event.record_count)
        for alert in alerts:
            if alert.count == 1:  # a windowed alert re-sent with a higher count is an update, not a new alert
                m.alerts.labels(alert.rule_id, alert.category.value, alert.severity.value).inc()
        for err in decision.errors:
            if err.type == "engine_error":
                m.engine_errors.labels(err.loc.removeprefix("rules.")).inc()
        m.evaluation_seconds.observe(seconds)
        m.last_event_timestamp.set(time.time())

    def _dead(
        self,
        raw: bytes,
        key: bytes | None,
        source: MessageRef,
        now: dt.datetime,
        reason: DeadLetterReason,
        issues: list[Issue],
    ) -> Outcome:
        if self.metrics is not None:
            self.metrics.dead_letters.labels("access", reason.value).inc()
        return Outcome(
            dead_letter=make_dead_letter(raw, key, source, reason, issues, now, max_bytes=self.dead_letter_max_bytes)
        )


def make_dead_letter(
    raw: bytes | None,
    key: bytes | None,
    source: MessageRef,
    reason: DeadLetterReason,
    issues: list[Issue],
    now: dt.datetime | None = None,
    *,
    max_bytes: int = DEAD_LETTER_MAX_BYTES,
) -> DeadLetter:
    """The dead letter for a message: original bytes, where it came from, why. Logged, never dropped.

    Its JSON never exceeds `max_bytes`: a broker refuses a record over its limit, the failed send blocks
    the offset commit, and one oversized message would stop its partition for good. What does not fit
    is cut from the end of the value, with the whole value's length and sha256 kept (`truncated`).
    """
    log.warning(
        "dead_letter",
        topic=source.topic,
        partition=source.partition,
        offset=source.offset,
        reason=reason.value,
        errors=[f"{i.loc}: {i.message}" for i in issues[:5]],
    )
    value = raw or b""
    dead = DeadLetter(
        source=source,
        key_b64=base64.b64encode(key).decode("ascii") if key is not None else None,
        value_b64=base64.b64encode(value).decode("ascii"),
        reason=reason,
        errors=tuple(issues[:64]),
        received_at=now or _utcnow(),
    )
    size = len(dead.model_dump_json())
    if size <= max_bytes:
        return dead
    # The fields added below take under 200 bytes; base64 turns 3 bytes into 4.
    room = max_bytes - (size - len(dead.value_b64)) - 200
    keep = max(0, room) // 4 * 3
    return dead.model_copy(
        update={
            "value_b64": base64.b64encode(value[:keep]).decode("ascii"),
            "truncated": True,
            "value_length": len(value),
            "value_sha256": hashlib.sha256(value).hexdigest(),
        }
    )


def batch_items(raw: bytes) -> list[Any] | None:
    """The `events` list of something shaped like a batch envelope, or None if it is not one."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or set(doc) != {"schema_version", "events"} or doc["schema_version"] != "1":
        return None
    events = doc["events"]
    if not isinstance(events, list) or not 0 < len(events) <= MAX_BATCH_EVENTS:
        return None
    return events


class AgreementCache:
    """Parses register entries once: maps agreement id -> Agreement, re-parsing only when the JSON changes."""

    def __init__(self, source: Mapping[str, str]) -> None:
        self._source = source
        self._parsed: dict[str, tuple[str, Agreement]] = {}

    def __call__(self, agreement_id: str) -> Agreement | None:
        raw = self._source.get(agreement_id)
        if raw is None:
            return None
        hit = self._parsed.get(agreement_id)
        if hit is not None and hit[0] == raw:
            return hit[1]
        agreement = Agreement.model_validate_json(raw)
        self._parsed[agreement_id] = (raw, agreement)
        return agreement
