"""Shared fixtures: the embedded Kafka-protocol broker (one per test session) and helpers around it."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.settings import Settings, TopicNames
from streams.transport.broker import EmbeddedBroker, free_port

_counter = itertools.count()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the embedded broker is an integration test, marked or not (`make test-fast`)."""
    for item in items:
        if "broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def unpatched_libraries() -> Iterator[None]:
    """No third-party patch installed during the test, and the process's patches as they were after it.

    A patch test that starts here cannot pass because an earlier test (or a worker app built in this
    process) left the patch installed.
    """
    from streams import _compat

    reinstall = _compat.uninstall()
    try:
        yield
    finally:
        _compat.uninstall()
        reinstall()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A real Tansu broker on a free loopback port, for the whole session."""
    log_file = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_file=log_file) as running:
        yield running


def isolated_settings(broker: EmbeddedBroker, data_dir: Path, **overrides: object) -> Settings:
    """Settings with their own topics and consumer group, so tests sharing one broker never interfere."""
    n = next(_counter)
    prefix = f"t{n}-{int(time.time() * 1000) % 1_000_000}"
    topics = TopicNames(
        access=f"{prefix}.access",
        agreements=f"{prefix}.agreements",
        decisions=f"{prefix}.decisions",
        alerts=f"{prefix}.alerts",
        deadletter=f"{prefix}.deadletter",
        agreement_decisions=f"{prefix}.agreement-decisions",
    )
    values: dict[str, object] = {
        "kafka_bootstrap": broker.bootstrap,
        "local_mode": True,
        "app_id": f"gatewatch-{prefix}",
        "topics": topics,
        "web_port": free_port(),
        "data_dir": data_dir,
        "partitions": 4,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def read_topic(settings: Settings, topic: str, *, expected: int, timeout: float = 60.0) -> list[dict[str, object]]:
    """Every JSON record of a topic, waiting until at least `expected` have arrived (or timeout)."""
    from kafka import KafkaConsumer, TopicPartition

    from streams.transport.kafka import kafka_python_config

    consumer = KafkaConsumer(
        **kafka_python_config(settings), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    out: list[dict[str, object]] = []
    try:
        tps = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(out) < expected:
            for batch in consumer.poll(timeout_ms=300).values():
                out.extend(json.loads(r.value) for r in batch)
        # a short extra poll catches anything beyond `expected` (duplicates must be visible to tests)
        for batch in consumer.poll(timeout_ms=500).values():
            out.extend(json.loads(r.value) for r in batch)
    finally:
        consumer.close()
    return out


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """A command run in-process configures structlog; later tests start from the defaults again."""
    import structlog

    yield
    structlog.reset_defaults()
