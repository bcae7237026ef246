"""Reporting periods: a calendar month (`2026-11`) or a quarter (`2026Q4`), in UK time."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from streams.exceptions import GatewatchStreamsError

__all__ = ["UK", "Period", "month", "months_back", "quarter"]

#: Boards and the published register count months in UK time (an event at 23:30 BST on 31 October is October's).
UK = ZoneInfo("Europe/London")

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})[Qq]([1-4])$")


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open interval [start, end) of UK local time, with its label (`2026-11`, `2026Q4`)."""

    label: str
    start: dt.datetime
    end: dt.datetime

    def __contains__(self, when: dt.datetime) -> bool:
        return self.start <= when < self.end

    @property
    def title(self) -> str:
        """`November 2026` for a month, `Q4 2026 (October to December)` for a quarter."""
        if "Q" in self.label:
            last = (self.end - dt.timedelta(days=1)).strftime("%B")
            return f"Q{self.label[-1]} {self.start.year} ({self.start:%B} to {last})"
        return f"{self.start:%B %Y}"


def _month_start(year: int, mon: int) -> dt.datetime:
    year += (mon - 1) // 12
    mon = (mon - 1) % 12 + 1
    return dt.datetime(year, mon, 1, tzinfo=UK)


def month(text: str) -> Period:
    """`YYYY-MM` as a Period; a clear error for anything else."""
    m = _MONTH.match(text.strip())
    if m is None or not 1 <= int(m.group(2)) <= 12:
        raise GatewatchStreamsError(f"bad month {text!r}: give YYYY-MM, e.g. 2026-11")
    year, mon = int(m.group(1)), int(m.group(2))
    return Period(f"{year:04d}-{mon:02d}", _month_start(year, mon), _month_start(year, mon + 1))


def quarter(text: str) -> Period:
    """`YYYYQn` as a Period (Q1 = January to March); a clear error for anything else."""
    m = _QUARTER.match(text.strip())
    if m is None:
        raise GatewatchStreamsError(f"bad quarter {text!r}: give YYYYQn, e.g. 2026Q4")
    year, q = int(m.group(1)), int(m.group(2))
    first = 3 * (q - 1) + 1
    return Period(f"{year:04d}Q{q}", _month_start(year, first), _month_start(year, first + 3))


def months_back(last: Period, count: int) -> list[Period]:
    """The `count` calendar months ending with `last` (a month), oldest first."""
    year, mon = last.start.year, last.start.month
    out = []
    for back in range(count - 1, -1, -1):
        start = _month_start(year, mon - back)
        end = _month_start(year, mon - back + 1)
        out.append(Period(f"{start.year:04d}-{start.month:02d}", start, end))
    return out
