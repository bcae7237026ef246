"""`rules.diff`: classifying the change between two versions of a pack and checking the version bump."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rules import load_engine, validate_pack
from rules.diff import (
    CANNOT_PROVE,
    MAJOR,
    MINOR,
    PATCH,
    Change,
    ChangeClass,
    bump_kind,
    classify_rule,
    compare_conditions,
    diff_packs,
    parse_condition,
)

DIFF = Path(__file__).parents[1] / "files" / "diff"
NARROWED = "condition narrowed (fires in fewer cases)"
WIDENED = "condition widened (fires in more cases)"


@pytest.mark.parametrize("pack", sorted(p.name for p in DIFF.iterdir() if p.is_dir()))
def test_every_fixture_pack_loads_cleanly(pack: str) -> None:
    assert [] == validate_pack(DIFF / pack)
    assert load_engine(DIFF / pack).pack.name == "diff-test"


# new pack (compared with base/, or zero_base/ for zero_*): [(class, rule id, start of the reason)], bump ok
PAIRS: list[tuple[str, list[tuple[ChangeClass, str, str]], bool]] = [
    ("removed", [(MAJOR, "T-NA-01", "rule removed")], True),
    ("removed_minor_bump", [(MAJOR, "T-NA-01", "rule removed")], False),
    ("disabled", [(MAJOR, "T-PF-01", "rule disabled")], True),
    ("enabled", [(MINOR, "T-UA-01", "rule enabled")], True),
    ("added", [(MINOR, "T-ONW-01", "rule added")], True),
    ("added_patch_bump", [(MINOR, "T-ONW-01", "rule added")], False),
    ("severity_lowered", [(MAJOR, "T-PF-01", "severity lowered critical -> high")], True),
    ("severity_raised", [(MINOR, "T-BULK-01", "severity raised medium -> high")], True),
    ("category_changed", [(MAJOR, "T-BULK-01", "category changed bulk_extract -> volume_cap_exceeded")], True),
    ("narrowed_and", [(MAJOR, "T-PF-01", NARROWED)], True),
    ("widened_or", [(MINOR, "T-PF-01", WIDENED)], True),
    ("in_list_lost", [(MAJOR, "T-IDN-01", NARROWED)], True),
    ("in_list_gained", [(MINOR, "T-IDN-01", WIDENED)], True),
    ("not_in_gained", [(MAJOR, "T-INS-01", NARROWED)], True),
    ("not_in_lost", [(MINOR, "T-INS-01", WIDENED)], True),
    ("threshold_raised", [(MAJOR, "T-BULK-01", NARROWED)], True),
    ("threshold_lowered", [(MINOR, "T-BULK-01", WIDENED)], True),
    ("upper_raised", [(MINOR, "T-UA-01", WIDENED)], True),
    ("upper_lowered", [(MAJOR, "T-UA-01", NARROWED)], True),
    ("cannot_prove", [(MAJOR, "T-PF-01", CANNOT_PROVE)], True),
    ("cannot_prove_minor_bump", [(MAJOR, "T-PF-01", CANNOT_PROVE)], False),
    ("reformatted", [(PATCH, "T-NA-01", "condition rewritten with the same meaning")], True),
    (
        "metadata",
        [(PATCH, "T-NA-01", "title changed"), (PATCH, "T-NA-01", "runbook changed"), (PATCH, "T-NA-01", "tags")],
        True,
    ),
    ("metadata_no_bump", [(PATCH, "T-NA-01", "title changed")], False),
    ("unchanged_bumped", [], True),
    ("downgrade", [], False),
    ("zero_breaking", [(MAJOR, "T-NA-01", "rule removed")], True),
]


@pytest.mark.parametrize(("new", "expected", "ok"), PAIRS, ids=[p[0] for p in PAIRS])
def test_pack_changes_are_classified_and_the_bump_checked(
    new: str, expected: list[tuple[ChangeClass, str, str]], ok: bool
) -> None:
    old = DIFF / ("zero_base" if new.startswith("zero") else "base")
    result = diff_packs(old, DIFF / new)
    assert len(expected) == len(result.changes), result.render()
    actual = [(c.kind, c.rule_id, c.what[: len(w)]) for c, (_, _, w) in zip(result.changes, expected, strict=True)]
    assert expected == actual
    assert ok == result.ok
    assert max((k for k, _, _ in expected), default=None) == result.required


def test_an_insufficient_bump_names_both_kinds() -> None:
    result = diff_packs(DIFF / "base", DIFF / "removed_minor_bump")
    assert "version 1.0.0 -> 1.1.0 is a minor bump but the changes need major" == result.verdict
    assert "major  T-NA-01  rule removed" == str(result.changes[0])
    assert result.render().splitlines()[-1] == result.verdict


def test_no_change_needs_no_bump() -> None:
    result = diff_packs(DIFF / "base", DIFF / "base")
    assert ((), None, "none", True) == (result.changes, result.required, result.bump, result.ok)


def test_a_version_going_backwards_fails() -> None:
    assert (
        "version 1.0.0 -> 0.9.0 goes backwards; the changes need no bump"
        == diff_packs(DIFF / "base", DIFF / "downgrade").verdict
    )


def test_json_document_lists_changes_and_verdict() -> None:
    doc = diff_packs(DIFF / "base", DIFF / "added").as_dict()
    assert {"class": "minor", "rule_id": "T-ONW-01", "change": "rule added"} == doc["changes"][0]
    assert ("minor", "minor", True) == (doc["required_bump"], doc["bump"], doc["ok"])
    assert ("1.0.0", "1.1.0") == (doc["old"]["version"], doc["new"]["version"])


@pytest.mark.parametrize(
    ("old", "new", "bump"),
    [
        ("1.0.0", "2.0.0", "major"),
        ("1.0.0", "1.1.0", "minor"),
        ("1.2.3", "1.2.4", "patch"),
        ("1.2.3", "1.2.3", "none"),
        ("1.2.3", "1.2.2", "downgrade"),
        ("1.9.0", "1.10.0", "minor"),
        ("0.1.0", "1.0.0", "major"),
    ],
)
def test_bump_kind(old: str, new: str, bump: str) -> None:
    assert bump == bump_kind(old, new)


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ("any(fields.prohibited)", "any(fields.prohibited) and event.pupil_level", MAJOR),
        ("any(fields.prohibited)", "event.pupil_level and (any(fields.prohibited) and agreement.present)", MAJOR),
        ("any(fields.prohibited)", "any(fields.prohibited) or any(fields.tier1)", MINOR),
        ("a_placeholder", "a_placeholder", None),
        ("event.pupil_level and agreement.cited", "agreement.cited and event.pupil_level", PATCH),
        ("event.pupil_level and agreement.cited", "agreement.cited", MINOR),  # a conjunct dropped
        ('event.channel in ["srs", "sftp"]', 'event.channel in ["sftp"]', MAJOR),
        ('event.channel in ["srs"]', 'event.channel in ["sftp", "srs"]', MINOR),
        ('event.channel == "srs"', 'event.channel in ["srs", "sftp"]', MINOR),
        ('event.channel not in ["srs"]', 'event.channel not in ["srs", "portal"]', MAJOR),
        ('event.channel != "srs"', 'event.channel not in ["srs", "portal"]', MAJOR),
        ("event.record_count > 10", "event.record_count > 11", MAJOR),
        ("event.record_count > 10", "event.record_count >= 11", PATCH),  # integers: the same test
        ("event.record_count > 10", "10 < event.record_count", PATCH),
        ("event.record_count >= 10", "event.record_count >= 3", MINOR),
        ("event.local_hour < 7", "event.local_hour < 6", MAJOR),
        ("event.local_hour <= 7", "event.local_hour <= 9", MINOR),
        ("not agreement.present", "not (agreement.present or agreement.cited)", MAJOR),
        ('intersects(event.fields, ["upn"])', 'intersects(event.fields, ["upn", "name"])', MINOR),
        ("event.record_count > agreement.per_event_record_cap", "event.record_count > 10", MAJOR),
        ("any(fields.tier1)", "any(fields.tier2)", MAJOR),
    ],
)
def test_condition_changes(old: str, new: str, kind: ChangeClass | None) -> None:
    if old == "a_placeholder":
        old = new = "event.pupil_level  and\n agreement.cited"
    assert kind == compare_conditions(old, new)[0]


def test_a_change_that_cannot_be_proved_is_major_and_says_so() -> None:
    kind, reason = compare_conditions('event.purpose == "research"', 'event.purpose == "statistics"')
    assert MAJOR == kind
    assert reason.startswith(CANNOT_PROVE)


def test_parser_uses_the_engines_literals() -> None:
    assert parse_condition('event.channel in ["a\\"b", -3]') == parse_condition("event.channel in ['a\"b', -3]")


# The `window:` block of the windowed rules (rules/packs/npd/windowed.rules.yaml), as raw YAML mappings.
RULE: dict[str, Any] = {
    "id": "T-W-01",
    "category": "repeated_pupil_lookup",
    "severity": "high",
    "condition": 'event.recipient.org_type in ["police", "home_office"]',
    "window": {"kind": "sliding", "size": "30d", "per": "recipient_pupil", "measure": "count", "threshold": 3},
}


def _with_window(**window: Any) -> dict[str, Any]:
    return {**RULE, "window": {**RULE["window"], **window}}


WINDOW_CASES: list[tuple[dict[str, Any], list[tuple[ChangeClass, str]]]] = [
    (_with_window(threshold=5), [(MAJOR, "window.threshold raised 3 -> 5 (fires in fewer cases)")]),
    (_with_window(threshold=2), [(MINOR, "window.threshold lowered 3 -> 2 (fires in more cases)")]),
    (_with_window(size="7d"), [(MAJOR, "window.size shortened 30d -> 7d (fires in fewer cases)")]),
    (_with_window(size="90d"), [(MINOR, "window.size lengthened 30d -> 90d (fires in more cases)")]),
    (
        _with_window(per="pupil"),
        [(MAJOR, "window.per changed 'recipient_pupil' -> 'pupil' (cannot prove it only widens)")],
    ),
    (
        _with_window(threshold="agreement.monthly_record_cap"),
        [(MAJOR, "window.threshold changed 3 -> 'agreement.monthly_record_cap' (cannot prove it only widens)")],
    ),
    ({k: v for k, v in RULE.items() if k != "window"}, [(MAJOR, "window removed (cannot prove it only widens)")]),
    (RULE, []),
]


@pytest.mark.parametrize(("new", "expected"), WINDOW_CASES)
def test_window_changes(new: dict[str, Any], expected: list[tuple[ChangeClass, str]]) -> None:
    assert expected == [(c.kind, c.what) for c in classify_rule("T-W-01", RULE, new)]


MEDIAN: dict[str, Any] = {
    **RULE,
    "window": {
        "kind": "trailing",
        "size": 50,
        "per": "recipient",
        "measure": "median(event.record_count)",
        "factor": 5,
    },
}


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({"factor": 6}, (MAJOR, "window.factor raised 5 -> 6 (fires in fewer cases)")),
        ({"factor": 4}, (MINOR, "window.factor lowered 5 -> 4 (fires in more cases)")),
        ({"min_prior": 10}, (MAJOR, "window.min_prior added (cannot prove it only widens)")),
        ({"size": 100}, (MAJOR, "window.size lengthened 50 -> 100 (cannot prove it only widens)")),
        ({"size": 20}, (MAJOR, "window.size shortened 50 -> 20 (fires in fewer cases)")),
    ],
)
def test_trailing_median_window_changes(window: dict[str, Any], expected: tuple[ChangeClass, str]) -> None:
    new = {**MEDIAN, "window": {**MEDIAN["window"], **window}}
    assert [expected] == [(c.kind, c.what) for c in classify_rule("T-W-01", MEDIAN, new)]


def test_a_raised_min_prior_narrows() -> None:
    old = {**MEDIAN, "window": {**MEDIAN["window"], "min_prior": 5}}
    new = {**MEDIAN, "window": {**MEDIAN["window"], "min_prior": 8}}
    assert [MAJOR] == [c.kind for c in classify_rule("T-W-01", old, new)]


def test_an_unknown_rule_key_is_not_assumed_to_be_metadata() -> None:
    changes = list(classify_rule("T-W-01", {**RULE, "group_by": "recipient"}, {**RULE, "group_by": "pupil"}))
    assert [Change(MAJOR, "T-W-01", "group_by changed (not known to be metadata; cannot prove it only widens)")] == (
        changes
    )
