"""The catalogues follow docs/domain.md and are checked when read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rules.catalogue import DEFAULT_CATALOGUE_DIR, load_catalogue, read_catalogue


def test_default_catalogue_loads() -> None:
    catalogue = load_catalogue()
    assert {
        "EA1996-s537A",
        "DEA2017-s64",
        "DEA2017-s56",
        "DPA2018-Sch2-p2",
        "DPA2018-Sch2-p4",
        "COURT-ORDER",
        "UKGDPR-6-1-e",
    } == set(catalogue.gateways)


# The gateway table of docs/domain.md, in the event contract's recipient-type codes.
GATEWAY_TABLE: dict[str, tuple[set[str], set[str]]] = {
    "EA1996-s537A": (
        {
            "internal",
            "research_academic",
            "research_commercial",
            "charity",
            "press",
            "commercial",
            "local_authority",
            "school",
            "other_government",
        },
        {"research", "statistics", "information_advice_guidance", "education_service_delivery"},
    ),
    "DEA2017-s64": (
        {"research_academic", "research_commercial", "charity", "other_government"},
        {"research", "statistics"},
    ),
    "DEA2017-s56": ({"dwp", "hmrc", "other_government", "local_authority"}, {"fraud_investigation"}),
    "DPA2018-Sch2-p2": ({"police", "hmrc", "dwp"}, {"crime_prevention", "tax_collection", "fraud_investigation"}),
    "DPA2018-Sch2-p4": ({"home_office"}, {"immigration_enforcement"}),
    "COURT-ORDER": (
        {"court", "police", "local_authority", "other_government", "home_office", "dwp", "hmrc", "school"},
        {"court_proceedings"},
    ),
    "UKGDPR-6-1-e": ({"internal"}, {"statistics", "education_service_delivery", "safeguarding"}),
}


def test_gateways_are_open_to_the_recipient_types_and_purposes_the_law_allows() -> None:
    catalogue = load_catalogue()
    assert GATEWAY_TABLE == {code: (set(g.recipient_types), set(g.purposes)) for code, g in catalogue.gateways.items()}


@pytest.mark.parametrize(
    ("code", "tier", "identifier", "special", "prohibited", "pupil_level"),
    [
        ("name", 1, "instant", None, False, True),
        ("upn", 1, "meaningful", None, False, True),
        ("pmr", None, "meaningless", None, False, True),
        ("ethnicity", 1, "none", "ethnicity", False, True),
        ("ethnicity_major", 2, "none", "ethnicity", False, True),
        ("sen_type", 1, "none", "health", False, True),
        ("fsm", 2, "none", None, False, True),
        ("gender", 4, "none", None, False, True),
        ("school_urn", 4, "none", None, False, False),
        ("nationality", None, "none", None, True, True),
        ("country_of_birth", None, "none", None, True, True),
        ("english_proficiency", None, "none", None, True, True),
        ("match_flag", None, "none", None, False, False),
    ],
)
def test_field_classification_follows_domain(
    code: str, tier: int | None, identifier: str, special: str | None, prohibited: bool, pupil_level: bool
) -> None:
    f = load_catalogue().fields[code]
    assert (tier, identifier, special, prohibited, pupil_level) == (
        f.tier,
        f.identifier,
        f.special_category,
        f.prohibited,
        f.pupil_level,
    )


def test_immigration_exemption_is_open_to_the_home_office_only() -> None:
    assert frozenset({"home_office"}) == load_catalogue().gateways["DPA2018-Sch2-p4"].recipient_types


@pytest.mark.parametrize(
    ("purpose", "carried"),
    [
        ("research", True),
        ("safeguarding", True),
        ("journalism", False),
        ("age_verification", False),
        ("recruitment", False),
        ("marketing", False),
    ],
)
def test_purposes_know_whether_any_gateway_carries_them(purpose: str, carried: bool) -> None:
    assert carried == load_catalogue().purposes[purpose].carried_by_gateway


def test_catalogue_problems_are_all_reported(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_CATALOGUE_DIR, tmp_path, dirs_exist_ok=True)
    fields = tmp_path / "fields.yaml"
    fields.write_text(
        fields.read_text(encoding="utf-8")
        + "- {code: extra, tier: 7, identifier: odd, special_category: null, prohibited: false, pupil_level: true}\n",
        encoding="utf-8",
    )
    purposes = tmp_path / "purposes.yaml"
    purposes.write_text(
        purposes.read_text(encoding="utf-8").replace(
            "{code: journalism, title: Journalism, carried_by_gateway: false}",
            "{code: journalism, title: Journalism, carried_by_gateway: true}",
        ),
        encoding="utf-8",
    )
    catalogue, problems = read_catalogue(tmp_path)
    assert catalogue is None
    messages = sorted(p.message for p in problems)
    assert [
        "identifier class 'odd' not in ['instant', 'meaningful', 'meaningless', 'none']",
        "purpose 'journalism' says carried_by_gateway: true but gateways.yaml does not list it",
        "tier 7 is not 1, 2, 3, 4 or null",
    ] == messages
