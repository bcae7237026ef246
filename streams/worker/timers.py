"""Faust timer bodies that survive a broker outage quietly: one log line and a metric, not a traceback a tick.

An exception in a Faust timer crashes the app, so every timer body is guarded. During a broker freeze
the lag timer's offsets query timed out on every tick (a `KafkaTimeoutError` traceback every 5 s);
now the first failure of a run of failures logs one `timer_failing` line, each failure counts in
`gatewatch_timer_failures_total`, and the first success after them logs `timer_recovered`. An error
that is not a broker or network error (a bug) keeps its traceback, once per run of failures.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

__all__ = ["TimerGuard", "is_transient"]

log = structlog.get_logger("gatewatch.worker")

TimerBody = Callable[[], Awaitable[None]]


def is_transient(exc: BaseException) -> bool:
    """True for the errors a broker outage causes: Kafka client errors, timeouts, connection failures."""
    from aiokafka.errors import KafkaError as AIOKafkaError
    from kafka.errors import KafkaError

    return isinstance(exc, KafkaError | AIOKafkaError | TimeoutError | asyncio.TimeoutError | OSError)


def _describe(exc: BaseException) -> str:
    text, kind = str(exc), type(exc).__name__
    if not text or text.startswith(kind):  # Kafka errors name themselves; a timeout may say nothing more
        return (text or kind)[:500]
    return f"{kind}: {text}"[:500]


class TimerGuard:
    """Decorator for timer bodies: a failure is counted and logged once per run of failures, never raised."""

    def __init__(self, failures: Any) -> None:
        self.failures = failures  # a prometheus Counter labelled by timer
        self.failing: dict[str, int] = {}

    def __call__(self, fn: TimerBody) -> TimerBody:
        name = fn.__name__
        self.failures.labels(name)  # the series exists at 0 from the start

        @functools.wraps(fn)
        async def run() -> None:
            try:
                await fn()
            except Exception as exc:
                self.failures.labels(name).inc()
                streak = self.failing[name] = self.failing.get(name, 0) + 1
                if streak == 1:
                    log.warning(
                        "timer_failing",
                        timer=name,
                        error=_describe(exc),
                        exc_info=not is_transient(exc),
                    )
                return
            streak = self.failing.pop(name, 0)
            if streak:
                log.info("timer_recovered", timer=name, failed_ticks=streak)

        return run
