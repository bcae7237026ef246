"""Shared building blocks for the contract models (private to the package)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Identifiers: printable, no whitespace, bounded, so they are safe as Kafka keys and log fields.
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")]
# Catalogue codes (gateways, purposes, fields, datasets): the shape is checked here, membership by the
# rules, so an unknown code becomes a finding (e.g. no_legal_gateway) instead of a rejected event.
Code = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
PupilRef = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
NonNegative = Annotated[int, Field(ge=0, le=100_000_000)]

MAX_LIST = 512
MAX_PUPIL_REFS = 10_000


class Contract(BaseModel):
    """Base for every contract model: unknown fields are errors, values are immutable, JSON is strict."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, use_enum_values=False)
