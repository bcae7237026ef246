"""A msgspec decoder for AccessEvent v1 that may only ever ACCEPT, held equal to the pydantic contract.

pydantic stays the contract (schemas/). `decode_event` / `decode_batch` decode with msgspec Structs
mirroring the models, repeat the checks of the models' validators and build the pydantic models
without validating again; anything they do not accept, whatever the reason, returns None, and
`validate_event_json` / `validate_batch_json` then hand the bytes to pydantic's `model_validate_json`,
so a rejected message always gets exactly pydantic's errors, dead-letter reasons and texts. The fast
path is only as strict as it must be to be safe: it never accepts what pydantic rejects nor reads a
value differently; declining more than pydantic rejects is harmless.

Not on the hot paths: measured (`python -m streams.bench.offline`, docs/performance.md), this path costs
more than pydantic-core's own validation (about 9.5 against 6.8 µs per simulator event on the 2-core
machine): msgspec's decode alone is about 2.6 µs, but the patterns, the validators' checks and
building the models in Python cost more than pydantic-core's whole validation in Rust. The benchmark
keeps reporting both (`offline_decode_fast_us_p50`, `offline_decode_pydantic_us_p50`) so the decision
can be re-taken on other hardware or versions; switching means calling `validate_event_json` where
the worker, replay and check call `AccessEvent.model_validate_json`.

The constraints come from the contract's own annotated types (schemas/_common.py), with a pattern's
final `$` (which Python's `re` lets match before a trailing newline; pydantic's does not) anchored as
`\\Z`. tests/streams/test_fastdecode.py holds the two paths equal: the Structs' fields against the
models', the validators the fast path repeats against the models' validators, and differential
Hypothesis properties over valid, mutated and hostile inputs.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from pydantic import BaseModel
from pydantic_core import TzInfo

from rules._index import construct
from schemas import AccessEvent, AccessEventBatch, Actor, Recipient
from schemas._common import MAX_LIST, MAX_PUPIL_REFS, Code, CountryCode, Identifier, NonNegative, PupilRef, ShortText
from schemas.event import MAX_BATCH_EVENTS
from schemas.vocab import Action, Channel, OrgType

M = TypeVar("M", bound=BaseModel)

__all__ = ["decode_batch", "decode_event", "validate_batch_json", "validate_event_json"]


def _constraints(annotated: Any) -> dict[str, Any]:
    """The constraints of a contract type `Annotated[str|int, StringConstraints | Field(...)]`."""
    kwargs: dict[str, Any] = {}
    for item in annotated.__metadata__:
        if any(getattr(item, name, None) for name in ("strip_whitespace", "to_upper", "to_lower")):
            raise ValueError("a contract type that transforms its value cannot be mirrored by the fast path")
        for name in ("min_length", "max_length", "pattern"):
            value = getattr(item, name, None)
            if value is not None:
                kwargs[name] = value
        for constraint in getattr(item, "metadata", ()):  # Field(ge=..., le=...) keeps annotated_types
            for name in ("ge", "le", "gt", "lt"):
                value = getattr(constraint, name, None)
                if value is not None:
                    kwargs[name] = value
    pattern = kwargs.get("pattern")
    if pattern is not None:
        if not pattern.startswith("^") or not pattern.endswith("$"):
            raise ValueError(f"contract pattern {pattern!r} is not anchored at both ends")
        kwargs["pattern"] = pattern[:-1] + r"\Z"
    return kwargs


def _lengths(annotated: Any) -> msgspec.Meta:
    """The contract type's length and range bounds, checked by msgspec as it decodes."""
    return msgspec.Meta(**{k: v for k, v in _constraints(annotated).items() if k != "pattern"})


class _Shape:
    """The contract type's pattern, checked after decoding. Codes and identifiers repeat from event to
    event (field codes, datasets, organisations), so the strings that matched are remembered (bounded):
    Python's `re` costs about as much per string as pydantic's whole validation of it."""

    __slots__ = ("_known", "_match")

    def __init__(self, annotated: Any) -> None:
        pattern = _constraints(annotated).get("pattern")
        self._match = re.compile(pattern).match if pattern else None
        self._known: set[str] = set()

    def check(self, value: str) -> None:
        if self._match is None or value in self._known:
            return
        if self._match(value) is None:
            raise _Rejected
        if len(self._known) < 65_536:
            self._known.add(value)

    def check_all(self, values: tuple[str, ...]) -> None:
        for value in values:
            self.check(value)


_Id = Annotated[str, _lengths(Identifier)]
_Code = Annotated[str, _lengths(Code)]
_Short = Annotated[str, _lengths(ShortText)]
_Country = Annotated[str, _lengths(CountryCode)]
_Pupil = Annotated[str, _lengths(PupilRef)]
_Count = Annotated[int, _lengths(NonNegative)]
# RFC 3339 with an offset, the one form read here; pydantic's other accepted forms take the slow path.
# ([0-9], not \d: Python's \d also matches other scripts' digits.)
_Time = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})\Z"
    ),
]
_UNSET: Any = msgspec.UNSET
_Unset = msgspec.UnsetType
_ID, _CODE, _COUNTRY, _PUPIL = _Shape(Identifier), _Shape(Code), _Shape(CountryCode), _Shape(PupilRef)


class _Actor(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user_id: _Id
    org_id: _Id
    role: _Short | _Unset | None = _UNSET
    ip: _Short | _Unset | None = _UNSET
    country: _Country | _Unset | None = _UNSET


class _Recipient(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    org_id: _Id
    name: _Short | _Unset | None = _UNSET
    org_type: OrgType
    ico_registration: _Short | _Unset | None = _UNSET
    companies_house: _Short | _Unset | None = _UNSET


class _Event(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    schema_version: Literal["1"]
    event_id: _Id
    occurred_at: _Time
    source_system: _Short
    action: Action
    actor: _Actor
    recipient: _Recipient
    agreement_id: _Id | _Unset | None = _UNSET
    legal_gateway: _Code | _Unset | None = _UNSET
    purpose: _Code | _Unset | None = _UNSET
    datasets: Annotated[tuple[_Code, ...], msgspec.Meta(min_length=1, max_length=MAX_LIST)]
    fields: Annotated[tuple[_Code, ...], msgspec.Meta(max_length=MAX_LIST)]
    record_count: _Count
    pupil_refs: Annotated[tuple[_Pupil, ...], msgspec.Meta(max_length=MAX_PUPIL_REFS)] | _Unset | None = _UNSET
    channel: Channel
    onward_recipients: Annotated[tuple[_Id, ...], msgspec.Meta(max_length=MAX_LIST)] | _Unset = _UNSET
    case_reference: _Short | _Unset | None = _UNSET
    evidence_attestation: bool | _Unset | None = _UNSET
    court_order_ref: _Short | _Unset | None = _UNSET
    min_cell_count: _Count | _Unset | None = _UNSET
    restricted_record_count: _Count | _Unset | None = _UNSET


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    schema_version: Literal["1"]
    events: Annotated[tuple[_Event, ...], msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]


class _Rejected(Exception):
    """The fast path does not accept the value; pydantic decides."""


_event_decoder = msgspec.json.Decoder(_Event)
_batch_decoder = msgspec.json.Decoder(_Batch)


@functools.lru_cache(maxsize=64)
def _tz(seconds: int) -> TzInfo:
    return TzInfo(seconds)  # the tzinfo class pydantic itself gives parsed datetimes


@functools.lru_cache(maxsize=4096)
def _time(text: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _Rejected from None
    offset = parsed.utcoffset()
    if offset is None or ((zone := _OFFSET.search(text)) is not None and int(zone[1]) >= 60):
        raise _Rejected  # Python reads "+00:80" as 80 minutes; pydantic refuses minutes past 59
    return parsed.replace(tzinfo=_tz(int(offset.total_seconds())))


_OFFSET = re.compile(r"[+-][0-9]{2}:?([0-9]{2})\Z")


@functools.lru_cache(maxsize=4096)
def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_astuple = msgspec.structs.astuple


def _unique(values: tuple[str, ...]) -> None:
    if len(set(values)) != len(values):
        raise _Rejected


def _model(model: type[M], struct: msgspec.Struct, defaults: tuple[tuple[str, Any], ...]) -> M:
    """`model.model_construct(...)` of the decoded fields at a fraction of its cost: `__dict__` holds every
    field in declaration order (absent ones at their defaults), `model_fields_set` the present ones."""
    values, present = {}, set()
    for (name, default), value in zip(defaults, _astuple(struct), strict=True):
        if value is _UNSET:
            values[name] = default
        else:
            values[name] = value
            present.add(name)
    return construct(model, values, present)


def _defaults(model: type[Any], struct: type[msgspec.Struct]) -> tuple[tuple[str, Any], ...]:
    """(field, default) in the model's declaration order, which the Struct must share (checked here)."""
    if tuple(model.model_fields) != struct.__struct_fields__:
        raise TypeError(f"{struct.__name__} does not declare {model.__name__}'s fields in its order")
    out = []
    for name, info in model.model_fields.items():
        if info.default_factory is not None:
            raise TypeError(f"{model.__name__}.{name} has a default factory")
        out.append((name, None if info.is_required() else info.default))
    return tuple(out)


_ACTOR, _RECIPIENT, _EVENT = _defaults(Actor, _Actor), _defaults(Recipient, _Recipient), _defaults(AccessEvent, _Event)


def _check(struct: _Event) -> None:
    """The patterns and the models' validators (Actor.ip, AccessEvent's no-duplicates) on a decoded event."""
    actor, recipient = struct.actor, struct.recipient
    _ID.check(actor.user_id)
    _ID.check(actor.org_id)
    if actor.country:
        _COUNTRY.check(actor.country)
    if actor.ip and not _is_ip(actor.ip):
        raise _Rejected
    _ID.check(recipient.org_id)
    _ID.check(struct.event_id)
    if struct.agreement_id:
        _ID.check(struct.agreement_id)
    if struct.legal_gateway:
        _CODE.check(struct.legal_gateway)
    if struct.purpose:
        _CODE.check(struct.purpose)
    _CODE.check_all(struct.datasets)
    _CODE.check_all(struct.fields)
    _unique(struct.datasets)
    _unique(struct.fields)
    if struct.onward_recipients:
        _ID.check_all(struct.onward_recipients)
        _unique(struct.onward_recipients)
    if struct.pupil_refs:
        _PUPIL.check_all(struct.pupil_refs)


def _event(struct: _Event) -> AccessEvent:
    _check(struct)
    occurred_at = _time(struct.occurred_at)
    event = _model(AccessEvent, struct, _EVENT)
    values = event.__dict__
    values["actor"] = _model(Actor, struct.actor, _ACTOR)
    values["recipient"] = _model(Recipient, struct.recipient, _RECIPIENT)
    values["occurred_at"] = occurred_at
    return event


def decode_event(raw: bytes | str) -> AccessEvent | None:
    """The event, or None when the fast path does not accept the bytes (pydantic must decide)."""
    try:
        return _event(_event_decoder.decode(raw))
    except (msgspec.ValidationError, msgspec.DecodeError, _Rejected):
        return None


def decode_batch(raw: bytes | str) -> AccessEventBatch | None:
    """The batch, or None when the fast path does not accept the bytes (pydantic must decide)."""
    try:
        struct = _batch_decoder.decode(raw)
        events = tuple(_event(e) for e in struct.events)
        return construct(AccessEventBatch, {"schema_version": "1", "events": events}, {"schema_version", "events"})
    except (msgspec.ValidationError, msgspec.DecodeError, _Rejected):
        return None


def validate_event_json(raw: bytes | str) -> AccessEvent:
    """`AccessEvent.model_validate_json`, fast when the fast path accepts; pydantic's ValidationError otherwise."""
    event = decode_event(raw)
    return event if event is not None else AccessEvent.model_validate_json(raw)


def validate_batch_json(raw: bytes | str) -> AccessEventBatch:
    """`AccessEventBatch.model_validate_json`, fast when the fast path accepts; pydantic's error otherwise."""
    batch = decode_batch(raw)
    return batch if batch is not None else AccessEventBatch.model_validate_json(raw)
