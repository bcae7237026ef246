"""`gatewatch check`: evaluate a JSONL file of events offline, in file order, with the live engine.

Windowed rules run too, over the file's events in order, through the offline loop (rules/offline.py):
the file is partition 0, per-pupil rules run inline, and each event advances the windows' watermark to
its own event time.
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
from schemas import AccessEvent, Agreement, Alert, Decision, Issue, MessageRef
from streams.worker.processing import classify_invalid, without_bom

__all__ = ["check_lines", "check_outcomes"]


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
    """Each input line's decision with the alerts it raised (per-pupil ones included), in order.

    `lateness` and the engine's pupil key should be the worker's (streams/worker/engine_setup.py), or windowed alert
    ids and counts can differ from the live ones.
    """
    offline = OfflineRun(engine, agreements, lateness=lateness)
    for number, line in enumerate(lines, start=1):
        raw = without_bom(line.rstrip(b"\r\n"))  # as the worker does (streams/worker/processing.py)
        ref = MessageRef(topic=f"file:{Path(source).name or '-'}"[:256], partition=0, offset=number - 1)
        now = dt.datetime.now(dt.UTC)
        try:
            event = AccessEvent.model_validate_json(raw)
        except ValidationError as exc:
            reason, issues = classify_invalid(raw, exc)
            issues = [Issue(loc="$", message=f"line {number}: {reason.value}", type=reason.value), *issues]
            yield engine.invalid(issues, event_id=_event_id_of(raw), evaluated_at=now, source=ref), []
            continue
        evaluation = offline.evaluate(event, evaluated_at=now, source=ref)
        yield evaluation.decision, evaluation.alerts
