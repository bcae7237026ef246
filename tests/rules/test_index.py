"""The rule index's specialisation per index key and per agreement (rules/_index.py) changes no decision.

The index drops the parts of a condition its key decides and compiles in the sides it knows, for each
(key, agreement view). These tests compare it with evaluating every full condition (`indexed=False`):
on the pack, on generated conditions, on conditions that raise, and after the specialisation cache fills.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rules._index
from rules import Engine, load_engine
from rules.facts import FACTS, INDEX_PARTIAL, UNKNOWN, Facts, index_key
from rules.language import compile_condition_node
from rules.loader import LoadedPack, Rule
from schemas import AccessEvent, Agreement
from schemas.vocab import AccessRoute, AgreementStatus, OrgType
from streams.offline.simulate import load_agreements
from tests.factories import BASE_AGREEMENT, make_agreement, make_event
from tests.strategies import access_events

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ENGINE = load_engine()
REFERENCE = Engine(ENGINE._pack, indexed=False)
CATALOGUE = ENGINE.catalogue
DOMAINS = CATALOGUE.domains()
AGREEMENTS = load_agreements()
GATEWAYS = sorted(CATALOGUE.gateways)
PURPOSES = sorted(CATALOGUE.purposes)
FIELD_CODES = sorted(CATALOGUE.fields)
DATASETS = sorted(CATALOGUE.datasets)
ONWARD = ["org-a", "org-b"]
SLOW = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


def _pack_with(rules_: tuple[Rule, ...]) -> LoadedPack:
    p = ENGINE._pack
    return LoadedPack(p.name, p.version, p.engine_version, p.description, p.sha256, rules_, p.catalogue)


def _rules(conditions: dict[str, str]) -> tuple[Rule, ...]:
    """Stateless rules with these ids and conditions, compiled as the loader does (so the index specialises them)."""
    template = next(r for r in ENGINE.rules if r.scope == "event" and r.window is None)
    out = []
    for rule_id, text in conditions.items():
        node = compile_condition_node(text, DOMAINS)
        out.append(dataclasses.replace(template, id=rule_id, condition_text=text, condition=node.fn, node=node))
    return tuple(out)


def _engines(rules_: tuple[Rule, ...]) -> tuple[Engine, Engine]:
    pack = _pack_with(rules_)
    return Engine(pack), Engine(pack, indexed=False)


def _same(indexed: Engine, reference: Engine, event: AccessEvent, agreement: Agreement | None) -> Any:
    """The decision, asserted equal with and without the index (violations, messages, errors)."""
    got = indexed.evaluate(event, agreement, evaluated_at=NOW)
    expected = reference.evaluate(event, agreement, evaluated_at=NOW)
    assert (got, got.model_dump_json()) == (expected, expected.model_dump_json())
    return got


def _same_id(agreement: Agreement, changed: Agreement) -> Agreement:
    """`changed` as a new Agreement object carrying `agreement`'s id."""
    return Agreement.model_validate({**changed.model_dump(), "agreement_id": agreement.agreement_id})


# --- strategies ------------------------------------------------------------------------------------------


@st.composite
def events(draw: st.DrawFn) -> AccessEvent:
    """tests.strategies.access_events, with the values the partial index facts read redrawn often."""
    data = draw(access_events())
    if draw(st.booleans()):
        data["min_cell_count"] = draw(st.sampled_from([0, 5, 9, 10, 50]))
    if draw(st.booleans()):
        data["restricted_record_count"] = draw(st.sampled_from([0, 1, 7]))
    if draw(st.booleans()):
        data["onward_recipients"] = draw(st.lists(st.sampled_from(ONWARD), unique=True))
    if draw(st.booleans()):
        data["record_count"] = draw(st.sampled_from([0, 1, 50, 5000, 700_001]))
    if draw(st.booleans()):
        data["legal_gateway"] = draw(st.sampled_from(GATEWAYS))
    if draw(st.booleans()):
        data["purpose"] = draw(st.sampled_from(PURPOSES))
    if draw(st.booleans()):
        data["fields"] = draw(st.lists(st.sampled_from(FIELD_CODES), max_size=6, unique=True))
    return AccessEvent.model_validate_json(json.dumps(data))


def _codes(known: list[str], unknown: str) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from([*known, unknown]), max_size=6, unique=True)


@st.composite
def odd_agreements(draw: st.DrawFn) -> Agreement:
    """tests.factories' agreement with many of its values redrawn, including empty, null and unknown ones."""
    valid_from = draw(st.dates(dt.date(2015, 1, 1), dt.date(2026, 1, 1)))
    drawn: dict[str, st.SearchStrategy[Any]] = {
        "agreement_id": st.sampled_from([BASE_AGREEMENT["agreement_id"], *(a.agreement_id for a in AGREEMENTS)]),
        "status": st.sampled_from([s.value for s in AgreementStatus]),
        "recipient_org_type": st.none() | st.sampled_from([o.value for o in OrgType]),
        "legal_gateways": _codes(GATEWAYS, "no-such-gateway"),
        "purposes": _codes(PURPOSES, "no_such_purpose"),
        "fields_allowed": _codes(FIELD_CODES, "not_a_field"),
        "datasets_allowed": _codes(DATASETS, "no_such_dataset"),
        "access_route": st.sampled_from([r.value for r in AccessRoute]),
        "monthly_record_cap": st.none() | st.sampled_from([0, 1, 10**12]),
        "per_event_record_cap": st.none() | st.sampled_from([0, 1, 5000, 700_000, 10**12]),
        "onward_recipients_allowed": st.lists(st.sampled_from(ONWARD), unique=True),
        "dpia_ref": st.none() | st.just("DPIA-9"),
        "ethics_ref": st.none() | st.just("ETH-9"),
        "last_audit_at": st.none() | st.dates(dt.date(2015, 1, 1), dt.date(2026, 1, 1)),
        "audit_interval_days": st.none() | st.sampled_from([1, 365, 3650]),
        "destruction_confirmed_at": st.none() | st.just(dt.date(2024, 1, 1)),
        "recipient_ico_registration": st.none() | st.just("Z0000001"),
        "recipient_companies_house": st.none() | st.just("01234567"),
        "commercial": st.booleans(),
    }
    overrides: dict[str, Any] = {
        "valid_from": valid_from,
        "valid_until": valid_from + draw(st.timedeltas(dt.timedelta(0), dt.timedelta(days=4000))),
    }
    for name, strategy in drawn.items():
        if draw(st.booleans()):
            overrides[name] = draw(strategy)
    return make_agreement(**overrides)


def agreements() -> st.SearchStrategy[Agreement | None]:
    """No agreement, an object of the packaged register (the same object each time), or an odd one."""
    return st.one_of(st.none(), st.sampled_from(AGREEMENTS), odd_agreements())


# --- 1. the partial index facts ---------------------------------------------------------------------------


@settings(max_examples=250, **SLOW)
@given(event=events(), agreement=agreements())
def test_partial_index_facts_read_from_the_key_are_unknown_or_the_fact(
    event: AccessEvent, agreement: Agreement | None
) -> None:
    facts = Facts(event, agreement, CATALOGUE)
    key = index_key(facts)
    for k in (key, (*key, facts.agreement_view)):
        for name, keyfn in INDEX_PARTIAL.items():
            value = keyfn(k)
            if value is not UNKNOWN:
                real = FACTS[name].getter(facts)
                assert (type(value), value) == (type(real), real), (name, len(k))
    # With the agreement view in the key, every agreement fact in INDEX_PARTIAL is settled.
    extended = (*key, facts.agreement_view)
    assert [n for n, fn in INDEX_PARTIAL.items() if n.startswith("agreement.") and fn(extended) is UNKNOWN] == []


def test_partial_index_facts_are_settled_when_the_key_allows() -> None:
    """Not vacuous: an event with no cells, restricted records or onward recipients settles them from the key."""
    facts = Facts(make_event(), make_agreement(per_event_record_cap=None), CATALOGUE)
    key = index_key(facts)
    got = {n: INDEX_PARTIAL[n](key) for n in INDEX_PARTIAL if n.startswith(("event.", "onward."))}
    assert got == {
        "event.actor.country": UNKNOWN,  # given: the key only says it is not null
        "event.case_reference": None,
        "event.court_order_ref": None,
        "event.min_cell_count": None,
        "event.recipient.companies_house": None,
        "event.recipient.ico_registration": UNKNOWN,
        "event.restricted_record_count": 0,
        "onward.not_allowed": (),
    }
    assert INDEX_PARTIAL["agreement.per_event_record_cap"](key) is None  # from the null flags
    assert INDEX_PARTIAL["agreement.legal_gateways"](key) is UNKNOWN  # needs the view
    assert INDEX_PARTIAL["agreement.legal_gateways"]((*key, facts.agreement_view)) == ("DEA2017-s64",)


# --- 2. per-agreement plans equal the full conditions -----------------------------------------------------


@settings(max_examples=120, **SLOW)
@given(
    batch=st.lists(events(), min_size=1, max_size=6),
    agreement=agreements(),
    changed=odd_agreements(),
)
def test_indexed_decisions_equal_unindexed_for_an_agreement_reused_and_changed(
    batch: list[AccessEvent], agreement: Agreement | None, changed: Agreement
) -> None:
    """The module's engine keeps its specialisations across examples: register agreements are reused objects."""
    renewed = changed if agreement is None else _same_id(agreement, changed)
    for a in (agreement, renewed, None, agreement):
        for event in batch:
            _same(ENGINE, REFERENCE, event, a)


#: An agreement changed in one way at a time, each a new object with the same agreement_id, and the rule
#: whose outcome the change flips for tests.factories' event (a stale per-agreement plan would miss it).
CHANGES: list[tuple[dict[str, Any], str]] = [
    ({"legal_gateways": ["EA1996-s537A"]}, "NPD-GOA-01"),
    ({"purposes": ["statistics"]}, "NPD-POA-01"),
    ({"status": "suspended"}, "NPD-ANA-01"),
    ({"fields_allowed": ["pmr"]}, "NPD-FOA-01"),
    ({"per_event_record_cap": 1000}, "NPD-VOL-01"),
    ({"onward_recipients_allowed": ["org-a"]}, "NPD-ONW-01"),
    ({"access_route": "direct_allowed", "per_event_record_cap": None, "dpia_ref": None}, ""),
    ({"recipient_org_type": None, "recipient_ico_registration": None, "ethics_ref": None}, ""),
]


@pytest.mark.parametrize(("change", "flipped"), CHANGES)
def test_a_changed_agreement_with_the_same_id_is_specialised_anew(change: dict[str, Any], flipped: str) -> None:
    indexed, reference = _engines(ENGINE.rules)
    event = make_event(onward_recipients=["org-a"], min_cell_count=None)
    before = make_agreement()
    after = make_agreement(**change)
    assert after.agreement_id == before.agreement_id
    found = []
    for a in (before, after, before, make_agreement()):  # the last: equal to `before`, another object
        found.append({v.rule_id for v in _same(indexed, reference, event, a).violations})
    assert found[0] == found[2] == found[3]
    if flipped:
        assert flipped in found[0] ^ found[1], (found[0], found[1])


# --- 3. conditions that raise ------------------------------------------------------------------------------

#: Each raises TypeError where it reaches a function applied to null; some other part is decided by the key.
RAISING = {
    "TST-RX-01": 'subset(event.fields, null) and event.action == "view"',  # raises first; the key decides the rest
    "TST-RX-02": 'event.action == "view" and subset(event.fields, null)',
    "TST-RX-03": '(event.record_count > 100 and len(null) > 0) or event.channel == "srs"',  # len(null): keyfn fails
    "TST-RX-04": "not (intersects(event.fields, null) or agreement.present)",
    "TST-RX-05": "event.min_cell_count < 10 or subset(event.datasets, null)",  # partial: null when not aggregate
    "TST-RX-06": "agreement.present and event.record_count > agreement.per_event_record_cap and len(null) == 0",
    "TST-RX-07": "any(onward.not_allowed) or (event.restricted_record_count > 0 and len(null) == 0)",
    "TST-RX-08": "event.legal_gateway in agreement.legal_gateways and subset(agreement.purposes, null) or false",
    "TST-RX-09": "len(null) > 0 and not agreement.present",
}
RAISING_RULES = _rules(RAISING)
RAISING_INDEXED, RAISING_REFERENCE = _engines((*ENGINE.rules, *RAISING_RULES))


@pytest.mark.parametrize(
    ("rule_id", "event_patch", "agreement", "outcome"),
    [
        ("TST-RX-01", {}, make_agreement(), "error"),
        ("TST-RX-01", {"action": "view"}, None, "error"),
        ("TST-RX-02", {}, make_agreement(), "none"),
        ("TST-RX-02", {"action": "view"}, make_agreement(), "error"),
        ("TST-RX-03", {}, make_agreement(), "error"),
        ("TST-RX-03", {"record_count": 50}, make_agreement(), "violation"),
        ("TST-RX-03", {"record_count": 50, "channel": "email"}, make_agreement(), "none"),
        ("TST-RX-04", {}, None, "error"),
        ("TST-RX-05", {}, make_agreement(), "error"),
        ("TST-RX-05", {"min_cell_count": 5}, make_agreement(), "violation"),
        ("TST-RX-06", {}, make_agreement(), "none"),
        ("TST-RX-06", {"record_count": 800_000}, make_agreement(), "error"),
        ("TST-RX-06", {"record_count": 800_000}, make_agreement(per_event_record_cap=None), "none"),
        ("TST-RX-07", {}, make_agreement(), "none"),
        ("TST-RX-07", {"restricted_record_count": 1}, make_agreement(), "error"),
        ("TST-RX-07", {"onward_recipients": ["org-a"], "restricted_record_count": 1}, make_agreement(), "violation"),
        ("TST-RX-08", {}, make_agreement(), "error"),
        ("TST-RX-08", {}, make_agreement(legal_gateways=["EA1996-s537A"]), "none"),
        ("TST-RX-08", {}, None, "none"),
        ("TST-RX-09", {}, make_agreement(), "error"),
        ("TST-RX-09", {}, None, "error"),
    ],
)
def test_a_condition_that_raises_gives_the_same_engine_error_with_the_index(
    rule_id: str, event_patch: dict[str, Any], agreement: Agreement | None, outcome: str
) -> None:
    event = make_event(**event_patch)
    d = _same(RAISING_INDEXED, RAISING_REFERENCE, event, agreement)
    errors = [e for e in d.errors if e.loc == f"rules.{rule_id}"]
    assert all(e.type == "engine_error" and rule_id in e.message and "TypeError" in e.message for e in errors)
    violated = rule_id in {v.rule_id for v in d.violations}
    assert {"error": (1, False), "violation": (0, True), "none": (0, False)}[outcome] == (len(errors), violated)


@settings(max_examples=100, **SLOW)
@given(batch=st.lists(events(), min_size=1, max_size=4), agreement=agreements())
def test_conditions_that_raise_give_the_same_decisions_with_the_index(
    batch: list[AccessEvent], agreement: Agreement | None
) -> None:
    for event in batch:
        _same(RAISING_INDEXED, RAISING_REFERENCE, event, agreement)


# --- generated conditions ----------------------------------------------------------------------------------

#: Boolean atoms over facts the key decides, partly decides (INDEX_PARTIAL, with or without the agreement
#: view), or does not decide at all, with key-known values on either side, and atoms that raise.
ATOMS = [
    "true",
    "false",
    "null == null",
    'event.action == "view"',
    'event.channel != "srs"',
    "agreement.present",
    "agreement.cited",
    "agreement.approved",
    "agreement.commercial",
    "gateway.known",
    "gateway.srs_only",
    "purpose.known",
    "event.pupil_level",
    "event.aggregate",
    "event.evidence_attestation",
    "event.record_count > 1000",
    "event.min_cell_count < 10",
    "10 > event.min_cell_count",
    "event.min_cell_count == null",
    "event.min_cell_count >= event.restricted_record_count",
    "event.min_cell_count < agreement.per_event_record_cap",
    "event.restricted_record_count > 0",
    "any(onward.not_allowed)",
    "empty(onward.not_allowed)",
    "len(onward.not_allowed) == 0",
    "intersects(event.onward_recipients, agreement.onward_recipients_allowed)",
    "event.record_count > agreement.per_event_record_cap",
    "agreement.per_event_record_cap < event.record_count",
    "agreement.per_event_record_cap <= 5000",
    "agreement.per_event_record_cap == null",
    "agreement.per_event_record_cap - event.record_count > 0",
    "event.record_count >= agreement.monthly_record_cap",
    "event.legal_gateway in agreement.legal_gateways",
    "event.purpose not in agreement.purposes",
    "event.purpose in gateway.purposes",
    '"pmr" in agreement.fields_allowed',
    '"pmr" not in event.fields',
    "agreement.recipient_org_id in event.onward_recipients",
    "agreement.recipient_org_id not in event.onward_recipients",
    "agreement.recipient_org_id == event.recipient.org_id",
    "agreement.recipient_org_id != event.actor.org_id",
    "5000 < event.record_count",
    "intersects(event.fields, agreement.fields_allowed)",
    "subset(agreement.fields_allowed, event.fields)",
    "subset(event.datasets, agreement.datasets_allowed)",
    'len(agreement.legal_gateways - ["DEA2017-s64"]) > 0',
    "len(agreement.purposes) > event.restricted_record_count",
    "agreement.recipient_org_type == event.recipient.org_type",
    "event.recipient.org_type != agreement.recipient_org_type",
    'agreement.status == "approved"',
    'agreement.valid_from == "2023-01-01"',
    "agreement.dpia_ref != null",
    "null == event.case_reference",
    'event.case_reference != "CASE-1"',
    'event.actor.country == "GB"',
    "event.recipient.ico_registration == agreement.recipient_ico_registration",
    "any(fields.outside_agreement)",
    "any(datasets.outside_agreement)",
    "len(null) > 0",
    "subset(event.fields, null)",
    "intersects(null, agreement.purposes)",
]

conditions = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda p: f"({p[0]}) and ({p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]}) or ({p[1]})"),
        st.tuples(inner, inner, inner).map(lambda p: f"{p[0]} and {p[1]} or not {p[2]}"),
        inner.map(lambda c: f"not ({c})"),
    ),
    max_leaves=6,
)


@settings(max_examples=200, **SLOW)
@given(
    texts=st.lists(conditions, min_size=1, max_size=3),
    batch=st.lists(events(), min_size=1, max_size=4),
    agreement=agreements(),
    changed=odd_agreements(),
)
def test_generated_conditions_give_the_same_decisions_with_the_index(
    texts: list[str], batch: list[AccessEvent], agreement: Agreement | None, changed: Agreement
) -> None:
    indexed, reference = _engines(_rules({f"TST-GEN-{i:02d}": t for i, t in enumerate(texts)}))
    renewed = changed if agreement is None else _same_id(agreement, changed)
    for a in (agreement, renewed, None, agreement):
        for event in batch:
            _same(indexed, reference, event, a)


# --- 4. the cap on specialisations ---------------------------------------------------------------------------


def test_specialisations_rebuilt_after_the_cache_is_cleared_are_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules._index, "MAX_SPECIALISED", 3)
    indexed, reference = _engines((*ENGINE.rules, *RAISING_RULES))
    cache = indexed._stateless_index._by_agreement
    batch = [
        make_event(),
        make_event(action="view", channel="email"),
        make_event(min_cell_count=5, record_count=800_000),
        make_event(onward_recipients=["org-a", "org-b"], restricted_record_count=2),
        make_event(legal_gateway="EA1996-s537A", purpose="statistics", fields=["pmr", "nationality"]),
    ]
    register = [
        None,
        make_agreement(),
        make_agreement(legal_gateways=["EA1996-s537A"], purposes=["statistics"]),
        make_agreement(status="revoked", per_event_record_cap=None),
        make_agreement(fields_allowed=[], onward_recipients_allowed=["org-a"]),
        *AGREEMENTS[:3],
    ]
    sizes: list[int] = []
    first: list[Any] = []
    for round_ in range(3):
        decisions = []
        for a in register:
            for e in batch:
                decisions.append(_same(indexed, reference, e, a))
                sizes.append(len(cache))
        if round_ == 0:
            first = decisions
        assert decisions == first
    assert max(sizes) <= 3
    assert any(later < earlier for earlier, later in pairwise(sizes))  # cleared, then refilled
