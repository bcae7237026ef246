"""Reading the decision history for a report: from the topics or a JSONL export, in bulk, memory flat.

Two passes. The access events of the report period are reduced to their `Profile` and kept in a
temporary SQLite file keyed by event id (what a decision does not carry: channel, tier, datasets);
then every decision is read once, de-duplicated by event id in the same file (a redelivered event is
one share, not two) and handed to the aggregation with its event's profile. Memory holds one fetch
and the aggregates, whatever the length of the history; the disk holds one period's profiles.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from pydantic import ValidationError

from rules.catalogue import Catalogue
from schemas import Decision
from streams.offline.replay import decode_access_message
from streams.report.aggregate import Profile, profile_of
from streams.report.periods import UK, Period
from streams.settings import Settings

__all__ = ["FileHistory", "History", "Progress", "ReadStats", "TopicHistory", "read_history"]

#: Called with each decision of the window, the UK month it falls in, and its event's profile when the
#: decision is in the report period (None outside it, or when the event was not found).
Consumer = Callable[[Decision, str, Profile | None, bool], None]

_INSERT_CHUNK = 2000


class History(Protocol):
    """Raw access messages and raw decisions, each read once from the start."""

    description: str

    def access(self) -> Iterator[bytes]: ...

    def decisions(self) -> Iterator[bytes]: ...


class FileHistory:
    """JSONL exports: access messages (events or batches) and decisions, one per line."""

    def __init__(self, access: Path | None, decisions: Path) -> None:
        self.access_path, self.decisions_path = access, decisions
        self.description = f"files {access or '(no access export)'} and {decisions}"

    @staticmethod
    def _lines(path: Path) -> Iterator[bytes]:
        with path.open("rb") as handle:
            for line in handle:
                raw = line.rstrip(b"\r\n")
                if raw.strip():
                    yield raw

    def access(self) -> Iterator[bytes]:
        return self._lines(self.access_path) if self.access_path is not None else iter(())

    def decisions(self) -> Iterator[bytes]:
        return self._lines(self.decisions_path)


class TopicHistory:
    """The access and decisions topics, read from the start in bulk (no consumer group), as replay reads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        t = settings.topics
        self.description = f"topics {t.access} and {t.decisions} on {settings.kafka_bootstrap}"

    def _topic(self, topic: str) -> Iterator[bytes]:
        from streams.offline.replay import TopicSource

        with TopicSource(self.settings, topic, timeout=3600.0) as source:
            while not source.exhausted:
                for record in source.pull(source.open_partitions):
                    if record[1] is not None:
                        yield record[1]

    def access(self) -> Iterator[bytes]:
        return self._topic(self.settings.topics.access)

    def decisions(self) -> Iterator[bytes]:
        return self._topic(self.settings.topics.decisions)


class Progress:
    """One line on a stream (stderr) every `interval` seconds while a long history is read."""

    def __init__(self, stream: IO[str] | None = sys.stderr, interval: float = 2.0) -> None:
        self.stream = stream
        self.interval = interval
        self._started = self._last = time.monotonic()

    def tick(self, what: str, count: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if self.stream is None or (not final and now - self._last < self.interval):
            return
        self._last = now
        rate = count / (now - self._started) if now > self._started else 0.0
        self.stream.write(f"report: {count:,} {what} read ({rate:,.0f}/s)\n")
        self.stream.flush()


@dataclass
class ReadStats:
    """What the read saw, for the report's notes: nothing unreadable is silently left out."""

    access_messages: int = 0
    access_unreadable: int = 0
    period_events: int = 0
    decisions: int = 0
    decisions_unreadable: int = 0
    decisions_in_window: int = 0
    duplicates: int = 0


class _Store:
    """Event profiles of the period and the event ids already counted, in a temporary SQLite file."""

    def __init__(self, directory: Path) -> None:
        self.db = sqlite3.connect(directory / "report.sqlite3")
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-16000")  # 16 MB of page cache, however many events
        self.db.execute(
            "CREATE TABLE profile (event_id TEXT PRIMARY KEY, channel TEXT, tier TEXT, special INTEGER,"
            " datasets TEXT, name TEXT) WITHOUT ROWID"
        )
        self.db.execute("CREATE TABLE seen (event_id TEXT PRIMARY KEY) WITHOUT ROWID")
        self._pending: list[tuple[str, str, str, int, str, str | None]] = []

    def put(self, event_id: str, p: Profile) -> None:
        self._pending.append((event_id, p.channel, p.tier, int(p.special), "\t".join(p.datasets), p.recipient_name))
        if len(self._pending) >= _INSERT_CHUNK:
            self.flush()

    def flush(self) -> None:
        # A re-sent event keeps its first profile: the same id is the same event (the idempotency key).
        self.db.executemany("INSERT OR IGNORE INTO profile VALUES (?, ?, ?, ?, ?, ?)", self._pending)
        self._pending.clear()

    def get(self, event_id: str) -> Profile | None:
        row = self.db.execute(
            "SELECT channel, tier, special, datasets, name FROM profile WHERE event_id = ?", (event_id,)
        ).fetchone()
        if row is None:
            return None
        return Profile(row[0], row[1], bool(row[2]), tuple(row[3].split("\t")) if row[3] else (), row[4])

    def first_time(self, event_id: str) -> bool:
        return self.db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (event_id,)).rowcount == 1

    def close(self) -> None:
        self.db.close()


def _month_of(decision: Decision) -> str | None:
    when = decision.occurred_at
    return None if when is None else f"{when.astimezone(UK):%Y-%m}"


def read_history(
    history: History,
    period: Period,
    window: Period,
    catalogue: Catalogue,
    consume: Consumer,
    progress: Progress | None = None,
) -> ReadStats:
    """Read the history once: `consume(decision, month, profile, in_period)` for each distinct decision in `window`.

    `window` contains `period` (the month report's window is the 12 trend months). Decisions without an
    event id or event time (never written by the worker) are counted as unreadable.
    """
    stats = ReadStats()
    progress = progress or Progress(None)
    with tempfile.TemporaryDirectory(prefix="gatewatch-report-") as tmp:
        store = _Store(Path(tmp))
        try:
            for raw in history.access():
                stats.access_messages += 1
                progress.tick("access messages", stats.access_messages)
                events = decode_access_message(raw)
                if events is None:
                    stats.access_unreadable += 1
                    continue
                for event in events:
                    if event.occurred_at in period:
                        stats.period_events += 1
                        store.put(event.event_id, profile_of(event, catalogue))
            store.flush()
            progress.tick("access messages", stats.access_messages, final=True)
            for raw in history.decisions():
                stats.decisions += 1
                progress.tick("decisions", stats.decisions)
                try:
                    decision = Decision.model_validate_json(raw)
                except ValidationError:
                    stats.decisions_unreadable += 1
                    continue
                if decision.event_id is None or decision.occurred_at is None:
                    stats.decisions_unreadable += 1
                    continue
                if decision.occurred_at not in window:
                    continue
                if not store.first_time(decision.event_id):
                    stats.duplicates += 1
                    continue
                stats.decisions_in_window += 1
                month = _month_of(decision)
                assert month is not None
                in_period = decision.occurred_at in period
                consume(decision, month, store.get(decision.event_id) if in_period else None, in_period)
            progress.tick("decisions", stats.decisions, final=True)
        finally:
            store.close()
    return stats
