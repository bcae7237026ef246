"""The engine: compiled rules applied to one event and its agreement, giving a Decision and Alerts.

Pure: data in, data out. Per-event rules judge by the event's time (occurred_at), never the clock;
`evaluated_at` is only stamped on the decision. Windowed rules read and write a caller-provided
WindowState (a Faust table in the worker, a dict offline); `sweep` is the only use of a `now`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rules._alerts import build_alert
from rules._index import RuleIndex, construct
from rules._problems import Problem
from rules._windowed import Observation, observe
from rules.approvals import AgreementEvaluation, agreement_alert, agreement_alert_id, agreement_findings, judge
from rules.catalogue import Catalogue
from rules.exceptions import RulePackError
from rules.facts import CatalogueViews, Facts, index_key
from rules.inhibit import apply_inhibitions, inhibition_edges
from rules.loader import LoadedPack, Rule, load_pack
from rules.windows import WindowState
from schemas._common import MAX_LIST
from schemas.agreement import Agreement
from schemas.agreement_decision import agreement_sha256
from schemas.decision import Alert, Decision, Issue, MessageRef, PackRef, Violation
from schemas.event import AccessEvent, Actor, Recipient
from schemas.vocab import Action, Channel, OrgType, Verdict

__all__ = [
    "DEVELOPMENT_PUPIL_KEY",
    "Engine",
    "Evaluation",
    "PupilLookup",
    "agreement_alert_id",
    "alert_id",
    "load_engine",
    "validate_pack",
    "window_alert_id",
]

#: HMAC key for pupil references when none is configured: fine for tests and `gatewatch check`, never
#: for production state (anyone with the key can test a guessed reference against a stored hash).
DEVELOPMENT_PUPIL_KEY = b"gatewatch-development-pupil-key"

_MAX_TEXT = 4096
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")


def alert_id(pack_name: str, rule_id: str, event_id: str) -> str:
    """Deterministic alert id: sha256 of a canonical, unambiguous string of (pack, rule, event)."""
    canonical = "\x1f".join(("gatewatch-alert-v1", pack_name, rule_id, event_id))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def window_alert_id(pack_name: str, rule_id: str, key: str, window_id: str) -> str:
    """Alert id of a windowed breach: one per (pack, rule, state key, window), whatever the event count."""
    canonical = "\x1f".join(("gatewatch-window-alert-v1", pack_name, rule_id, key, window_id))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class PupilLookup(BaseModel):
    """One pupil reference of one event, for the `per: pupil` rules: the reference only as HMAC-SHA256.

    The worker re-partitions these by `pupil_hash` and calls `Engine.run_pupil` in a second agent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pupil_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    recipient_org_id: str
    recipient_type: OrgType
    agreement_id: str | None = None
    legal_gateway: str | None = None
    purpose: str | None = None
    occurred_at: AwareDatetime
    event_id: str
    rule_ids: tuple[str, ...]
    #: The event's source position (access partition, offset, index in its message): the pupil windows
    #: apply each position once, so a look-up sent again after a crash does not count twice.
    source: tuple[int, int, int] | None = None


class PupilLookupBatch(BaseModel):
    """Several PupilLookups of one re-partitioned partition in one record, in the order they were made.

    A record per look-up cost the reading agent a Faust message each, more than the look-up itself.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lookups: tuple[PupilLookup, ...]

    @staticmethod
    def wrap(items: list[bytes]) -> bytes:
        """The record value for already-serialised PupilLookups (each `model_dump_json()` bytes)."""
        return b'{"lookups":[' + b",".join(items) + b"]}"

    @classmethod
    def lookups_of(cls, raw: bytes) -> tuple[PupilLookup, ...]:
        """The look-ups in one record: a batch, or a single PupilLookup (as workers before 2026-11-23 wrote)."""
        if raw.lstrip().startswith(b'{"lookups"'):
            return cls.model_validate_json(raw).lookups
        return (PupilLookup.model_validate_json(raw),)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What `Engine.run` gives for one event: its decision, the alerts to publish and, when it was not
    given the pupil windows, the look-ups to send to `run_pupil` (re-partitioned by pupil)."""

    decision: Decision
    alerts: list[Alert]
    lookups: list[PupilLookup] = field(default_factory=list)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


class Engine:
    """A loaded, compiled rule pack. Thread-safe and reusable: per-event state lives in the caller's WindowState."""

    __slots__ = (
        "_active",
        "_by_id",
        "_index",
        "_inhibit_targets",
        "_inhibitions",
        "_pack",
        "_pupil",
        "_pupil_mac",
        "_stateless",
        "_stateless_index",
        "_sweep",
        "_windowed",
        "_windowed_ids",
        "_windowed_index",
        "catalogue",
        "pack",
        "rules",
        "views",
    )

    def __init__(self, loaded: LoadedPack, *, pupil_key: bytes | None = None, indexed: bool = True) -> None:
        """Compile the rule index. `indexed=False` evaluates every rule's full condition on every event
        (the reference the index is tested against); the results are the same, only slower."""
        self._pack = loaded
        self.pack = PackRef(name=loaded.name, version=loaded.version, sha256=loaded.sha256)
        self.rules: tuple[Rule, ...] = loaded.rules
        self.catalogue: Catalogue = loaded.catalogue
        #: Views of the catalogue's codes and memos of agreements and field lists, kept across events.
        self.views = CatalogueViews(self.catalogue)
        self._active: tuple[Rule, ...] = tuple(r for r in loaded.rules if r.enabled)
        self._by_id = {r.id: r for r in loaded.rules}
        self._index = {r.id: i for i, r in enumerate(loaded.rules)}
        event_scoped = tuple(r for r in self._active if r.scope == "event")
        self._stateless = tuple(r for r in event_scoped if r.window is None)
        self._windowed = tuple(r for r in event_scoped if r.window is not None and r.window.per != "pupil")
        self._pupil = tuple(r for r in event_scoped if r.window is not None and r.window.per == "pupil")
        self._sweep = tuple(r for r in self._active if r.scope == "agreement")
        self._pupil_mac = hmac.new(DEVELOPMENT_PUPIL_KEY if pupil_key is None else pupil_key, digestmod=hashlib.sha256)
        self._stateless_index = RuleIndex(self._stateless, indexed=indexed)
        self._windowed_index = RuleIndex(self._windowed, indexed=indexed)
        self._windowed_ids = frozenset(r.id for r in self._windowed) | frozenset(r.id for r in self._pupil)
        self._inhibitions = loaded.inhibitions
        edges = inhibition_edges(loaded.inhibitions, [(r.id, r.category.value, r.severity.value) for r in loaded.rules])
        self._inhibit_targets = frozenset(t for _, t in edges)

    def rule(self, rule_id: str) -> Rule:
        """The compiled rule with this id (KeyError names the id)."""
        return self._by_id[rule_id]

    def inhibit(self, alerts: list[Alert]) -> list[Alert]:
        """The pack's `inhibit:` list applied to one batch of alerts (rules/inhibit.py): every alert is
        kept; those a greater alert inhibits carry `inhibited_by`. Every alert the engine returns has
        been through here, and nothing else decides what pages people."""
        if len(alerts) < 2 or not any(a.rule_id in self._inhibit_targets for a in alerts):
            return alerts
        return apply_inhibitions(alerts, self._inhibitions)

    def pupil_hash(self, pupil_ref: str) -> str:
        """HMAC-SHA256 hex of a pupil reference under the engine's key: the only form state ever holds."""
        mac = self._pupil_mac.copy()
        mac.update(pupil_ref.encode("utf-8"))
        return mac.hexdigest()

    def evaluate(
        self,
        event: AccessEvent,
        agreement: Agreement | None,
        *,
        state: WindowState | None = None,
        evaluated_at: dt.datetime | None = None,
        source: MessageRef | None = None,
    ) -> Decision:
        """Apply every enabled per-event rule, in pack order, to one event and the agreement the caller resolved.

        `agreement` is None when the event names no agreement or an id the register does not hold
        (the facts `agreement.cited` / `agreement.present` tell the two apart). A rule that raises is
        recorded as an `engine_error` Issue naming the rule; the other rules still run. Windowed rules
        run only when `state` is given (see `run`, which also returns their alerts).
        """
        if state is not None:
            return self.run(event, agreement, state=state, evaluated_at=evaluated_at, source=source).decision
        facts = Facts(event, agreement, self.catalogue, self.views)
        violations: list[Violation] = []
        errors: list[Issue] = []
        self._stateless_pass(facts, index_key(facts), violations, errors)
        return self._decision(event, violations, errors, evaluated_at, source)

    def _stateless_pass(
        self, facts: Facts, key: tuple[Any, ...], violations: list[Violation], errors: list[Issue]
    ) -> None:
        for rule, condition in self._stateless_index.candidates(key, facts.agreement_view):
            try:
                if not condition(facts):
                    continue
                explanation = rule.message.render(facts)
            except Exception as exc:
                errors.append(_engine_error(rule, exc))
                continue
            violations.append(_violation(rule, explanation))

    def _decision(
        self,
        event: AccessEvent,
        violations: list[Violation],
        errors: list[Issue],
        evaluated_at: dt.datetime | None,
        source: MessageRef | None,
    ) -> Decision:
        if evaluated_at is None:
            evaluated_at = dt.datetime.now(dt.UTC)
        if (
            not errors
            and len(violations) <= MAX_LIST
            and (evaluated_at.tzinfo is _UTC or evaluated_at.utcoffset() is not None)
            and (source is None or type(source) is MessageRef)
        ):
            # Every value below is already valid: the event is a validated AccessEvent (the same
            # constraints as the decision's fields), violations and the pack ref are models.
            # A copy of the template, then the per-event values: cheaper than a 17-key dict display.
            values = _DECISION_TEMPLATE.copy()
            values["event_id"] = event.event_id
            values["evaluated_at"] = evaluated_at
            if violations:
                values["verdict"] = _VIOLATION
                values["violations"] = tuple(violations)
            values["pack"] = self.pack
            values["occurred_at"] = event.occurred_at
            values["action"] = event.action
            recipient = event.recipient
            values["recipient_org_id"] = recipient.org_id
            values["recipient_type"] = recipient.org_type
            values["agreement_id"] = event.agreement_id
            values["legal_gateway"] = event.legal_gateway
            values["purpose"] = event.purpose
            values["record_count"] = event.record_count
            values["source"] = source
            return construct(Decision, values, _DECISION_FIELDS_SET)
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

    def run(
        self,
        event: AccessEvent,
        agreement: Agreement | None,
        *,
        state: WindowState | None = None,
        pupil_state: WindowState | None = None,
        evaluated_at: dt.datetime | None = None,
        source: MessageRef | None = None,
    ) -> Evaluation:
        """Stateless rules, then windowed rules: the decision for the event and the alerts to publish.

        Windowed rules `per: recipient` / `per: recipient_pupil` use `state` (skipped when None);
        `per: pupil` rules run inline only with `pupil_state` (offline, one process), otherwise the
        evaluation's `lookups` (the same as `pupil_lookups(event)`, from the facts already built) are for
        the caller to send to `run_pupil`. The caller advances the states' watermark.
        Windowed alerts follow the de-duplication policy: one alert id per (rule, key, window), emitted
        when the window's count of events over threshold is 1, 2, 4, 8, ...
        """
        facts = Facts(event, agreement, self.catalogue, self.views)
        violations: list[Violation] = []
        errors: list[Issue] = []
        key = index_key(facts)
        self._stateless_pass(facts, key, violations, errors)
        stateless = len(violations)
        windowed_alerts: list[Alert] = []
        if state is not None and self._windowed:
            t = event.occurred_at.timestamp()
            for rule, condition in self._windowed_index.candidates(key, facts.agreement_view):
                try:
                    if not condition(facts):
                        continue
                    self._window_rule(rule, facts, state, t, violations, windowed_alerts)
                except Exception as exc:
                    errors.append(_engine_error(rule, exc))
        lookups: list[PupilLookup] = []
        if self._pupil and event.pupil_refs:
            try:
                lookups = self._lookups(facts, source)
            except Exception as exc:
                errors.append(_engine_error(self._pupil[0], exc))
        if pupil_state is not None and lookups:
            fired: dict[str, tuple[Observation, Facts]] = {}
            for lookup in lookups:
                for rule_id, obs, pfacts in self._pupil_observations(lookup, pupil_state, errors):
                    if obs.over:
                        best = fired.get(rule_id)
                        if best is None or obs.value > best[0].value:
                            fired[rule_id] = (obs, pfacts)
                    if obs.emit:
                        rule = self._by_id[rule_id]
                        windowed_alerts.append(self._window_alert(rule, pfacts, obs, f"p={lookup.pupil_hash}"))
            for rule_id, (obs, pfacts) in fired.items():
                rule = self._by_id[rule_id]
                pfacts.cache["_window"] = _window_facts(obs)
                try:
                    violations.append(_violation(rule, rule.message.render(pfacts)))
                except Exception as exc:
                    errors.append(_engine_error(rule, exc))
        if len(violations) > stateless:  # keep pack order across stateless and windowed rules
            violations.sort(key=lambda v: self._index[v.rule_id])
        decision = self._decision(event, violations, errors, evaluated_at, source)
        alerts = self.inhibit(self._event_alerts(event, decision, skip=self._windowed_ids, fast=True) + windowed_alerts)
        return Evaluation(decision, alerts, lookups if pupil_state is None else [])

    def _window_rule(
        self,
        rule: Rule,
        facts: Facts,
        state: WindowState,
        t: float,
        violations: list[Violation],
        alerts: list[Alert],
    ) -> None:
        spec = rule.window
        assert spec is not None  # _windowed holds windowed rules only
        arg = spec.arg(facts) if spec.arg is not None else None
        threshold = spec.threshold(facts) if spec.threshold is not None else None
        event = facts.event
        org = event.recipient.org_id
        # The key of each window the event belongs to (in the alert id; the state key puts the pack and
        # rule before it): its recipient's, or one per pupil of the event. No pupil ref in clear.
        if spec.per == "recipient_pupil":
            window_keys = [f"rp={org}|{h}" for h in _pupil_hashes(facts, self._pupil_mac)]
        else:
            window_keys = [f"r={org}"]
        prefix = f"w1|{self.pack.name}|{rule.id}|"
        worst: Observation | None = None
        for window_key in window_keys:
            obs = observe(spec, state, prefix + window_key, t, event.event_id, arg, threshold)
            if obs is None:  # not over its threshold: nothing to report
                continue
            if obs.over and (worst is None or obs.value > worst.value):
                worst = obs
            if obs.emit:
                alerts.append(self._window_alert(rule, facts, obs, window_key))
        if worst is not None:  # (only an observation over its threshold sets the window facts)
            facts.cache["_window"] = _window_facts(worst)
            violations.append(_violation(rule, rule.message.render(facts)))
            facts.cache.pop("_window", None)

    def _window_alert(self, rule: Rule, facts: Facts, obs: Observation, key: str) -> Alert:
        facts.cache["_window"] = _window_facts(obs)
        e = facts.event
        return build_alert(
            alert_id=window_alert_id(self.pack.name, rule.id, key, obs.window_id),
            rule_id=rule.id,
            category=rule.category,
            severity=rule.severity,
            title=rule.title,
            explanation=_clip(rule.message.render(facts)),
            legal_basis=rule.legal_basis,
            runbook=rule.runbook,
            recipient_org_id=e.recipient.org_id,
            recipient_type=e.recipient.org_type,
            agreement_id=e.agreement_id,
            legal_gateway=e.legal_gateway,
            purpose=e.purpose,
            event_ids=obs.event_ids,
            first_seen=dt.datetime.fromtimestamp(obs.first_seen, dt.UTC),
            last_seen=dt.datetime.fromtimestamp(obs.last_seen, dt.UTC),
            count=max(obs.over_count, 1),
            pack=self.pack,
        )

    def pupil_lookups(self, event: AccessEvent, agreement: Agreement | None = None) -> list[PupilLookup]:
        """One PupilLookup per distinct pupil ref of the event, for the `per: pupil` rules whose condition matches."""
        if not self._pupil or not event.pupil_refs:
            return []
        return self._lookups(Facts(event, agreement, self.catalogue, self.views))

    def _lookups(self, facts: Facts, source: MessageRef | None = None) -> list[PupilLookup]:
        event = facts.event
        at = None if source is None else (source.partition, source.offset, source.index or 0)
        if not event.pupil_refs:
            return []
        rule_ids = tuple(r.id for r in self._pupil if r.condition(facts))
        if not rule_ids:
            return []
        hashes = _pupil_hashes(facts, self._pupil_mac)
        return [
            PupilLookup(
                pupil_hash=h,
                recipient_org_id=event.recipient.org_id,
                recipient_type=event.recipient.org_type,
                agreement_id=event.agreement_id,
                legal_gateway=event.legal_gateway,
                purpose=event.purpose,
                occurred_at=event.occurred_at,
                event_id=event.event_id,
                rule_ids=rule_ids,
                source=at,
            )
            for h in hashes
        ]

    def _lookup_facts(self, lookup: PupilLookup) -> Facts:
        # Only the facts in rules._windowed.PUPIL_FACTS (all carried by the lookup) may be named by a
        # per: pupil rule's message and measure; the loader enforces it, so the rest can stay unset.
        event = AccessEvent.model_construct(
            schema_version="1",
            source_system="pupil-lookup",
            action=Action.QUERY,
            actor=Actor.model_construct(user_id="-", org_id=lookup.recipient_org_id),
            datasets=(),
            fields=(),
            record_count=0,
            channel=Channel.API,
            event_id=lookup.event_id,
            occurred_at=lookup.occurred_at,
            recipient=Recipient.model_construct(org_id=lookup.recipient_org_id, org_type=lookup.recipient_type),
            agreement_id=lookup.agreement_id,
            legal_gateway=lookup.legal_gateway,
            purpose=lookup.purpose,
            pupil_refs=None,
        )
        return Facts(event, None, self.catalogue, self.views)

    def _pupil_observations(
        self, lookup: PupilLookup, state: WindowState, errors: list[Issue]
    ) -> list[tuple[str, Observation, Facts]]:
        """The observations over their threshold of the lookup's `per: pupil` rules (the others update state only)."""
        facts = self._lookup_facts(lookup)
        t = lookup.occurred_at.timestamp()
        out: list[tuple[str, Observation, Facts]] = []
        for rule_id in lookup.rule_ids:
            rule = self._by_id.get(rule_id)
            if rule is None or rule.window is None or rule.window.per != "pupil" or not rule.enabled:
                continue
            spec = rule.window
            try:
                arg = spec.arg(facts) if spec.arg is not None else None
                threshold = spec.threshold(facts) if spec.threshold is not None else None
                key = f"w1|{self.pack.name}|{rule.id}|p={lookup.pupil_hash}"
                obs = observe(spec, state, key, t, lookup.event_id, arg, threshold)
                if obs is not None:
                    out.append((rule_id, obs, facts))
            except Exception as exc:
                errors.append(_engine_error(rule, exc))
        return out

    def run_pupil(
        self, lookup: PupilLookup, state: WindowState, *, evaluated_at: dt.datetime | None = None
    ) -> list[Alert]:
        """Apply the lookup's `per: pupil` rules to the state partitioned by pupil hash; the alerts to publish.

        `evaluated_at` is accepted for symmetry with `run`; alerts carry event times only.
        """
        del evaluated_at
        errors: list[Issue] = []
        alerts = [
            self._window_alert(self._by_id[rule_id], facts, obs, f"p={lookup.pupil_hash}")
            for rule_id, obs, facts in self._pupil_observations(lookup, state, errors)
            if obs.emit
        ]
        return self.inhibit(alerts)

    def sweep(self, agreements: Iterable[Agreement], now: dt.datetime) -> list[Alert]:
        """The agreement rules (`scope: agreement`) over the register, judged at `now` (the only clock use).

        Alert ids are per (rule, agreement, agreement content): the same as `judge_agreement` gives, so
        re-sweeps refresh the alerts raised when the agreement was applied. A rule that raises is skipped
        for that agreement (sweeps have no decision to record it in).
        """
        if now.tzinfo is None:
            raise ValueError("sweep needs a timezone-aware `now`; pass dt.datetime.now(dt.UTC)")
        out: list[Alert] = []
        for agreement in agreements:
            findings, _errors = agreement_findings(self._sweep, agreement, self.catalogue, now, views=self.views)
            if findings:
                content = agreement_sha256(agreement)
                out.extend(agreement_alert(self.pack, agreement, content, f, now) for f in findings)
        return self.inhibit(out)

    def judge_agreement(
        self,
        agreement: Agreement,
        at: dt.datetime,
        *,
        evaluated_at: dt.datetime | None = None,
        source: MessageRef | None = None,
    ) -> AgreementEvaluation:
        """The agreement rules applied to one agreement judged at `at`: its AgreementDecision (every finding)
        and its alerts, through the pack's `inhibit:` list like every alert the engine returns."""
        evaluation = judge(
            self._sweep,
            self.pack,
            self.catalogue,
            agreement,
            at,
            evaluated_at=evaluated_at,
            source=source,
            views=self.views,
        )
        return AgreementEvaluation(evaluation.decision, self.inhibit(evaluation.alerts))

    def alerts(self, event: AccessEvent, decision: Decision) -> list[Alert]:
        """One Alert per violation of `decision`, with a replay-stable id and the rule's runbook.

        For stateless rules; `run` gives windowed rules' de-duplicated alerts. The pack's inhibit list
        is applied (see `inhibit`).
        """
        return self.inhibit(self._event_alerts(event, decision, skip=frozenset()))

    def _event_alerts(
        self, event: AccessEvent, decision: Decision, *, skip: Iterable[str], fast: bool = False
    ) -> list[Alert]:
        out: list[Alert] = []
        if not decision.violations:
            return out
        skip = skip if isinstance(skip, frozenset) else set(skip)
        for v in decision.violations:
            if v.rule_id in skip:
                continue
            rule = self._by_id.get(v.rule_id)
            out.append(
                build_alert(
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
                    # run(): the violation and the event are valid, so is the alert; skip re-validating it
                    trusted=fast and rule is not None,
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


def load_engine(pack_dir: Path | None = None, *, pupil_key: bytes | None = None) -> Engine:
    """Load, validate and compile a pack (default: the NPD pack); raises RulePackError with every problem.

    `pupil_key` is the HMAC key for pupil references in window state (None: DEVELOPMENT_PUPIL_KEY).
    """
    loaded, problems = load_pack(pack_dir)
    if loaded is None:
        raise RulePackError(problems, source=str(pack_dir) if pack_dir is not None else None)
    return Engine(loaded, pupil_key=pupil_key)


def _engine_error(rule: Rule, exc: Exception) -> Issue:
    return Issue(
        loc=f"rules.{rule.id}",
        message=f"rule {rule.id} failed with {type(exc).__name__} and was skipped; the other "
        f"rules were evaluated (check the rule's condition and message in {Path(rule.file).name})",
        type="engine_error",
    )


_UTC = dt.UTC
# Enum members are looked up once: a class attribute read of an Enum member is slow on the hot path.
_VIOLATION = Verdict.VIOLATION
_COMPLIANT = Verdict.COMPLIANT
_DECISION_FIELDS_SET = frozenset(Decision.model_fields) - {"schema_version", "ledger"}
#: A compliant decision's values in field declaration order (the JSON order); `_decision` fills in the event's.
_DECISION_TEMPLATE: dict[str, Any] = {
    **dict.fromkeys(Decision.model_fields),
    "schema_version": "1",
    "verdict": _COMPLIANT,
    "violations": (),
    "errors": (),
}
_VIOLATION_FIELDS_SET = frozenset(Violation.model_fields)


def _violation(rule: Rule, explanation: str) -> Violation:
    if explanation:  # rule metadata was validated at load; an empty message is left to validation
        return construct(
            Violation,
            {
                "rule_id": rule.id,
                "category": rule.category,
                "severity": rule.severity,
                "title": rule.title,
                "explanation": _clip(explanation),
                "legal_basis": rule.legal_basis,
            },
            _VIOLATION_FIELDS_SET,
        )
    return Violation(
        rule_id=rule.id,
        category=rule.category,
        severity=rule.severity,
        title=rule.title,
        explanation=_clip(explanation),
        legal_basis=rule.legal_basis,
    )


def _window_facts(obs: Observation) -> dict[str, Any]:
    return {"value": obs.value, "threshold": obs.threshold, "label": obs.label}


def _pupil_hashes(facts: Facts, mac: hmac.HMAC) -> list[str]:
    """The event's distinct pupil refs as sorted HMAC-SHA256 hex (as `Engine.pupil_hash`), worked out once per event.

    `mac` is an HMAC that has absorbed the key only: a copy of it per ref skips the key set-up.
    """
    hashes: list[str] | None = facts.cache.get("_pupil_hashes")
    if hashes is None:
        hashes = []
        for ref in facts.event.pupil_refs or ():
            h = mac.copy()
            h.update(ref.encode("utf-8"))
            hashes.append(h.hexdigest())
        if len(hashes) > 1:
            hashes = sorted(set(hashes))
        facts.cache["_pupil_hashes"] = hashes
    return hashes


def validate_pack(pack_dir: Path | None = None) -> list[Problem]:
    """Every problem in a pack and the catalogues, as `file:line: message` Problems (empty if valid)."""
    return load_pack(pack_dir)[1]
