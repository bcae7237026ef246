"""Every Prometheus metric Gatewatch exports, defined in one place with the registry injected.

Label values come only from bounded vocabularies: enums of the contract, rule ids of the loaded pack and
codes of the catalogues. Anything else is reported as `other`, so a hostile producer cannot explode
the number of series.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from schemas import Action, Category, DeadLetterReason, OrgType, PackRef, Severity, Verdict

__all__ = ["NONE", "OTHER", "Metrics"]

OTHER = "other"
NONE = "none"
TIERS = ("1", "2", "3", "4", NONE)

_ACTIONS = frozenset(a.value for a in Action)
_ORG_TYPES = frozenset(o.value for o in OrgType)


class Metrics:
    """The metric families, bound to one registry (tests pass a fresh CollectorRegistry)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        gateways: Iterable[str] = (),
        purposes: Iterable[str] = (),
    ) -> None:
        self.registry = registry
        self._gateways = frozenset(gateways)
        self._purposes = frozenset(purposes)
        # Defined in this order, which is the order of the exposition and of the README's metrics table.
        self._define_traffic_families(registry)
        self._define_state_families(registry)
        self._create_zero_series()

    def _define_traffic_families(self, registry: CollectorRegistry) -> None:
        """What the judged traffic shows: events, alerts, records disclosed, dead letters, decisions."""
        self.events = Counter(
            "gatewatch_events_total",
            "Access events evaluated, by action, recipient type, legal gateway, purpose and verdict",
            ["action", "recipient_type", "gateway", "purpose", "verdict"],
            registry=registry,
        )
        self.alerts = Counter(
            "gatewatch_alerts_total",
            "Alerts raised, by rule, violation category and severity",
            ["rule", "category", "severity"],
            registry=registry,
        )
        self.records = Counter(
            "gatewatch_records_disclosed_total",
            "Records disclosed to recipients, by recipient type, gateway, purpose and most sensitive tier",
            ["recipient_type", "gateway", "purpose", "tier"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "gatewatch_dead_letters_total",
            "Consumed messages that could not be evaluated, by reason",
            ["topic", "reason"],
            registry=registry,
        )
        self.decisions = Counter(
            "gatewatch_decisions_total", "Decisions written, by verdict", ["verdict"], registry=registry
        )
        self.engine_errors = Counter(
            "gatewatch_engine_errors_total",
            "Rules that raised while evaluating an event (the event still gets a decision)",
            ["rule"],
            registry=registry,
        )
        self.evaluation_seconds = Histogram(
            "gatewatch_evaluation_seconds",
            "Time to decode, validate and evaluate one event",
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=registry,
        )
        self.agreements = Gauge(
            "gatewatch_agreements",
            "Agreements in the worker's register, by status",
            ["status"],
            registry=registry,
        )
        self.last_event_timestamp = Gauge(
            "gatewatch_last_event_timestamp_seconds",
            "Unix time at which the worker last finished an access event",
            registry=registry,
        )
        self.records_by_channel = Counter(
            "gatewatch_records_disclosed_by_channel_total",
            "Records disclosed, by channel (srs = Secure Research Service), most sensitive tier and whether "
            "special category data (ethnicity, health) was included",
            ["channel", "tier", "special_category"],
            registry=registry,
        )
        self.home_office_persons = Counter(
            "gatewatch_home_office_persons_requested_total",
            "Persons the Home Office asked about (record count of its events); compare with the monthly cap",
            registry=registry,
        )
        self.home_office_cap = Gauge(
            "gatewatch_home_office_monthly_cap",
            "Persons per calendar month the Home Office may request (2015 memorandum figure, from the rule pack)",
            registry=registry,
        )

    def _define_state_families(self, registry: CollectorRegistry) -> None:
        """The register's and the worker's state: governance gaps, lag, reloads, windows, timers, pack."""
        self.governance_gaps = Gauge(
            "gatewatch_governance_gaps",
            "Agreements with an open governance gap at the last sweep, by kind of gap (rule id)",
            ["rule"],
            registry=registry,
        )
        self.agreement_findings = Gauge(
            "gatewatch_agreement_findings",
            "Agreements in the current register with at least one approval finding, by violation category "
            "(judged by the agreement rules at today's UK date)",
            ["category"],
            registry=registry,
        )
        self.agreement_decisions = Counter(
            "gatewatch_agreement_decisions_total",
            "Agreement decisions written (an agreement added or changed in the register, judged), by verdict",
            ["verdict"],
            registry=registry,
        )
        self.partition_lag = Gauge(
            "gatewatch_partition_lag_messages",
            "Messages in an assigned access partition not yet processed by this worker",
            ["partition"],
            registry=registry,
        )
        self.partition_last_processed = Gauge(
            "gatewatch_partition_last_processed_timestamp_seconds",
            "Unix time at which this worker last finished a message of an assigned access partition",
            ["partition"],
            registry=registry,
        )
        self.partition_undecodable = Gauge(
            "gatewatch_partition_undecodable",
            "1 while this worker has stopped reading a partition at a record batch it cannot decode "
            "(topic: access, agreements, pupil_lookups, changelog or other; reason: unsupported_codec, "
            "corrupt_batch or decode_error); nothing after it is read or committed until a restart",
            ["topic", "partition", "reason"],
            registry=registry,
        )
        self.pack_reloads = Counter(
            "gatewatch_rule_pack_reloads_total",
            "Rule pack reload attempts, by result (ok, failed)",
            ["result"],
            registry=registry,
        )
        self.pack_reload_failing = Gauge(
            "gatewatch_rule_pack_reload_failing",
            "1 while the rule pack on disk failed validation and the previous pack is still serving",
            registry=registry,
        )
        self.window_keys = Gauge(
            "gatewatch_window_state_keys",
            "Entries in the worker's windowed state tables (recipient windows, per-pupil windows)",
            ["table"],
            registry=registry,
        )
        self.timer_failures = Counter(
            "gatewatch_timer_failures_total",
            "Ticks of a worker timer (lag, register and state gauges, sweep, reload) that failed, e.g. while "
            "the broker is unreachable",
            ["timer"],
            registry=registry,
        )
        self.rule_pack = Info("gatewatch_rule_pack", "The loaded rule pack", registry=registry)

    def _create_zero_series(self) -> None:
        """Series a dashboard or alert reads before anything happened, created at zero."""
        for reason in DeadLetterReason:
            self.dead_letters.labels("access", reason.value)
        for verdict in Verdict:
            self.decisions.labels(verdict.value)
        for result in ("ok", "failed"):
            self.pack_reloads.labels(result)
        for category in Category:
            self.agreement_findings.labels(category.value)
        for verdict in (Verdict.COMPLIANT, Verdict.VIOLATION):
            self.agreement_decisions.labels(verdict.value)
        for table in ("recipient", "pupil"):
            self.window_keys.labels(table)

    def set_pack(self, pack: PackRef, rules: Iterable[tuple[str, Category, Severity]]) -> None:
        """Expose the loaded pack and create the alert series for each of its rules at zero."""
        self.rule_pack.info({"name": pack.name, "version": pack.version, "sha256": pack.sha256})
        for rule_id, category, severity in rules:
            self.alerts.labels(rule_id, category.value, severity.value)

    def gateway(self, code: str | None) -> str:
        if code is None:
            return NONE
        return code if code in self._gateways else OTHER

    def purpose(self, code: str | None) -> str:
        if code is None:
            return NONE
        return code if code in self._purposes else OTHER

    @staticmethod
    def action(value: str | None) -> str:
        if value is None:
            return NONE
        return value if value in _ACTIONS else OTHER

    @staticmethod
    def org_type(value: str | None) -> str:
        if value is None:
            return NONE
        return value if value in _ORG_TYPES else OTHER
