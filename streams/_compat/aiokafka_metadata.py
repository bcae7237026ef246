"""A fix for aiokafka (0.14.0) losing track of topics the worker's producer sends to.

aiokafka adds a topic to a client's tracked set only when the topic is missing from its current
cluster view. The producer's first metadata refresh asks for *all* topics (its set is empty), so the
topics that existed then (decisions, alerts, changelogs Faust created early) are never tracked. As soon
as one later topic is added (the pupil look-up topic, a changelog created after start-up), every
refresh asks only for the tracked topics and the response *replaces* the cluster view: the untracked
topics vanish, a batch queued for one of them has no known leader, and the sender forces metadata
refreshes in a tight loop that never brings them back, until the batch expires and its records (table
changelog writes among them) are dropped. Measured on the worker: about 120,000 metadata requests for
500 events before this fix, 18 after.

Upstream: no aiokafka issue found for this (aio-libs/aiokafka issues searched; the Java client fixed
the same class of bug in KAFKA-2948/KAFKA-5086 by adding the topic on every wait for its metadata).
"""

from __future__ import annotations

from typing import Any

from streams._compat._patch import Patch

__all__ = ["PATCHES"]


def _track_every_sent_topic(original: Any) -> Any:
    async def _wait_on_metadata(self: Any, topic: str) -> Any:
        if topic not in self._topics:
            self.add_topic(topic)  # one extra refresh per new topic; then it is in every refresh
        return await original(self, topic)

    return _wait_on_metadata


PATCHES = (
    Patch(
        owner="aiokafka.client:AIOKafkaClient",
        attribute="_wait_on_metadata",
        build=_track_every_sent_topic,
        upstream="none filed; same bug class as KAFKA-2948 / KAFKA-5086 in the Java client",
        original_sha256="52b0a5ee78ef3aa0c21c82b69baa20eb6983d9e5871e9e66784198cb2f1bf256",
    ),
)
