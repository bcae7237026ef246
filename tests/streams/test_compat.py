"""The third-party patches in streams/_compat/: pinned versions, fingerprints, install and undo.

Each patch's behaviour has its own test beside the code it protects: aiokafka_metadata in
tests/streams/test_broker.py, faust_rebalance in tests/reliability/test_rebalance_flow.py, fetch_wait
in tests/streams/test_broker.py, commit_hook in tests/streams/test_outbox.py, aiokafka_decode in
tests/streams/test_decode_fix.py, kafka_python_decode in tests/streams/test_kafka_python_decode.py (and
on the broker in test_sinks.py and test_audit_export.py), recovery_highwaters here.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from streams import _compat
from streams._compat import PATCHES, Patch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.name)
def test_the_replaced_library_function_is_the_one_the_patch_was_written_for(patch: Patch) -> None:
    actual = patch.source_sha256()
    assert patch.original_sha256 == actual, (
        f"{patch.name} changed upstream: re-check its patch in {patch.build.__module__} against the new "
        f"source, then set original_sha256={actual!r}"
    )


def test_every_patched_library_function_is_patched_once_and_cites_its_upstream_issue() -> None:
    assert len({p.name for p in PATCHES}) == len(PATCHES) == 13
    assert all(p.upstream.strip() for p in PATCHES)


def test_the_pins_in_pyproject_are_the_versions_the_patches_expect() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    pins = dict(re.findall(r'"(faust-streaming|aiokafka|mode-streaming|kafka-python)==([^"]+)"', text))
    assert dict(_compat.EXPECTED_VERSIONS) == pins
    assert dict(_compat.EXPECTED_VERSIONS) == _compat.installed_versions()


def test_an_unexpected_library_version_is_refused_naming_expected_and_found() -> None:
    found = {**_compat.EXPECTED_VERSIONS, "aiokafka": "0.15.0", "mode-streaming": None}
    with pytest.raises(_compat.UnsupportedLibraryVersion) as refused:
        _compat.check_versions(found)
    message = str(refused.value)
    assert "aiokafka 0.15.0 (expected 0.14.0)" in message
    assert "mode-streaming not installed (expected 0.7.1)" in message
    assert "faust-streaming" not in message


def test_install_refuses_an_unexpected_version_and_patches_nothing(
    unpatched_libraries: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        _compat, "installed_versions", lambda: {**_compat.EXPECTED_VERSIONS, "faust-streaming": "0.16.0"}
    )
    with pytest.raises(_compat.UnsupportedLibraryVersion, match=r"faust-streaming 0\.16\.0 \(expected 0\.15\.3\)"):
        _compat.install()
    assert [p.name for p in PATCHES if p.is_installed()] == []


def test_install_patches_everything_and_its_undo_restores_the_library_functions(unpatched_libraries: None) -> None:
    originals = {p.name: p.current() for p in PATCHES}
    undo = _compat.install()
    assert [p.name for p in PATCHES if not p.is_installed()] == []
    assert {p.name: p.original() for p in PATCHES} == originals
    assert _compat.install()() is None  # a second install is a no-op, and so is its undo
    assert [p.name for p in PATCHES if not p.is_installed()] == []
    undo()
    assert {p.name: p.current() for p in PATCHES} == originals


def test_a_per_app_switch_refuses_to_do_nothing_when_the_patches_are_not_installed(unpatched_libraries: None) -> None:
    app = SimpleNamespace()
    with pytest.raises(RuntimeError, match=r"call streams\._compat\.install"):
        _compat.shorten_fetch_wait(app)
    with pytest.raises(RuntimeError, match=r"call streams\._compat\.install"):
        _compat.use_end_probe(app, _probe_adding({}))


def _probe_adding(extra: dict[Any, int]) -> Any:
    async def probe(reported: Any) -> dict[Any, int]:
        return {tp: end + extra.get(tp, 0) for tp, end in reported.items()}

    return probe


def _build_highwaters(app: Any, reported: dict[str, int | None]) -> Counter[str]:
    """Run Faust's Recovery._build_highwaters for `app` against a consumer reporting `reported` ends."""
    from faust.tables.recovery import Recovery

    async def highwaters(*tps: str) -> dict[str, int | None]:
        return {tp: reported[tp] for tp in tps}

    log = SimpleNamespace(info=lambda *a, **k: None, exception=lambda *a, **k: None)
    recovery = SimpleNamespace(app=app, log=log, _highwater_logtable=lambda *a, **k: "")
    destination: Counter[str] = Counter()
    consumer = SimpleNamespace(highwaters=highwaters)
    asyncio.run(Recovery._build_highwaters(recovery, consumer, set(reported), destination, "active"))  # type: ignore[arg-type]
    return destination


def test_recovery_highwaters_are_corrected_by_the_apps_probe_only_when_patched(unpatched_libraries: None) -> None:
    # Tansu reports a five-record batch at offsets 0-4 as ending at 1; the probe finds the true end, 5.
    reported = {"changelog-0": 1, "changelog-1": None}
    probe = _probe_adding({"changelog-0": 4})
    probed_app = SimpleNamespace()
    assert dict(_build_highwaters(probed_app, reported)) == {"changelog-0": 0, "changelog-1": -1}  # Faust alone
    with _compat.installed():
        _compat.use_end_probe(probed_app, probe)
        assert dict(_build_highwaters(probed_app, reported)) == {"changelog-0": 4, "changelog-1": -1}
        assert dict(_build_highwaters(SimpleNamespace(), reported)) == {"changelog-0": 0, "changelog-1": -1}


def test_a_failing_probe_leaves_the_reported_highwaters(unpatched_libraries: None) -> None:
    async def broken(reported: Any) -> dict[Any, int]:
        raise ConnectionError("broker gone")

    app = SimpleNamespace()
    with _compat.installed():
        _compat.use_end_probe(app, broken)
        assert dict(_build_highwaters(app, {"changelog-0": 3})) == {"changelog-0": 2}


def test_the_worker_app_installs_every_patch(unpatched_libraries: None, tmp_path: Path) -> None:
    from streams.settings import Settings
    from streams.worker.app import build_worker_app

    build_worker_app(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path))
    assert [p.name for p in PATCHES if not p.is_installed()] == []


def test_the_worker_command_refuses_to_start_on_an_unpinned_version(
    unpatched_libraries: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from streams.cli.main import main

    monkeypatch.setattr(_compat, "installed_versions", lambda: {**_compat.EXPECTED_VERSIONS, "aiokafka": "0.13.0"})
    monkeypatch.setenv("GATEWATCH_DATA_DIR", str(tmp_path))
    assert 2 == main(["worker", "--bootstrap", "127.0.0.1:9"])
    assert "aiokafka 0.13.0 (expected 0.14.0)" in capsys.readouterr().err
    assert [p.name for p in PATCHES if p.is_installed()] == []


def test_a_reader_installs_only_the_kafka_python_patches_and_checks_only_kafka_python(
    unpatched_libraries: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams._compat import kafka_python_decode

    assert {"kafka-python"} == _compat.distributions_of(kafka_python_decode.PATCHES)
    assert set(_compat.EXPECTED_VERSIONS) == _compat.distributions_of(PATCHES)
    # A wrong aiokafka does not stop a reader that patches kafka-python alone; a wrong kafka-python does.
    monkeypatch.setattr(_compat, "installed_versions", lambda: {**_compat.EXPECTED_VERSIONS, "aiokafka": "0.15.0"})
    with _compat.installed(kafka_python_decode.PATCHES):
        assert {p.name for p in PATCHES if p.is_installed()} == {p.name for p in kafka_python_decode.PATCHES}
    assert [p.name for p in PATCHES if p.is_installed()] == []
    monkeypatch.setattr(_compat, "installed_versions", lambda: {**_compat.EXPECTED_VERSIONS, "kafka-python": "2.0.2"})
    with pytest.raises(_compat.UnsupportedLibraryVersion, match=r"kafka-python 2\.0\.2 \(expected 3\.0\.12\)"):
        _compat.install(kafka_python_decode.PATCHES)


@pytest.mark.parametrize(
    "argv",
    [
        ["sink", "alertmanager", "--url", "http://127.0.0.1:9", "--bootstrap", "127.0.0.1:9"],
        ["audit", "verify", "--bootstrap", "127.0.0.1:9"],
        ["audit", "export", "--bootstrap", "127.0.0.1:9"],
    ],
    ids=["sink", "audit-verify", "audit-export"],
)
def test_the_kafka_python_readers_refuse_to_start_on_an_unpinned_kafka_python(
    unpatched_libraries: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    from streams.cli.main import main

    monkeypatch.setattr(_compat, "installed_versions", lambda: {**_compat.EXPECTED_VERSIONS, "kafka-python": "2.0.2"})
    assert 2 == main(argv)
    assert "kafka-python 2.0.2 (expected 3.0.12)" in capsys.readouterr().err
    assert [p.name for p in PATCHES if p.is_installed()] == []
