"""The catalogues (legal gateways, purposes, fields, datasets) as one frozen, typed object.

Read from the YAML files under `rules/catalogues/`; every problem in them is reported at once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from rules._problems import Problem
from rules._yaml import YamlMap, read_yaml
from rules.exceptions import RulePackError
from schemas.vocab import OrgType

__all__ = [
    "DEFAULT_CATALOGUE_DIR",
    "GATEWAY_REQUIREMENTS",
    "IDENTIFIER_CLASSES",
    "SPECIAL_CATEGORIES",
    "Catalogue",
    "Dataset",
    "Field",
    "Gateway",
    "Purpose",
    "load_catalogue",
    "read_catalogue",
]

DEFAULT_CATALOGUE_DIR = Path(__file__).parent / "catalogues"

# In the order the fact vocabulary lists them (rules/facts.py registers a `gateway.<requirement>` for each).
GATEWAY_REQUIREMENTS: tuple[str, ...] = (
    "case_reference_required",
    "evidence_attestation_required",
    "court_order_ref_required",
    "srs_only",
    "deidentified_only",
    "case_by_case",
)
IDENTIFIER_CLASSES = frozenset({"instant", "meaningful", "meaningless", "none"})
SPECIAL_CATEGORIES = frozenset({"ethnicity", "health", "religion", "sexual_orientation"})
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Gateway:
    code: str
    title: str
    legal_basis: str
    recipient_types: frozenset[str]
    purposes: frozenset[str]
    requirements: frozenset[str]


@dataclass(frozen=True, slots=True)
class Purpose:
    code: str
    title: str
    carried_by_gateway: bool


@dataclass(frozen=True, slots=True)
class Field:
    code: str
    tier: int | None
    identifier: str
    special_category: str | None
    prohibited: bool
    pupil_level: bool


@dataclass(frozen=True, slots=True)
class Dataset:
    code: str
    title: str


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Every code the rules may speak of, with read-only dict lookups."""

    gateways: Mapping[str, Gateway]
    purposes: Mapping[str, Purpose]
    fields: Mapping[str, Field]
    datasets: Mapping[str, Dataset]

    def domains(self) -> dict[str, frozenset[str]]:
        """Code sets by domain name; the compiler checks literals compared with a fact against these."""
        return {
            "gateway": frozenset(self.gateways),
            "purpose": frozenset(self.purposes),
            "field": frozenset(self.fields),
            "dataset": frozenset(self.datasets),
            "org_type": frozenset(t.value for t in OrgType),
        }


class _Reader:
    """Collects problems while turning YAML lists of mappings into catalogue entries."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(str(self.path), line, message))

    def entries(self, required: dict[str, type | tuple[type, ...]]) -> list[YamlMap]:
        data, problems = read_yaml(self.path)
        self.problems.extend(problems)
        if data is None:
            return []
        if not isinstance(data, list):
            self.problem(1, "catalogue must be a YAML list of entries")
            return []
        out: list[YamlMap] = []
        seen: dict[str, int] = {}
        for item in data:
            if not isinstance(item, YamlMap):
                self.problem(1, "catalogue entry must be a mapping")
                continue
            ok = True
            for key in item:
                if key not in required:
                    self.problem(item.key_lines[key], f"unknown key '{key}'; known keys: {', '.join(required)}")
                    ok = False
            for key, kind in required.items():
                if key not in item:
                    self.problem(item.line, f"missing key '{key}'")
                    ok = False
                elif not isinstance(item[key], kind) or (kind is int and isinstance(item[key], bool)):
                    self.problem(item.key_lines[key], f"key '{key}' has the wrong type ({type(item[key]).__name__})")
                    ok = False
            code = item.get("code")
            if isinstance(code, str):
                if not _CODE.match(code):
                    self.problem(item.line, f"code '{code}' is not a valid code (letters, digits, . _ -)")
                    ok = False
                if code in seen:
                    self.problem(item.line, f"duplicate code '{code}' (first at line {seen[code]})")
                    ok = False
                seen.setdefault(code, item.line)
            if ok:
                out.append(item)
        return out


def read_catalogue(directory: Path | None = None) -> tuple[Catalogue | None, list[Problem]]:
    """Read and cross-check the four catalogue files; returns (catalogue or None, every problem)."""
    directory = directory or DEFAULT_CATALOGUE_DIR
    problems: list[Problem] = []
    str_list = (list,)
    opt_int = (int, type(None))
    opt_str = (str, type(None))

    r = _Reader(directory / "gateways.yaml")
    gateways: dict[str, Gateway] = {}
    org_types = {t.value for t in OrgType}
    for e in r.entries(
        {
            "code": str,
            "title": str,
            "legal_basis": str,
            "recipient_types": str_list,
            "purposes": str_list,
            "requirements": str_list,
        }
    ):
        for t in e["recipient_types"]:
            if t not in org_types:
                r.problem(e.key_lines["recipient_types"], f"unknown recipient type '{t}'; known: {sorted(org_types)}")
        for q in e["requirements"]:
            if q not in GATEWAY_REQUIREMENTS:
                r.problem(
                    e.key_lines["requirements"], f"unknown requirement '{q}'; known: {sorted(GATEWAY_REQUIREMENTS)}"
                )
        gateways[e["code"]] = Gateway(
            e["code"],
            e["title"],
            e["legal_basis"],
            frozenset(e["recipient_types"]),
            frozenset(e["purposes"]),
            frozenset(e["requirements"]),
        )
    problems += r.problems

    r = _Reader(directory / "purposes.yaml")
    purposes: dict[str, Purpose] = {}
    carried = {p for g in gateways.values() for p in g.purposes}
    for e in r.entries({"code": str, "title": str, "carried_by_gateway": bool}):
        if e["carried_by_gateway"] != (e["code"] in carried):
            r.problem(
                e.key_lines["carried_by_gateway"],
                f"purpose '{e['code']}' says carried_by_gateway: {str(e['carried_by_gateway']).lower()} but "
                f"gateways.yaml {'lists' if e['code'] in carried else 'does not list'} it",
            )
        purposes[e["code"]] = Purpose(e["code"], e["title"], e["carried_by_gateway"])
    problems += r.problems
    gw_path = str(directory / "gateways.yaml")
    for g in gateways.values():
        for p in sorted(g.purposes - purposes.keys()):
            problems.append(Problem(gw_path, 1, f"gateway '{g.code}' carries purpose '{p}' not in purposes.yaml"))

    r = _Reader(directory / "fields.yaml")
    fields: dict[str, Field] = {}
    for e in r.entries(
        {
            "code": str,
            "tier": opt_int,
            "identifier": str,
            "special_category": opt_str,
            "prohibited": bool,
            "pupil_level": bool,
        }
    ):
        if e["tier"] is not None and e["tier"] not in (1, 2, 3, 4):
            r.problem(e.key_lines["tier"], f"tier {e['tier']} is not 1, 2, 3, 4 or null")
        if e["identifier"] not in IDENTIFIER_CLASSES:
            r.problem(
                e.key_lines["identifier"],
                f"identifier class '{e['identifier']}' not in {sorted(IDENTIFIER_CLASSES)}",
            )
        if e["special_category"] is not None and e["special_category"] not in SPECIAL_CATEGORIES:
            r.problem(
                e.key_lines["special_category"],
                f"special category '{e['special_category']}' not in {sorted(SPECIAL_CATEGORIES)}",
            )
        fields[e["code"]] = Field(
            e["code"], e["tier"], e["identifier"], e["special_category"], e["prohibited"], e["pupil_level"]
        )
    problems += r.problems
    if fields and "match_flag" not in fields:
        problems.append(Problem(str(directory / "fields.yaml"), 1, "the special field 'match_flag' is missing"))

    r = _Reader(directory / "datasets.yaml")
    datasets = {e["code"]: Dataset(e["code"], e["title"]) for e in r.entries({"code": str, "title": str})}
    problems += r.problems

    if problems:
        return None, problems
    return (
        Catalogue(
            gateways=MappingProxyType(gateways),
            purposes=MappingProxyType(purposes),
            fields=MappingProxyType(fields),
            datasets=MappingProxyType(datasets),
        ),
        [],
    )


@functools.lru_cache(maxsize=8)
def load_catalogue(directory: Path | None = None) -> Catalogue:
    """The catalogue, read once per directory; raises RulePackError listing every problem."""
    catalogue, problems = read_catalogue(directory)
    if catalogue is None:
        raise RulePackError(problems, source=str(directory or DEFAULT_CATALOGUE_DIR))
    return catalogue
