"""Windowed rules: the `window:` block (parsing, registries) and the aggregate update on WindowState.

Private to `rules`. Every stored value is JSON-compatible (dicts, lists, str, int, float): the Faust
table serialises to JSON. Pupil references never reach this module in clear, only as HMAC hex.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rules._yaml import YamlMap
from rules.exceptions import ConditionError
from rules.facts import FACTS, LONDON, Facts
from rules.language import Vocabulary, compile_expression
from rules.windows import WindowState

__all__ = [
    "AGREEMENT_VOCAB",
    "EVENT_VOCAB",
    "KINDS",
    "MEASURES",
    "PER",
    "PUPIL_FACTS",
    "PUPIL_VOCAB",
    "WINDOW_MESSAGE_VOCAB",
    "Observation",
    "WindowSpec",
    "observe",
    "parse_window",
]

KINDS = ("calendar_month", "sliding", "trailing")
PER = ("recipient", "recipient_pupil", "pupil")
#: measure name -> type of its argument (None: no argument).
MEASURES: dict[str, str | None] = {"count": None, "sum": "int", "count_distinct": "str", "median": "int"}
WINDOW_KEYS = ("kind", "size", "per", "measure", "threshold", "factor", "min_prior")
#: How long a trailing history outlives the recipient's last event (event time).
TRAILING_RETENTION_SECONDS = 400 * 86400.0
#: Most timestamps one sliding-window key keeps (the oldest go first); bounds a hot key's entry.
MAX_SLIDING_ITEMS = 4096
#: How many of the latest event ids an over-threshold record keeps for its alert.
MAX_ALERT_EVENT_IDS = 8

#: Facts a PupilLookup carries, so the only ones a `per: pupil` rule's message and measure may name.
PUPIL_FACTS = frozenset(
    {
        "event.id",
        "event.recipient.org_id",
        "event.recipient.org_type",
        "event.agreement_id",
        "event.legal_gateway",
        "event.purpose",
        "event.local_date",
    }
)
EVENT_VOCAB = Vocabulary(
    {k: v for k, v in FACTS.items() if not k.startswith(("window.", "now."))},
    "window.* facts are for messages of windowed rules, now.* for `scope: agreement` rules",
)
WINDOW_MESSAGE_VOCAB = Vocabulary(
    {k: v for k, v in FACTS.items() if not k.startswith("now.")}, "now.* facts are for `scope: agreement` rules"
)
PUPIL_VOCAB = Vocabulary(
    {k: v for k, v in FACTS.items() if k in PUPIL_FACTS or k.startswith("window.")},
    "a `per: pupil` rule is judged from the pupil lookup, which carries only "
    + ", ".join(sorted(PUPIL_FACTS))
    + " and window.*",
)
AGREEMENT_VOCAB = Vocabulary(
    {k: v for k, v in FACTS.items() if (k.startswith("agreement.") and k != "agreement.cited") or k.startswith("now.")},
    "a `scope: agreement` rule sees no event: only agreement.* (not agreement.cited) and now.* facts",
)

_DURATION = re.compile(r"^([1-9][0-9]{0,3})([dh])$")
_MEASURE = re.compile(r"^\s*([a-z_]+)\s*(?:\((.*)\))?\s*$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A compiled `window:` block."""

    kind: str
    per: str
    measure: str
    measure_text: str
    arg: Callable[[Facts], Any] | None
    threshold: Callable[[Facts], Any] | None
    threshold_text: str
    size_seconds: float = 0.0
    size_text: str = ""
    size_events: int = 0
    factor: int = 0
    min_prior: int = 5


def parse_window(
    w: Any, domains: Mapping[str, frozenset[str]], bad: Callable[[int, str], None], line: int
) -> WindowSpec | None:
    """Validate and compile a `window:` mapping; report each problem through `bad(line, message)`."""
    if not isinstance(w, YamlMap):
        bad(line, "window must be a mapping with kind, per, measure and threshold (or factor)")
        return None
    kl = w.key_lines
    ok = True

    def fail(key: str, message: str) -> None:
        nonlocal ok
        ok = False
        bad(kl.get(key, w.line), f"window: {message}")

    for key in w:
        if key not in WINDOW_KEYS:
            fail(key, f"unknown key '{key}'; allowed keys: {', '.join(WINDOW_KEYS)}")
    kind, per = w.get("kind"), w.get("per")
    if kind not in KINDS:
        fail("kind", f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if per not in PER:
        fail("per", f"per {per!r} is not one of {', '.join(PER)}")
    if kind == "trailing" and per != "recipient":
        fail("per", "a trailing window is kept per recipient; use per: recipient")
    vocab = PUPIL_VOCAB if per == "pupil" else EVENT_VOCAB

    size = w.get("size")
    size_seconds, size_events, size_text = 0.0, 0, ""
    if kind == "sliding":
        m = _DURATION.match(str(size)) if isinstance(size, str) else None
        if m is None:
            fail("size", f"a sliding window needs size: a duration such as 30d or 12h, not {size!r}")
        else:
            n = int(m.group(1))
            size_seconds = n * (86400.0 if m.group(2) == "d" else 3600.0)
            size_text = f"{n} {'days' if m.group(2) == 'd' else 'hours'}"
    elif kind == "trailing":
        if not (isinstance(size, int) and not isinstance(size, bool) and 5 <= size <= 1000):
            fail("size", f"a trailing window needs size: the number of prior events, 5 to 1000, not {size!r}")
        else:
            size_events = size
    elif "size" in w:
        fail("size", "a calendar_month window has no size (it is the Europe/London month)")

    measure_text = w.get("measure")
    measure, arg = "", None
    m2 = _MEASURE.match(measure_text) if isinstance(measure_text, str) else None
    if m2 is None or m2.group(1) not in MEASURES:
        known = ", ".join(f"{k}(...)" if v else k for k, v in MEASURES.items())
        fail("measure", f"measure {measure_text!r} is not one of {known}")
    else:
        measure = m2.group(1)
        want = MEASURES[measure]
        if want is None and m2.group(2) is not None:
            fail("measure", f"{measure} takes no argument")
        elif want is not None:
            try:
                node = compile_expression(m2.group(2) or "", domains, vocab)
                if node.type not in (want, "any"):
                    raise ConditionError(f"{measure}() needs a {want}, got a {node.type}", offset=0, text="")
                arg = node.fn
            except ConditionError as exc:
                fail("measure", f"measure {measure_text!r}: {exc.message}")
        if (kind == "trailing") != (measure == "median"):
            fail("measure", "median(...) is the measure of a trailing window, and only of one")

    threshold, threshold_text = None, ""
    factor, min_prior = 0, 5
    if kind == "trailing":
        if "threshold" in w:
            fail("threshold", "a trailing window fires on factor x median; it has no threshold")
        factor = w.get("factor", 0)
        if not (isinstance(factor, int) and not isinstance(factor, bool) and 2 <= factor <= 1000):
            fail("factor", f"a trailing window needs factor: an integer 2 to 1000, not {factor!r}")
        min_prior = w.get("min_prior", 5)
        if not (isinstance(min_prior, int) and not isinstance(min_prior, bool) and 1 <= min_prior <= size_events):
            fail("min_prior", f"min_prior must be an integer from 1 to size, not {min_prior!r}")
    else:
        for key in ("factor", "min_prior"):
            if key in w:
                fail(key, f"{key} is only for trailing windows")
        raw = w.get("threshold")
        if "threshold" not in w:
            fail("threshold", "missing threshold (an integer, or a fact such as agreement.monthly_record_cap)")
        else:
            threshold_text = str(raw)
            try:
                node = compile_expression(threshold_text, domains, vocab)
                if node.type not in ("int", "any"):
                    raise ConditionError(f"threshold needs an int, got a {node.type}", offset=0, text="")
                if per == "pupil" and not node.const:
                    raise ConditionError(
                        "a per: pupil rule is judged without the agreement, so its threshold must be a number",
                        offset=0,
                        text="",
                    )
                threshold = node.fn
            except ConditionError as exc:
                fail("threshold", f"threshold {threshold_text!r}: {exc.message}")
    if not ok:
        return None
    return WindowSpec(
        kind=str(kind),
        per=str(per),
        measure=measure,
        measure_text=str(measure_text),
        arg=arg,
        threshold=threshold,
        threshold_text=threshold_text,
        size_seconds=size_seconds,
        size_text=size_text,
        size_events=size_events,
        factor=factor,
        min_prior=min_prior,
    )


# --- observation -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observation:
    """What one event did to one window: the aggregate, whether it is over, and the alert bookkeeping."""

    value: Any
    threshold: Any
    label: str
    window_id: str
    over: bool
    over_count: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    event_ids: tuple[str, ...] = ()

    @property
    def emit(self) -> bool:
        """Alert on the first crossing and again at 2, 4, 8, ... events over: O(log n) alert records."""
        n = self.over_count
        return self.over and n > 0 and n & (n - 1) == 0


#: Sort key of a stored item `[time, ...]` (sliding and trailing lists are kept sorted by it).
_TIME = operator.itemgetter(0)
#: Every instant in [1900-01-01, 9999-11-01) has a Europe/London date and month (and a next month), so the
#: labels and window ids worked out only when a window is over cannot fail for it. Outside (the first
#: instants of year 1 have no London date; December 9999 has no next month) they are worked out first,
#: before anything changes, so that such an event fails as it always did.
_CALENDAR_FROM = dt.datetime(1900, 1, 1, tzinfo=dt.UTC).timestamp()
_CALENDAR_UNTIL = dt.datetime(9999, 11, 1, tzinfo=dt.UTC).timestamp()


#: (start, end, YYYY-MM) of the London month `_month` last looked up: most events fall in the month of
#: the event before. One tuple, replaced whole, so threads sharing it see a consistent one.
_last_month: tuple[float, float, str] = (math.inf, -math.inf, "")


def _month(t: float) -> tuple[str, float]:
    """(YYYY-MM of epoch t in Europe/London, epoch of the first instant of the next London month)."""
    global _last_month  # a cache, as _month_of_hour is
    start, end, month = _last_month
    if not start <= t < end:
        month, start, end = _month_of_hour(int(t // 3600))
        _last_month = (start, end, month)
    return month, end


@functools.lru_cache(maxsize=4096)
def _month_of_hour(hour: int) -> tuple[str, float, float]:
    """(YYYY-MM, start, end) of the London month of a UTC hour: months start at local midnight, always a
    whole UTC hour, so `start <= t < end` holds for every t of the hours with this answer."""
    local = dt.datetime.fromtimestamp(hour * 3600, LONDON)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    start = dt.datetime(local.year, local.month, 1, tzinfo=LONDON).timestamp()
    return f"{local.year:04d}-{local.month:02d}", start, dt.datetime(year, month, 1, tzinfo=LONDON).timestamp()


def _number(x: float) -> int | float:
    if float(x).is_integer():
        return int(x)
    if (x * 2).is_integer():  # a half (a median of two): round(x, 1) is x itself, and round() is slow
        return x
    return round(x, 1)


def observe(
    spec: WindowSpec,
    state: WindowState,
    key: str,
    t: float,
    event_id: str,
    arg: Any,
    threshold: Any,
) -> Observation | None:
    """Add one event (event time `t`, measure argument `arg`) to the window stored under `key`.

    Returns the Observation when the window is over its threshold, else None (nothing to report, so the
    label and window id are not worked out). The stored lists are updated in place and the value is then
    `put` again, which is what marks the key for the changelog. An event whose own values fail (its
    measure, threshold or time) leaves the entry as it was: what can raise on them runs before anything
    stored changes, or that change is undone. Only a malformed stored entry, which this code never
    writes, could leave it part-updated.

    An entry that has already applied the event (`WindowState.seen`: it is processed again after a
    crash) is left as it is, and there is nothing to report.
    """
    kind = spec.kind
    if kind == "trailing":
        return _observe_trailing(spec, state, key, t, event_id, arg)
    if kind == "calendar_month":
        return _observe_month(spec, state, key, t, event_id, arg, threshold)
    return _observe_sliding(spec, state, key, t, event_id, arg, threshold)


def _observe_month(
    spec: WindowSpec, state: WindowState, key: str, t: float, event_id: str, arg: Any, threshold: Any
) -> Observation | None:
    month, end = _month(t)
    key = f"{key}|m={month}"
    if state.seen(key):
        return None
    old = state.get(key) or {}
    if spec.measure == "count_distinct":
        seen = set(old.get("d", []))
        seen.add(arg)
        agg: dict[str, Any] = {"d": sorted(seen)}
        value: Any = len(seen)
    else:
        value = int(old.get("s", 0)) + (1 if spec.measure == "count" else int(arg or 0))
        agg = {"s": value}
    over = threshold is not None and value > threshold
    rec = _episodes(old, agg, month if over else None, t, event_id, None) if over or "o" in old else None
    state.put(key, agg, expires_at=end)
    if rec is None:
        return None
    return _observation(value, threshold, f"calendar month {month}", month, rec)


def _observe_sliding(
    spec: WindowSpec, state: WindowState, key: str, t: float, event_id: str, arg: Any, threshold: Any
) -> Observation | None:
    if state.seen(key):
        return None
    old = state.get(key) or {}
    items = old.get("t")
    if type(items) is not list:
        items = list(items or ())  # sorted by time
    size = spec.size_seconds
    item = [t, arg if spec.measure != "count" else 1]
    value: Any
    if not items and size + state.lateness >= 0:
        # A new window (as for most recipient_pupil keys): the event alone, and in it.
        value = int(arg or 0) if spec.measure == "sum" else 1
        if not _CALENDAR_FROM <= t < _CALENDAR_UNTIL:
            dt.datetime.fromtimestamp(t, LONDON)  # what the label needs
        items.append(item)
    else:
        at = bisect.bisect_right(items, item)  # what bisect.insort does; raises before the list is changed
        items.insert(at, item)
        try:
            # The items kept: none older than the horizon, at most MAX_SLIDING_ITEMS (the newest).
            horizon = items[-1][0] - size - state.lateness
            lo = max(bisect.bisect_left(items, horizon, key=_TIME), len(items) - MAX_SLIDING_ITEMS)
            start = bisect.bisect_left(items, t - size, lo, key=_TIME)
            stop = bisect.bisect_right(items, t, lo, key=_TIME)
            if spec.measure == "count_distinct":
                value = len({i[1] for i in items[start:stop]})
            elif spec.measure == "sum":
                value = sum(int(i[1] or 0) for i in items[start:stop])
            else:
                value = stop - start
            if not _CALENDAR_FROM <= t < _CALENDAR_UNTIL:
                dt.datetime.fromtimestamp(t, LONDON)  # what the label needs
        except Exception:
            del items[at]  # the entry is as it was
            raise
        if lo > 0:
            del items[:lo]
    newest: float = items[-1][0]
    agg: dict[str, Any] = {"t": items}
    over = threshold is not None and value > threshold
    window_id = label = ""
    if over:
        label = f"{spec.size_text} to {dt.datetime.fromtimestamp(t, LONDON).date().isoformat()}"
        for wid, rec in (old.get("o") or {}).items():
            if rec["f"] - size <= t <= rec["l"] + size:
                window_id = wid  # the breach episode this event continues
                break
        if not window_id:
            window_id = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    over_rec = None
    if over or "o" in old:  # (keeping only the records of recent episodes)
        over_rec = _episodes(old, agg, window_id if over else None, t, event_id, newest - size - 62 * 86400.0)
    state.put(key, agg, expires_at=newest + size)
    if over_rec is None:
        return None
    return _observation(value, threshold, label, window_id, over_rec)


def _observe_trailing(
    spec: WindowSpec, state: WindowState, key: str, t: float, event_id: str, arg: Any
) -> Observation | None:
    # `values`: those of `hist`, sorted, so that a median costs no sort. They are kept with the entry
    # (WindowState.get_with_derived), and sorted again when missing at the next median of events in order.
    if state.seen(key):
        return None
    stored, values = state.get_with_derived(key)
    old = stored or {}
    hist = old.get("h")
    if type(hist) is not list:
        hist = list(hist or ())  # sorted by time
    value = int(arg or 0)
    n = len(hist)
    size = spec.size_events
    threshold: Any = None
    over = False
    if values is not None and 0 < n <= size and hist[-1][0] < t:
        # The usual case, an event after the others: they are all prior, and `values` are theirs.
        if n >= spec.min_prior:
            mid = n // 2  # the median, as statistics.median works it out
            threshold = _number(spec.factor * (values[mid] if n % 2 == 1 else (values[mid - 1] + values[mid]) / 2))
            over = value > threshold
        if not _CALENDAR_FROM <= t < _CALENDAR_UNTIL:
            _month(t)  # what the window id needs
        bisect.insort(values, value)
        hist.append([t, value])  # what bisect.insort does here, without the search
        if n == size:
            del values[bisect.bisect_left(values, hist[0][1])]
            del hist[0]
    else:
        threshold, over, values = _trailing_insert(spec, hist, t, value)
    agg: dict[str, Any] = {"h": hist}
    newest: float = hist[-1][0]
    rec = None
    if over or "o" in old:
        window_id = _month(t)[0] if over else None
        rec = _episodes(old, agg, window_id, t, event_id, newest - 62 * 86400.0)
    state.put(key, agg, expires_at=newest + TRAILING_RETENTION_SECONDS, derived=values)
    if rec is None:
        return None
    return _observation(value, threshold, f"trailing {size} events", _month(t)[0], rec)


def _trailing_insert(
    spec: WindowSpec, hist: list[list[Any]], t: float, value: int
) -> tuple[Any, bool, list[Any] | None]:
    """Any other trailing event: late, among the first, or without sorted values kept (after a restart).

    Returns (threshold, over, the values of `hist` sorted, when the median needed them all, else None).
    What can fail runs before `hist` changes.
    """
    size = spec.size_events
    before = bisect.bisect_left(hist, t, key=_TIME)  # the prior events: those before t, at most size_events
    threshold: Any = None
    over = False
    values = None
    if min(before, size) >= spec.min_prior:
        prior = sorted([i[1] for i in hist[max(0, before - size) : before]])
        mid = len(prior) // 2
        threshold = _number(spec.factor * (prior[mid] if len(prior) % 2 == 1 else (prior[mid - 1] + prior[mid]) / 2))
        over = value > threshold
        if before == len(hist) <= size:
            values = prior  # they are all of them
    if not _CALENDAR_FROM <= t < _CALENDAR_UNTIL:
        _month(t)  # what the window id needs
    bisect.insort(hist, [t, value])
    if values is not None:
        bisect.insort(values, value)
    while len(hist) > size:
        if values is not None:
            del values[bisect.bisect_left(values, hist[0][1])]
        del hist[0]
    return threshold, over, values


def _episodes(
    old: Mapping[str, Any], agg: dict[str, Any], window_id: str | None, t: float, event_id: str, keep: float | None
) -> dict[str, Any] | None:
    """The over-threshold records `"o"` (window id -> {n, f, l, e}), updated in place and set in `agg`.

    `window_id` is None when the event is not over its threshold; then only the records last seen before
    `keep` (None: keep all) are dropped. Returns the updated record of the event's window, if over.
    """
    overs: dict[str, Any] | None = old.get("o") or None
    rec = None
    if window_id is not None:
        if overs is None:
            overs = {}
        prev = overs.get(window_id) or {"n": 0, "f": t, "l": t, "e": []}
        ids = [*prev["e"], event_id][-MAX_ALERT_EVENT_IDS:]
        rec = {"n": prev["n"] + 1, "f": min(prev["f"], t), "l": max(prev["l"], t), "e": ids}
        overs[window_id] = rec
    if overs:
        if keep is not None:
            for stale in [k for k, v in overs.items() if v["l"] < keep]:
                del overs[stale]
        if overs:
            agg["o"] = overs
    return rec


def _observation(value: Any, threshold: Any, label: str, window_id: str, rec: dict[str, Any]) -> Observation:
    return Observation(value, threshold, label, window_id, True, rec["n"], rec["f"], rec["l"], tuple(rec["e"]))
