"""Exceptions of the rule engine: one root, carrying where the problem is and which rule it concerns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rules._problems import Problem

__all__ = ["ConditionError", "GatewatchRulesError", "RulePackError"]


class GatewatchRulesError(Exception):
    """Root of every error raised by `rules`; carries the source file, line and rule id when known."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        rule_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.line = line
        self.rule_id = rule_id


class ConditionError(GatewatchRulesError):
    """A condition or message template that does not compile; `offset` is the 0-based character index."""

    def __init__(self, message: str, *, offset: int = 0, text: str = "") -> None:
        super().__init__(message)
        self.offset = offset
        self.text = text

    @property
    def column(self) -> int:
        """1-based column of the problem on its line of the condition text."""
        return self.offset - self.text.rfind("\n", 0, self.offset)


class RulePackError(GatewatchRulesError):
    """A rule pack or catalogue that cannot be loaded; `problems` lists every problem found, not the first."""

    def __init__(self, problems: Sequence[Problem], *, source: str | None = None) -> None:
        self.problems = list(problems)
        shown = "\n".join(str(p) for p in self.problems[:50])
        more = f"\n... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(
            f"rule pack has {len(self.problems)} problem(s); fix them and reload:\n{shown}{more}", source=source
        )
