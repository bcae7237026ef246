"""Every run-time patch Gatewatch makes to a third-party library, behind one switch and a version guard.

Thirteen methods of faust-streaming, aiokafka, mode-streaming and kafka-python are replaced, each to
work around a bug or a missing hook described (with its upstream issue) in the module that builds the
replacement:

- aiokafka_decode: a batch aiokafka cannot decode stops only its partition, not the consumer (#321).
- kafka_python_decode: the same for a kafka-python consumer that opts in (the sink, `audit`) (#1443).
- aiokafka_metadata: aiokafka's producer loses track of topics it sends to.
- faust_rebalance: Faust drops delivered messages when a worker takes over partitions (#596).
- fetch_wait: the embedded broker holds every fetch for Faust's hard-coded 1,500 ms wait.
- recovery_highwaters: table recovery stops inside the last batch on the embedded broker.
- commit_hook: write-behind table state is flushed before the offsets it covers are committed.

Some replacements copy a library function's body, so they are only right for the versions they were
written for. `install()` therefore refuses any other installed version (pyproject.toml pins them
exactly), and tests/streams/test_compat.py fingerprints every replaced function's source. Upgrading
one of these libraries means re-reading each patch against the new source, then updating
`EXPECTED_VERSIONS` and the fingerprints.

`install()` is called once, at worker start-up (streams/worker/app.py); the kafka-python readers (the
sink, `audit verify` and `audit export`, the summary of `gatewatch up`) call
`install(kafka_python_decode.PATCHES)`, which checks and patches kafka-python alone, so they never import
Faust. The per-app switches (`shorten_fetch_wait`, `use_end_probe`, `add_commit_hooks`,
`stop_partition_at_undecodable_batch`) and the per-consumer one (`stop_at_undecodable_batch`) only take
effect once their patches are installed.

Adding a patch: a module here with one `Patch` per replaced attribute (owner, attribute, a `build`
taking the library's function and returning the replacement, the upstream issue, the sha256 of the
original's source), its PATCHES added to the tuple below, and a test of its behaviour that starts from
the `unpatched_libraries` fixture. tests/test_architecture.py fails on a patch made anywhere else.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

from streams._compat import (
    aiokafka_decode,
    aiokafka_metadata,
    commit_hook,
    faust_rebalance,
    fetch_wait,
    kafka_python_decode,
    recovery_highwaters,
)
from streams._compat._patch import Patch
from streams._compat.aiokafka_decode import stop_partition_at_undecodable_batch
from streams._compat.commit_hook import add_commit_hooks
from streams._compat.fetch_wait import LOCAL_FETCH_WAIT_MS, shorten_fetch_wait
from streams._compat.kafka_python_decode import stop_at_undecodable_batch
from streams._compat.recovery_highwaters import EndProbe, use_end_probe
from streams.exceptions import GatewatchStreamsError

__all__ = [
    "EXPECTED_VERSIONS",
    "LOCAL_FETCH_WAIT_MS",
    "PATCHES",
    "EndProbe",
    "Patch",
    "UnsupportedLibraryVersion",
    "add_commit_hooks",
    "check_versions",
    "distributions_of",
    "install",
    "installed",
    "installed_versions",
    "shorten_fetch_wait",
    "stop_at_undecodable_batch",
    "stop_partition_at_undecodable_batch",
    "uninstall",
    "use_end_probe",
]

#: The exact versions the patches were written (and fingerprinted) for; pyproject.toml pins the same.
EXPECTED_VERSIONS: Mapping[str, str] = {
    "faust-streaming": "0.15.3",
    "aiokafka": "0.14.0",
    "mode-streaming": "0.7.1",
    "kafka-python": "3.0.12",
}

PATCHES: tuple[Patch, ...] = (
    *aiokafka_decode.PATCHES,
    *aiokafka_metadata.PATCHES,
    *faust_rebalance.PATCHES,
    *fetch_wait.PATCHES,
    *recovery_highwaters.PATCHES,
    *commit_hook.PATCHES,
    *kafka_python_decode.PATCHES,
)

#: The distribution that ships each patched top-level package (what a subset of PATCHES needs checked).
_DISTRIBUTIONS: Mapping[str, str] = {
    "faust": "faust-streaming",
    "aiokafka": "aiokafka",
    "mode": "mode-streaming",
    "kafka": "kafka-python",
}


class UnsupportedLibraryVersion(GatewatchStreamsError):
    """An installed library is not the version Gatewatch's patches of it were written for."""


def installed_versions() -> dict[str, str | None]:
    """The installed version of each patched distribution (None if it is not installed)."""
    found: dict[str, str | None] = {}
    for name in EXPECTED_VERSIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def distributions_of(patches: Iterable[Patch]) -> set[str]:
    """The distributions (as EXPECTED_VERSIONS names them) whose code these patches replace."""
    return {_DISTRIBUTIONS[p.owner.partition(".")[0].partition(":")[0]] for p in patches}


def check_versions(found: Mapping[str, str | None] | None = None, *, only: Iterable[str] | None = None) -> None:
    """Raise UnsupportedLibraryVersion naming every library (of `only`, default all) not at its expected version."""
    found = installed_versions() if found is None else found
    names = set(EXPECTED_VERSIONS if only is None else only)
    wrong = [
        f"{name} {found.get(name) or 'not installed'} (expected {expected})"
        for name, expected in EXPECTED_VERSIONS.items()
        if name in names and found.get(name) != expected
    ]
    if wrong:
        raise UnsupportedLibraryVersion(
            "Gatewatch patches these libraries at run time and supports only the versions it pins: "
            + "; ".join(wrong)
            + ". Install the pinned versions (pip install -e .), or re-check every patch in streams/_compat/"
            " against the new versions before changing the pins."
        )


def install(patches: Iterable[Patch] = PATCHES) -> Callable[[], None]:
    """Check the patched libraries' versions, then install `patches` (default: every patch); returns the undo.

    A reader that needs only some patches (the kafka-python ones) passes them: only their libraries'
    versions are checked and nothing else is imported or replaced. Idempotent: patches already installed
    are left alone (and left installed by the undo).
    """
    patches = tuple(patches)
    check_versions(only=distributions_of(patches))
    undos = [undo for patch in patches if (undo := patch.install()) is not None]

    def undo_all() -> None:
        for undo in reversed(undos):
            undo()

    return undo_all


def uninstall() -> Callable[[], None]:
    """Restore every library function that is patched now; returns a function that patches them again."""
    removed: list[Patch] = []
    for patch in PATCHES:
        if patch.is_installed():
            setattr(patch.owner_class(), patch.attribute, patch.original())
            removed.append(patch)

    def reinstall() -> None:
        for patch in removed:
            patch.install()

    return reinstall


@contextmanager
def installed(patches: Iterable[Patch] = PATCHES) -> Iterator[None]:
    """The patches (default: every one) installed for the length of a `with` block (what tests use)."""
    undo = install(patches)
    try:
        yield
    finally:
        undo()
