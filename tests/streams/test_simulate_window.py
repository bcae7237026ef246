"""Simulated traffic ends by now (or by --end, or runs on from --start), and stays deterministic."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from schemas import AccessEvent
from streams.cli.main import main
from streams.offline.simulate import LONDON, Simulator, load_agreements

END = dt.datetime(2027, 2, 17, 12, 30, tzinfo=dt.UTC)


def _times(out: str) -> list[dt.datetime]:
    return [dt.datetime.fromisoformat(json.loads(line)["occurred_at"]) for line in out.splitlines()]


def test_simulate_20000_events_dates_none_of_them_in_the_future(capsys: pytest.CaptureFixture[str]) -> None:
    assert 0 == main(["simulate", "--count", "20000"])
    after = dt.datetime.now(dt.UTC)
    times = _times(capsys.readouterr().out)
    assert 20000 == len(times)
    assert [] == [t for t in times if t > after]


def test_end_puts_the_last_event_in_the_week_before_it_and_repeats_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    main(["simulate", "--count", "500", "--seed", "3", "--end", END.isoformat()])
    first = capsys.readouterr().out
    main(["simulate", "--count", "500", "--seed", "3", "--end", END.isoformat()])
    assert first == capsys.readouterr().out
    last = max(_times(first))
    assert END - dt.timedelta(weeks=1) < last <= END


def test_start_runs_the_traffic_on_from_it(capsys: pytest.CaptureFixture[str]) -> None:
    main(["simulate", "--count", "50", "--start", "2025-03-03T08:00:00+00:00"])
    times = _times(capsys.readouterr().out)
    assert min(times) >= dt.datetime(2025, 3, 3, 8, 0, tzinfo=dt.UTC)
    assert max(times) < dt.datetime(2025, 3, 31, tzinfo=dt.UTC)


def test_start_and_end_together_are_refused() -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--start", "2025-03-03", "--end", "2025-04-03"])
    with pytest.raises(ValueError, match="not both"):
        Simulator(load_agreements(), start=END, end=END)


def _without_time(event: AccessEvent) -> AccessEvent:
    # The case reference carries the year; everything else is the same event.
    return event.model_copy(update={"occurred_at": END, "case_reference": None})


def test_an_end_moves_the_same_traffic_by_whole_weeks_of_london_time() -> None:
    agreements = load_agreements()
    fixed = [s.event for s in Simulator(agreements, seed=5).events(1500)]
    ended = [s.event for s in Simulator(agreements, seed=5, end=END).events(1500)]
    shifts = {
        a.occurred_at.astimezone(LONDON).replace(tzinfo=None) - b.occurred_at.astimezone(LONDON).replace(tzinfo=None)
        for a, b in zip(ended, fixed, strict=True)
    }
    assert [_without_time(e) for e in fixed] == [_without_time(e) for e in ended]
    assert 1 == len(shifts)
    assert dt.timedelta(0) == shifts.pop() % dt.timedelta(weeks=1)
