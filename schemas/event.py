"""AccessEvent v1: one access to, or extract from, the pupil database, as published on npd.access.v1."""

from __future__ import annotations

import functools
import ipaddress
from typing import Literal

from pydantic import AwareDatetime, Field, field_validator

from schemas._common import (
    MAX_LIST,
    MAX_PUPIL_REFS,
    Code,
    Contract,
    CountryCode,
    Identifier,
    NonNegative,
    PupilRef,
    ShortText,
)
from schemas.vocab import Action, Channel, OrgType

__all__ = ["MAX_BATCH_EVENTS", "AccessEvent", "AccessEventBatch", "Actor", "Recipient"]

MAX_BATCH_EVENTS = 1000


class Actor(Contract):
    """Who performed the access (a DfE user or a recipient's user)."""

    user_id: Identifier
    org_id: Identifier
    role: ShortText | None = None
    ip: ShortText | None = Field(default=None, description="IPv4 or IPv6 address")
    country: CountryCode | None = Field(
        default=None,
        description="ISO 3166-1 alpha-2; the United Kingdom is GB (UK, its reserved code, counts as the UK too)",
    )

    @field_validator("ip")
    @classmethod
    def _ip_address(cls, value: str | None) -> str | None:
        if value is not None and not _is_ip_address(value):
            # Never ipaddress's own message: it quotes the value, which may be a pupil reference sent here
            # by mistake, and the message travels into dead letters and logs.
            raise ValueError("is not an IPv4 or IPv6 address")
        return value


@functools.lru_cache(maxsize=4096)
def _is_ip_address(value: str) -> bool:
    """True for an IPv4 or IPv6 address. Parsing one costs about 5 µs, a third of validating a whole
    event, and a producer's events come from few addresses, so the answers are cached (bounded)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class Recipient(Contract):
    """The organisation that receives the data."""

    org_id: Identifier
    name: ShortText | None = None
    org_type: OrgType
    ico_registration: ShortText | None = None
    companies_house: ShortText | None = None


class AccessEvent(Contract):
    """An access or extract event. Unknown fields are rejected so a producer's typo cannot hide a field."""

    schema_version: Literal["1"]
    event_id: Identifier = Field(description="Unique id; the idempotency key")
    occurred_at: AwareDatetime = Field(description="Event time, RFC 3339 with offset")
    source_system: ShortText
    action: Action
    actor: Actor
    recipient: Recipient
    agreement_id: Identifier | None = None
    legal_gateway: Code | None = None
    purpose: Code | None = None
    datasets: tuple[Code, ...] = Field(min_length=1, max_length=MAX_LIST)
    fields: tuple[Code, ...] = Field(max_length=MAX_LIST, description="Field codes disclosed to the recipient")
    record_count: NonNegative
    pupil_refs: tuple[PupilRef, ...] | None = Field(
        default=None,
        max_length=MAX_PUPIL_REFS,
        description="Pseudonymous pupil references; never copied to decisions, alerts, logs or metrics",
    )
    channel: Channel
    onward_recipients: tuple[Identifier, ...] = Field(default=(), max_length=MAX_LIST)
    case_reference: ShortText | None = None
    evidence_attestation: bool | None = None
    court_order_ref: ShortText | None = None
    min_cell_count: NonNegative | None = None
    restricted_record_count: NonNegative | None = None

    @field_validator("datasets", "fields", "onward_recipients")
    @classmethod
    def _no_duplicates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a value")
        return value


class AccessEventBatch(Contract):
    """Up to 1,000 events of ONE recipient in one Kafka message (keyed by that recipient's org id).

    For high-volume producers: the worker evaluates each event as if it had come alone and writes one
    decision per event; an invalid event in a batch becomes its own dead letter and the rest go on.
    """

    schema_version: Literal["1"]
    events: tuple[AccessEvent, ...] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)
