"""File names of a history export (kept apart so the command line's parser imports nothing heavy)."""

from __future__ import annotations

__all__ = ["ACCESS_FILE", "AGREEMENTS_FILE", "DECISIONS_FILE"]

ACCESS_FILE = "access.jsonl"
DECISIONS_FILE = "decisions.jsonl"
AGREEMENTS_FILE = "agreements.json"
