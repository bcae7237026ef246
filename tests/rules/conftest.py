"""Shared fixtures for the rule-engine tests: the engine, a compliant event and its agreement."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rules import Engine, load_engine
from schemas import AccessEvent, Agreement
from tests.factories import RULES_BASE_AGREEMENT as BASE_AGREEMENT
from tests.factories import RULES_BASE_EVENT as BASE_EVENT
from tests.factories import rule_agreement as make_agreement
from tests.factories import rule_event as make_event

__all__ = ["BASE_AGREEMENT", "BASE_EVENT", "make_agreement", "make_event"]


@pytest.fixture(scope="session")
def engine() -> Engine:
    return load_engine()


@pytest.fixture
def event_factory() -> Callable[..., AccessEvent]:
    return make_event


@pytest.fixture
def agreement_factory() -> Callable[..., Agreement]:
    return make_agreement
