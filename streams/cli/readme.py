"""Generated README sections (settings, metrics, rules), so the documentation cannot drift from the code.

`python -m streams.cli.readme` rewrites the blocks between `<!-- BEGIN generated:NAME -->` and
`<!-- END generated:NAME -->` in README.md and rules/README.md; a test fails when a committed file differs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from streams.metrics import Metrics
from streams.settings import Settings, TopicNames

__all__ = ["RULES_README", "RULES_SECTIONS", "SECTIONS", "render_readme"]

README = Path(__file__).parents[2] / "README.md"
RULES_README = Path(__file__).parents[2] / "rules" / "README.md"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def settings_table() -> str:
    rows = ["| environment variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if name == "topics":
            continue
        default = field.default
        shown = "unset" if default is None else f"`{default}`"
        rows.append(f"| `GATEWATCH_{name.upper()}` | {_cell(shown)} | {_cell(field.description or '')} |")
    for name, field in TopicNames.model_fields.items():
        rows.append(f"| `GATEWATCH_TOPIC_{name.upper()}` | `{field.default}` | topic name |")
    return "\n".join(rows)


def metrics_table() -> str:
    from prometheus_client.metrics import MetricWrapperBase

    from streams.sinks.delivery import SinkMetrics

    # The worker's metrics, then each sink's (a sink serves its own on --metrics-port).
    sources = [Metrics(CollectorRegistry()), SinkMetrics.create(CollectorRegistry())]
    families = [m for source in sources for m in vars(source).values() if isinstance(m, MetricWrapperBase)]
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for family in sorted(families, key=lambda f: f._name):  # noqa: SLF001 - prometheus_client keeps no public name
        kind = str(family._type)  # noqa: SLF001
        name = family._name + {"counter": "_total", "info": "_info"}.get(kind, "")  # noqa: SLF001
        labels = ", ".join(family._labelnames) if kind != "info" else "name, version, sha256"  # noqa: SLF001
        rows.append(f"| `{name}` | {kind} | {labels} | {_cell(family._documentation)} |")  # noqa: SLF001
    return "\n".join(rows)


LEGAL_BASIS_CHARS = 160


def _one_line(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def rules_table() -> str:
    """Every rule of the bundled pack (enabled or not), headed by the pack's name, version and hash."""
    from rules import load_engine

    engine = load_engine()
    pack = engine.pack
    rows = [
        f"Pack `{pack.name}` version {pack.version}, sha256 `{pack.sha256[:12]}`, {len(engine.rules)} rules "
        "(generated from `rules/packs/npd/` by `python -m streams.cli.readme`).",
        "",
        "| id | category | severity | legal basis |",
        "|---|---|---|---|",
    ]
    for rule in engine.rules:
        rid = rule.id if rule.enabled else f"{rule.id} (disabled)"
        basis = _one_line(rule.legal_basis, LEGAL_BASIS_CHARS)
        rows.append(f"| {_cell(rid)} | {_cell(rule.category.value)} | {_cell(rule.severity.value)} | {_cell(basis)} |")
    return "\n".join(rows)


def _kind(rule: Any) -> str:
    if rule.scope == "agreement":
        return "per agreement (as applied, and swept)"
    if rule.window is None:
        return "per event"
    w = rule.window
    size = w.size_text or (f"{w.size_events} events" if w.size_events else "")
    test = f"event > {w.factor}x {w.measure_text}" if w.kind == "trailing" else f"{w.measure_text} > {w.threshold_text}"
    return f"windowed: {w.kind}{' ' + size if size else ''} per {w.per}, {test}"


def pack_rules_table() -> str:
    """Every rule of the bundled pack with how it is judged (per event, windowed, sweep) and its title."""
    from rules import load_engine

    engine = load_engine()
    pack = engine.pack
    rows = [
        f"Pack `{pack.name}` version {pack.version}, {len(engine.rules)} rules (generated from `rules/packs/npd/` "
        "by `python -m streams.cli.readme`).",
        "",
        "| id | category | severity | judged | title |",
        "|---|---|---|---|---|",
    ]
    for rule in engine.rules:
        rid = rule.id if rule.enabled else f"{rule.id} (disabled)"
        cells = (rid, rule.category.value, rule.severity.value, _kind(rule), rule.title)
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows)


def inhibit_table() -> str:
    """The bundled pack's `inhibit:` list: which alert keeps which from paging, and on what shared keys."""
    from rules import load_engine

    inhibitions = load_engine()._pack.inhibitions  # noqa: SLF001 - the engine keeps its loaded pack
    rows = ["| source alert | inhibits | when both share | why |", "|---|---|---|---|"]
    for inh in inhibitions:
        source = ", ".join(f"`{m}`" for m in inh.source)
        target = ", ".join(f"`{m}`" for m in inh.target)
        rows.append(f"| {_cell(source)} | {_cell(target)} | {_cell(', '.join(inh.equal))} | {_cell(inh.name)} |")
    return "\n".join(rows)


def facts_table() -> str:
    """The condition language's fact vocabulary."""
    from rules.facts import fact_table

    rows = ["| fact | type | meaning |", "|---|---|---|"]
    rows += [f"| `{name}` | {kind} | {_cell(doc)} |" for name, kind, doc in fact_table()]
    return "\n".join(rows)


SECTIONS: dict[str, Callable[[], str]] = {
    "settings": settings_table,
    "metrics": metrics_table,
    "rules": rules_table,
    "inhibit": inhibit_table,
}
RULES_SECTIONS: dict[str, Callable[[], str]] = {
    "facts": facts_table,
    "pack-rules": pack_rules_table,
    "inhibit": inhibit_table,
}


def render_readme(text: str, sections: dict[str, Callable[[], str]] | None = None) -> str:
    """The README text with every generated block replaced by its current rendering."""
    for name, render in (SECTIONS if sections is None else sections).items():
        pattern = re.compile(rf"(<!-- BEGIN generated:{name} -->\n).*?(<!-- END generated:{name} -->)", re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"README has no generated:{name} block")
        text = pattern.sub(lambda m, r=render: m.group(1) + r() + "\n" + m.group(2), text)  # type: ignore[misc]
    return text


def main() -> int:
    for path, sections in ((README, SECTIONS), (RULES_README, RULES_SECTIONS)):
        path.write_text(render_readme(path.read_text(encoding="utf-8"), sections), encoding="utf-8")
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
