"""Declared inhibition: the pack's `inhibit:` list is validated at load, applied to alerts only, and diffed."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from rules import Engine, load_engine, validate_pack
from rules.diff import MAJOR, MINOR, diff_packs
from rules.engine import alert_id
from rules.inhibit import Inhibition, Matcher, apply_inhibitions
from schemas.decision import Alert, Inhibitor, PackRef
from schemas.vocab import Category, Severity
from tests.rules.conftest import make_agreement, make_event

DIFF_BASE = Path(__file__).parents[1] / "files" / "diff" / "base"
NOW = dt.datetime(2026, 3, 11, tzinfo=dt.UTC)

HEADER = """name: diff-test
version: "{version}"
engine_version: 1
description: A small pack for the inhibition tests.
"""


def _pack(tmp_path: Path, inhibit: str, version: str = "1.0.0", name: str = "p") -> Path:
    d = tmp_path / name
    d.mkdir()
    shutil.copy(DIFF_BASE / "main.rules.yaml", d / "main.rules.yaml")
    (d / "pack.yaml").write_text(HEADER.format(version=version) + inhibit, encoding="utf-8")
    return d


def test_an_inhibit_list_naming_known_rules_loads(tmp_path: Path) -> None:
    d = _pack(
        tmp_path,
        "inhibit:\n"
        "  - source_matchers: ['rule_id=\"T-PF-01\"']\n"
        "    target_matchers: ['severity=\"low\"']\n"
        "    equal: [event]\n",
    )
    engine = load_engine(d)
    assert (
        [],
        (
            Inhibition(
                "",
                (Matcher("rule_id", "=", "T-PF-01"),),
                (Matcher("severity", "=", "low"),),
                ("event",),
                str(d / "pack.yaml"),
                6,
            ),
        ),
    ) == (validate_pack(d), engine._pack.inhibitions)


def test_unknown_rule_ids_labels_and_keys_are_refused_with_file_and_line(tmp_path: Path) -> None:
    d = _pack(
        tmp_path,
        "inhibit:\n"
        "  - source_matchers: ['rule_id=\"T-PF-99\"']\n"
        "    target_matchers: ['colour=\"red\"']\n"
        "    equal: [evnt]\n",
    )
    f = d / "pack.yaml"
    assert [
        f"{f}:6: inhibit: source_matchers: unknown rule_id 'T-PF-99' (did you mean 'T-PF-01'?)",
        f"{f}:7: inhibit: target_matchers: unknown label 'colour'; known: rule_id, category, severity",
        f"{f}:8: inhibit: unknown equal key 'evnt' (did you mean 'event'?); known: event, recipient, agreement, "
        "legal_gateway, purpose",
    ] == [str(p) for p in validate_pack(d)]


def test_an_inhibition_without_equal_keys_is_refused(tmp_path: Path) -> None:
    d = _pack(
        tmp_path,
        "inhibit:\n  - source_matchers: ['rule_id=\"T-PF-01\"']\n    target_matchers: ['rule_id=\"T-NA-01\"']\n",
    )
    assert [
        f"{d / 'pack.yaml'}:6: inhibit: equal must be a non-empty list of keys from event, recipient, agreement, "
        "legal_gateway, purpose (e.g. [event])"
    ] == [str(p) for p in validate_pack(d)]


def test_a_cycle_is_refused_naming_the_entries_that_form_it(tmp_path: Path) -> None:
    d = _pack(
        tmp_path,
        "inhibit:\n"
        "  - source_matchers: ['rule_id=\"T-PF-01\"']\n"
        "    target_matchers: ['rule_id=\"T-NA-01\"']\n"
        "    equal: [event]\n"
        "  - source_matchers: ['category=\"no_agreement\"']\n"
        "    target_matchers: ['severity=\"critical\"']\n"
        "    equal: [event]\n",
    )
    f = d / "pack.yaml"
    assert [
        f"{f}:6: inhibit: entries form a cycle T-NA-01 -> T-PF-01 -> T-NA-01 (declared at {f}:6, {f}:9); alerts "
        "in a cycle could silence each other so nobody is paged"
    ] == [str(p) for p in validate_pack(d)]


def _alert(rule_id: str, category: Category, severity: Severity, event_id: str) -> Alert:
    t = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
    return Alert(
        alert_id=alert_id("npd", rule_id, event_id),
        rule_id=rule_id,
        category=category,
        severity=severity,
        title="t",
        explanation="e",
        legal_basis="UK GDPR",
        event_ids=(event_id,),
        first_seen=t,
        last_seen=t,
        pack=PackRef(name="npd", version="2.0.0", sha256="0" * 64),
    )


PF_OVER_FOA = (
    Inhibition(
        "",
        (Matcher("category", "=", "prohibited_field"),),
        (Matcher("category", "=", "fields_outside_agreement"),),
        ("event",),
        "pack.yaml",
        1,
    ),
)


def test_a_source_alert_inhibits_a_target_alert_of_the_same_event_only() -> None:
    pf = _alert("NPD-PF-01", Category.PROHIBITED_FIELD, Severity.CRITICAL, "ev-1")
    foa_same = _alert("NPD-FOA-01", Category.FIELDS_OUTSIDE_AGREEMENT, Severity.HIGH, "ev-1")
    foa_other = _alert("NPD-FOA-01", Category.FIELDS_OUTSIDE_AGREEMENT, Severity.HIGH, "ev-2")
    out = apply_inhibitions([pf, foa_same, foa_other], PF_OVER_FOA)
    assert [(), (Inhibitor(alert_id=pf.alert_id, rule_id="NPD-PF-01"),), ()] == [a.inhibited_by for a in out]


def test_an_uninhibited_alert_serialises_without_the_key() -> None:
    pf = _alert("NPD-PF-01", Category.PROHIBITED_FIELD, Severity.CRITICAL, "ev-1")
    foa = _alert("NPD-FOA-01", Category.FIELDS_OUTSIDE_AGREEMENT, Severity.HIGH, "ev-1")
    out = apply_inhibitions([pf, foa], PF_OVER_FOA)
    assert (False, True) == tuple("inhibited_by" in a.model_dump_json() for a in out)
    assert out == [Alert.model_validate_json(a.model_dump_json()) for a in out]


def test_engine_keeps_every_finding_on_the_decision_and_marks_the_inhibited_alert(engine: Engine) -> None:
    event = make_event(fields=["pmr", "nationality"])
    result = engine.run(event, make_agreement(), evaluated_at=NOW)
    assert (
        ["NPD-FOA-01", "NPD-PF-01"],
        {"NPD-FOA-01": ["NPD-PF-01"], "NPD-PF-01": []},
    ) == (
        [v.rule_id for v in result.decision.violations],
        {a.rule_id: [b.rule_id for b in a.inhibited_by] for a in result.alerts},
    )


def test_journalism_to_a_newspaper_raises_both_categories_and_pages_once(engine: Engine) -> None:
    event = make_event(
        recipient={"org_id": "press-telegraph", "org_type": "press", "ico_registration": None},
        agreement_id=None,
        legal_gateway="EA1996-s537A",
        purpose="journalism",
        fields=["fsm", "sen_provision", "ethnicity_major"],
        channel="egress",
    )
    result = engine.run(event, None, evaluated_at=NOW)
    assert (
        {Category.NO_AGREEMENT, Category.IDENTIFIABLE_DATA_NOT_PERMITTED, Category.PURPOSE_NOT_PERMITTED_BY_GATEWAY},
        ["NPD-NA-01", "NPD-IDN-01"],
    ) == (
        {v.category for v in result.decision.violations},
        [a.rule_id for a in result.alerts if not a.inhibited_by],
    )


def _inhibit(source: str, target: str, equal: str) -> str:
    return (
        "inhibit:\n"
        f"  - source_matchers: ['rule_id=\"{source}\"']\n"
        f"    target_matchers: ['rule_id=\"{target}\"']\n"
        f"    equal: [{equal}]\n"
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("", _inhibit("T-PF-01", "T-UA-01", "event"), [(MAJOR, "T-UA-01", "now inhibited by T-PF-01")]),
        (_inhibit("T-PF-01", "T-UA-01", "event"), "", [(MINOR, "T-UA-01", "no longer inhibited by T-PF-01")]),
        (
            _inhibit("T-PF-01", "T-UA-01", "event, recipient"),
            _inhibit("T-PF-01", "T-UA-01", "event"),
            [(MAJOR, "T-UA-01", "now inhibited by T-PF-01")],
        ),
        (
            _inhibit("T-PF-01", "T-UA-01", "event"),
            _inhibit("T-PF-01", "T-UA-01", "event, recipient"),
            [(MINOR, "T-UA-01", "no longer inhibited by T-PF-01")],
        ),
        (_inhibit("T-PF-01", "T-UA-01", "event"), _inhibit("T-PF-01", "T-UA-01", "event"), []),
    ],
    ids=["added", "removed", "fewer equal keys", "more equal keys", "unchanged"],
)
def test_rules_diff_classifies_inhibition_changes(
    tmp_path: Path, old: str, new: str, expected: list[tuple[object, str, str]]
) -> None:
    d = diff_packs(_pack(tmp_path, old, name="old"), _pack(tmp_path, new, version="2.0.0", name="new"))
    assert expected == [(c.kind, c.rule_id, c.what.split(" (")[0].split(" in every")[0]) for c in d.changes]
