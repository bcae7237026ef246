"""The worker's partitions stopped at a record batch it cannot decode: one log line and a gauge each.

The stop itself is streams/_compat/aiokafka_decode.py; this is what the operator sees of it. The gauge
(`gatewatch_partition_undecodable`) drives a critical platform alert, and stays at 1 until the partition
is revoked (a rebalance, a restart), when whoever reads it next reports it again if it still fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping

import structlog

from streams._compat.aiokafka_decode import reason_of
from streams.metrics import OTHER, Metrics

__all__ = ["StoppedPartitions", "missing_codecs"]

log = structlog.get_logger("gatewatch.worker")

#: The longest exception text kept in the log line (codec errors are short; this bounds a pathological one).
DETAIL_CHARS = 200


def missing_codecs() -> list[str]:
    """Kafka codecs this process cannot decode with aiokafka (the worker's client); [] when all are there."""
    from aiokafka import codec

    checks = {"snappy": codec.has_snappy, "lz4": codec.has_lz4, "zstd": codec.has_zstd}
    return [name for name, available in checks.items() if not available()]


class StoppedPartitions:
    """Records each stopped partition once: a structured error line and the gauge set to 1.

    `stop` runs in Faust's consumer thread (inside aiokafka's fetch), `forget` in the worker's loop.
    """

    def __init__(self, metrics: Metrics, roles: Mapping[str, str], *, changelog_suffix: str = "-changelog") -> None:
        self._metrics = metrics
        self._roles = dict(roles)  # topic name -> bounded label value (access, agreements, ...)
        self._changelog_suffix = changelog_suffix
        self._stopped: dict[tuple[str, int], tuple[int, str]] = {}  # (topic, partition) -> (offset, reason)

    def role(self, topic: str) -> str:
        if topic in self._roles:
            return self._roles[topic]
        return "changelog" if topic.endswith(self._changelog_suffix) else OTHER

    def stopped(self) -> dict[tuple[str, int], tuple[int, str]]:
        return dict(self._stopped)

    def stop(self, topic: str, partition: int, offset: int, exc: BaseException) -> None:
        """A partition stopped at `offset` because decoding its batch raised `exc`."""
        reason = reason_of(exc)
        if self._stopped.get((topic, partition)) == (offset, reason):
            return  # the same batch met again (the partition was resumed without a rebalance): said already
        self._stopped[(topic, partition)] = (offset, reason)
        self._metrics.partition_undecodable.labels(self.role(topic), str(partition), reason).set(1)
        log.error(
            "partition_stopped_undecodable_batch",
            topic=topic,
            partition=partition,
            offset=offset,
            reason=reason,
            error=type(exc).__name__,
            detail=str(exc)[:DETAIL_CHARS],
            hint="the other partitions go on; nothing after this offset is read or committed: fix the cause "
            "(codec library, producer) and restart the worker",
        )

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Partitions revoked from this worker: their next reader reports them if they still fail."""
        for topic, partition in partitions:
            gone = self._stopped.pop((topic, partition), None)
            if gone is not None:
                with contextlib.suppress(KeyError):  # removed already (a revoke racing the consumer thread)
                    self._metrics.partition_undecodable.remove(self.role(topic), str(partition), gone[1])
