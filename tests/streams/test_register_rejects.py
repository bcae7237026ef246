"""A register record the worker refuses is dead-lettered with a reason that never repeats its values."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from streams.cli.runner import WorkerProcess
from streams.transport.broker import EmbeddedBroker
from streams.transport.kafka import ensure_topics
from streams.transport.publisher import Publisher
from tests.conftest import isolated_settings, read_topic
from tests.factories import make_agreement

pytestmark = pytest.mark.integration

SENTINEL_KEY = b"UPN-K801200001015"  # a producer keying the register by mistake with a pupil number


def test_a_record_whose_key_is_not_its_agreement_id_is_refused_without_echoing_either(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(broker, tmp_path)
    ensure_topics(settings)
    agreement = make_agreement()
    with Publisher(settings) as pub:
        pub.publish_raw(agreement.model_dump_json().encode(), key=SENTINEL_KEY, topic=settings.topics.agreements)
    worker = WorkerProcess(settings, log_file=tmp_path / "worker.log").start()
    try:
        dead = read_topic(settings, settings.topics.deadletter, expected=1, timeout=120)
    finally:
        worker.stop()
    assert [("schema_violation", "key_mismatch")] == [(d["reason"], d["errors"][0]["type"]) for d in dead]
    assert base64.b64encode(SENTINEL_KEY).decode() == dead[0]["key_b64"]  # the record itself is kept whole
    assert SENTINEL_KEY.decode() not in str(dead[0]["errors"])
    assert agreement.agreement_id not in str(dead[0]["errors"])
    log = (tmp_path / "worker.log").read_text(encoding="utf-8")
    assert SENTINEL_KEY.decode() not in log
