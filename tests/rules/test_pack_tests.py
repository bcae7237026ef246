"""The YAML rule tests beside the NPD pack all pass, and every rule is covered both ways."""

from __future__ import annotations

import pytest

from rules import CaseResult, Engine, run_pack_tests


@pytest.fixture(scope="module")
def results(engine: Engine) -> list[CaseResult]:
    return run_pack_tests(engine=engine)


def test_every_pack_case_passes(results: list[CaseResult]) -> None:
    assert [] == [str(r) for r in results if not r.passed]


def test_every_enabled_rule_has_a_firing_and_a_non_firing_case(results: list[CaseResult], engine: Engine) -> None:
    named = {rule for r in results if r.passed for rule in r.rules}
    assert {r.id for r in engine.rules if r.enabled} <= named
