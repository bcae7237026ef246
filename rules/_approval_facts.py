"""Facts about what an agreement approves, judged against the catalogue: the vocabulary of the approval
rules (`scope: agreement`), which judge an agreement as it enters the register, before any data leaves.

Each fact is a list of the agreement's own codes (in its order) that the catalogue puts in a class:
gateways not open to its recipient type or not in the catalogue, purposes its gateways cannot carry,
fields it allows that are prohibited, identifying or sensitive. With no agreement each list is empty.
Registered into FACTS by importing this module (rules/facts.py does so last, so every vocabulary built
from FACTS has them).
"""

from __future__ import annotations

from collections.abc import Callable

from rules._views import BIT_IDENTIFIERS, BIT_IDENTIFYING, BIT_PROHIBITED, BIT_SENSITIVE, UNKNOWN_FIELD_BITS
from rules.facts import Facts, _fact

__all__: list[str] = []


def _allowed_fields_of_class(bit: int) -> Callable[[Facts], tuple[str, ...]]:
    def get(f: Facts) -> tuple[str, ...]:
        a = f.agreement
        if a is None:
            return ()
        bits = f.views.bits
        return tuple(c for c in a.fields_allowed if bits.get(c, UNKNOWN_FIELD_BITS) & bit)

    return get


_fact(
    "agreement.fields_prohibited",
    "list",
    "Fields the agreement allows that are prohibited for every recipient",
    domain="field",
)(_allowed_fields_of_class(BIT_PROHIBITED))
_fact(
    "agreement.fields_identifiers",
    "list",
    "Instant or meaningful identifiers the agreement allows",
    domain="field",
)(_allowed_fields_of_class(BIT_IDENTIFIERS))
_fact(
    "agreement.fields_identifying",
    "list",
    "Identifiers or Tier 1/2 pupil-level fields the agreement allows",
    domain="field",
)(_allowed_fields_of_class(BIT_IDENTIFYING))
_fact(
    "agreement.fields_sensitive",
    "list",
    "Tier 1 or special category fields the agreement allows",
    domain="field",
)(_allowed_fields_of_class(BIT_SENSITIVE))


@_fact(
    "agreement.gateways_not_open",
    "list",
    "Gateways the agreement approves that are not open to its recipient type (empty when it names no type; "
    "codes not in the catalogue are open to no type)",
    domain=None,
)
def _gateways_not_open(f: Facts) -> tuple[str, ...]:
    a = f.agreement
    if a is None or a.recipient_org_type is None:
        return ()
    org_type = a.recipient_org_type.value
    gateways = f.catalogue.gateways
    return tuple(c for c in a.legal_gateways if (g := gateways.get(c)) is None or org_type not in g.recipient_types)


@_fact(
    "agreement.gateways_unknown",
    "list",
    "Gateway codes the agreement approves that the catalogue does not know",
    domain=None,
)
def _gateways_unknown(f: Facts) -> tuple[str, ...]:
    a = f.agreement
    if a is None:
        return ()
    gateways = f.catalogue.gateways
    return tuple(c for c in a.legal_gateways if c not in gateways)


@_fact(
    "agreement.purposes_outside_gateways",
    "list",
    "Purposes the agreement approves that none of its gateways can carry",
    domain=None,
)
def _purposes_outside_gateways(f: Facts) -> tuple[str, ...]:
    a = f.agreement
    if a is None:
        return ()
    gateways = f.catalogue.gateways
    carried = {p for c in a.legal_gateways if (g := gateways.get(c)) is not None for p in g.purposes}
    return tuple(p for p in a.purposes if p not in carried)


@_fact(
    "agreement.purposes_no_gateway",
    "list",
    "Purposes the agreement approves that no gateway can carry (journalism, marketing, ...)",
    domain="purpose",
)
def _purposes_no_gateway(f: Facts) -> tuple[str, ...]:
    a = f.agreement
    if a is None:
        return ()
    purposes = f.catalogue.purposes
    return tuple(p for p in a.purposes if (known := purposes.get(p)) is not None and not known.carried_by_gateway)
