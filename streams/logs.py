"""structlog set-up: JSON lines (console rendering on a TTY), with pupil references redacted."""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

__all__ = ["REDACTED_KEYS", "configure_logging", "redact"]

#: Keys whose values never reach a log line, wherever they appear in an event dict.
REDACTED_KEYS = frozenset({"pupil_refs", "pupil_ref", "password", "sasl_password", "secret", "hmac_key"})


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: replace the value of any sensitive key with a marker."""
    for key in REDACTED_KEYS.intersection(event_dict):
        event_dict[key] = "[redacted]"
    return event_dict


class _Timestamp:
    """structlog processor: `timestamp` as ISO 8601 UTC with microseconds, like structlog's TimeStamper
    (`fmt="iso", utc=True`) but formatting the date and time once per second: the worker logs every
    violation, and the datetime formatting was a fifth of each line's cost."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        event_dict["timestamp"] = f"{self._prefix}.{int((now - second) * 1e6):06d}Z"
        return event_dict


def _json(obj: Any, **_: Any) -> str:
    # orjson: a third of the stdlib encoder's cost; `default=str` keeps structlog's fallback for
    # values JSON has no form for.
    return orjson.dumps(obj, default=str).decode()


class _Stderr:
    """Whatever `sys.stderr` is at the time of writing (a test harness or daemon may replace it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    """Configure structlog once at start-up; JSON unless stderr is a terminal (or `json` says)."""
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer: Any = structlog.processors.JSONRenderer(serializer=_json) if use_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _Timestamp(),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
