"""How one patch of one third-party attribute is described, installed and undone.

A `Patch` names the class and attribute it replaces, builds the replacement from the library's own
function (so a wrapper can call it), cites the upstream issue it works around, and records the sha256
of the original's source. tests/streams/test_compat.py recomputes that fingerprint: a library upgrade
that changes a replaced function fails CI and names the patch to re-check.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Patch", "require_installed"]

#: Set on every replacement: which patch it is, and the library function it replaced.
_MARK = "__gatewatch_patch__"
_ORIGINAL = "__gatewatch_original__"


@dataclass(frozen=True)
class Patch:
    """One replaced attribute of a third-party class."""

    owner: str  # "package.module:Class"
    attribute: str
    build: Callable[[Any], Any]  # the library's function -> its replacement
    upstream: str  # the upstream issue (or why there is none) this works around
    original_sha256: str  # of inspect.getsource(the library's function), for the version it was written for

    @property
    def name(self) -> str:
        return f"{self.owner}.{self.attribute}"

    def owner_class(self) -> type:
        module, _, qualname = self.owner.partition(":")
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
        return target  # type: ignore[no-any-return]

    def current(self) -> Any:
        return self.owner_class().__dict__[self.attribute]

    def is_installed(self) -> bool:
        return getattr(self.current(), _MARK, None) == self.name

    def original(self) -> Any:
        """The library's own function, whether or not the patch is installed."""
        current = self.current()
        return getattr(current, _ORIGINAL, current) if self.is_installed() else current

    def source_sha256(self) -> str:
        return hashlib.sha256(inspect.getsource(self.original()).encode()).hexdigest()

    def install(self) -> Callable[[], None] | None:
        """Replace the attribute; returns how to undo it, or None if it was installed already."""
        if self.is_installed():
            return None
        cls, original = self.owner_class(), self.current()
        replacement = self.build(original)
        setattr(replacement, _MARK, self.name)
        setattr(replacement, _ORIGINAL, original)
        setattr(cls, self.attribute, replacement)

        def undo() -> None:
            if cls.__dict__.get(self.attribute) is replacement:
                setattr(cls, self.attribute, original)

        return undo


def require_installed(patches: tuple[Patch, ...]) -> None:
    """Refuse a per-app setting that would do nothing because its patch is not installed."""
    missing = [p.name for p in patches if not p.is_installed()]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not patched: call streams._compat.install() first")
