"""Reports read from the topics (bulk, no consumer group) give the figures a file export gives."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from streams.cli.main import main
from streams.cli.runner import settings_env
from streams.report import periods
from streams.report.build import build_month, build_register
from streams.report.export import ACCESS_FILE, DECISIONS_FILE, export_history
from streams.report.reading import FileHistory, Progress, TopicHistory
from streams.transport.broker import EmbeddedBroker
from tests.conftest import isolated_settings
from tests.streams.report.conftest import CLOCK, Simulated

pytestmark = pytest.mark.integration


def test_topics_and_their_export_give_the_figures_of_the_file_history(
    broker: EmbeddedBroker, simulated: Simulated, tmp_path: Path
) -> None:
    from streams.transport.kafka import ensure_topics
    from streams.transport.publisher import Publisher

    settings = isolated_settings(broker, tmp_path)
    ensure_topics(settings)
    with Publisher(settings) as pub:
        pub.publish_agreements(simulated.agreements)
        pub.publish_batches(simulated.events, batch_size=50)  # batch envelopes, as high-volume producers send
        for line in (simulated.directory / DECISIONS_FILE).read_bytes().splitlines():
            pub.publish_raw(line, topic=settings.topics.decisions)
    november, q4 = periods.month("2026-11"), periods.quarter("2026Q4")
    files = FileHistory(simulated.directory / ACCESS_FILE, simulated.directory / DECISIONS_FILE)
    expected = build_month(files, november, simulated.engine, simulated.agreements, now=CLOCK)
    progress = io.StringIO()
    from_topics = build_month(
        TopicHistory(settings), november, simulated.engine, simulated.agreements, progress=Progress(progress), now=CLOCK
    )
    for org, totals in expected.figures.recipients.items():
        assert (org, totals) == (org, from_topics.figures.recipients.get(org))
    assert expected.figures == from_topics.figures
    assert expected.approvals == from_topics.approvals
    assert "access messages read" in progress.getvalue()
    rows = build_register(TopicHistory(settings), q4, simulated.engine, simulated.agreements, now=CLOCK).figures.rows
    assert build_register(files, q4, simulated.engine, simulated.agreements, now=CLOCK).figures.rows == rows

    exported = export_history(settings, tmp_path / "export", simulated.agreements)
    assert (len(simulated.decisions), 0) == (exported.decisions, exported.skipped)
    again = FileHistory(tmp_path / "export" / ACCESS_FILE, tmp_path / "export" / DECISIONS_FILE)
    assert expected.figures == build_month(again, november, simulated.engine, [], now=CLOCK).figures

    out = tmp_path / "out"
    args = ["report", "month", "2026-11", "--out", str(out), "--quiet"]
    # The command reads the topics named by the settings; the isolated test topics come in by environment.
    with pytest.MonkeyPatch.context() as mp:
        for name, value in settings_env(settings).items():
            mp.setenv(name, value)
        assert 0 == main(args)
    assert "Pathways to Work Trust" in (out / "board-pack-2026-11.html").read_text(encoding="utf-8")
