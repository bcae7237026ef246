"""A fix for aiokafka (0.14) losing track of topics the worker's producer sends to.

aiokafka adds a topic to a client's tracked set only when the topic is missing from its current
cluster view. The producer's first metadata refresh asks for *all* topics (its set is empty), so the
topics that existed then (decisions, alerts, changelogs Faust created early) are never tracked. As soon
as one later topic is added (the pupil look-up topic, a changelog created after start-up), every
refresh asks only for the tracked topics and the response *replaces* the cluster view: the untracked
topics vanish, a batch queued for one of them has no known leader, and the sender forces metadata
refreshes in a tight loop that never brings them back, until the batch expires and its records (table
changelog writes among them) are dropped. Measured on the worker: about 120,000 metadata requests for
500 events before this fix, 18 after.
"""

# ruff: noqa: SLF001 - the fix has to reach into aiokafka's client
from __future__ import annotations

from typing import Any

__all__ = ["track_every_sent_topic"]


def track_every_sent_topic() -> None:
    """Make every aiokafka client keep metadata for every topic it sends to (idempotent)."""
    from aiokafka.client import AIOKafkaClient

    if getattr(AIOKafkaClient._wait_on_metadata, "_gatewatch_tracks", False):
        return
    original = AIOKafkaClient._wait_on_metadata

    async def _wait_on_metadata(self: AIOKafkaClient, topic: str) -> Any:
        if topic not in self._topics:
            self.add_topic(topic)  # one extra refresh per new topic; then it is in every refresh
        return await original(self, topic)

    _wait_on_metadata._gatewatch_tracks = True  # type: ignore[attr-defined]
    AIOKafkaClient._wait_on_metadata = _wait_on_metadata
