"""A fix for kafka-python (3.0.12) letting one record batch it cannot decode stop every partition of a reader.

kafka-python decodes a fetched batch (CRC check, decompression, record parsing) lazily, while
`Fetcher.fetched_records` hands the records out. When that fails (a codec the process has no library
for, an unknown codec id, a batch whose CRC or compressed payload is corrupt) the exception escapes
`KafkaConsumer.poll()`: once the records drained before it are returned, it is raised on the next call,
and again on every call after a restart. One partition's bytes stop the sink and `gatewatch audit`
for every partition. kafka-python has no way to go on: dpkp/kafka-python#1443 (a batch in a codec the
consumer lacks raises out of `poll`) was closed by making the error clearer, not survivable; the Java
consumer, too, keeps raising on the same record rather than skip it (KAFKA-5211, KAFKA-5630).

Gatewatch may not skip either (an alert nobody delivered, a decision nobody verified), but one bad
partition must not stop the others. So, for a consumer that opts in (`stop_at_undecodable_batch`):

1. `Fetcher._parse_fetched_data` wraps the partition's record iterator so that it ends at the batch it
   cannot decode instead of raising; the failure is kept on the `PartitionRecords`.
2. `Fetcher._append`, once the records before that batch are handed out, pauses the partition
   (kafka-python's own pause: no more fetches for it), drops what was fetched of it, and reports it to
   the consumer's handler with the first offset not delivered. The position stays there, so nothing
   past it is returned or committed; a new consumer (a restart, a rebalance) fetches the same batch
   and reads it once its cause is fixed.

A consumer that has not opted in behaves exactly as kafka-python does (the wrappers look up one
attribute per fetched partition and step aside), so installing these patches changes nothing for the
worker, which installs every patch. The handler is per consumer, unlike aiokafka_decode's
process-wide one: each reader here owns its consumer and wants its own answer.
"""

# ruff: noqa: SLF001 - the fix has to reach into kafka-python's fetcher
from __future__ import annotations

import contextlib
import gzip
import importlib
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from streams._compat._patch import Patch, require_installed

__all__ = ["PATCHES", "StallHandler", "reason_of", "stop_at_undecodable_batch"]

#: Called with (topic, partition, first offset not delivered, the exception) when a partition stops.
StallHandler = Callable[[str, int, int, BaseException], None]

_HANDLER = "_gatewatch_on_undecodable"  # on an opted-in Fetcher
_FAILURE = "_gatewatch_failure"  # on a PartitionRecords that met a batch it could not decode


def reason_of(exc: BaseException) -> str:
    """The metric's reason label: unsupported_codec, corrupt_batch or decode_error (bounded)."""
    from kafka.errors import CorruptRecordError, UnsupportedCodecError

    if isinstance(exc, UnsupportedCodecError):
        return "unsupported_codec"
    corrupt: tuple[type[BaseException], ...] = (CorruptRecordError, gzip.BadGzipFile, zlib.error, EOFError)
    codec_errors = (("snappy", "UncompressError"), ("zstandard", "ZstdError"), ("cramjam", "DecompressionError"))
    for module, name in codec_errors:
        with contextlib.suppress(ImportError, AttributeError):  # declared dependencies: always there
            corrupt += (getattr(importlib.import_module(module), name),)
    if isinstance(exc, corrupt):
        return "corrupt_batch"
    # lz4.frame reports a corrupt frame as a bare RuntimeError; its messages all start with the C function.
    if type(exc) is RuntimeError and str(exc).startswith("LZ4F_"):
        return "corrupt_batch"
    return "decode_error"


def stop_at_undecodable_batch(consumer: Any, handler: StallHandler) -> None:
    """Opt a KafkaConsumer in: a batch it cannot decode stops that partition and calls `handler`, once.

    The patches must be installed (`streams._compat.install(kafka_python_decode.PATCHES)`). The handler
    runs inside `consumer.poll()`, on the caller's thread.
    """
    require_installed(PATCHES)
    setattr(consumer._fetcher, _HANDLER, handler)


def _parse_stopping(parse: Any) -> Any:
    def _parse_fetched_data(self: Any, completed_fetch: Any) -> Any:
        records = parse(self, completed_fetch)
        # getattr, never `__dict__`: reading an instance's __dict__ turns CPython's inline attribute values into
        # a real dict, and every attribute access after that is slower (+220 ns per record on PartitionRecords).
        if records and getattr(self, _HANDLER, None) is not None:
            records.record_iterator = _stopping_at_failure(records, records.record_iterator)
        return records

    return _parse_fetched_data


def _append_stopping(append: Any) -> Any:
    def _append(self: Any, drained: Any, part: Any, max_records: int, update_offsets: bool) -> int:
        taken: int = append(self, drained, part, max_records, update_offsets)
        failure = getattr(part, _FAILURE, None)
        if failure is not None:
            _stop(self, part, failure)
        return taken

    return _append


def _stopping_at_failure(records: Any, unpacked: Iterator[Any]) -> Iterator[Any]:
    """The records as kafka-python unpacks them, ending (not raising) at the first batch it cannot decode."""
    try:
        yield from unpacked  # a generator in a generator: cheaper per record than wrapping __next__
    except Exception as exc:  # anything the decoding raised: this partition stops here, no other
        setattr(records, _FAILURE, exc)


def _stop(fetcher: Any, part: Any, failure: BaseException) -> None:
    # Everything before the batch has been handed out (the iterator ends only when asked for the record
    # after them), and `_append` left the position at the first record not delivered.
    delattr(part, _FAILURE)
    part.drain()
    tp = part.topic_partition
    if fetcher._subscriptions.is_assigned(tp):
        fetcher._subscriptions.pause(tp)  # no more fetches: a refetch would only fail again
    getattr(fetcher, _HANDLER)(tp.topic, tp.partition, part.next_fetch_offset, failure)


_ISSUE = (
    "dpkp/kafka-python#1443 (a batch the consumer cannot decode raises out of poll(); closed with a clearer "
    "error, no way to go on) and KAFKA-5630 (the Java consumer keeps raising on it)"
)
PATCHES = (
    Patch(
        owner="kafka.consumer.fetcher:Fetcher",
        attribute="_parse_fetched_data",
        build=_parse_stopping,
        upstream=_ISSUE,
        original_sha256="3cd93b6d3b7b96e1dab3b97af665a9f61627332457b2cffae6c177114030c090",
    ),
    Patch(
        owner="kafka.consumer.fetcher:Fetcher",
        attribute="_append",
        build=_append_stopping,
        upstream=_ISSUE,
        original_sha256="341c09c715c59d8bf4c39d5494a7bc9d74632bc27e1a0a46e8fa74d76d41f421",
    ),
)
