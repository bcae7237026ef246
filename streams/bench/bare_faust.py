"""The live benchmark's anchors: bare Faust agents with the worker's own Faust options.

Run as `python -m streams.bench.bare_faust` with GATEWATCH_* settings in the environment (the same
Faust options as the Gatewatch worker, streams/worker/app.py), BENCH_EXPECTED=N and BENCH_MODE:
- `count`: the agent only counts raw messages (what Faust costs before any work is done);
- `transform`: the agent decodes each event (single-event messages, or each event of a batch
  envelope) and writes one small record per event through Faust's own send API
  (`await topic.send(...)`) to the decisions topic of its settings: the least a Faust app that
  writes one record per event must do.
It consumes the access topic in its own consumer group and, once N events are counted, prints one
JSON line on stdout: {"count": N, "first": t0, "last": t1} (wall-clock seconds of the first and
last event).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import faust

from streams import _compat
from streams.settings import Settings
from streams.worker.app import _faust_options, faust_worker

__all__ = ["MODES", "build_app"]

MODES = ("count", "transform")


def build_app(settings: Settings, expected: int, mode: str = "count") -> faust.App:
    if mode not in MODES:
        raise ValueError(f"BENCH_MODE must be one of {MODES}")
    # The same transport as the worker (pinned libraries, their fixes, the short fetch wait on the embedded
    # broker), so the anchor differs from Gatewatch only in the work done per event.
    _compat.install()
    app = faust.App(settings.app_id, **_faust_options(settings))
    if settings.local_mode:
        _compat.shorten_fetch_wait(app)
    topic = app.topic(
        settings.topics.access, partitions=settings.partitions, key_serializer="raw", value_serializer="raw"
    )
    out = app.topic(settings.topics.decisions, key_serializer="raw", value_serializer="raw")
    seen: dict[str, Any] = {"count": 0, "first": None, "last": None}

    def tick(n: int) -> None:
        now = time.time()
        if seen["first"] is None:
            seen["first"] = now
        before = seen["count"]
        seen["count"] += n
        seen["last"] = now
        if before < expected <= seen["count"]:
            # fd 1 itself: the Faust worker redirects sys.stdout into its logger.
            os.write(1, (json.dumps(seen) + "\n").encode())

    async def transform(key: bytes | None, value: bytes) -> int:
        doc = json.loads(value)
        events = doc.get("events", (doc,))
        for event in events:
            record = json.dumps({"event_id": event["event_id"], "seen": True}, separators=(",", ":")).encode()
            await out.send(key=key, value=record)
        return len(events)

    @app.agent(topic, name=f"bare.{mode}")
    async def agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            if mode == "count":
                tick(1)
            else:
                tick(await transform(event.key, event.value))

    return app


def main() -> None:
    settings = Settings()
    app = build_app(settings, int(os.environ["BENCH_EXPECTED"]), os.environ.get("BENCH_MODE", "count"))
    faust_worker(app, "warning").execute_from_commandline()  # the worker's logging set-up, spinner off


if __name__ == "__main__":
    main()
