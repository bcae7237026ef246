"""The YAML rule tests beside the NPD pack all pass, and every rule is covered both ways."""

from __future__ import annotations

from pathlib import Path

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


SHIPPED = ("README.md", "rules", "schemas", "streams", "deploy", "docs")


def test_nothing_shipped_points_outside_the_repository() -> None:
    """Citations and documentation name public sources or docs/domain.md, never an internal brief."""
    root = Path(__file__).parents[2]
    bad = []
    for top in SHIPPED:
        paths = [root / top] if (root / top).is_file() else sorted((root / top).rglob("*"))
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts:
                text = path.read_text(encoding="utf-8", errors="replace")
                if "DOMAIN.md" in text or "../shared" in text:
                    bad.append(str(path.relative_to(root)))
    assert [] == bad


def test_every_legal_basis_names_a_public_source() -> None:
    from rules import load_engine

    assert [] == [r.id for r in load_engine().rules if "DOMAIN" in r.legal_basis or "brief" in r.legal_basis.lower()]
