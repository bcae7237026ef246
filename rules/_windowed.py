"""Windowed rules: the `window:` block (parsing, registries) and the aggregate update on WindowState.

Private to `rules`. Every stored value is JSON-compatible (dicts, lists, str, int, float): the Faust
table serialises to JSON. Pupil references never reach this module in clear, only as HMAC hex.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import re
import statistics
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


def _time(item: list[Any]) -> float:
    return item[0]  # type: ignore[no-any-return]


def _month(t: float) -> tuple[str, float]:
    """(YYYY-MM of epoch t in Europe/London, epoch of the first instant of the next London month)."""
    return _month_of_hour(int(t // 3600))


@functools.lru_cache(maxsize=4096)
def _month_of_hour(hour: int) -> tuple[str, float]:
    # London months start at local midnight, always a whole UTC hour: one answer per UTC hour.
    local = dt.datetime.fromtimestamp(hour * 3600, LONDON)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return f"{local.year:04d}-{local.month:02d}", dt.datetime(year, month, 1, tzinfo=LONDON).timestamp()


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else round(x, 1)


def observe(
    spec: WindowSpec,
    state: WindowState,
    key: str,
    t: float,
    event_id: str,
    arg: Any,
    threshold: Any,
) -> Observation:
    """Add one event (event time `t`, measure argument `arg`) to the window stored under `key`."""
    if spec.kind == "calendar_month":
        month, end = _month(t)
        key = f"{key}|m={month}"
        old = state.get(key) or {}
        if spec.measure == "count_distinct":
            seen = set(old.get("d", []))
            seen.add(arg)
            agg: dict[str, Any] = {"d": sorted(seen)}
            value: Any = len(seen)
        else:
            value = int(old.get("s", 0)) + (1 if spec.measure == "count" else int(arg or 0))
            agg = {"s": value}
        window_id, label, expires = month, f"calendar month {month}", end
        over = threshold is not None and value > threshold
    elif spec.kind == "sliding":
        old = state.get(key) or {}
        items: list[list[Any]] = list(old.get("t", ()))  # sorted by time; the items themselves are not changed
        bisect.insort(items, [t, arg if spec.measure != "count" else 1])
        newest = items[-1][0]
        horizon = newest - spec.size_seconds - state.lateness
        items = items[bisect.bisect_left(items, horizon, key=_time) :][-MAX_SLIDING_ITEMS:]
        start = bisect.bisect_left(items, t - spec.size_seconds, key=_time)
        inside = items[start : bisect.bisect_right(items, t, key=_time)]
        if spec.measure == "count_distinct":
            value = len({i[1] for i in inside})
        elif spec.measure == "sum":
            value = sum(int(i[1] or 0) for i in inside)
        else:
            value = len(inside)
        agg = {"t": items}
        expires = newest + spec.size_seconds
        over = threshold is not None and value > threshold
        label = f"{spec.size_text} to {dt.datetime.fromtimestamp(t, LONDON).date().isoformat()}"
        window_id = ""
        for wid, rec in (old.get("o") or {}).items():
            if rec["f"] - spec.size_seconds <= t <= rec["l"] + spec.size_seconds:
                window_id = wid  # the breach episode this event continues
                break
        if not window_id:
            window_id = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:  # trailing
        old = state.get(key) or {}
        hist: list[list[Any]] = [list(i) for i in old.get("h", [])]
        prior = [i[1] for i in hist if i[0] < t][-spec.size_events :]
        value = int(arg or 0)
        if len(prior) >= spec.min_prior:
            threshold = _number(spec.factor * statistics.median(prior))
            over = value > threshold
        else:
            threshold, over = None, False
        bisect.insort(hist, [t, value])
        agg = {"h": hist[-spec.size_events :]}
        newest = hist[-1][0]
        expires = newest + TRAILING_RETENTION_SECONDS
        window_id, _ = _month(t)
        label = f"trailing {spec.size_events} events"
    overs: dict[str, Any] = dict(old.get("o") or {})
    rec = overs.get(window_id)
    count, first, last, ids = 0, t, t, ()
    if over:
        prev = rec or {"n": 0, "f": t, "l": t, "e": []}
        ids_list = [*prev["e"], event_id][-MAX_ALERT_EVENT_IDS:]
        rec = {"n": prev["n"] + 1, "f": min(prev["f"], t), "l": max(prev["l"], t), "e": ids_list}
        overs[window_id] = rec
        count, first, last, ids = rec["n"], rec["f"], rec["l"], tuple(ids_list)
    if spec.kind != "calendar_month":  # keep only the records of recent episodes/months
        keep = newest - spec.size_seconds - 62 * 86400.0
        overs = {k: v for k, v in overs.items() if v["l"] >= keep}
    if overs:
        agg["o"] = overs
    state.put(key, agg, expires_at=expires)
    return Observation(value, threshold, label, window_id, over, count, first, last, ids)
