"""`gatewatch replay`: the same answers as `gatewatch check`, per-rule pack differences, topic replays."""

from __future__ import annotations

import heapq
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rules import DEFAULT_PACK_DIR, Engine, load_engine
from schemas import AccessEvent
from streams.cli.main import main
from streams.cli.runner import settings_env
from streams.offline.check import check_lines
from streams.offline.replay import (
    FileSource,
    ReplayReport,
    TopicSource,
    parse_offsets,
    read_file,
    replay_events,
)
from streams.offline.simulate import SAMPLE_REGISTER, Simulator, load_agreements
from streams.transport.broker import EmbeddedBroker
from tests.conftest import isolated_settings, read_topic

AGREEMENTS = load_agreements()


@pytest.fixture(scope="module")
def engine() -> Engine:
    return load_engine()


@pytest.fixture(scope="module")
def events() -> list[AccessEvent]:
    return [s.event for s in Simulator(AGREEMENTS, seed=11).events(1500)]


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory, events: list[AccessEvent]) -> Path:
    path = tmp_path_factory.mktemp("replay") / "events.jsonl"
    path.write_text("".join(e.model_dump_json(exclude_none=True) + "\n" for e in events))
    return path


def _check_counts(path: Path, engine: Engine) -> Counter[str]:
    with open(path, "rb") as lines:
        decisions = list(check_lines(lines, engine, AGREEMENTS, source=str(path)))
    return Counter(v.rule_id for d in decisions for v in d.violations)


def _modified_pack(tmp_path: Path) -> Path:
    """The bundled pack with NPD-VOL-01 disabled and NPD-BULK-01's threshold lowered from 10 to 1."""
    pack = tmp_path / "pack-b"
    shutil.copytree(DEFAULT_PACK_DIR, pack)
    extra = pack / "extra.rules.yaml"
    text = extra.read_text()
    vol = text.index("- id: NPD-VOL-01")
    vol_enabled = text.index("  enabled: true", vol)
    text = text[:vol_enabled] + "  enabled: false" + text[vol_enabled + len("  enabled: true") :]
    old = 'event.recipient.org_type == "police" and event.record_count > 10'
    assert old in text
    text = text.replace(old, 'event.recipient.org_type == "police" and event.record_count > 1')
    extra.write_text(text)
    return pack


def test_file_replay_counts_per_rule_equal_check_results(events_file: Path, engine: Engine) -> None:
    expected = _check_counts(events_file, engine)

    report = replay_events(read_file(events_file), engine, agreements=AGREEMENTS)

    assert expected == Counter(report.fired())
    assert 1500 == report.events
    assert sum(expected.values()) > 0


def test_replay_reads_batch_envelopes_like_single_events(events: list[AccessEvent], engine: Engine) -> None:
    singles = [(0, e.model_dump_json(exclude_none=True).encode()) for e in events[:300]]
    batches = []
    for e in events[:300]:  # one-event batches keep the file's order across recipients
        batches.append((0, b'{"schema_version":"1","events":[' + e.model_dump_json(exclude_none=True).encode() + b"]}"))

    single_report = replay_events(singles, engine, agreements=AGREEMENTS)
    batch_report = replay_events(batches, engine, agreements=AGREEMENTS)

    assert single_report.fired() == batch_report.fired()
    assert 300 == batch_report.events


class TrickleSource:
    """A partitioned source that hands over at most `per_pull` records of each wanted partition per pull."""

    def __init__(self, records: list[tuple[int, bytes, int]], per_pull: int) -> None:
        self.queues: dict[int, list[tuple[int, bytes, int]]] = {}
        for record in records:
            self.queues.setdefault(record[0], []).append(record)
        self.per_pull = per_pull
        self.pulls = 0

    @property
    def open_partitions(self) -> set[int]:
        return {p for p, q in self.queues.items() if q}

    @property
    def exhausted(self) -> bool:
        return not self.open_partitions

    def pull(self, wanted: set[int]) -> list[Any]:
        self.pulls += 1
        out = []
        for p in sorted(wanted & self.open_partitions):
            out.extend(self.queues[p][: self.per_pull])
            del self.queues[p][: self.per_pull]
        return out


def test_a_streamed_replay_evaluates_in_the_same_order_as_the_whole_merge_holding_a_few_events(
    events: list[AccessEvent], engine: Engine
) -> None:
    # Four partitions by recipient, as Kafka keys them; event times interleave across partitions.
    partition_of = {org: i % 4 for i, org in enumerate(sorted({e.recipient.org_id for e in events}))}
    records = []
    offsets = Counter[int]()
    for e in events:
        p = partition_of[e.recipient.org_id]
        records.append((p, e.model_dump_json(exclude_none=True).encode(), offsets[p]))
        offsets[p] += 1
    by_partition = [[e for e in events if partition_of[e.recipient.org_id] == p] for p in range(4)]
    expected_order = [e.event_id for e in heapq.merge(*by_partition, key=lambda e: e.occurred_at.timestamp())]

    def run(source: Any) -> tuple[ReplayReport, list[str]]:
        order: list[str] = []
        report = replay_events(
            source, engine, agreements=AGREEMENTS, sink=lambda p, decision, alerts: order.append(decision.event_id)
        )
        return report, order

    whole, whole_order = run(records)
    trickle = TrickleSource(records, per_pull=3)
    streamed, streamed_order = run(trickle)

    assert whole_order == expected_order
    assert streamed_order == expected_order
    assert len(set(partition_of.values())) == 4
    assert trickle.pulls > 100
    volatile = ("seconds", "events_per_s", "most_buffered")
    assert {k: v for k, v in streamed.as_dict().items() if k not in volatile} == {
        k: v for k, v in whole.as_dict().items() if k not in volatile
    }
    assert whole.most_buffered == 1500
    assert streamed.most_buffered <= 4 * 3  # at most one pull of each partition


def test_a_file_is_replayed_a_chunk_at_a_time(events_file: Path, engine: Engine) -> None:
    whole = replay_events(read_file(events_file), engine, agreements=AGREEMENTS)
    source = FileSource(events_file)
    streamed = replay_events(source, engine, agreements=AGREEMENTS)

    assert streamed.fired() == whole.fired()
    assert (streamed.events, streamed.messages) == (1500, 1500)
    assert source.exhausted


def test_invalid_records_are_counted_not_evaluated(engine: Engine) -> None:
    report = replay_events([(0, b"{not json"), (0, b"[1]")], engine)

    assert (2, 2, 0) == (report.messages, report.invalid, report.events)


def test_comparing_with_a_modified_pack_reports_exactly_the_changed_rules(
    events_file: Path, events: list[AccessEvent], engine: Engine, tmp_path: Path
) -> None:
    vol_fired = _check_counts(events_file, engine)["NPD-VOL-01"]
    newly_bulk = sum(1 for e in events if e.recipient.org_type.value == "police" and 1 < (e.record_count or 0) <= 10)

    report = replay_events(
        read_file(events_file), engine, compare=load_engine(_modified_pack(tmp_path)), agreements=AGREEMENTS
    )

    assert vol_fired > 0
    assert newly_bulk > 0
    assert {"NPD-VOL-01": (vol_fired, 0), "NPD-BULK-01": (0, newly_bulk)} == report.differences()
    assert 0 == report.rules["NPD-VOL-01"].b
    assert report.rules["NPD-BULK-01"].a == report.rules["NPD-BULK-01"].both


def test_replay_cli_compare_json(events_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack_b = _modified_pack(tmp_path)

    code = main(
        ["replay", "--file", str(events_file), "--compare", str(pack_b), "--agreements", str(SAMPLE_REGISTER), "--json"]
    )

    doc = json.loads(capsys.readouterr().out)
    assert 0 == code
    assert {"NPD-VOL-01", "NPD-BULK-01"} == {rid for rid, d in doc["rules"].items() if d["a_only"] or d["b_only"]}
    assert 1500 == doc["events"]


def test_replay_cli_table_names_every_rule_that_fired(events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["replay", "--file", str(events_file)])

    out = capsys.readouterr().out
    assert 0 == code
    assert "Replay of file:" in out
    assert "rule" in out


@pytest.mark.parametrize(("text", "expected"), [("100", 100), ("0:5,3:7", {0: 5, 3: 7}), (None, None)])
def test_offsets_are_one_number_or_per_partition(text: str | None, expected: object) -> None:
    assert expected == parse_offsets(text)


def test_report_renders_without_any_rule_firing(engine: Engine) -> None:
    report: ReplayReport = replay_events([], engine, compare=engine)

    assert "no rule fired" in report.render()


@pytest.mark.integration
def test_topic_replay_matches_file_replay_and_publishes_only_when_asked(
    broker: EmbeddedBroker,
    tmp_path: Path,
    events_file: Path,
    events: list[AccessEvent],
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from streams.transport.kafka import ensure_topics
    from streams.transport.publisher import Publisher

    settings = isolated_settings(broker, tmp_path)
    ensure_topics(settings)
    with Publisher(settings) as pub:
        pub.publish_agreements(AGREEMENTS)
        pub.publish_events(events)
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    file_report = replay_events(read_file(events_file), engine, agreements=AGREEMENTS)

    with TopicSource(settings) as source:
        records = source.read_all()
    topic_report = replay_events(records, engine, agreements=AGREEMENTS, source="topic:access")
    with TopicSource(settings, max_records=50) as source:  # small pulls: little held at once
        streamed = replay_events(source, engine, agreements=AGREEMENTS, source="topic:access")
    code = main(["replay", "--json"])  # the register comes from the agreements topic
    cli_doc = json.loads(capsys.readouterr().out)

    assert len(events) == len(records)
    assert file_report.fired() == topic_report.fired()
    assert file_report.fired() == streamed.fired()
    assert streamed.events == 1500
    assert streamed.most_buffered <= 4 * 50, streamed.most_buffered  # one pull's worth per partition
    assert 0 == code
    assert file_report.fired() == {rid: d["events"] for rid, d in cli_doc["rules"].items() if d["events"]}
    assert [] == read_topic(settings, settings.topics.decisions, expected=1, timeout=2.0)

    code = main(["replay", "--publish", "--to-offset", "50", "--json"])
    capsys.readouterr()
    published = read_topic(settings, settings.topics.decisions, expected=200, timeout=20.0)

    assert 0 == code
    assert 200 == len(published)  # 50 from each of the 4 partitions
