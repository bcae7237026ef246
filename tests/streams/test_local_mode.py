"""`gatewatch worker` finds out that its broker is the embedded one and turns local mode on by itself."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from streams.settings import Settings
from streams.transport.broker import EmbeddedBroker, free_port
from streams.transport.tansu import is_embedded_broker, local_mode_for

pytestmark = pytest.mark.integration


def test_the_embedded_broker_is_recognised(broker: EmbeddedBroker) -> None:
    assert is_embedded_broker(Settings(kafka_bootstrap=broker.bootstrap)) is True


def test_local_mode_is_turned_on_for_it_and_said_loudly(broker: EmbeddedBroker) -> None:
    with capture_logs() as logs:
        settings = local_mode_for(Settings(kafka_bootstrap=broker.bootstrap))
    assert settings.local_mode is True
    assert [("embedded_broker_detected", "warning")] == [(e["event"], e["log_level"]) for e in logs]


def test_an_explicit_setting_wins(broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWATCH_LOCAL_MODE", "false")
    assert local_mode_for(Settings(kafka_bootstrap=broker.bootstrap)).local_mode is False


def test_an_unreachable_broker_changes_nothing() -> None:
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    assert is_embedded_broker(settings, timeout=1.0) is None
    assert local_mode_for(settings) == settings
