"""The index key of an event, and which facts it decides: what the engine's rule index is keyed by.

The key is a tuple of cheap values with few distinct values in practice, which most conditions test.
INDEX_FACTS, INDEX_NULL, INDEX_NONEMPTY and INDEX_PARTIAL say which facts (or their null-ness or
emptiness) a key determines, so the compiler (rules/language.py) can give each condition a key function
and the index (rules/_index.py) can drop what the key decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any

from rules._context import Facts
from rules._views import BIT_PUPIL
from rules.catalogue import GATEWAY_REQUIREMENTS

__all__ = [
    "INDEX_FACTS",
    "INDEX_NONEMPTY",
    "INDEX_NULL",
    "INDEX_PARTIAL",
    "UNKNOWN",
    "KeyFn",
    "decide_agreement_facts_by_view",
    "index_key",
    "nonempty_by_field_class",
]

# The index key of an event: cheap values with few distinct values in practice, which most conditions
# test. Gateway and purpose views are in it by identity (one per code).
_K_ACTION, _K_ORG, _K_GW_CODE, _K_GW, _K_PURPOSE, _K_PV, _K_CHANNEL, _K_PRESENT, _K_CITED = range(9)
_K_PUPIL, _K_AGGREGATE, _K_EVIDENCE, _K_MASK, _K_AGREEMENT, _K_NULLS, _K_ONWARD, _K_RESTRICTED = range(9, 17)
#: Where the agreement view goes in a key extended with it (`index_key(f) + (f.agreement_view,)`): the rule index
#: specialises each bucket further per agreement with it (see INDEX_PARTIAL).
_K_AGREEMENT_VIEW = _K_RESTRICTED + 1


#: The event attributes the key is made of, read in one call (in this order, as index_key uses them).
_KEY_ATTRIBUTES = attrgetter(
    "action",
    "recipient.org_type",
    "legal_gateway",
    "purpose",
    "channel",
    "min_cell_count",
    "evidence_attestation",
    "case_reference",
    "court_order_ref",
    "actor.country",
    "recipient.ico_registration",
    "recipient.companies_house",
    "onward_recipients",
    "restricted_record_count",
)


def index_key(f: Facts) -> tuple[Any, ...]:
    """The index key of one event (what the engine's rule index is keyed by); see INDEX_FACTS."""
    (
        action,
        org_type,
        gateway,
        purpose,
        channel,
        cells,
        attested,
        case_ref,
        court_ref,
        country,
        ico,
        ch,
        onward,
        restricted,
    ) = _KEY_ATTRIBUTES(f.event)
    return (
        action,
        org_type,
        gateway,
        f.gateway_view,
        purpose,
        f.purpose_view,
        channel,
        f.present,
        f.cited,
        f.pupil_level,
        cells is not None,
        attested is True,
        f.field_classes.mask,
        f.agreement_view.flags,
        (case_ref is None, court_ref is None, country is None, ico is None, ch is None),
        bool(onward),
        bool(restricted),
    )


KeyFn = Callable[[tuple[Any, ...]], Any]


def _at(i: int, j: int | None = None, attr: str | None = None) -> KeyFn:
    if attr is not None:
        get = attrgetter(attr)
        return lambda k: get(k[i])
    if j is not None:
        return lambda k: k[i][j]
    return lambda k: k[i]


#: Facts whose value is determined by the index key: fact -> the value from a key. Equal to the
#: fact's getter for every event with that key (tests/rules/test_properties.py checks it).
INDEX_FACTS: dict[str, KeyFn] = {
    "event.action": _at(_K_ACTION),
    "event.recipient.org_type": _at(_K_ORG),
    "event.legal_gateway": _at(_K_GW_CODE),
    "event.purpose": _at(_K_PURPOSE),
    "event.channel": _at(_K_CHANNEL),
    "agreement.present": _at(_K_PRESENT),
    "agreement.cited": _at(_K_CITED),
    "event.pupil_level": _at(_K_PUPIL),
    "event.aggregate": _at(_K_AGGREGATE),
    "event.evidence_attestation": _at(_K_EVIDENCE),
    "fields.pupil_level": lambda k: bool(k[_K_MASK] & BIT_PUPIL),
    "agreement.approved": _at(_K_AGREEMENT, 0),
    "agreement.srs_only": _at(_K_AGREEMENT, 1),
    "agreement.commercial": _at(_K_AGREEMENT, 2),
    "agreement.panel_approved": _at(_K_AGREEMENT, 3),
    **{
        f"gateway.{name}": _at(_K_GW, attr=name)
        for name in ("known", "title", "recipient_types", "purposes", *GATEWAY_REQUIREMENTS)
    },
    "purpose.known": _at(_K_PV, attr="known"),
    "purpose.title": _at(_K_PV, attr="title"),
    "purpose.carried_by_any_gateway": _at(_K_PV, attr="carried"),
    "purpose.no_gateway": _at(_K_PV, attr="no_gateway"),
}
#: List facts whose emptiness is determined by the index key: fact -> bool(value) from a key.
INDEX_NONEMPTY: dict[str, KeyFn] = {}
#: Nullable facts whose null-ness is determined by the index key: fact -> (value is None) from a key.
INDEX_NULL: dict[str, KeyFn] = {
    "event.case_reference": _at(_K_NULLS, 0),
    "event.court_order_ref": _at(_K_NULLS, 1),
    "event.actor.country": _at(_K_NULLS, 2),
    "event.recipient.ico_registration": _at(_K_NULLS, 3),
    "event.recipient.companies_house": _at(_K_NULLS, 4),
    "event.min_cell_count": lambda k: not k[_K_AGGREGATE],
    "agreement.dpia_ref": _at(_K_AGREEMENT, 4),
    "agreement.ethics_ref": _at(_K_AGREEMENT, 5),
    "agreement.recipient_org_type": _at(_K_AGREEMENT, 6),
    "agreement.per_event_record_cap": _at(_K_AGREEMENT, 7),
    "agreement.recipient_ico_registration": _at(_K_AGREEMENT, 8),
    "agreement.recipient_companies_house": _at(_K_AGREEMENT, 9),
}


class _Unknown:
    """The type of UNKNOWN."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


#: What a partial key function gives when the index key does not determine the value (INDEX_PARTIAL).
UNKNOWN: Any = _Unknown()


def _null_or_unknown(is_null: KeyFn) -> KeyFn:
    return lambda k: None if is_null(k) else UNKNOWN


#: Facts whose value the index key determines for some keys only: fact -> the value, or UNKNOWN. It lets
#: the index drop, say, `event.min_cell_count < 10` for events that are not aggregate (null: false).
INDEX_PARTIAL: dict[str, KeyFn] = {
    **{name: _null_or_unknown(is_null) for name, is_null in INDEX_NULL.items()},
    "event.restricted_record_count": lambda k: UNKNOWN if k[_K_RESTRICTED] else 0,
    "onward.not_allowed": lambda k: UNKNOWN if k[_K_ONWARD] else (),
}


def _agreement_partial(attr: str, without_view: KeyFn | None) -> KeyFn:
    get = attrgetter(attr)

    def key(k: tuple[Any, ...]) -> Any:
        if len(k) > _K_AGREEMENT_VIEW:
            return get(k[_K_AGREEMENT_VIEW])
        return UNKNOWN if without_view is None else without_view(k)

    return key


def decide_agreement_facts_by_view(paths: Mapping[str, str]) -> None:
    """Add to INDEX_PARTIAL every fact read from the agreement view (`paths`: fact -> attribute path).

    A key extended with the agreement view decides them; without it, what INDEX_PARTIAL had, or UNKNOWN.
    """
    for name, path in paths.items():
        if path.startswith("agreement_view."):
            INDEX_PARTIAL[name] = _agreement_partial(path.removeprefix("agreement_view."), INDEX_PARTIAL.get(name))


def nonempty_by_field_class(name: str, bit: int) -> None:
    """Record that list fact `name` (a field class) is non-empty exactly when the key's mask has `bit`."""
    INDEX_NONEMPTY[name] = lambda k: bool(k[_K_MASK] & bit)
