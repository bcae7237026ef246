"""The pure core stays pure: schemas/ and rules/ import no Kafka, Faust, HTTP or metrics library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"faust", "aiokafka", "kafka", "prometheus_client", "aiohttp", "streams", "requests", "socket", "httpx"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", ["schemas", "rules"])
def test_pure_packages_import_no_io_libraries(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    offending = {str(f.relative_to(ROOT)): sorted(_imports(f) & FORBIDDEN) for f in files}
    assert {} == {f: mods for f, mods in offending.items() if mods}


PATCHED_LIBRARIES = {"faust", "aiokafka", "mode", "kafka"}


def _third_party_attribute_assignments(path: Path) -> list[str]:
    """`Class.attr = ...` or `setattr(Class, ...)` where Class was imported from a patched library."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    imported = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PATCHED_LIBRARIES
        for alias in node.names
    }
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" and node.args:
            targets = [ast.Attribute(value=node.args[0], attr="?")]
        for target in targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id in imported:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {target.value.id}.{target.attr}")
    return found


def test_third_party_libraries_are_patched_only_in_streams_compat() -> None:
    files = [f for f in sorted((ROOT / "streams").rglob("*.py")) if "_compat" not in f.parts]
    assert files
    hits = [hit for f in files for hit in _third_party_attribute_assignments(f)]
    assert [] == hits, (
        "third-party attributes replaced outside streams/_compat/: make each a Patch there (its upstream issue, "
        "the sha256 of the original's source) so _compat.install() installs it behind the version guard"
    )


def test_no_merge_conflict_markers_are_left_in_the_shipped_text() -> None:
    suffixes = {".py", ".md", ".yaml", ".yml", ".json", ".toml", ".cfg", ".txt"}
    roots = [ROOT / name for name in ("schemas", "rules", "streams", "deploy", "docs", "tests")]
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "pyproject.toml", ROOT / "Makefile"]
    files += [p for root in roots for p in root.rglob("*") if p.suffix in suffixes and "__pycache__" not in p.parts]
    markers = ("<<<<<<< ", ">>>>>>> ")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if line.startswith(markers) or line == "======="
    ]
    assert [] == found


#: What each streams/ sub-package must not import: dependencies point from the command line down to the
#: transport (cli -> offline -> worker -> transport -> shared modules), never back up.
STREAMS_LAYERS = {
    "_compat": {"worker", "transport", "sinks", "offline", "cli", "bench", "report"},
    "transport": {"worker", "sinks", "offline", "cli", "bench", "report", "_compat"},
    "worker": {"sinks", "offline", "cli", "bench", "report"},
    "sinks": {"worker", "offline", "cli", "bench", "report"},
    "offline": {"sinks", "cli", "bench", "report"},
    "report": {"worker", "sinks", "cli", "bench"},
}
SHARED = {"settings", "metrics", "logs", "exceptions"}


def _streams_subpackages_imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + (
                [f"{node.module}.{alias.name}" for alias in node.names] if node.module == "streams" else []
            )
        out.update(n.split(".")[1] for n in names if n.startswith("streams.") and n.count(".") >= 1)
    return out


@pytest.mark.parametrize("layer", sorted(STREAMS_LAYERS))
def test_streams_subpackages_depend_one_way(layer: str) -> None:
    files = sorted((ROOT / "streams" / layer).rglob("*.py"))
    assert files
    upward = {str(f.relative_to(ROOT)): sorted(_streams_subpackages_imported(f) & STREAMS_LAYERS[layer]) for f in files}
    assert {} == {f: mods for f, mods in upward.items() if mods}


def test_shared_streams_modules_import_no_subpackage() -> None:
    subpackages = {p.name for p in (ROOT / "streams").iterdir() if (p / "__init__.py").exists()}
    assert {"worker", "transport", "sinks", "offline", "cli", "_compat"} <= subpackages
    found = {
        name: sorted(_streams_subpackages_imported(ROOT / "streams" / f"{name}.py") & subpackages) for name in SHARED
    }
    assert {} == {name: mods for name, mods in found.items() if mods}
