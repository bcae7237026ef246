"""The board pack's and the register's figures against the worker's metrics for the same traffic."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from schemas import OrgType
from streams.report import periods
from streams.report.aggregate import route_of
from streams.report.build import MonthReport, build_month, build_register
from streams.report.export import ACCESS_FILE, DECISIONS_FILE
from streams.report.reading import FileHistory
from tests.streams.report.conftest import CLOCK, Simulated

NOVEMBER = periods.month("2026-11")
Q4 = periods.quarter("2026Q4")


def samples(registry: CollectorRegistry, name: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], int]:
    """The non-zero samples of a counter, keyed by its label values in the order given."""
    out = {}
    for family in registry.collect():
        for s in family.samples:
            if s.name == name and s.value:
                out[tuple(s.labels[k] for k in labels)] = int(s.value)
    return out


def history(sim: Simulated) -> FileHistory:
    return FileHistory(sim.directory / ACCESS_FILE, sim.directory / DECISIONS_FILE)


@pytest.fixture(scope="module")
def month_report(simulated: Simulated) -> MonthReport:
    return build_month(history(simulated), NOVEMBER, simulated.engine, simulated.agreements, now=CLOCK)


def test_records_disclosed_equal_the_worker_metric_label_for_label(
    simulated: Simulated, month_report: MonthReport
) -> None:
    labels = ("recipient_type", "gateway", "purpose", "tier")
    expected = samples(simulated.registry, "gatewatch_records_disclosed_total", labels)
    assert expected == dict(month_report.figures.records)


def test_records_by_channel_tier_and_special_category_equal_the_worker_metric(
    simulated: Simulated, month_report: MonthReport
) -> None:
    labels = ("channel", "tier", "special_category")
    expected = samples(simulated.registry, "gatewatch_records_disclosed_by_channel_total", labels)
    assert expected == dict(month_report.figures.records_by_channel)


def test_events_by_action_recipient_gateway_purpose_and_verdict_equal_the_worker_metric(
    simulated: Simulated, month_report: MonthReport
) -> None:
    labels = ("action", "recipient_type", "gateway", "purpose", "verdict")
    expected = samples(simulated.registry, "gatewatch_events_total", labels)
    assert expected == dict(month_report.figures.events)
    verdicts = samples(simulated.registry, "gatewatch_decisions_total", ("verdict",))
    assert {k[0]: v for k, v in verdicts.items()} == dict(month_report.figures.verdicts())


def test_home_office_persons_equal_the_worker_metric_and_the_cap_is_the_packs(
    simulated: Simulated, month_report: MonthReport
) -> None:
    persons = simulated.registry.get_sample_value("gatewatch_home_office_persons_requested_total")
    assert persons is not None
    assert persons > 0
    assert int(persons) == month_report.figures.home_office_persons["2026-11"]
    assert 1500 == month_report.home_office_cap


def test_findings_of_per_event_rules_equal_the_alerts_the_worker_counted(
    simulated: Simulated, month_report: MonthReport
) -> None:
    # A per-event rule raises one alert per event it fires on; windowed rules re-send one alert per
    # window, while the pack counts every event over the limit, so only per-event rules compare.
    windowed = {r.id for r in simulated.engine.rules if r.window is not None or r.scope != "event"}
    alerts = samples(simulated.registry, "gatewatch_alerts_total", ("rule", "category", "severity"))
    expected = {k: v for k, v in alerts.items() if k[0] not in windowed}
    actual = {k: v for k, v in month_report.figures.findings.items() if k[0] not in windowed}
    assert expected == actual
    assert len(expected) >= 20  # the simulation covers most categories


def test_findings_trend_has_twelve_months_ending_with_the_report_month(month_report: MonthReport) -> None:
    f = month_report.figures
    assert 12 == len(f.trend_months)
    assert ("2025-12", "2026-11") == (f.trend_months[0], f.trend_months[-1])
    assert sum(f.findings.values()) == sum(n for (m, _), n in f.findings_trend.items() if m == "2026-11")
    assert {"2026-11"} == {m for (m, _), n in f.findings_trend.items() if n}


def test_pack_in_force_and_approval_findings_are_reported(simulated: Simulated, month_report: MonthReport) -> None:
    pack = simulated.engine.pack
    assert {(pack.name, pack.version, pack.sha256)} == set(month_report.figures.packs)
    assert len(simulated.decisions) == month_report.figures.packs[(pack.name, pack.version, pack.sha256)].decisions
    # The sample register holds an agreement with an overdue audit and one ended without destruction confirmed.
    assert ["DR230517.03"] == [f.agreement_id for f in month_report.overdue_audits]
    assert ["DR130204.01"] == [f.agreement_id for f in month_report.unconfirmed_destructions]
    assert dt.datetime(2026, 12, 1, tzinfo=periods.UK) == month_report.judged_at


def test_register_has_one_row_per_agreement_and_route_that_shared(simulated: Simulated) -> None:
    report = build_register(history(simulated), Q4, simulated.engine, simulated.agreements, now=CLOCK)
    external = [e for e in simulated.events if e.recipient.org_type is not OrgType.INTERNAL]
    expected_keys = {
        (e.agreement_id or "", "" if e.agreement_id else e.recipient.org_id, route_of(e.channel.value))
        for e in external
    }
    rows = report.figures.rows
    assert expected_keys == set(rows)
    assert {e.agreement_id for e in external if e.agreement_id} == {r.agreement_id for r in rows.values()} - {None}
    shares: Counter[tuple[str, str, str]] = Counter()
    records: Counter[tuple[str, str, str]] = Counter()
    for e in external:
        key = (e.agreement_id or "", "" if e.agreement_id else e.recipient.org_id, route_of(e.channel.value))
        shares[key] += 1
        records[key] += e.record_count
    assert dict(shares) == {k: r.shares for k, r in rows.items()}
    assert dict(records) == {k: r.records for k, r in rows.items()}
    assert len(simulated.events) - len(external) == report.figures.internal_events


def test_a_redelivered_decision_is_counted_once(simulated: Simulated, tmp_path: Path) -> None:
    lines = (simulated.directory / DECISIONS_FILE).read_bytes().splitlines(keepends=True)
    doubled = tmp_path / "decisions.jsonl"
    doubled.write_bytes(b"".join(lines) + b"".join(lines[:100]))
    once = build_month(history(simulated), NOVEMBER, simulated.engine, [], now=CLOCK)
    twice = build_month(
        FileHistory(simulated.directory / ACCESS_FILE, doubled), NOVEMBER, simulated.engine, [], now=CLOCK
    )
    assert 100 == twice.stats.duplicates
    assert once.figures.records == twice.figures.records
    assert once.figures.findings == twice.figures.findings


def test_decisions_without_their_access_event_count_under_an_unknown_tier_and_route(simulated: Simulated) -> None:
    report = build_month(
        FileHistory(None, simulated.directory / DECISIONS_FILE), NOVEMBER, simulated.engine, [], now=CLOCK
    )
    f = report.figures
    assert len(simulated.decisions) == f.missing_events
    assert {"unknown"} == set(f.records_by(3))
    assert {"unknown"} == set(f.events_by_route)
    assert sum(d.record_count or 0 for d in simulated.decisions) == f.total_records


def test_unreadable_lines_are_counted_not_fatal(simulated: Simulated, tmp_path: Path) -> None:
    decisions = tmp_path / "decisions.jsonl"
    decisions.write_bytes((simulated.directory / DECISIONS_FILE).read_bytes() + b"{not json\n[1]\n")
    access = tmp_path / "access.jsonl"
    access.write_bytes((simulated.directory / ACCESS_FILE).read_bytes() + b"\xff\xfe\n")
    report = build_month(FileHistory(access, decisions), NOVEMBER, simulated.engine, [], now=CLOCK)
    assert (1, 2) == (report.stats.access_unreadable, report.stats.decisions_unreadable)
    assert len(simulated.decisions) == report.stats.decisions_in_window


def test_a_long_read_reports_progress_and_the_last_count() -> None:
    import io

    from streams.report.reading import Progress

    stream = io.StringIO()
    progress = Progress(stream, interval=3600.0)
    for n in range(1, 1001):
        progress.tick("decisions", n)
    progress.tick("decisions", 1000, final=True)
    lines = stream.getvalue().splitlines()
    assert 1 == len(lines)  # quiet between intervals, one line at the end
    assert lines[0].startswith("report: 1,000 decisions read (")


def test_decisions_are_counted_as_they_are_read_never_held(simulated: Simulated) -> None:
    from collections.abc import Iterator

    from streams.report.reading import read_history

    lines = (simulated.directory / DECISIONS_FILE).read_bytes().splitlines()
    produced = consumed = 0
    most_ahead = 0

    class Counting:
        description = "counting"

        def access(self) -> Iterator[bytes]:
            return iter((simulated.directory / ACCESS_FILE).read_bytes().splitlines())

        def decisions(self) -> Iterator[bytes]:
            nonlocal produced
            for line in lines:
                produced += 1
                yield line

    def consume(*_: object) -> None:
        nonlocal consumed, most_ahead
        consumed += 1
        most_ahead = max(most_ahead, produced - consumed)

    stats = read_history(Counting(), NOVEMBER, NOVEMBER, simulated.engine.catalogue, consume)
    assert (len(lines), len(lines)) == (stats.decisions, consumed)
    assert 0 == most_ahead  # each decision is counted before the next is read


def test_governance_findings_on_shares_are_listed_against_their_approval(
    simulated: Simulated, month_report: MonthReport
) -> None:
    expected: Counter[tuple[str, str]] = Counter(
        (d.agreement_id, v.rule_id)
        for d in simulated.decisions
        for v in d.violations
        if v.category.value == "governance_gap" and d.agreement_id
    )
    assert expected  # the simulation shares under an ungoverned agreement
    assert dict(expected) == dict(month_report.figures.approval_gaps)
