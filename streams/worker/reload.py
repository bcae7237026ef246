"""The rule pack in service, and replacing it safely while the worker runs (file change or SIGHUP).

A new pack is loaded and validated completely before it replaces the old one; the swap is a single
assignment between two events, so no event is judged by half of each. When the new pack is refused,
the old one keeps serving and `gatewatch_rule_pack_reload_failing` (alerted on as critical) says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog

from rules import DEFAULT_PACK_DIR, Engine, GatewatchRulesError, load_engine, pack_sha256
from streams.metrics import Metrics

__all__ = ["ServingPack"]

log = structlog.get_logger("gatewatch.rules")


class ServingPack:
    """Holds the engine in service; `reload()` swaps in a validated replacement or keeps the old one."""

    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        *,
        pack_dir: Path | None,
        pupil_key: bytes | None,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.pack_dir = pack_dir or DEFAULT_PACK_DIR
        self.pupil_key = pupil_key
        self._on_swap: list[Callable[[Engine], None]] = []
        self._disk_sha = self._sha_on_disk()
        self._announce()

    @property
    def sweep_rules(self) -> list[str]:
        """The governance-gap rules the sweep judges (the labels of gatewatch_governance_gaps); the other
        agreement rules' findings are counted by category in gatewatch_agreement_findings."""
        return [
            r.id for r in self.engine.rules if r.scope == "agreement" and r.enabled and r.category == "governance_gap"
        ]

    def on_swap(self, callback: Callable[[Engine], None]) -> None:
        self._on_swap.append(callback)

    def _sha_on_disk(self) -> str | None:
        try:
            return pack_sha256(self.pack_dir)
        except OSError:
            return None

    def changed_on_disk(self) -> bool:
        """True when the pack files differ from what was last loaded or tried (cheap: hashes a few files)."""
        return self._sha_on_disk() != self._disk_sha

    def reload(self, reason: str) -> bool:
        """Load and validate the pack on disk; swap it in if it is sound. Returns whether it was swapped."""
        self._disk_sha = self._sha_on_disk()
        try:
            engine = load_engine(self.pack_dir, pupil_key=self.pupil_key)
        except (GatewatchRulesError, OSError, ValueError) as exc:
            problems = [str(p) for p in getattr(exc, "problems", [])][:20] or [str(exc)]
            self.metrics.pack_reloads.labels("failed").inc()
            self.metrics.pack_reload_failing.set(1)
            log.critical(
                "rule_pack_reload_failed",
                reason=reason,
                pack_dir=str(self.pack_dir),
                problems=problems,
                serving=self.engine.pack.version,
                serving_sha256=self.engine.pack.sha256,
            )
            return False
        previous = self.engine.pack
        self.engine = engine
        for callback in self._on_swap:
            callback(engine)
        self.metrics.pack_reloads.labels("ok").inc()
        self.metrics.pack_reload_failing.set(0)
        self._announce()
        log.info(
            "rule_pack_reloaded",
            reason=reason,
            previous=previous.version,
            version=engine.pack.version,
            sha256=engine.pack.sha256,
            rules=len(engine.rules),
        )
        return True

    def _announce(self) -> None:
        """Expose the pack in service: info metric, alert series per rule, the caps dashboards compare with."""
        engine, metrics = self.engine, self.metrics
        metrics.set_pack(engine.pack, ((r.id, r.category, r.severity) for r in engine.rules))
        for rule in engine.rules:
            # The dashboards compare Home Office requests with the cap the pack enforces (tagged rule).
            if "home_office_cap" in rule.tags and rule.window is not None and rule.window.threshold_text.isdigit():
                metrics.home_office_cap.set(int(rule.window.threshold_text))
        for rule_id in self.sweep_rules:
            metrics.governance_gaps.labels(rule_id).set(0)
