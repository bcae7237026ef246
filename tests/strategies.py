"""Hypothesis strategies in one place: valid AccessEvent dicts, agreements, and mutated or garbage bytes."""

from __future__ import annotations

import datetime as dt
import json
import string
from functools import cache
from typing import Any

from hypothesis import strategies as st

from rules import Catalogue, load_engine
from schemas import Action, Channel, OrgType

__all__ = [
    "PUPIL_PREFIX",
    "access_events",
    "catalogue",
    "garbage",
    "hostile_inputs",
    "mutated_events",
    "pupil_refs",
    "sample_agreement_ids",
]

#: Every pupil reference these strategies draw starts with this marker, so a test can find any copy of
#: one in an output by the marker alone, whatever else a mutation did to it.
PUPIL_PREFIX = "PUPX"


@cache
def catalogue() -> Catalogue:
    return load_engine().catalogue


@cache
def sample_agreement_ids() -> list[str]:
    """Agreement ids of the packaged sample register, so drawn events often cite a real agreement."""
    from streams.offline.simulate import load_agreements

    return sorted(a.agreement_id for a in load_agreements())


_ID_ALPHABET = string.ascii_letters + string.digits + "._:/@-"
_CODE_ALPHABET = string.ascii_letters + string.digits + "._-"

identifiers = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(string.ascii_letters + string.digits),
    st.text(_ID_ALPHABET, max_size=40),
)
short_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60)
#: Pupil references, all marked with PUPIL_PREFIX; long enough never to occur by chance.
pupil_refs = st.builds(
    lambda tail: f"{PUPIL_PREFIX}{tail}", st.text(string.ascii_uppercase + string.digits, min_size=8, max_size=20)
)


def _codes(domain: str) -> st.SearchStrategy[str]:
    """Mostly codes of the catalogue, sometimes a well-formed code it does not know."""
    known = sorted(getattr(catalogue(), domain))
    unknown = st.builds(
        lambda head, tail: head + tail, st.sampled_from(string.ascii_letters), st.text(_CODE_ALPHABET, max_size=20)
    )
    return st.one_of(st.sampled_from(known), unknown) if known else unknown


aware_datetimes = st.datetimes(
    min_value=dt.datetime(2015, 1, 1),
    max_value=dt.datetime(2026, 1, 1),
    timezones=st.sampled_from(
        [dt.UTC, dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=-5, minutes=-30))]
    ),
)


@st.composite
def access_events(draw: st.DrawFn, *, with_pupils: bool | None = None) -> dict[str, Any]:
    """A valid AccessEvent v1 as a JSON-ready dict (codes from the catalogues, optional fields sometimes)."""
    org_id = draw(identifiers)
    event: dict[str, Any] = {
        "schema_version": "1",
        "event_id": draw(identifiers),
        "occurred_at": draw(aware_datetimes).isoformat(),
        "source_system": draw(short_text),
        "action": draw(st.sampled_from([a.value for a in Action])),
        "actor": {"user_id": draw(identifiers), "org_id": draw(identifiers)},
        "recipient": {"org_id": org_id, "org_type": draw(st.sampled_from([o.value for o in OrgType]))},
        "datasets": draw(st.lists(_codes("datasets"), min_size=1, max_size=4, unique=True)),
        "fields": draw(st.lists(_codes("fields"), max_size=8, unique=True)),
        "record_count": draw(st.integers(0, 100_000_000)),
        "channel": draw(st.sampled_from([c.value for c in Channel])),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "agreement_id": st.one_of(identifiers, st.sampled_from(sample_agreement_ids())),
        "legal_gateway": _codes("gateways"),
        "purpose": _codes("purposes"),
        "onward_recipients": st.lists(identifiers, max_size=3, unique=True),
        "case_reference": short_text,
        "evidence_attestation": st.booleans(),
        "court_order_ref": short_text,
        "min_cell_count": st.integers(0, 1000),
        "restricted_record_count": st.integers(0, 1000),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            event[name] = draw(strategy)
    if with_pupils or (with_pupils is None and draw(st.booleans())):
        event["pupil_refs"] = draw(st.lists(pupil_refs, min_size=1, max_size=5, unique=True))
    if draw(st.booleans()):
        event["actor"]["country"] = draw(st.sampled_from(["GB", "US", "FR"]))
    return event


_ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.just([]),
    st.just({}),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.just("9999-12-31T23:59:59+00:00"),
)


@st.composite
def _structural(draw: st.DrawFn, event: dict[str, Any]) -> bytes:
    """Field deletion, insertion or a type swap, somewhere in the (nested) event; then JSON."""
    doc = json.loads(json.dumps(event))
    target = doc
    if draw(st.booleans()):
        nested = [k for k, v in doc.items() if isinstance(v, dict)]
        if nested:
            target = doc[draw(st.sampled_from(sorted(nested)))]
    kind = draw(st.sampled_from(["delete", "insert", "swap", "version"]))
    keys = sorted(target)
    if kind == "delete" and keys:
        del target[draw(st.sampled_from(keys))]
    elif kind == "insert":
        target[draw(st.text(max_size=12))] = draw(_ODD_VALUES)
    elif kind == "swap" and keys:
        target[draw(st.sampled_from(keys))] = draw(_ODD_VALUES)
    else:
        doc["schema_version"] = draw(st.sampled_from(["2", "0", 1, None, "", "1.0"]))
    return json.dumps(doc).encode()


@st.composite
def _byte_level(draw: st.DrawFn, raw: bytes) -> bytes:
    """Byte flips, truncation, insertion of garbage, or a duplicated slice of the encoded event."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "duplicate"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[i:]
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            j = draw(st.integers(i, len(data)))
            data[j:j] = data[i:j]
    return bytes(data)


@st.composite
def mutated_events(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    """(the valid event it started from, the mutated bytes): structural edits, byte edits, or both."""
    event = draw(access_events(with_pupils=True))
    raw = json.dumps(event).encode()
    kind = draw(st.sampled_from(["structural", "bytes", "both", "none"]))
    if kind in ("structural", "both"):
        raw = draw(_structural(event))
    if kind in ("bytes", "both"):
        raw = draw(_byte_level(raw))
    return event, raw


#: Bytes that are mostly not an event: random binary, random JSON, deep nesting, huge and odd documents.
garbage = st.one_of(
    st.binary(max_size=512),
    st.text(max_size=200).map(str.encode),
    st.recursive(
        _ODD_VALUES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ).map(lambda v: json.dumps(v).encode()),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
)


def hostile_inputs() -> st.SearchStrategy[bytes]:
    """Anything a hostile producer might send: garbage or a mutated valid event."""
    return st.one_of(garbage, mutated_events().map(lambda pair: pair[1]))
