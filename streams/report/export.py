"""A JSONL export of the history (access messages, decisions, agreements) that the reports read offline.

`gatewatch up --simulate` writes one before its in-memory broker stops, so a report can follow it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from schemas import Agreement
from streams.report._names import ACCESS_FILE, AGREEMENTS_FILE, DECISIONS_FILE
from streams.settings import Settings

__all__ = ["ACCESS_FILE", "AGREEMENTS_FILE", "DECISIONS_FILE", "ExportCounts", "export_history"]


@dataclass
class ExportCounts:
    access: int = 0
    decisions: int = 0
    skipped: int = 0  # records that are not one line of JSON (a malformed message holding a newline)


def _line(raw: bytes) -> bytes | None:
    """The record as one JSONL line: as it is, compacted if it spans lines, None if it cannot be one line."""
    if b"\n" not in raw and b"\r" not in raw:
        return raw
    try:
        return json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, RecursionError):
        return None


def _copy(settings: Settings, topic: str, out: IO[bytes], counts: ExportCounts) -> int:
    from streams.offline.replay import TopicSource

    written = 0
    with TopicSource(settings, topic, timeout=600.0) as source:
        while not source.exhausted:
            for _, value, _ in source.pull(source.open_partitions):
                line = _line(value) if value is not None else None
                if line is None:
                    counts.skipped += 1
                    continue
                out.write(line + b"\n")
                written += 1
    return written


def export_history(settings: Settings, directory: Path, agreements: Sequence[Agreement]) -> ExportCounts:
    """Write the access and decisions topics and the register to `directory` (replacing an earlier export)."""
    directory.mkdir(parents=True, exist_ok=True)
    counts = ExportCounts()
    with (directory / ACCESS_FILE).open("wb") as out:
        counts.access = _copy(settings, settings.topics.access, out, counts)
    with (directory / DECISIONS_FILE).open("wb") as out:
        counts.decisions = _copy(settings, settings.topics.decisions, out, counts)
    register = [a.model_dump(mode="json", exclude_none=True) for a in agreements]
    (directory / AGREEMENTS_FILE).write_text(json.dumps(register, indent=1) + "\n", encoding="utf-8")
    return counts
