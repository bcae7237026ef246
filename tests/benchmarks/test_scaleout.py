"""`gatewatch bench --scale-out`: the cloned traffic, the steady-state window, and a small run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas import AccessEventBatch
from streams.bench.common import sim_events
from streams.bench.scaleout import _steady, clone_register, cloned_traffic
from streams.cli.main import build_parser, main
from streams.offline.simulate import load_agreements


def test_the_register_is_cloned_with_distinct_agreement_and_recipient_ids() -> None:
    base = load_agreements()

    clones = clone_register(base, 4)

    assert 4 * len(base) == len({a.agreement_id for a in clones})
    assert 4 * len({a.recipient_org_id for a in base}) == len({a.recipient_org_id for a in clones})


def test_cloned_traffic_fills_batches_of_one_recipient_that_name_a_cloned_agreement() -> None:
    base = load_agreements()
    known = {a.agreement_id for a in base}
    cloned = {a.agreement_id for a in clone_register(base, 64)}
    events = sim_events(3000, base)

    messages = list(cloned_traffic(events, known, 64, 100))

    batches = [(key, AccessEventBatch.model_validate_json(value)) for key, value in messages]
    assert len(events) == sum(len(b.events) for _, b in batches)
    assert all({key.decode()} == {e.recipient.org_id for e in b.events} for key, b in batches)
    moved = [e.agreement_id for _, b in batches for e in b.events if e.agreement_id and e.agreement_id[:-4] in known]
    assert moved
    assert set(moved) <= cloned
    assert 20 < len({key for key, _ in messages})  # spread over many recipients, not the 16 of the sample


def test_single_event_messages_when_the_batch_size_is_one() -> None:
    base = load_agreements()

    messages = list(cloned_traffic(sim_events(50, base), {a.agreement_id for a in base}, 64, 1))

    assert 50 == len(messages)
    assert all(b'"events"' not in value for _, value in messages)


def test_the_steady_rate_counts_the_middle_80_percent_of_decisions() -> None:
    times = [float(i) for i in range(101)]  # one decision a second, 101 of them

    rate, seconds = _steady(times)

    assert (1.0, 79.0) == (rate, seconds)


def test_scale_out_worker_counts_are_parsed_and_checked() -> None:
    assert [1, 2, 4] == build_parser().parse_args(["bench", "--scale-out", "1,2,4"]).scale_out
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--scale-out", "1,x"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--scale-out", "0"])


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_small_scale_out_run_decides_every_event_across_the_workers(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"

    code = main(["bench", "--scale-out", "1,2", "--events", "3000", "--batch-size", "100", "--out", str(out)])

    doc = json.loads(out.read_text())
    assert {} == doc["errors"]
    assert 0 == code
    assert [1, 2] == [r["workers"] for r in doc["rows"]]
    for row in doc["rows"]:
        assert 3000 == row["decisions"]
        assert 0 == row["dead_letters"]
        assert sum(row["decisions_per_worker"]) >= 3000  # (a rebalance may redeliver uncommitted events)
        assert row["steady_events_per_s"] > 0
