"""Kafka connection settings: TLS and SASL reach both the Faust worker and the kafka-python clients."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest

from streams.exceptions import BrokerError
from streams.settings import Settings
from streams.transport.kafka import faust_broker_options, kafka_python_config


def test_plaintext_by_default() -> None:
    settings = Settings(kafka_bootstrap="k1:9092, k2:9092")
    assert kafka_python_config(settings) == {
        "bootstrap_servers": ["k1:9092", "k2:9092"],
        "security_protocol": "PLAINTEXT",
    }
    assert faust_broker_options(settings) == {"broker": ["kafka://k1:9092", "kafka://k2:9092"]}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_over_tls_for_both_clients(mechanism: str, tmp_path: Path) -> None:
    settings = Settings(
        kafka_bootstrap="k1:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="gatewatch",
        kafka_sasl_password="s3cret",
    )
    cfg = kafka_python_config(settings)
    assert cfg["security_protocol"] == "SASL_SSL"
    assert (cfg["sasl_mechanism"], cfg["sasl_plain_username"], cfg["sasl_plain_password"]) == (
        mechanism,
        "gatewatch",
        "s3cret",
    )
    credentials = faust_broker_options(settings)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "gatewatch"
    assert (
        str(credentials.mechanism.value if hasattr(credentials.mechanism, "value") else credentials.mechanism)
        == mechanism
    )
    assert credentials.ssl_context is not None


def test_sasl_without_credentials_is_a_clear_error() -> None:
    settings = Settings(kafka_bootstrap="k1:9093", kafka_security_protocol="SASL_PLAINTEXT")
    with pytest.raises(BrokerError, match="needs GATEWATCH_KAFKA_SASL_MECHANISM"):
        faust_broker_options(settings)


def test_secrets_never_show_in_the_settings_repr() -> None:
    settings = Settings(kafka_bootstrap="k:1", kafka_sasl_password="s3cret", pupil_hmac_key="k3y", webhook_secret="w")
    assert "s3cret" not in repr(settings)
    assert "k3y" not in repr(settings)
    assert "s3cret" not in str(settings.model_dump())


def test_web_endpoints_bind_to_loopback_unless_configured() -> None:
    assert Settings().web_host == "127.0.0.1"


def test_producer_compression_is_validated_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("GATEWATCH_PRODUCER_COMPRESSION", "zstd")
    assert "zstd" == Settings().producer_compression
    monkeypatch.setenv("GATEWATCH_PRODUCER_COMPRESSION", "brotli")
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = str(caught.value)
    assert "producer_compression" in message
    assert "'none', 'gzip', 'snappy', 'lz4' or 'zstd'" in message


def test_both_kafka_clients_have_every_codec_kafka_defines() -> None:
    import aiokafka.codec
    import kafka.codec

    from streams.worker.stalls import missing_codecs

    assert [] == missing_codecs()  # aiokafka: the worker, replay
    kafka_python = {"snappy": kafka.codec.has_snappy(), "lz4": kafka.codec.has_lz4(), "zstd": kafka.codec.has_zstd()}
    assert {"snappy": True, "lz4": True, "zstd": True} == kafka_python  # the Publisher, sinks, audit verify
    assert aiokafka.codec.has_gzip()
