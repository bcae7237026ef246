"""`gatewatch check`: evaluate a JSONL file of events offline, in file order, with the live engine.

Windowed rules run too, over the file's events in order, through the offline loop (rules/offline.py):
the file is partition 0, per-pupil rules run inline, and each event advances the windows' watermark to
its own event time. A line may hold one event or an AccessEventBatch, as a message on the access topic
may: each event of a batch gets its own decision, its place in the batch in `source.index`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from rules import Engine, OfflineRun
from rules.windows import DEFAULT_LATENESS
from schemas import AccessEvent, AccessEventBatch, Agreement, Alert, Decision, Issue, MessageRef
from streams.worker.processing import BATCH_MARKER, batch_items, classify_invalid, without_bom

__all__ = ["check_lines", "check_outcomes", "document_hint"]


def _event_id_of(raw: bytes) -> str | None:
    """Best effort: the event_id of an invalid line, if it has a usable one (for the reader's sake)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    value = data.get("event_id") if isinstance(data, dict) else None
    if isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable() and " " not in value:
        return value
    return None


def check_lines(
    lines: IO[bytes],
    engine: Engine,
    agreements: Sequence[Agreement],
    *,
    source: str = "-",
    lateness: dt.timedelta = DEFAULT_LATENESS,
) -> Iterator[Decision]:
    """One decision per input line (blank lines included, as invalid), in order."""
    for decision, _ in check_outcomes(lines, engine, agreements, source=source, lateness=lateness):
        yield decision


def check_outcomes(
    lines: IO[bytes],
    engine: Engine,
    agreements: Sequence[Agreement],
    *,
    source: str = "-",
    lateness: dt.timedelta = DEFAULT_LATENESS,
) -> Iterator[tuple[Decision, list[Alert]]]:
    """Each input event's decision with the alerts it raised (per-pupil ones included), in order.

    One decision per line, or one per event of a batch line. `lateness` and the engine's pupil key should
    be the worker's (streams/worker/engine_setup.py), or windowed alert ids and counts can differ from the
    live ones.
    """
    offline = OfflineRun(engine, agreements, lateness=lateness)
    for number, line in enumerate(lines, start=1):
        raw = without_bom(line.rstrip(b"\r\n"))  # as the worker does (streams/worker/processing.py)
        ref = MessageRef(topic=f"file:{Path(source).name or '-'}"[:256], partition=0, offset=number - 1)
        for item in _line_events(raw, number, ref):
            now = dt.datetime.now(dt.UTC)
            if isinstance(item, _Invalid):
                yield engine.invalid(item.issues, event_id=item.event_id, evaluated_at=now, source=item.ref), []
                continue
            event, event_ref = item
            evaluation = offline.evaluate(event, evaluated_at=now, source=event_ref)
            yield evaluation.decision, evaluation.alerts


class _Invalid:
    """A line, or an event of a batch line, that is not a valid event: its issues and where it was."""

    __slots__ = ("event_id", "issues", "ref")

    def __init__(self, issues: list[Issue], event_id: str | None, ref: MessageRef) -> None:
        self.issues, self.event_id, self.ref = issues, event_id, ref


def _invalid(raw: bytes, exc: ValidationError, where: str, ref: MessageRef) -> _Invalid:
    reason, issues = classify_invalid(raw, exc)
    return _Invalid(
        [Issue(loc="$", message=f"{where}: {reason.value}", type=reason.value), *issues], _event_id_of(raw), ref
    )


def _line_events(raw: bytes, number: int, ref: MessageRef) -> Iterator[_Invalid | tuple[AccessEvent, MessageRef]]:
    """The events of one line: a single event, or each event of a batch as the worker splits it."""
    where = f"line {number}"
    if BATCH_MARKER in raw[:256]:
        try:
            batch = AccessEventBatch.model_validate_json(raw)
        except ValidationError:
            items = batch_items(raw)
            if items is not None:  # a batch with bad events: each judged on its own, as the worker does
                for index, item in enumerate(items):
                    item_raw = json.dumps(item, separators=(",", ":")).encode()
                    item_ref = ref.model_copy(update={"index": index})
                    try:
                        yield AccessEvent.model_validate_json(item_raw), item_ref
                    except ValidationError as exc:
                        yield _invalid(item_raw, exc, f"{where}, event {index}", item_ref)
                return
        else:
            if len({e.recipient.org_id for e in batch.events}) > 1:  # the worker dead-letters it whole
                issue = Issue(
                    loc="events", type="mixed_recipients", message="a batch must carry one recipient's events"
                )
                yield _Invalid(
                    [Issue(loc="$", message=f"{where}: schema_violation", type="schema_violation"), issue], None, ref
                )
                return
            for index, event in enumerate(batch.events):
                yield event, ref.model_copy(update={"index": index})
            return
    try:
        yield AccessEvent.model_validate_json(raw), ref
    except ValidationError as exc:
        yield _invalid(raw, exc, where, ref)


def document_hint(first_line: bytes) -> str | None:
    """What to do when an events file is a JSON document rather than JSON lines (None when it is not one).

    A line that starts with `[` is never an event (an event is an object), and a lone `{` is the start
    of an object printed over several lines: either way the file was written as one JSON document.
    """
    text = without_bom(first_line).strip()
    if text.startswith(b"["):
        return "is one JSON document (a list), not JSON lines; write one event per line, e.g. jq -c '.[]' FILE"
    if text == b"{":
        return "is one JSON object over several lines, not JSON lines; write one event per line, e.g. jq -c . FILE"
    return None
