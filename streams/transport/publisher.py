"""Publishing events and agreements with kafka-python, validated against the contract before sending."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaProducer
from pydantic import ValidationError

from schemas import MAX_BATCH_EVENTS, AccessEvent, Agreement, issues_from_validation_error
from streams.exceptions import PublishError
from streams.settings import Settings
from streams.transport.kafka import kafka_python_config

__all__ = ["Publisher"]


class Publisher:
    """A kafka-python producer for the access and agreements topics. Events are keyed by recipient org."""

    def __init__(self, settings: Settings, **producer_options: Any) -> None:
        self.settings = settings
        options: dict[str, Any] = {
            "acks": "all",
            "linger_ms": 5,
            "batch_size": 256 * 1024,
            "retries": 5,
            "max_in_flight_requests_per_connection": 1,  # keeps per-key order across retries
            "compression_type": None if settings.producer_compression == "none" else settings.producer_compression,
        }
        if settings.local_mode:
            # Tansu's end offsets count batches, not records (streams/transport/endoffsets.py); unbatched sends keep
            # the worker's lag gauge exact on the embedded broker.
            options["batch_size"] = 0
        options.update(producer_options)
        self._producer = KafkaProducer(**kafka_python_config(settings), **options)
        self.failed: list[tuple[str, str]] = []  # (what, error) of sends the broker never acknowledged

    def _send(self, topic: str, key: bytes | None, value: bytes | None, what: str) -> None:
        future = self._producer.send(topic, key=key, value=value)
        future.add_errback(lambda exc: self.failed.append((what, repr(exc))))

    @staticmethod
    def validate_event(event: AccessEvent | Mapping[str, Any] | str | bytes) -> AccessEvent:
        """The event as a contract model; PublishError (naming each bad field) if it is not one."""
        if isinstance(event, AccessEvent):
            return event
        try:
            if isinstance(event, str | bytes):
                return AccessEvent.model_validate_json(event)
            return AccessEvent.model_validate_json(json.dumps(event))
        except ValidationError as exc:
            detail = "; ".join(f"{i.loc}: {i.message}" for i in issues_from_validation_error(exc))
            raise PublishError(f"event does not satisfy AccessEvent v1: {detail}") from exc

    def publish_event(self, event: AccessEvent | Mapping[str, Any] | str | bytes) -> None:
        valid = self.validate_event(event)
        self._send(
            self.settings.topics.access,
            valid.recipient.org_id.encode(),
            valid.model_dump_json(exclude_none=True).encode(),
            valid.event_id,
        )

    def publish_events(self, events: Iterable[AccessEvent | Mapping[str, Any]]) -> int:
        count = 0
        for event in events:
            self.publish_event(event)
            count += 1
        return count

    def publish_batches(self, events: Iterable[AccessEvent | Mapping[str, Any]], *, batch_size: int = 500) -> int:
        """Publish events as AccessEventBatch messages: up to `batch_size` events of one recipient each.

        Events are grouped by recipient in arrival order (a batch is flushed when it is full or when the
        stream ends), so per-recipient order is kept and each batch lands on its recipient's partition.
        """
        if not 1 <= batch_size <= MAX_BATCH_EVENTS:
            raise PublishError(f"batch_size must be 1..{MAX_BATCH_EVENTS}, got {batch_size}")
        pending: dict[str, list[bytes]] = {}
        count = 0

        def flush(org_id: str) -> None:
            body = b'{"schema_version":"1","events":[' + b",".join(pending.pop(org_id)) + b"]}"
            self._send(self.settings.topics.access, org_id.encode(), body, f"batch of {org_id}")

        for event in events:
            valid = self.validate_event(event)
            org_id = valid.recipient.org_id
            pending.setdefault(org_id, []).append(valid.model_dump_json(exclude_none=True).encode())
            count += 1
            if len(pending[org_id]) >= batch_size:
                flush(org_id)
        for org_id in list(pending):
            flush(org_id)
        return count

    def publish_raw(self, value: bytes | None, key: bytes | None = None, topic: str | None = None) -> None:
        """Send bytes as they are (for replaying captured traffic and for failure tests)."""
        self._send(topic or self.settings.topics.access, key, value, "raw message")

    def publish_agreements(self, agreements: Iterable[Agreement]) -> int:
        count = 0
        for agreement in agreements:
            self._send(
                self.settings.topics.agreements,
                agreement.agreement_id.encode(),
                agreement.model_dump_json(exclude_none=True).encode(),
                f"agreement {agreement.agreement_id}",
            )
            count += 1
        return count

    def flush(self, timeout: float | None = 30.0) -> None:
        """Wait for every send; PublishError names the events the broker did not acknowledge."""
        self._producer.flush(timeout)
        if self.failed:
            failed, self.failed = self.failed, []
            sample = ", ".join(f"{what} ({error})" for what, error in failed[:5])
            raise PublishError(f"{len(failed)} message(s) were not acknowledged by Kafka, e.g. {sample}")

    def close(self) -> None:
        try:
            self.flush(30.0)
        finally:
            self._producer.close(10.0)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
