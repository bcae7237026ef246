"""A bare Faust agent that only counts raw messages: the ceiling of the live path (benchmark 2).

Run as `python -m benchmarks.bare_faust` with GATEWATCH_* settings in the environment (the same Faust
options as the Gatewatch worker, streams/app.py) and BENCH_EXPECTED=N. It consumes the access topic in
its own consumer group and, once N messages are counted, prints one JSON line on stdout:
{"count": N, "first": t0, "last": t1} (wall-clock seconds of the first and last message).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import faust

from streams.app import _faust_options, faust_worker
from streams.settings import Settings


def build_app(settings: Settings, expected: int) -> faust.App:
    app = faust.App(settings.app_id, **_faust_options(settings))
    topic = app.topic(
        settings.topics.access, partitions=settings.partitions, key_serializer="raw", value_serializer="raw"
    )
    seen: dict[str, Any] = {"count": 0, "first": None, "last": None}

    @app.agent(topic, name="bare.count")
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for _ in stream.events():
            now = time.time()
            if seen["first"] is None:
                seen["first"] = now
            seen["count"] += 1
            seen["last"] = now
            if seen["count"] == expected:
                # fd 1 itself: the Faust worker redirects sys.stdout into its logger.
                os.write(1, (json.dumps(seen) + "\n").encode())

    return app


def main() -> None:
    settings = Settings()
    app = build_app(settings, int(os.environ["BENCH_EXPECTED"]))
    faust_worker(app, "warning").execute_from_commandline()  # the worker's logging set-up, spinner off


if __name__ == "__main__":
    main()
