"""Rule-pack loading and validation: YAML files in, compiled rules and every problem out.

A pack is a directory with `pack.yaml` (name, version, engine_version, description, and optionally
the `inhibit:` list of rules/inhibit.py) and one or more `*.rules.yaml` files, each a list of rules.
Validators collect problems (`file:line: message`) instead of stopping at the first, so
`gatewatch rules validate` and the tests see them all at once.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules._problems import Problem
from rules._windowed import (
    AGREEMENT_VOCAB,
    EVENT_VOCAB,
    PUPIL_VOCAB,
    WINDOW_MESSAGE_VOCAB,
    WindowSpec,
    parse_window,
)
from rules._yaml import ValueMark, YamlMap, read_yaml
from rules.catalogue import DEFAULT_CATALOGUE_DIR, Catalogue, read_catalogue
from rules.exceptions import ConditionError
from rules.facts import Facts
from rules.inhibit import Inhibition, parse_inhibitions
from rules.language import Compiled, Template, compile_condition_node, compile_expression, compile_template
from schemas.vocab import Category, Severity

__all__ = [
    "DEFAULT_PACK_DIR",
    "ENGINE_VERSION",
    "OPTIONAL_KEYS",
    "REQUIRED_KEYS",
    "RULE_KEYS",
    "SCOPES",
    "LoadedPack",
    "Rule",
    "load_pack",
    "pack_files",
    "pack_sha256",
]

DEFAULT_PACK_DIR = Path(__file__).parent / "packs" / "npd"
#: Major version of the rule language; a pack declares the one it was written for.
ENGINE_VERSION = 1
#: Fixed key order of a rule (falco/sigma style); `description`, `enabled` and `tags` may be omitted.
RULE_KEYS = (
    "id",
    "title",
    "category",
    "severity",
    "legal_basis",
    "description",
    "scope",
    "condition",
    "window",
    "due",
    "message",
    "runbook",
    "enabled",
    "tags",
)
OPTIONAL_KEYS = frozenset({"description", "scope", "window", "due", "enabled", "tags"})
#: `event` (default): judged per event; `agreement`: judged by the periodic sweep at a given `now`.
SCOPES = ("event", "agreement")
REQUIRED_KEYS = tuple(k for k in RULE_KEYS if k not in OPTIONAL_KEYS)
PACK_KEYS = ("name", "version", "engine_version", "description", "inhibit")
PACK_OPTIONAL_KEYS = frozenset({"inhibit"})
RULES_GLOB = "*.rules.yaml"

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule: metadata plus the condition closure and the message template."""

    id: str
    title: str
    category: Category
    severity: Severity
    legal_basis: str
    description: str
    runbook: str
    enabled: bool
    tags: tuple[str, ...]
    condition_text: str
    condition: Callable[[Facts], bool]
    message: Template
    file: str
    line: int
    scope: str = "event"
    window: WindowSpec | None = None
    due: Callable[[Facts], Any] | None = None
    #: The compiled condition's structure (the engine's index reads its guards); `condition` is node.fn.
    node: Compiled | None = None


@dataclass(frozen=True, slots=True)
class LoadedPack:
    name: str
    version: str
    engine_version: int
    description: str
    sha256: str
    rules: tuple[Rule, ...]
    catalogue: Catalogue
    #: The pack's `inhibit:` list: which alerts page people (never which findings are recorded).
    inhibitions: tuple[Inhibition, ...] = ()


def pack_files(pack_dir: Path) -> list[Path]:
    """The files that make up a pack (header and rule files), sorted by name."""
    return sorted([pack_dir / "pack.yaml", *pack_dir.glob(RULES_GLOB)], key=lambda p: p.name)


def pack_sha256(pack_dir: Path) -> str:
    """sha256 over the canonical bytes (LF line ends) of each pack file, prefixed by its name."""
    h = hashlib.sha256()
    for path in pack_files(pack_dir):
        if not path.is_file():
            continue
        data = path.read_bytes().replace(b"\r\n", b"\n")
        h.update(path.name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


def _condition_line(mark: ValueMark, exc: ConditionError) -> int:
    """File line of a condition error: the value's start line, plus lines into a literal block."""
    if mark.style in ("|", ">"):
        newlines = exc.text.count("\n", 0, exc.offset) if mark.style == "|" else 0
        return mark.line + 1 + newlines
    return mark.line


class _PackReader:
    def __init__(self, pack_dir: Path, catalogue: Catalogue) -> None:
        self.pack_dir = pack_dir
        self.catalogue = catalogue
        self.domains: Mapping[str, frozenset[str]] = catalogue.domains()
        self.problems: list[Problem] = []
        self.rules: list[Rule] = []
        self.seen_ids: dict[str, str] = {}
        self.raw_inhibit: Any = None

    def problem(self, file: str, line: int, message: str) -> None:
        self.problems.append(Problem(file, line, message))

    def header(self) -> tuple[str, str, int, str]:
        path = self.pack_dir / "pack.yaml"
        name = str(path)
        if not path.is_file():
            self.problem(
                name,
                1,
                "pack header pack.yaml is missing; create it with name, version, engine_version and description",
            )
            return "", "", ENGINE_VERSION, ""
        data, problems = read_yaml(path)
        self.problems += problems
        if data is None:
            return "", "", ENGINE_VERSION, ""
        if not isinstance(data, YamlMap):
            self.problem(name, 1, "pack.yaml must be a mapping with name, version, engine_version, description")
            return "", "", ENGINE_VERSION, ""
        for key in data:
            if key not in PACK_KEYS:
                self.problem(
                    name, data.key_lines[key], f"unknown key '{key}' in pack.yaml; known keys: {', '.join(PACK_KEYS)}"
                )
        self.raw_inhibit = data.get("inhibit")
        for key in PACK_KEYS:
            if key not in data and key not in PACK_OPTIONAL_KEYS:
                self.problem(name, data.line, f"pack.yaml is missing '{key}'")
        pname = data.get("name")
        if "name" in data and not (isinstance(pname, str) and _RULE_ID.match(pname)):
            self.problem(name, data.key_lines["name"], f"pack name {pname!r} must be a short identifier")
        version = data.get("version")
        if "version" in data and not (isinstance(version, str) and _SEMVER.match(version)):
            self.problem(
                name,
                data.key_lines["version"],
                f"version {version!r} is not semantic versioning (MAJOR.MINOR.PATCH, quoted)",
            )
        ev = data.get("engine_version")
        if "engine_version" in data and ev != ENGINE_VERSION:
            self.problem(
                name,
                data.key_lines["engine_version"],
                f"engine_version {ev!r} is not supported; this engine runs version {ENGINE_VERSION}",
            )
        desc = data.get("description")
        if "description" in data and not (isinstance(desc, str) and desc.strip()):
            self.problem(name, data.key_lines["description"], "description must be non-empty text")
        return (
            pname if isinstance(pname, str) else "",
            version if isinstance(version, str) else "",
            ENGINE_VERSION,
            desc if isinstance(desc, str) else "",
        )

    def rule_files(self) -> None:
        files = sorted(self.pack_dir.glob(RULES_GLOB), key=lambda p: p.name)
        if not files:
            self.problem(str(self.pack_dir / "pack.yaml"), 1, f"pack has no rule files ({RULES_GLOB})")
        for path in files:
            data, problems = read_yaml(path)
            self.problems += problems
            if data is None:
                continue
            if not isinstance(data, list):
                self.problem(str(path), 1, "a rule file must be a YAML list of rules")
                continue
            for item in data:
                if not isinstance(item, YamlMap):
                    self.problem(str(path), 1, "each rule must be a mapping")
                    continue
                self.rule(str(path), item)

    def rule(self, file: str, r: YamlMap) -> None:
        before = len(self.problems)
        rid = r.get("id")
        label = f"rule {rid}" if isinstance(rid, str) else "rule"
        kl = r.key_lines

        def bad(key: str, message: str) -> None:
            self.problem(file, kl.get(key, r.line), f"{label}: {message}")

        for key in r:
            if key not in RULE_KEYS:
                bad(key, f"unknown key '{key}'{_suggest(str(key), RULE_KEYS)}; allowed keys: {', '.join(RULE_KEYS)}")
        for key in REQUIRED_KEYS:
            if key not in r:
                bad(key, f"missing required key '{key}'")
        present = [k for k in r if k in RULE_KEYS]
        if present != sorted(present, key=RULE_KEYS.index):
            bad(present[0], f"keys out of order; write them as {', '.join(k for k in RULE_KEYS if k in present)}")

        if "id" in r:
            if not (isinstance(rid, str) and _RULE_ID.match(rid)):
                bad("id", f"id {rid!r} must be a short identifier (letters, digits, . _ : -)")
            elif rid in self.seen_ids:
                bad("id", f"duplicate rule id '{rid}' (first defined at {self.seen_ids[rid]}); ids must be unique")
            else:
                self.seen_ids[rid] = f"{file}:{kl['id']}"
        for key, limit in (("title", 256), ("legal_basis", 4096), ("runbook", 4096), ("description", 4096)):
            if key in r:
                v = r[key]
                if not (isinstance(v, str) and v.strip()):
                    bad(key, f"'{key}' must be non-empty text")
                elif len(v) > limit:
                    bad(key, f"'{key}' is {len(v)} characters; the limit is {limit}")
        if isinstance(r.get("runbook"), str) and "\n" in r["runbook"].strip():
            bad("runbook", "runbook must be one line: what to check, whom to call")
        category = r.get("category")
        if "category" in r and category not in {c.value for c in Category}:
            bad("category", f"unknown category {category!r}{_suggest(str(category), [c.value for c in Category])}")
        severity = r.get("severity")
        if "severity" in r and severity not in {s.value for s in Severity}:
            bad("severity", f"unknown severity {severity!r}; use one of {', '.join(s.value for s in Severity)}")
        enabled = r.get("enabled", True)
        if not isinstance(enabled, bool):
            bad("enabled", f"enabled must be true or false, not {enabled!r}")
        tags = r.get("tags", [])
        if not (isinstance(tags, list) and all(isinstance(t, str) and _TAG.match(t) for t in tags)):
            bad("tags", "tags must be a list of lower-case words")

        scope = r.get("scope", "event")
        if scope not in SCOPES:
            bad("scope", f"scope {scope!r} is not one of {', '.join(SCOPES)}")
        window: WindowSpec | None = None
        if "window" in r:
            if scope == "agreement":
                bad("window", "a scope: agreement rule has no event to count, so no window")
            else:
                window = parse_window(
                    r["window"], self.domains, lambda line, m: self.problem(file, line, f"{label}: {m}"), kl["window"]
                )
        due = None
        if scope == "agreement":
            if "due" not in r:
                bad("scope", "a scope: agreement rule needs due: the date expression its finding dates from")
            elif not isinstance(r["due"], str):
                bad("due", "due must be text (an expression such as agreement.audit_due)")
            else:
                try:
                    node = compile_expression(r["due"], self.domains, AGREEMENT_VOCAB)
                    if node.type not in ("str", "any"):
                        raise ConditionError(f"due needs a str date, got a {node.type}", offset=0, text=r["due"])
                    due = node.fn
                except ConditionError as exc:
                    bad("due", f"due, column {exc.column}: {exc.message}")
        elif "due" in r:
            bad("due", "due is only for scope: agreement rules")
        cond_vocab = AGREEMENT_VOCAB if scope == "agreement" else EVENT_VOCAB
        if scope == "agreement":
            msg_vocab = AGREEMENT_VOCAB
        elif "window" in r:  # judged by the block as written, so a bad block does not add message errors
            raw_window = r["window"]
            per = raw_window.get("per") if isinstance(raw_window, dict) else None
            msg_vocab = PUPIL_VOCAB if per == "pupil" else WINDOW_MESSAGE_VOCAB
        else:
            msg_vocab = EVENT_VOCAB

        condition = None
        cond_node: Compiled | None = None
        cond_text = r.get("condition")
        if "condition" in r:
            if not isinstance(cond_text, str):
                bad("condition", "condition must be text")
            else:
                try:
                    cond_node = compile_condition_node(cond_text, self.domains, cond_vocab)
                    condition = cond_node.fn
                except ConditionError as exc:
                    line = _condition_line(r.value_marks["condition"], exc)
                    self.problem(file, line, f"{label}: condition, column {exc.column}: {exc.message}")
        message = None
        msg_text = r.get("message")
        if "message" in r:
            if not isinstance(msg_text, str):
                bad("message", "message must be text")
            else:
                try:
                    message = compile_template(msg_text.strip(), self.domains, msg_vocab)
                except ConditionError as exc:
                    bad("message", f"message, column {exc.column}: {exc.message}")
        if len(self.problems) != before or condition is None or message is None:
            return
        if not (isinstance(rid, str) and isinstance(cond_text, str)):  # validated above; narrows the types
            return
        self.rules.append(
            Rule(
                id=rid,
                title=r["title"].strip(),
                category=Category(str(category)),
                severity=Severity(str(severity)),
                legal_basis=r["legal_basis"].strip(),
                description=str(r.get("description", "")).strip(),
                runbook=r["runbook"].strip(),
                enabled=enabled,
                tags=tuple(tags),
                condition_text=cond_text,
                condition=condition,
                message=message,
                file=file,
                line=r.line,
                scope=str(scope),
                window=window,
                due=due,
                node=cond_node,
            )
        )


def _suggest(value: str, known: Any) -> str:
    m = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{m[0]}'?)" if m else ""


def load_pack(
    pack_dir: Path | None = None, catalogue_dir: Path | None = None
) -> tuple[LoadedPack | None, list[Problem]]:
    """Read, validate and compile a pack; returns (pack or None, every problem found)."""
    pack_dir = Path(pack_dir) if pack_dir is not None else DEFAULT_PACK_DIR
    catalogue, problems = read_catalogue(catalogue_dir or DEFAULT_CATALOGUE_DIR)
    if catalogue is None:
        return None, problems
    if not pack_dir.is_dir():
        return None, [Problem(str(pack_dir), 1, "rule pack directory does not exist")]
    reader = _PackReader(pack_dir, catalogue)
    name, version, engine_version, description = reader.header()
    reader.rule_files()
    inhibitions: tuple[Inhibition, ...] = ()
    if not reader.problems:
        inhibitions, inhibit_problems = parse_inhibitions(
            str(pack_dir / "pack.yaml"),
            reader.raw_inhibit,
            [(r.id, r.category.value, r.severity.value) for r in reader.rules],
        )
        reader.problems += inhibit_problems
    if reader.problems:
        order: dict[str, int] = {}
        for p in reader.problems:
            order.setdefault(p.file, len(order))
        return None, sorted(reader.problems, key=lambda p: (order[p.file], p.line))
    return (
        LoadedPack(
            name,
            version,
            engine_version,
            description,
            pack_sha256(pack_dir),
            tuple(reader.rules),
            catalogue,
            inhibitions,
        ),
        [],
    )
