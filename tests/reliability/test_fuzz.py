"""A fixed-seed fuzzing run: 20,000 mutated events through Processor.process, no broker."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from rules import WindowState, load_engine
from schemas import MessageRef
from streams.metrics import Metrics
from streams.offline.simulate import Simulator, load_agreements
from streams.worker.processing import Processor
from tests.reliability.support import SIM_START, report

pytestmark = pytest.mark.slow

SEED = 20_240_603
INPUTS = 20_000
NOW = dt.datetime(2026, 1, 2, 12, 0, tzinfo=dt.UTC)
ODD: list[Any] = [None, True, -1, 2**64, 1.5, "", "x" * 300, [], {}, [1, [2]], {"a": None}, "9999-01-01T00:00:00+00:00"]


def structural(rng: random.Random, doc: dict[str, Any]) -> bytes:
    target = doc
    nested = [k for k, v in doc.items() if isinstance(v, dict)]
    if nested and rng.random() < 0.3:
        target = doc[rng.choice(sorted(nested))]
    kind = rng.choice(["delete", "insert", "swap", "version", "negate"])
    keys = sorted(target)
    if kind == "delete" and keys:
        del target[rng.choice(keys)]
    elif kind == "insert":
        target[rng.choice(["extra", "pupil_ref", "__class__", "recod_count", ""])] = rng.choice(ODD)
    elif kind == "swap" and keys:
        target[rng.choice(keys)] = rng.choice(ODD)
    elif kind == "version":
        doc["schema_version"] = rng.choice(["2", 1, None, "1 "])
    else:
        doc["record_count"] = -rng.randint(1, 10**9)
    return json.dumps(doc).encode()


def byte_level(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        i = rng.randrange(len(data))
        kind = rng.choice(["flip", "truncate", "insert", "duplicate", "delete"])
        if kind == "flip":
            data[i] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            del data[i:]
        elif kind == "insert":
            data[i:i] = rng.randbytes(rng.randint(1, 8))
        elif kind == "duplicate":
            j = rng.randint(i, len(data))
            data[j:j] = data[i:j]
        else:
            del data[i : i + rng.randint(1, 16)]
    return bytes(data)


def test_twenty_thousand_mutated_inputs_never_crash_and_never_leak(request: pytest.FixtureRequest) -> None:
    rng = random.Random(SEED)
    agreements = load_agreements()
    engine = load_engine()
    registry = CollectorRegistry()
    metrics = Metrics(registry, gateways=engine.catalogue.gateways, purposes=engine.catalogue.purposes)
    register = {a.agreement_id: a for a in agreements}
    processor = Processor(engine, register.get, metrics, max_message_bytes=64 * 1024, clock=lambda: NOW)
    seeds = [s.event for s in Simulator(agreements, seed=SEED % 1000, start=SIM_START).events(2_000)]
    with_refs = [e for e in seeds if e.pupil_refs]
    assert with_refs, "the simulator emits pupil references"
    state = WindowState({})
    outcomes: Counter[str] = Counter()
    leaks: list[tuple[int, str]] = []
    for n in range(INPUTS):
        event = rng.choice(with_refs if rng.random() < 0.5 else seeds)
        doc = json.loads(event.model_dump_json(exclude_none=True))
        kind = rng.choice(["structural", "bytes", "both", "garbage", "none"])
        raw = json.dumps(doc).encode()
        if kind in ("structural", "both"):
            raw = structural(rng, doc)
        if kind in ("bytes", "both"):
            raw = byte_level(rng, raw)
        if kind == "garbage":
            raw = rng.randbytes(rng.randint(0, 256))
        ref = MessageRef(topic="npd.access.v1", partition=0, offset=n)
        with capture_logs() as logs:
            outcome = processor.process(raw, b"k", ref, state=state)
        assert (outcome.decision is None) != (outcome.dead_letter is None), (n, raw[:200])
        outcomes[outcome.dead_letter.reason.value if outcome.dead_letter else outcome.decision.verdict.value] += 1  # type: ignore[union-attr]
        text = json.dumps(logs, default=str)
        if outcome.decision is not None:
            text += outcome.decision.model_dump_json() + "".join(a.model_dump_json() for a in outcome.alerts)
        if outcome.dead_letter is not None:
            text += outcome.dead_letter.model_dump_json(exclude={"value_b64"})
        leaks += [(n, r) for r in event.pupil_refs or () if r in text]
    dead = sum(
        registry.get_sample_value("gatewatch_dead_letters_total", {"topic": "access", "reason": r}) or 0
        for r in outcomes
    )
    report(request, inputs=INPUTS, seed=SEED, outcomes=dict(sorted(outcomes.items())))
    assert not leaks, leaks[:10]
    assert sum(outcomes.values()) == INPUTS
    assert dead == sum(v for k, v in outcomes.items() if k not in ("compliant", "violation", "invalid"))
