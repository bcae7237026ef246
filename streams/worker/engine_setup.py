"""What `gatewatch check` and `gatewatch replay` take from the worker's settings, so a backtest is exact.

Alert ids of the per-pupil rules hash the pupil's HMAC under `GATEWATCH_PUPIL_HMAC_KEY`, and how late an
event may arrive and still count (`GATEWATCH_WINDOW_LATENESS_DAYS`) decides which window it lands in.
The worker, `check` and `replay` all build their engine and window states from here: an offline run with
the production settings gives the live alert ids exactly.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from rules import Engine, load_engine
from streams.settings import Settings

__all__ = ["engine_for", "lateness_of", "pupil_key_of"]


def pupil_key_of(settings: Settings) -> bytes | None:
    """The pupil HMAC key as bytes; None means the engine's fixed development key."""
    return settings.pupil_hmac_key.get_secret_value().encode() if settings.pupil_hmac_key else None


def engine_for(settings: Settings, pack_dir: Path | None = None) -> Engine:
    """The engine the worker would serve: `pack_dir` (default: GATEWATCH_RULE_PACK_DIR) under the pupil key."""
    return load_engine(pack_dir if pack_dir is not None else settings.rule_pack_dir, pupil_key=pupil_key_of(settings))


def lateness_of(settings: Settings) -> dt.timedelta:
    """How late an event may arrive and still count in its window (the worker's window states use it)."""
    return dt.timedelta(days=settings.window_lateness_days)
