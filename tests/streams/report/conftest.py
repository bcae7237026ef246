"""A simulated month of traffic driven through the worker's processing path, kept as a history export."""

from __future__ import annotations

import datetime as dt
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from rules import Engine, WindowState, load_engine
from schemas import AccessEvent, Agreement, Decision, MessageRef
from streams.metrics import Metrics
from streams.offline.simulate import Simulator, load_agreements
from streams.report.export import ACCESS_FILE, AGREEMENTS_FILE, DECISIONS_FILE
from streams.worker.processing import Processor

#: The simulated traffic starts on a Monday in November and stays inside the month (checked below).
START = dt.datetime(2026, 11, 2, 8, 0, tzinfo=ZoneInfo("Europe/London"))
EVENTS = 1000
#: The processing clock: after every simulated event, so none is judged to come from the future.
CLOCK = dt.datetime(2027, 1, 15, 12, 0, tzinfo=dt.UTC)


@dataclass
class Simulated:
    """A history export and what the worker's metrics said about the same traffic."""

    directory: Path
    registry: CollectorRegistry
    engine: Engine
    agreements: list[Agreement]
    events: list[AccessEvent]
    decisions: list[Decision]

    @property
    def pupil_refs(self) -> set[str]:
        return {ref for e in self.events for ref in (e.pupil_refs or ())}


def simulate(directory: Path, *, start: dt.datetime = START, n: int = EVENTS, seed: int = 11) -> Simulated:
    """Drive simulated events through `Processor` (what the worker's agent calls) with a fresh registry."""
    engine = load_engine()
    agreements = load_agreements()
    register = {a.agreement_id: a for a in agreements}
    registry = CollectorRegistry()
    metrics = Metrics(registry, gateways=engine.catalogue.gateways, purposes=engine.catalogue.purposes)
    processor = Processor(engine, register.get, metrics, clock=lambda: CLOCK)
    states: dict[int, WindowState] = {}
    pupil_state = WindowState({})
    events, decisions = [], []
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ACCESS_FILE).open("wb") as access, (directory / DECISIONS_FILE).open("w") as out:
        for offset, sim in enumerate(Simulator(agreements, seed=seed, start=start).events(n)):
            raw = sim.event.model_dump_json(exclude_none=True).encode()
            access.write(raw + b"\n")
            partition = zlib.crc32(sim.event.recipient.org_id.encode()) % 4  # one recipient, one partition
            state = states.setdefault(partition, WindowState({}, partition=partition))
            ref = MessageRef(topic="npd.access.v1", partition=partition, offset=offset)
            outcome = processor.process(
                raw, sim.event.recipient.org_id.encode(), ref, state=state, pupil_state=pupil_state
            )
            assert outcome.decision is not None, outcome.dead_letter
            events.append(sim.event)
            decisions.append(outcome.decision)
            out.write(outcome.decision.model_dump_json(exclude_none=True) + "\n")
    register_doc = [a.model_dump(mode="json", exclude_none=True) for a in agreements]
    (directory / AGREEMENTS_FILE).write_text(json.dumps(register_doc), encoding="utf-8")
    return Simulated(directory, registry, engine, agreements, events, decisions)


@pytest.fixture(scope="package")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    sim = simulate(tmp_path_factory.mktemp("history"))
    months = {e.occurred_at.astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m") for e in sim.events}
    assert {"2026-11"} == months  # the comparisons with the metrics below rely on one month of traffic
    return sim
