"""Properties of the engine: deterministic, independent of rule order, and the rule index changes nothing."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rules import Engine, load_engine
from rules.facts import FACTS, INDEX_FACTS, INDEX_NONEMPTY, INDEX_NULL, Facts, index_key
from rules.loader import LoadedPack, Rule
from schemas import AccessEvent, Agreement
from schemas.decision import Decision
from schemas.vocab import Action, Channel, OrgType
from streams.offline.simulate import Simulator, load_agreements

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
AGREEMENTS = load_agreements()
REGISTER = {a.agreement_id: a for a in AGREEMENTS}
SAMPLES = [s.event for s in Simulator(AGREEMENTS, seed=11).events(300)]
ENGINE = load_engine()
REFERENCE = Engine(ENGINE._pack, indexed=False)
CATALOGUE = ENGINE.catalogue
FIELD_CODES = [*sorted(CATALOGUE.fields), "not_a_field"]
GATEWAYS = [None, "no-such-gateway", *sorted(CATALOGUE.gateways)]
PURPOSES = [None, "no_such_purpose", *sorted(CATALOGUE.purposes)]


def _with_rules(rules: tuple[Rule, ...], *, indexed: bool = True) -> Engine:
    p = ENGINE._pack
    pack = LoadedPack(p.name, p.version, p.engine_version, p.description, p.sha256, rules, p.catalogue)
    return Engine(pack, indexed=indexed)


@st.composite
def cases(draw: st.DrawFn) -> tuple[AccessEvent, Agreement | None]:
    """A simulator event, with some of the values the index and the rules look at redrawn."""
    data: dict[str, Any] = SAMPLES[draw(st.integers(0, len(SAMPLES) - 1))].model_dump(mode="json")
    if draw(st.booleans()):
        data["recipient"]["org_type"] = draw(st.sampled_from([t.value for t in OrgType]))
    if draw(st.booleans()):
        data["action"] = draw(st.sampled_from([a.value for a in Action]))
    if draw(st.booleans()):
        data["channel"] = draw(st.sampled_from([c.value for c in Channel]))
    if draw(st.booleans()):
        data["legal_gateway"] = draw(st.sampled_from(GATEWAYS))
    if draw(st.booleans()):
        data["purpose"] = draw(st.sampled_from(PURPOSES))
    if draw(st.booleans()):
        data["fields"] = draw(st.lists(st.sampled_from(FIELD_CODES), max_size=8, unique=True))
    if draw(st.booleans()):
        data["min_cell_count"] = draw(st.none() | st.integers(0, 20))
    if draw(st.booleans()):
        data["evidence_attestation"] = draw(st.none() | st.booleans())
    if draw(st.booleans()):
        data["case_reference"] = draw(st.none() | st.just("CASE-1"))
    if draw(st.booleans()):
        data["onward_recipients"] = draw(st.lists(st.sampled_from(["org-a", "org-b"]), unique=True))
    choice = draw(st.sampled_from(["own", "none", "unknown", "other"]))
    if choice == "none":
        data["agreement_id"] = None
    elif choice == "unknown":
        data["agreement_id"] = "DR999999.99"
    elif choice == "other":
        data["agreement_id"] = draw(st.sampled_from(sorted(REGISTER)))
    try:
        event = AccessEvent.model_validate_json(json.dumps(data))
    except ValidationError:
        assume(False)
        raise
    return event, REGISTER.get(event.agreement_id or "")


def _found(engine: Engine, event: AccessEvent, agreement: Agreement | None) -> set[tuple[str, str]]:
    d = engine.evaluate(event, agreement, evaluated_at=NOW)
    return {(v.rule_id, v.explanation) for v in d.violations} | {(i.loc, i.type) for i in d.errors}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_indexed_evaluation_equals_evaluating_every_rule(case: tuple[AccessEvent, Agreement | None]) -> None:
    event, agreement = case
    assert REFERENCE.evaluate(event, agreement, evaluated_at=NOW) == ENGINE.evaluate(event, agreement, evaluated_at=NOW)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), seed=st.integers(0, 2**32 - 1))
def test_violations_do_not_depend_on_rule_or_file_order(case: tuple[AccessEvent, Agreement | None], seed: int) -> None:
    event, agreement = case
    rng = random.Random(seed)
    by_file: dict[str, list[Rule]] = {}
    for r in ENGINE.rules:
        by_file.setdefault(r.file, []).append(r)
    files = list(by_file.values())
    rng.shuffle(files)
    file_order = tuple(r for rules in files for r in rules)
    shuffled = list(ENGINE.rules)
    rng.shuffle(shuffled)
    expected = _found(ENGINE, event, agreement)
    assert expected == _found(_with_rules(file_order), event, agreement)
    assert expected == _found(_with_rules(tuple(shuffled)), event, agreement)
    assert expected == _found(_with_rules(tuple(shuffled), indexed=False), event, agreement)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_evaluation_is_deterministic(case: tuple[AccessEvent, Agreement | None]) -> None:
    event, agreement = case
    first = ENGINE.evaluate(event, agreement, evaluated_at=NOW)
    again = load_engine().evaluate(event, agreement, evaluated_at=NOW)
    assert (first, first.model_dump_json()) == (again, again.model_dump_json())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_index_facts_read_from_the_key_equal_the_facts(case: tuple[AccessEvent, Agreement | None]) -> None:
    event, agreement = case
    facts = Facts(event, agreement, CATALOGUE)
    key = index_key(facts)
    assert {n: FACTS[n].getter(facts) for n in INDEX_FACTS} == {n: fn(key) for n, fn in INDEX_FACTS.items()}
    assert {n: bool(FACTS[n].getter(facts)) for n in INDEX_NONEMPTY} == {n: fn(key) for n, fn in INDEX_NONEMPTY.items()}
    assert {n: FACTS[n].getter(facts) is None for n in INDEX_NULL} == {n: fn(key) for n, fn in INDEX_NULL.items()}


@pytest.mark.parametrize("index", range(0, 300, 7))
def test_decisions_built_without_validation_equal_validated_ones(index: int) -> None:
    """The engine builds decisions, violations and alerts from valid values without validating them again."""
    event = SAMPLES[index]
    agreement = REGISTER.get(event.agreement_id or "")
    fast = ENGINE.run(event, agreement, evaluated_at=NOW)
    models = [fast.decision, *fast.decision.violations, *fast.alerts]
    for model in models:
        cls = type(model)
        validated = cls(**{k: getattr(model, k) for k in model.model_fields_set})
        assert (validated, validated.model_dump_json(), validated.model_fields_set) == (
            model,
            model.model_dump_json(),
            model.model_fields_set,
        )
        assert cls.model_validate_json(model.model_dump_json()) == model
    assert set(Decision.model_fields) - {"schema_version", "ledger"} == fast.decision.model_fields_set
