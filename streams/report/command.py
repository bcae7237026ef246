"""`gatewatch report month|register`: where the history is read from, what is written where."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.exceptions import GatewatchStreamsError
from streams.report._names import ACCESS_FILE, AGREEMENTS_FILE, DECISIONS_FILE

if TYPE_CHECKING:
    from schemas import Agreement
    from streams.report.reading import History

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options both report commands share."""
    p.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="directory to write to (default: .)")
    p.add_argument(
        "--history",
        type=Path,
        metavar="DIR",
        help=f"a JSONL export ({ACCESS_FILE}, {DECISIONS_FILE}, {AGREEMENTS_FILE}); default: the topics when "
        "Kafka is configured, else DATA_DIR/history (what `gatewatch up --simulate` leaves)",
    )
    p.add_argument("--decisions", type=Path, metavar="FILE", help="a JSONL export of decisions (instead of --history)")
    p.add_argument("--events", type=Path, metavar="FILE", help="with --decisions: the access messages, as JSONL")
    p.add_argument("--agreements", type=Path, help="agreements register file (default: the export's or the topic's)")
    p.add_argument("--rules", type=Path, metavar="DIR", help="rule pack (default: the bundled NPD pack)")
    p.add_argument("--data-dir", type=Path, help="where `gatewatch up` keeps its data (default: .gatewatch)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: GATEWATCH_KAFKA_BOOTSTRAP)")


def _source(args: argparse.Namespace, settings: Any) -> tuple[History, Sequence[Agreement]]:
    from streams.offline.register_file import load_agreements_file
    from streams.offline.replay import read_agreements_topic
    from streams.report.reading import FileHistory, TopicHistory

    agreements = load_agreements_file(args.agreements) if args.agreements else None
    if args.events is not None and args.decisions is None:
        raise GatewatchStreamsError("--events goes with --decisions (the access messages of that decision export)")
    if args.decisions is not None:
        return FileHistory(args.events, args.decisions), agreements or []
    directory = args.history
    if directory is None and settings.kafka_bootstrap:
        return TopicHistory(settings), agreements if agreements is not None else read_agreements_topic(settings)
    if directory is None:
        directory = settings.data_dir / "history"
        if not (directory / DECISIONS_FILE).exists():
            raise GatewatchStreamsError(
                "no history to read: give --bootstrap (or GATEWATCH_KAFKA_BOOTSTRAP) to read the topics, or "
                f"--history DIR / --decisions FILE for an export; `gatewatch up --simulate N` leaves one in {directory}"
            )
    if not (directory / DECISIONS_FILE).exists():
        raise GatewatchStreamsError(f"{directory} holds no {DECISIONS_FILE}: not a Gatewatch history export")
    access = directory / ACCESS_FILE
    if agreements is None:
        register = directory / AGREEMENTS_FILE
        agreements = load_agreements_file(register) if register.exists() else []
    return FileHistory(access if access.exists() else None, directory / DECISIONS_FILE), agreements


def run(args: argparse.Namespace, settings_of: Callable[[argparse.Namespace], Any]) -> int:
    from rules import load_engine
    from streams.report import periods
    from streams.report.build import build_month, build_register
    from streams.report.reading import Progress

    period = periods.month(args.period) if args.report_command == "month" else periods.quarter(args.period)
    engine = load_engine(args.rules)
    history, agreements = _source(args, settings_of(args))
    progress = Progress(None if args.quiet else sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_command == "month":
        from streams.report.month_html import render_month

        report = build_month(history, period, engine, agreements, progress=progress)
        path = args.out / f"board-pack-{period.label}.html"
        path.write_text(render_month(report), encoding="utf-8")
        written = [path]
        events = sum(report.figures.events.values())
    else:
        from streams.report.register_out import render_register_csv, render_register_html

        register = build_register(history, period, engine, agreements, progress=progress)
        csv_path, html_path = args.out / f"register-{period.label}.csv", args.out / f"register-{period.label}.html"
        csv_path.write_text(render_register_csv(register), encoding="utf-8")
        html_path.write_text(render_register_html(register), encoding="utf-8")
        written = [csv_path, html_path]
        events = sum(r.shares for r in register.figures.rows.values())
    for path in written:
        print(path)
    if events == 0:
        print(f"gatewatch: warning: no decisions fall in {period.label} ({history.description})", file=sys.stderr)
    return 0
