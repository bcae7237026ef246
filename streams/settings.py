"""All runtime settings of Gatewatch in one frozen pydantic-settings object (environment: GATEWATCH_*)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "TopicNames"]


class TopicNames(BaseSettings):
    """Kafka topic names; override one with e.g. GATEWATCH_TOPIC_ACCESS=npd.access.test."""

    model_config = SettingsConfigDict(env_prefix="GATEWATCH_TOPIC_", frozen=True, extra="forbid")

    access: str = "npd.access.v1"
    agreements: str = "npd.agreements.v1"
    decisions: str = "npd.decisions.v1"
    alerts: str = "npd.alerts.v1"
    deadletter: str = "npd.deadletter.v1"
    agreement_decisions: str = "npd.agreement-decisions.v1"


class Settings(BaseSettings):
    """Runtime settings. Read from the environment only when `Settings()` is constructed, never at import.

    Every field maps to an environment variable `GATEWATCH_<FIELD>` (upper case), listed in the README.
    """

    model_config = SettingsConfigDict(env_prefix="GATEWATCH_", frozen=True, extra="ignore")

    kafka_bootstrap: str | None = Field(
        default=None,
        description="Comma-separated host:port list of an existing Kafka; unset = start the embedded broker",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with a SASL protocol)"
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password (secret; never logged)")
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle that signed the brokers' certificates")
    kafka_ssl_certfile: Path | None = Field(default=None, description="Client certificate (mutual TLS)")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="Client private key (mutual TLS)")

    app_id: str = Field(default="gatewatch", description="Faust app id = Kafka consumer group")
    partitions: int = Field(default=4, ge=1, le=1024, description="Partitions of the access topic")
    replication_factor: int = Field(
        default=1, ge=1, le=16, description="Replication of created topics (3 in production)"
    )
    local_mode: bool = Field(
        default=False,
        description="Short Faust rebalance/session timeouts for the single-node embedded broker",
    )

    web_host: str = Field(default="127.0.0.1", description="Bind address of /metrics and the worker's web")
    web_port: int = Field(default=6066, ge=0, le=65535, description="Port of /metrics (0 = pick a free port)")
    data_dir: Path = Field(default=Path(".gatewatch"), description="Faust data directory of the worker")

    rule_pack_dir: Path | None = Field(default=None, description="Rule pack directory; unset = bundled NPD pack")
    agreements_file: Path | None = Field(
        default=None, description="Agreements register (YAML or JSON list, or JSON lines) loaded by `gatewatch up`"
    )
    max_message_bytes: int = Field(default=1_048_576, ge=1024, description="Larger events are dead-lettered")
    producer_batch_bytes: int = Field(
        default=524_288,
        ge=16_384,
        description="Largest record batch the worker produces, and the largest dead letter (a longer original "
        "is cut, with its length and sha256 kept); keep it under the brokers' and topics' message size limit "
        "(Kafka's default is 1 MiB)",
    )
    producer_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="none",
        description="Codec of the record batches the Publisher sends (`up`, `simulate --publish`, `agreements "
        "load`, `replay --publish`): none, gzip, snappy, lz4 or zstd. The worker reads every codec, whoever produced",
    )
    max_future_skew_seconds: int = Field(
        default=300, ge=0, description="Events dated further in the future than this are dead-lettered"
    )
    pupil_hmac_key: SecretStr | None = Field(
        default=None,
        description="Secret key for the HMAC of pupil references kept in windowed state (set it in production; "
        "unset = a fixed development key)",
    )
    window_lateness_days: int = Field(
        default=7, ge=0, le=366, description="How late (event time) an event may arrive and still count"
    )
    sweep_interval_seconds: float = Field(
        default=3600.0, gt=0, description="Interval of the governance sweep over the agreements register"
    )
    alertmanager_url: str | None = Field(
        default=None, description="Alertmanager base URL for `gatewatch sink alertmanager` (e.g. http://127.0.0.1:9093)"
    )
    webhook_url: str | None = Field(default=None, description="Receiver URL for `gatewatch sink webhook`")
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key that signs webhook bodies (X-Gatewatch-Signature)"
    )
    public_url: str = Field(
        default="http://127.0.0.1:6066",
        description="Base URL people use to reach Gatewatch; alert generator and runbook links start with it",
    )
    rule_reload_interval_seconds: float = Field(
        default=10.0, ge=0, description="How often the worker checks the pack files for changes (0 = only on SIGHUP)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="debug, info, warning or error"
    )

    topics: TopicNames = Field(default_factory=TopicNames)
