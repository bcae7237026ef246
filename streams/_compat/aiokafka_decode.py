"""A fix for aiokafka (0.14.0) letting one record batch it cannot decode stop the whole consumer.

aiokafka decodes a fetched batch (CRC check, decompression, record parsing) lazily, while the records
are handed out. When that fails (a codec the process has no library for, an unknown codec id, a batch
whose CRC or compressed payload is corrupt) the exception escapes `Fetcher.fetched_records`, in the
middle of draining every partition: Faust's drain loop logs "Drain messages raised" and the worker
exits. Restarted, it fetches the same batch and exits again; one partition's bytes stop every partition.
Catching the exception around `fetched_records` would not do: the records of other partitions drained
in the same call are dropped on the way out, and their positions have already moved past them.

This is aiokafka issue #321 (open): the consumer raises and cannot go on. The Java consumer keeps
raising on the same record rather than skip it (KAFKA-5211, KAFKA-5630). Gatewatch may not skip either
(an access event nobody judged is a share nobody checked), but one bad partition must not stop the
others. So, with this fix:

1. `PartitionRecords`' record generator ends at the batch it cannot decode instead of raising: the
   records before it are delivered, `next_fetch_offset` stays at the first record not delivered, and
   the failure is kept on the `PartitionRecords`.
2. `FetchResult` then pauses the partition (aiokafka's own pause: the fetcher sends no more fetches for
   it) and reports it once to the handler, with the offset. Nothing of it is consumed past that offset,
   so nothing is committed past it: a restart, or a rebalance that hands the partition out again,
   fetches the same batch and decodes it once its cause is fixed (at-least-once holds).

The handler is process-wide (every aiokafka consumer in the process, the worker's and its short-lived
readers alike, reports through it); `build_worker_app` installs the patches (streams._compat.install)
and sets the worker's handler (`stop_partition_at_undecodable_batch`).
"""

# ruff: noqa: SLF001 - the fix has to reach into aiokafka's fetcher
from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from streams._compat._patch import Patch, require_installed

__all__ = ["PATCHES", "StallHandler", "reason_of", "stop_partition_at_undecodable_batch"]

#: Called with (topic, partition, first offset not delivered, the exception) when a partition stops.
StallHandler = Callable[[str, int, int, BaseException], None]

_handlers: list[StallHandler] = []


def reason_of(exc: BaseException) -> str:
    """The metric's reason label: unsupported_codec, corrupt_batch or decode_error (bounded)."""
    from aiokafka.errors import CorruptRecordException, UnsupportedCodecError

    if isinstance(exc, UnsupportedCodecError):
        return "unsupported_codec"
    corrupt: tuple[type[BaseException], ...] = (CorruptRecordException, gzip.BadGzipFile, zlib.error, EOFError)
    try:
        import cramjam

        corrupt += (cramjam.DecompressionError,)
    except ImportError:  # pragma: no cover - a declared dependency
        pass
    return "corrupt_batch" if isinstance(exc, corrupt) else "decode_error"


def stop_partition_at_undecodable_batch(handler: StallHandler) -> None:
    """Make `handler` the one that hears of stopped partitions (the patches must be installed)."""
    require_installed(PATCHES)
    _handlers[:] = [handler]


def _records_ending_at_failure(init: Any) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._records_iterator = _stopping_at_failure(self, self._records_iterator)

    return __init__


def _getone_stopping(getone: Any) -> Any:
    def fetch_one(self: Any) -> Any:
        records = self._partition_records
        message = getone(self)
        _stop_if_failed(self, records)
        return message

    return fetch_one


def _getall_stopping(getall: Any) -> Any:
    def fetch_all(self: Any, max_records: int | None = None) -> list[Any]:
        records = self._partition_records
        messages: list[Any] = getall(self, max_records)
        _stop_if_failed(self, records)
        return messages

    return fetch_all


def _stopping_at_failure(records: Any, unpacked: Iterator[Any]) -> Iterator[Any]:
    """The records as aiokafka unpacks them, ending (not raising) at the first batch it cannot decode."""
    try:
        yield from unpacked  # a generator in a generator: cheaper per record than wrapping __next__
    except Exception as exc:  # anything the decoding raised: this partition stops here, no other
        records._gatewatch_failure = exc


def _stop_if_failed(result: Any, records: Any) -> None:
    failure = getattr(records, "_gatewatch_failure", None)
    if failure is None or getattr(records, "_gatewatch_reported", False):
        return
    records._gatewatch_reported = True
    tp = result._topic_partition
    # The position is already at the first undelivered record; pausing keeps the fetcher off the partition.
    result._assignment.state_value(tp).pause()
    for handler in list(_handlers):
        handler(tp.topic, tp.partition, records.next_fetch_offset, failure)


_ISSUE = "aio-libs/aiokafka#321 (a batch the consumer cannot decode raises out of every partition's fetch)"
PATCHES = (
    Patch(
        owner="aiokafka.consumer.fetcher:PartitionRecords",
        attribute="__init__",
        build=_records_ending_at_failure,
        upstream=_ISSUE,
        original_sha256="8ec1c2ae6ea1af875db73e6d01604f3edf269faf5806c67c02d1f91b456d3571",
    ),
    Patch(
        owner="aiokafka.consumer.fetcher:FetchResult",
        attribute="getone",
        build=_getone_stopping,
        upstream=_ISSUE,
        original_sha256="3fc6f963223135d240785156577c916817f44b0eefedd927bca01382e192d155",
    ),
    Patch(
        owner="aiokafka.consumer.fetcher:FetchResult",
        attribute="getall",
        build=_getall_stopping,
        upstream=_ISSUE,
        original_sha256="3e717e30de5068d549dd41b231928c67a24e832a928d48bac5f485e448daa903",
    ),
)
