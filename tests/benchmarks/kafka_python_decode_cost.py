"""What streams/_compat/kafka_python_decode.py costs per record, measured in one process.

    .venv/bin/python -m tests.benchmarks.kafka_python_decode_cost

kafka-python's own Fetcher hands out 100,000 records (200 batches of 500, 200-byte values, no codec)
from one fetched partition, as `poll()` does, in three set-ups taken in turn (each goes first in every
third round), nine rounds each: the library unpatched, the patches installed and the consumer not
opted in (the worker's case), and opted in (the sink's and `audit`'s). Prints the median nanoseconds
per record of each and the differences.
"""

from __future__ import annotations

import gc
import statistics
import time
from types import SimpleNamespace
from typing import Any

from streams import _compat
from streams._compat import kafka_python_decode
from tests.rawbatch import batch

BATCHES, PER_BATCH, ROUNDS = 200, 500, 9
RECORDS = BATCHES * PER_BATCH


def _data() -> bytes:
    value = b"x" * 200
    return b"".join(batch(i * PER_BATCH, [value] * PER_BATCH) for i in range(BATCHES))


def _drain(raw: bytes, *, opt_in: bool) -> float:
    from kafka.consumer.fetcher import CompletedFetch, Fetcher
    from kafka.consumer.subscription_state import SubscriptionState
    from kafka.structs import TopicPartition

    tp = TopicPartition("bench", 0)
    subscriptions = SubscriptionState()
    subscriptions.assign_from_user({tp})
    subscriptions.seek(tp, 0)
    fetcher: Any = Fetcher(SimpleNamespace(_manager=SimpleNamespace(_net=None)), subscriptions)
    if opt_in:
        kafka_python_decode.stop_at_undecodable_batch(SimpleNamespace(_fetcher=fetcher), lambda *_: None)
    data = SimpleNamespace(
        error_code=0, high_watermark=RECORDS, records=raw, aborted_transactions=None, diverging_epoch=None,
        preferred_read_replica=-1,
    )  # fmt: skip
    fetcher._completed_fetches.append(CompletedFetch(tp, 0, 11, data, None))
    got = 0
    started = time.perf_counter()
    while got < RECORDS:
        records, _ = fetcher.fetched_records(500)
        got += sum(len(batch) for batch in records.values())
    return (time.perf_counter() - started) / RECORDS * 1e9


def main() -> None:
    raw = _data()
    setups = {  # name -> (patches installed, opted in)
        "unpatched": (False, False),
        "patched, not opted in": (True, False),
        "patched, opted in": (True, True),
    }
    times: dict[str, list[float]] = {name: [] for name in setups}
    reinstall = _compat.uninstall()
    try:
        for round_ in range(ROUNDS):
            names = list(setups)
            for name in names[round_ % 3 :] + names[: round_ % 3]:  # each set-up goes first in turn
                patched, opt_in = setups[name]
                gc.collect()  # each drain leaves 100,000 records behind: start every one from the same heap
                if patched:
                    with _compat.installed(kafka_python_decode.PATCHES):
                        times[name].append(_drain(raw, opt_in=opt_in))
                else:
                    times[name].append(_drain(raw, opt_in=opt_in))
    finally:
        reinstall()
    base = statistics.median(times["unpatched"])
    for name, samples in times.items():
        median = statistics.median(samples)
        print(
            f"{name:24s} {median:8.0f} ns/record (min {min(samples):.0f}, max {max(samples):.0f}); "
            f"{median - base:+6.0f} ns ({(median / base - 1) * 100:+.1f}%)"
        )


if __name__ == "__main__":
    main()
