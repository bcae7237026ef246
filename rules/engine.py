"""The engine: compiled rules applied to one event and its agreement, giving a Decision and Alerts.

Pure: data in, data out. Per-event rules judge by the event's time (occurred_at), never the clock;
`evaluated_at` is only stamped on the decision. Windowed rules (issue 3) will add a keyword-only
`state=` argument to `evaluate` (a store keyed by recipient org id and event time), so callers that
pass arguments by keyword keep working.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from rules._problems import Problem
from rules.catalogue import Catalogue
from rules.exceptions import RulePackError
from rules.facts import Facts
from rules.loader import LoadedPack, Rule, load_pack
from schemas.agreement import Agreement
from schemas.decision import Alert, Decision, Issue, MessageRef, PackRef, Violation
from schemas.event import AccessEvent
from schemas.vocab import Verdict

__all__ = ["Engine", "alert_id", "load_engine", "validate_pack"]

_MAX_TEXT = 4096
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")


def alert_id(pack_name: str, rule_id: str, event_id: str) -> str:
    """Deterministic alert id: sha256 of a canonical, unambiguous string of (pack, rule, event)."""
    canonical = "\x1f".join(("gatewatch-alert-v1", pack_name, rule_id, event_id))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


class Engine:
    """A loaded, compiled rule pack. Thread-safe and reusable: it holds no per-event state."""

    __slots__ = ("_active", "_by_id", "_pack", "catalogue", "pack", "rules")

    def __init__(self, loaded: LoadedPack) -> None:
        self._pack = loaded
        self.pack = PackRef(name=loaded.name, version=loaded.version, sha256=loaded.sha256)
        self.rules: tuple[Rule, ...] = loaded.rules
        self.catalogue: Catalogue = loaded.catalogue
        self._active: tuple[Rule, ...] = tuple(r for r in loaded.rules if r.enabled)
        self._by_id = {r.id: r for r in loaded.rules}

    def rule(self, rule_id: str) -> Rule:
        """The compiled rule with this id (KeyError names the id)."""
        return self._by_id[rule_id]

    def evaluate(
        self,
        event: AccessEvent,
        agreement: Agreement | None,
        *,
        evaluated_at: dt.datetime | None = None,
        source: MessageRef | None = None,
    ) -> Decision:
        """Apply every enabled rule, in pack order, to one event and the agreement the caller resolved.

        `agreement` is None when the event names no agreement or an id the register does not hold
        (the facts `agreement.cited` / `agreement.present` tell the two apart). A rule that raises is
        recorded as an `engine_error` Issue naming the rule; the other rules still run.
        """
        facts = Facts(event, agreement, self.catalogue)
        violations: list[Violation] = []
        errors: list[Issue] = []
        for rule in self._active:
            try:
                if not rule.condition(facts):
                    continue
                explanation = rule.message.render(facts)
            except Exception as exc:
                errors.append(
                    Issue(
                        loc=f"rules.{rule.id}",
                        message=f"rule {rule.id} failed with {type(exc).__name__} and was skipped; the other "
                        f"rules were evaluated (check the rule's condition and message in {Path(rule.file).name})",
                        type="engine_error",
                    )
                )
                continue
            violations.append(
                Violation(
                    rule_id=rule.id,
                    category=rule.category,
                    severity=rule.severity,
                    title=rule.title,
                    explanation=_clip(explanation),
                    legal_basis=rule.legal_basis,
                )
            )
        return Decision(
            event_id=event.event_id,
            evaluated_at=evaluated_at or dt.datetime.now(dt.UTC),
            verdict=Verdict.VIOLATION if violations else Verdict.COMPLIANT,
            violations=tuple(violations),
            errors=tuple(errors),
            pack=self.pack,
            occurred_at=event.occurred_at,
            action=event.action,
            recipient_org_id=event.recipient.org_id,
            recipient_type=event.recipient.org_type,
            agreement_id=event.agreement_id,
            legal_gateway=event.legal_gateway,
            purpose=event.purpose,
            record_count=event.record_count,
            source=source,
        )

    def alerts(self, event: AccessEvent, decision: Decision) -> list[Alert]:
        """One Alert per violation of `decision`, with a replay-stable id and the rule's runbook."""
        out: list[Alert] = []
        for v in decision.violations:
            rule = self._by_id.get(v.rule_id)
            out.append(
                Alert(
                    alert_id=alert_id(self.pack.name, v.rule_id, event.event_id),
                    rule_id=v.rule_id,
                    category=v.category,
                    severity=v.severity,
                    title=v.title,
                    explanation=v.explanation,
                    legal_basis=v.legal_basis,
                    runbook=rule.runbook if rule is not None else None,
                    recipient_org_id=event.recipient.org_id,
                    recipient_type=event.recipient.org_type,
                    agreement_id=event.agreement_id,
                    legal_gateway=event.legal_gateway,
                    purpose=event.purpose,
                    event_ids=(event.event_id,),
                    first_seen=event.occurred_at,
                    last_seen=event.occurred_at,
                    count=1,
                    pack=decision.pack,
                )
            )
        return out

    def invalid(
        self,
        errors: Sequence[Issue],
        *,
        event_id: str | None = None,
        evaluated_at: dt.datetime | None = None,
        source: MessageRef | None = None,
    ) -> Decision:
        """The decision for input that is not a valid event: verdict invalid, with the validation issues.

        An `event_id` that is not a valid identifier is dropped rather than copied, since it came from
        input that failed validation.
        """
        safe_id = event_id if event_id is not None and _IDENTIFIER.match(event_id) else None
        return Decision(
            event_id=safe_id,
            evaluated_at=evaluated_at or dt.datetime.now(dt.UTC),
            verdict=Verdict.INVALID,
            errors=tuple(errors)[:512],
            pack=self.pack,
            source=source,
        )


def load_engine(pack_dir: Path | None = None) -> Engine:
    """Load, validate and compile a pack (default: the NPD pack); raises RulePackError with every problem."""
    loaded, problems = load_pack(pack_dir)
    if loaded is None:
        raise RulePackError(problems, source=str(pack_dir) if pack_dir is not None else None)
    return Engine(loaded)


def validate_pack(pack_dir: Path | None = None) -> list[Problem]:
    """Every problem in a pack and the catalogues, as `file:line: message` Problems (empty if valid)."""
    return load_pack(pack_dir)[1]
