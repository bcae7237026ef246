"""The offline evaluation loop: events judged one after another, in one process, windows included.

`gatewatch check`, `gatewatch replay`, the YAML rule tests (`rules/testing.py`) and the tests that
compare offline with live results all judge a sequence of events the same way, and this is that way:

- recipient windows (`per: recipient`, `per: recipient_pupil`) live in one dict-backed `WindowState`
  per source partition, created on first use with that partition's number, as the worker holds one
  per partition of its window table: a partition's windows never see another partition's events;
- per-pupil windows (`per: pupil`) live in one `WindowState` shared by every partition, so per-pupil
  rules run inline (the worker re-partitions the look-ups by pupil instead; one process needs not);
- before each event, its partition's state and the pupil state advance their watermark to the event's
  own time (`occurred_at`), which expires what is older than `lateness` past its window;
- the event's agreement is looked up in the register by its `agreement_id` (none when it has no id or
  the register lacks it), unless the caller passes the agreement it resolved itself.

The caller decides the order: `gatewatch check` gives file order, replay merges partitions by event
time. For alert ids equal to the live ones, give the worker's lateness and an engine with the worker's
pupil key (streams/worker/engine_setup.py does both). Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from rules.engine import Engine, Evaluation
from rules.windows import DEFAULT_LATENESS, WindowState
from schemas.agreement import Agreement
from schemas.decision import MessageRef
from schemas.event import AccessEvent

__all__ = ["OfflineRun"]


class OfflineRun:
    """Judge events in the order given with `engine`, holding the window state one process needs.

    `agreements`: the register, as agreement id -> Agreement or as a list of agreements (a later one
    replaces an earlier one with the same id). `lateness`: how long past its window a windowed entry is
    kept for late events (the WindowState default unless the caller passes the worker's).
    """

    __slots__ = ("_states", "engine", "lateness", "pupil_state", "register")

    def __init__(
        self,
        engine: Engine,
        agreements: Mapping[str, Agreement] | Iterable[Agreement] = (),
        *,
        lateness: dt.timedelta = DEFAULT_LATENESS,
    ) -> None:
        self.engine = engine
        self.register: Mapping[str, Agreement] = (
            agreements if isinstance(agreements, Mapping) else {a.agreement_id: a for a in agreements}
        )
        self.lateness = lateness
        #: The per-pupil windows of every partition.
        self.pupil_state = WindowState({}, lateness=lateness)
        self._states: dict[int, WindowState] = {}

    def state(self, partition: int = 0) -> WindowState:
        """The recipient windows of `partition` (created empty on first use)."""
        state = self._states.get(partition)
        if state is None:
            state = self._states[partition] = WindowState({}, partition=partition, lateness=self.lateness)
        return state

    def evaluate(
        self,
        event: AccessEvent,
        *,
        partition: int = 0,
        agreement: Agreement | None = None,
        evaluated_at: dt.datetime | None = None,
        source: MessageRef | None = None,
    ) -> Evaluation:
        """The event's decision and alerts (per-pupil alerts included), its windows updated.

        `partition`: the source partition whose recipient windows the event counts in. `agreement`: the
        event's agreement when the caller resolved it itself (the rule tests patch theirs per case);
        None looks it up in the register. `evaluated_at` and `source` go on the decision as given.
        """
        state = self.state(partition)
        t = event.occurred_at.timestamp()
        state.advance(t)
        self.pupil_state.advance(t)
        if agreement is None and event.agreement_id:
            agreement = self.register.get(event.agreement_id)
        return self.engine.run(
            event, agreement, state=state, pupil_state=self.pupil_state, evaluated_at=evaluated_at, source=source
        )
