"""A worker timer that fails during a broker outage logs one line and counts, instead of a traceback a tick."""

from __future__ import annotations

import asyncio

import pytest
from kafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from streams.metrics import Metrics
from streams.worker.timers import TimerGuard, is_transient


def _guard() -> tuple[TimerGuard, CollectorRegistry]:
    registry = CollectorRegistry()
    return TimerGuard(Metrics(registry).timer_failures), registry


def _ticks(body: object, n: int) -> None:
    async def run() -> None:
        for _ in range(n):
            await body()  # type: ignore[operator]

    asyncio.run(run())


def test_an_outage_gives_one_line_when_it_starts_one_when_it_ends_and_a_count_per_tick() -> None:
    guard, registry = _guard()
    outcomes = [KafkaTimeoutError("Timeout waiting for offsets")] * 12 + [None, None]

    @guard
    async def refresh_lag() -> None:
        error = outcomes.pop(0)
        if error is not None:
            raise error

    with capture_logs() as logs:
        _ticks(refresh_lag, 14)
    assert [
        ("timer_failing", "refresh_lag", False),
        ("timer_recovered", "refresh_lag", None),
    ] == [(e["event"], e["timer"], e.get("exc_info")) for e in logs]
    assert "KafkaTimeoutError: Timeout waiting for offsets" == logs[0]["error"]
    assert 12 == logs[1]["failed_ticks"]
    assert 12.0 == registry.get_sample_value("gatewatch_timer_failures_total", {"timer": "refresh_lag"})


def test_a_bug_keeps_its_traceback_once_and_never_stops_the_worker() -> None:
    guard, registry = _guard()

    @guard
    async def refresh_state_gauge() -> None:
        raise KeyError("not an outage")

    with capture_logs() as logs:
        _ticks(refresh_state_gauge, 3)
    assert [("timer_failing", True)] == [(e["event"], e["exc_info"]) for e in logs]
    assert 3.0 == registry.get_sample_value("gatewatch_timer_failures_total", {"timer": "refresh_state_gauge"})


def test_each_timer_is_counted_from_zero_before_it_fails() -> None:
    guard, registry = _guard()

    @guard
    async def governance_sweep() -> None:
        return None

    _ticks(governance_sweep, 1)
    assert 0.0 == registry.get_sample_value("gatewatch_timer_failures_total", {"timer": "governance_sweep"})


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (KafkaTimeoutError(), True),
        (TimeoutError(), True),
        (ConnectionRefusedError(), True),
        (KeyError("x"), False),
        (AttributeError("x"), False),
    ],
)
def test_outage_errors_are_told_from_bugs(error: Exception, transient: bool) -> None:
    from aiokafka.errors import KafkaTimeoutError as AIOKafkaTimeoutError

    assert transient is is_transient(error)
    assert is_transient(AIOKafkaTimeoutError())
