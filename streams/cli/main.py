"""The `gatewatch` command line: watch the sharing of the National Pupil Database (commands below)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streams.exceptions import ConfigError, GatewatchStreamsError

__all__ = ["main"]


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from pydantic import ValidationError

    from streams.settings import Settings

    values: dict[str, Any] = {}
    if getattr(args, "bootstrap", None):
        values["kafka_bootstrap"] = args.bootstrap
    if getattr(args, "rules", None):
        values["rule_pack_dir"] = args.rules
    if getattr(args, "agreements", None):
        values["agreements_file"] = args.agreements
    if getattr(args, "metrics_port", None) is not None:
        values["web_port"] = args.metrics_port
    if getattr(args, "data_dir", None):
        values["data_dir"] = args.data_dir
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_settings_problems(exc)) from None


def _settings_problems(exc: Any) -> str:
    """Name each unusable setting by its environment variable and what it must be, never its value (maybe a secret)."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else "?"
        lines.append(f"GATEWATCH_{field.upper()}: {error['msg']}")
    return "unusable settings (fix the environment or the option):\n  " + "\n  ".join(lines)


def cmd_up(args: argparse.Namespace) -> int:
    from streams.cli.runner import run_up
    from streams.logs import configure_logging

    settings = _settings(args)
    configure_logging(settings.log_level)
    summary = run_up(
        settings, simulate=args.simulate, duration=args.duration, seed=args.seed, malformed_rate=args.malformed_rate
    )
    if summary is None:
        return 0
    print(json.dumps(summary.as_dict(), indent=2) if args.json else summary.render(), flush=True)
    accounted = summary.decisions + summary.dead_letters
    expected = summary.published + summary.malformed_published
    if accounted < expected:
        print(f"error: only {accounted} of {expected} messages were accounted for", file=sys.stderr)
        return 1
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import structlog

    from streams.logs import configure_logging
    from streams.transport.tansu import local_mode_for
    from streams.worker.app import build_worker_app, faust_worker
    from streams.worker.gctuning import tune_gc

    settings = _settings(args)
    if not settings.kafka_bootstrap:
        raise GatewatchStreamsError(
            "the worker needs GATEWATCH_KAFKA_BOOTSTRAP (or --bootstrap); `gatewatch up` starts an embedded broker"
        )
    configure_logging(settings.log_level)
    settings = local_mode_for(settings)  # the embedded broker needs local mode: detected, and said so
    worker_app = build_worker_app(settings)
    structlog.get_logger("gatewatch.worker").info("gc_tuned", **tune_gc())  # streams/worker/gctuning.py
    faust_worker(worker_app.app, settings.log_level).execute_from_commandline()
    return 0


def _open_events(path: Path) -> Any:
    """The events file as bytes (`-`: standard input); a file that cannot be read is a usage error (exit 2)."""
    if str(path) == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    try:
        return open(path, "rb")  # the caller's with-block closes it
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read events: {exc.strerror}") from None


def _first_line_peeked(lines: Any) -> tuple[bytes, Any]:
    """The first non-blank line, and an iterator over every line as if none had been read."""
    import itertools

    from streams.worker.processing import without_bom

    seen: list[bytes] = []
    for line in lines:
        seen.append(line)
        if without_bom(line).strip():
            return line, itertools.chain(seen, lines)
    return b"", iter(seen)


def cmd_check(args: argparse.Namespace) -> int:
    from streams.offline.check import check_outcomes, document_hint
    from streams.offline.register_file import load_agreements_file
    from streams.worker.engine_setup import engine_for, lateness_of

    settings = _settings(args)  # the worker's pupil key, lateness and pack: the same alert ids as live
    engine = engine_for(settings)
    agreements = load_agreements_file(args.agreements) if args.agreements else []
    worst = 0
    cited = 0  # decisions of events that name an agreement: judged against no register without --agreements
    with _open_events(args.events) as handle, contextlib.ExitStack() as stack:
        first, lines = _first_line_peeked(handle)
        hint = document_hint(first)
        if hint is not None:
            raise ConfigError(f"{args.events}: {hint.replace('FILE', str(args.events))}")
        try:
            alerts_out = stack.enter_context(open(args.alerts, "w", encoding="utf-8")) if args.alerts else None
        except OSError as exc:
            raise ConfigError(f"{args.alerts}: cannot write alerts: {exc.strerror}") from None
        outcomes = check_outcomes(lines, engine, agreements, source=str(args.events), lateness=lateness_of(settings))
        for decision, alerts in outcomes:
            sys.stdout.write(decision.model_dump_json(exclude_none=True) + "\n")
            if decision.verdict.value != "compliant":
                worst = 1
            cited += decision.agreement_id is not None
            if alerts_out is not None:
                alerts_out.writelines(alert.model_dump_json() + "\n" for alert in alerts)
    sys.stdout.flush()
    if cited and not args.agreements:
        # Without a register every cited agreement is unknown: the findings say "no such agreement"
        # (and none of the agreement's own rules ran), which a new user easily takes for the answer.
        print(
            f"gatewatch: note: {cited} event(s) cite an agreement but no --agreements register was given, so "
            "each was judged as citing an agreement the register does not hold and the agreement's own rules "
            "(fields, purposes, caps, governance) did not run; pass --agreements FILE",
            file=sys.stderr,
        )
    return worst


def cmd_replay(args: argparse.Namespace) -> int:
    import structlog

    from streams.logs import configure_logging
    from streams.offline.replay import (
        DecisionPublisher,
        FileSource,
        TopicSource,
        load_agreements_for,
        parse_offsets,
        parse_time,
        replay_events,
    )
    from streams.worker.engine_setup import engine_for, lateness_of

    since, until = parse_time(args.since), parse_time(args.until)
    from_offsets, to_offsets = parse_offsets(args.from_offset), parse_offsets(args.to_offset)
    # The worker's pupil key, lateness and pack: a replay gives the live alert ids (streams/worker/engine_setup.py).
    offline = _settings(args)
    engine = engine_for(offline)
    compare = engine_for(offline, args.compare) if args.compare else None
    settings = offline if (args.file is None or args.publish) else None
    if settings is not None:
        configure_logging("warning" if args.json else settings.log_level)
    needs_kafka = args.file is None or args.publish
    if needs_kafka and (settings is None or not settings.kafka_bootstrap):
        raise GatewatchStreamsError("replaying a topic or --publish needs GATEWATCH_KAFKA_BOOTSTRAP (or --bootstrap)")
    agreements = load_agreements_for(settings if args.file is None else None, args.agreements)
    filter_since, filter_until = since, until
    if args.file is not None:
        if from_offsets is not None or to_offsets is not None:
            raise GatewatchStreamsError("--from-offset/--to-offset apply to a topic, not to --file")
        records: FileSource | TopicSource = FileSource(args.file)
        source = f"file:{args.file}"
    else:
        assert settings is not None
        topic = args.topic or settings.topics.access
        records = TopicSource(
            settings, topic, from_offsets=from_offsets, to_offsets=to_offsets, since=since, until=until
        )
        source = f"topic:{topic}"
        if records.time_bounds_applied:
            filter_since = filter_until = None
    sink = None
    if args.publish:
        assert settings is not None
        sink = DecisionPublisher(settings)
        structlog.get_logger("gatewatch.replay").warning(
            "replay_publishing",
            decisions_topic=settings.topics.decisions,
            alerts_topic=settings.topics.alerts,
            pack=engine.pack.model_dump(),
        )
    try:
        report = replay_events(
            records,
            engine,
            compare=compare,
            agreements=agreements,
            since=filter_since,
            until=filter_until,
            source=source,
            sink=sink,
            lateness=lateness_of(offline),
        )
    finally:
        if isinstance(records, TopicSource):
            records.close()
        if sink is not None:
            sink.close()
    if sink is not None:
        t = sink.settings.topics
        print(
            f"published {sink.decisions} decisions to {t.decisions} and {sink.alerts} alerts to {t.alerts}",
            file=sys.stderr,
        )
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.render())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from streams.bench import run_bench, run_scale_out

    if args.scale_out:
        results = run_scale_out(args.scale_out, events=args.events, batch_size=args.batch_size, out=args.out)
    else:
        results = run_bench(quick=args.quick, out=args.out, only=args.only)
    return 1 if results["errors"] else 0


def _worker_counts(text: str) -> list[int]:
    """`1,2,4` -> [1, 2, 4] for `bench --scale-out`."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected worker counts like 1,2,4, got {text!r}") from None
    if not counts or any(not 1 <= k <= 64 for k in counts):
        raise argparse.ArgumentTypeError("worker counts must be between 1 and 64, e.g. 1,2,4")
    return counts


def cmd_rules_validate(args: argparse.Namespace) -> int:
    from rules import validate_pack

    problems = validate_pack(args.dir)
    for problem in problems:
        print(problem)
    errors = [p for p in problems if getattr(p, "severity", "error") == "error"]
    if not problems:
        print(f"{args.dir or 'bundled NPD pack'}: no problems")
    return 1 if errors else 0


def cmd_rules_test(args: argparse.Namespace) -> int:
    from rules import load_engine
    from rules.testing import report_by_rule, run_pack_tests

    engine = load_engine(args.dir)
    results = run_pack_tests(args.dir, engine=engine)
    print(report_by_rule(results, engine))
    return 1 if any(not r.passed for r in results) else 0


def cmd_rules_diff(args: argparse.Namespace) -> int:
    from rules.diff import diff_packs

    result = diff_packs(args.old, args.new)
    print(json.dumps(result.as_dict(), indent=2) if args.json else result.render())
    return 0 if result.ok else 1


def cmd_agreements_load(args: argparse.Namespace) -> int:
    from streams.offline.register_file import load_agreements_file
    from streams.transport.kafka import ensure_topics
    from streams.transport.publisher import Publisher

    settings = _settings(args)
    agreements = load_agreements_file(args.file)
    ensure_topics(settings)
    with Publisher(settings) as pub:
        count = pub.publish_agreements(agreements)
    print(f"published {count} agreements to {settings.topics.agreements}")
    # The register is the register: it is published whatever the findings, which follow for people.
    from rules import load_engine
    from streams.offline.agreements_check import judge_entries, summary_lines, uk_today

    day = uk_today()
    entries = [a.model_dump(mode="json") for a in agreements]
    print("\n".join(summary_lines(list(judge_entries(entries, load_engine(settings.rule_pack_dir), day)), day)))
    return 0


def cmd_agreements_check(args: argparse.Namespace) -> int:
    from rules import load_engine
    from streams.offline.agreements_check import judge_entries, uk_today
    from streams.offline.register_file import read_register

    register = read_register(args.file)
    engine = load_engine(args.rules)
    worst = 0
    entries, lines = [e.item for e in register], [e.line for e in register]
    for judged in judge_entries(entries, engine, args.at or uk_today(), lines=lines):
        sys.stdout.write(judged.as_json() + "\n")
        if judged.verdict != "compliant":
            worst = 1
    sys.stdout.flush()
    return worst


def _uk_date(text: str) -> Any:
    """A YYYY-MM-DD date argument (argparse makes a bad one a usage error, exit 2)."""
    import datetime as dt
    import re

    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date as YYYY-MM-DD") from None


def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.offline.register_file import load_agreements_file, sample_register_path
    from streams.offline.replay import parse_time
    from streams.offline.simulate import LONDON, Simulator

    agreements = load_agreements_file(args.agreements or sample_register_path())
    start, end = parse_time(args.start), parse_time(args.end)
    if start is None and end is None:
        end = dt.datetime.now(dt.UTC)  # traffic from the past: the worker dead-letters future events
    simulator = Simulator(agreements, seed=args.seed, start=start.astimezone(LONDON) if start else None, end=end)
    events = (s.event for s in simulator.events(args.count))
    if args.publish:
        from streams.transport.kafka import ensure_topics
        from streams.transport.publisher import Publisher

        settings = _settings(args)
        ensure_topics(settings)
        with Publisher(settings) as pub:
            count = pub.publish_events(events)
        print(f"published {count} events to {settings.topics.access}", file=sys.stderr)
    else:
        for event in events:
            sys.stdout.write(event.model_dump_json(exclude_none=True) + "\n")
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    import signal

    from prometheus_client import CollectorRegistry, start_http_server

    from streams.logs import configure_logging
    from streams.sinks.delivery import AlertmanagerSink, SinkMetrics, SinkRunner, WebhookSink

    settings = _settings(args)
    configure_logging(settings.log_level)
    if args.sink_command == "alertmanager":
        url = args.url or settings.alertmanager_url
        if not url:
            raise GatewatchStreamsError("no Alertmanager URL: pass --url or set GATEWATCH_ALERTMANAGER_URL")
        sink: AlertmanagerSink | WebhookSink = AlertmanagerSink(
            url, generator_base=f"{settings.public_url}/alerts", runbook_base=f"{settings.public_url}/runbooks"
        )
    else:
        url = args.url or settings.webhook_url
        if not url or settings.webhook_secret is None:
            raise GatewatchStreamsError(
                "a webhook sink needs --url (or GATEWATCH_WEBHOOK_URL) and GATEWATCH_WEBHOOK_SECRET"
            )
        sink = WebhookSink(url, settings.webhook_secret.get_secret_value().encode())
    registry = CollectorRegistry()
    runner = SinkRunner(settings, sink, metrics=SinkMetrics.create(registry))
    if args.metrics_port is not None:
        start_http_server(args.metrics_port, addr=settings.web_host, registry=registry)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    try:
        runner.run()
    except KeyboardInterrupt:
        runner.stop()
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from schemas import AgreementDecision, Decision
    from streams.offline.audit import render, verify_path, verify_topic

    model = AgreementDecision if args.agreement_decisions else Decision
    if args.file:
        reports, unit = verify_path(args.file, model), "line"
    else:
        reports, unit = verify_topic(_settings(args), model), "offset"
    print(render(reports, unit=unit))
    return 0 if all(r.ok for r in reports) else 1


def cmd_audit_export(args: argparse.Namespace) -> int:
    from streams.offline.audit import export_topic

    settings = _settings(args)
    if args.out is None:
        counts = export_topic(settings, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        try:
            with open(args.out, "wb") as out:
                counts = export_topic(settings, out)
        except GatewatchStreamsError:
            Path(args.out).unlink(missing_ok=True)  # no export with a hole in it, not even an empty one
            raise
    where = args.out or "stdout"
    print(f"exported {sum(counts.values())} decisions of {len(counts)} partition(s) to {where}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from streams.report.command import run

    return run(args, _settings)


def cmd_topics_create(args: argparse.Namespace) -> int:
    from streams.transport.kafka import ensure_topics

    created = ensure_topics(_settings(args))
    print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))
    return 0


METRICS_PORT_HELP = "port of /metrics (GATEWATCH_WEB_PORT; 0 = any free port)"
DATA_DIR_HELP = "Faust data directory (GATEWATCH_DATA_DIR)"
PACK_DIR_HELP = "rule pack directory (default: the bundled NPD pack)"


def _kafka_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: GATEWATCH_KAFKA_BOOTSTRAP)")


def _add_up(sub: Any) -> None:
    p = sub.add_parser("up", help="run broker (embedded unless --bootstrap), worker and optional traffic")
    _kafka_opts(p)
    p.add_argument("--simulate", type=int, default=0, metavar="N", help="publish N synthetic events, then summarise")
    p.add_argument("--duration", type=float, default=60.0, metavar="S", help="spread the events over S seconds")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated traffic (default 0)")
    p.add_argument("--malformed-rate", type=float, default=0.02, help="share of malformed messages mixed in")
    p.add_argument("--agreements", type=Path, help="agreements register (default: the bundled sample)")
    p.add_argument("--rules", type=Path, help="rule pack directory (default: the bundled NPD pack)")
    p.add_argument("--metrics-port", type=int, help=METRICS_PORT_HELP)
    p.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_up)


def _add_worker(sub: Any) -> None:
    p = sub.add_parser(
        "worker",
        help="run the Faust worker against GATEWATCH_KAFKA_BOOTSTRAP",
        description="Run the Faust worker against GATEWATCH_KAFKA_BOOTSTRAP (or --bootstrap); run more of them "
        "for more partitions. On the embedded broker (the one `gatewatch up` starts, in memory, single node) "
        "the worker needs local mode, with short rebalance and session timeouts: it detects the broker and "
        "turns local mode on, saying so in an `embedded_broker_detected` log line, unless "
        "GATEWATCH_LOCAL_MODE is set. Every option has a GATEWATCH_* setting (README, Settings).",
    )
    _kafka_opts(p)
    p.add_argument("--rules", type=Path, metavar="DIR", help="rule pack directory (GATEWATCH_RULE_PACK_DIR)")
    p.add_argument("--metrics-port", type=int, help=METRICS_PORT_HELP)
    p.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    p.set_defaults(func=cmd_worker)


def _add_check(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="evaluate a JSONL file of events offline; one decision per line (alerts with --alerts)",
        description="Evaluate a JSONL file of events offline, in file order, with the worker's settings "
        "(GATEWATCH_PUPIL_HMAC_KEY, GATEWATCH_WINDOW_LATENESS_DAYS, GATEWATCH_RULE_PACK_DIR), so alert ids "
        "equal the live ones. Exit 0 if every line is compliant, 1 otherwise, 2 on a usage error.",
    )
    p.add_argument(
        "events",
        type=Path,
        metavar="EVENTS.jsonl",
        help="events, one JSON object (an event, or a batch of one recipient's events) per line; - for stdin",
    )
    p.add_argument(
        "--agreements",
        type=Path,
        help="the agreements register: YAML or JSON list of Agreement v1 objects, or JSON lines "
        "(without it every cited agreement counts as unknown)",
    )
    p.add_argument("--rules", type=Path, metavar="DIR", help="rule pack directory (default: GATEWATCH_RULE_PACK_DIR)")
    p.add_argument(
        "--alerts",
        type=Path,
        metavar="FILE",
        help="also write the alerts, one Alert JSON per line as on the alerts topic (ids as live; publishes nothing)",
    )
    p.set_defaults(func=cmd_check)


def _add_replay(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="re-evaluate history (a JSONL file or the access topic) with a rule pack; per-rule counts or differences",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--file", type=Path, metavar="EVENTS.jsonl", help="events or AccessEventBatch lines")
    src.add_argument("--topic", help="topic to read (default: the access topic)")
    p.add_argument("--from-offset", metavar="N|P:N,...", help="first offset to read (inclusive), per partition")
    p.add_argument("--to-offset", metavar="N|P:N,...", help="offset to stop at (exclusive), per partition")
    p.add_argument("--since", metavar="ISO8601", help="start time (inclusive; no offset given = UTC)")
    p.add_argument("--until", metavar="ISO8601", help="end time (exclusive)")
    p.add_argument(
        "--rules", type=Path, metavar="DIR", help="rule pack A (default: GATEWATCH_RULE_PACK_DIR or the bundled pack)"
    )
    p.add_argument("--compare", type=Path, metavar="DIR", help="rule pack B: show per rule what fires differently")
    p.add_argument(
        "--agreements",
        type=Path,
        help="agreements register (default: the agreements topic for a topic, none for a file)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--publish", action="store_true", help="write pack A's decisions and alerts to the live topics (off by default)"
    )
    _kafka_opts(p)
    p.set_defaults(func=cmd_replay)


def _add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="run the benchmark suite against an embedded broker; table + JSON")
    p.add_argument("--quick", action="store_true", help="small sizes, for smoke runs (a few minutes)")
    p.add_argument("--out", type=Path, help="write the figures as JSON to this file")
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only these benchmarks (engine, offline, live, replay, batched, latency, memory); repeatable",
    )
    p.add_argument(
        "--scale-out",
        type=_worker_counts,
        metavar="K,K,...",
        help="instead of the suite: K workers in one consumer group over one backlog, for each K (e.g. 1,2,4)",
    )
    p.add_argument(
        "--events",
        type=int,
        help="--scale-out: backlog size in events (default 200,000 batched, 40,000 single-event messages)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=500,
        choices=range(1, 1001),
        metavar="1-1000",
        help="--scale-out: events per message (default 500; 1 for single-event messages)",
    )
    p.set_defaults(func=cmd_bench)


def _add_rules(sub: Any) -> None:
    rules = sub.add_parser("rules", help="rule pack tools").add_subparsers(dest="rules_command", required=True)
    p = rules.add_parser("validate", help="list every problem in a rule pack as file:line: message")
    p.add_argument("dir", type=Path, nargs="?", help=PACK_DIR_HELP)
    p.set_defaults(func=cmd_rules_validate)
    p = rules.add_parser("test", help="run the YAML test cases beside a rule pack")
    p.add_argument("dir", type=Path, nargs="?", help=PACK_DIR_HELP)
    p.set_defaults(func=cmd_rules_test)
    p = rules.add_parser(
        "diff",
        help="classify the changes between two versions of a pack (major, minor, patch) and check the version bump",
    )
    p.add_argument("old", type=Path, metavar="OLD_DIR", help="the pack as deployed")
    p.add_argument("new", type=Path, metavar="NEW_DIR", help="the changed pack")
    p.add_argument("--json", action="store_true", help="print the changes and the verdict as JSON")
    p.set_defaults(func=cmd_rules_diff)


def _add_agreements(sub: Any) -> None:
    agreements = sub.add_parser("agreements", help="agreements register").add_subparsers(
        dest="agreements_command", required=True
    )
    p = agreements.add_parser("load", help="publish a register file to the agreements topic")
    p.add_argument("file", type=Path, help="YAML or JSON list of Agreement v1 objects")
    _kafka_opts(p)
    p.set_defaults(func=cmd_agreements_load)
    p = agreements.add_parser(
        "check",
        help="judge every agreement of a file by the approval rules, offline; one JSON line per entry",
        description="Judge each agreement of FILE (a YAML or JSON list, or JSON lines) by the rule pack's "
        "agreement rules at a UK date, in input order. Prints one JSON line per entry: agreement_id, verdict "
        "(compliant, violation or invalid), violations and, for an invalid entry, its validation errors "
        "(never its values). Exit 0 when every entry is compliant, 1 otherwise, 2 on a usage error.",
    )
    p.add_argument("file", type=Path, help="agreements: YAML or JSON list, or JSON lines (.jsonl)")
    p.add_argument("--at", type=_uk_date, help="UK date to judge at, YYYY-MM-DD (default: today in the UK)")
    p.add_argument("--rules", type=Path, help="rule pack directory (default: the bundled NPD pack)")
    p.set_defaults(func=cmd_agreements_check)


def _add_simulate(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="synthetic events as JSONL on stdout, or --publish them",
        description="Synthetic access events drawn from an agreements register: mostly compliant, some "
        "violations of every category. About 60 events per working day (Europe/London working hours), so "
        "20,000 events span about 16 months; by default the last event falls no later than now (the worker "
        "dead-letters events from the future). The same seed with the same --start or --end gives the "
        "same events; the default end moves them by whole weeks only.",
    )
    p.add_argument("--count", type=int, default=100, metavar="N", help="number of events (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the traffic (default 0)")
    p.add_argument("--agreements", type=Path, help="agreements register to draw from (default: the bundled sample)")
    window = p.add_mutually_exclusive_group()
    window.add_argument(
        "--start", metavar="ISO8601", help="time of the first event's day (no offset = UTC); events run on from it"
    )
    window.add_argument(
        "--end",
        metavar="ISO8601",
        help="the last event falls no later than this (no offset = UTC; default: now)",
    )
    p.add_argument("--publish", action="store_true", help="publish to the access topic instead of printing")
    _kafka_opts(p)
    p.set_defaults(func=cmd_simulate)


def _add_sink(sub: Any) -> None:
    sink = sub.add_parser("sink", help="deliver alerts from the alerts topic").add_subparsers(
        dest="sink_command", required=True
    )
    for name, text in (
        ("alertmanager", "push alerts to Alertmanager's API v2"),
        ("webhook", "POST alerts, HMAC-signed, to a webhook (GATEWATCH_WEBHOOK_SECRET)"),
    ):
        p = sink.add_parser(name, help=text)
        p.add_argument("--url", help="receiver URL (default: GATEWATCH_ALERTMANAGER_URL / GATEWATCH_WEBHOOK_URL)")
        p.add_argument("--metrics-port", type=int, help="serve the sink's own /metrics on this port (default: none)")
        _kafka_opts(p)
        p.set_defaults(func=cmd_sink)


def _add_audit(sub: Any) -> None:
    audit = sub.add_parser("audit", help="decision ledger").add_subparsers(dest="audit_command", required=True)
    p = audit.add_parser("verify", help="check the decisions' hash chain for gaps, reordering and alteration")
    p.add_argument(
        "--file", type=Path, help="an export of decisions (`gatewatch audit export`) instead of the decisions topic"
    )
    p.add_argument(
        "--agreement-decisions",
        action="store_true",
        help="verify the agreement decisions' chain (npd.agreement-decisions.v1, or an export of it) instead",
    )
    _kafka_opts(p)
    p.set_defaults(func=cmd_audit_verify)
    p = audit.add_parser(
        "export",
        help="write the decisions topic as JSONL, byte for byte, in the format `audit verify --file` reads",
    )
    p.add_argument("--out", type=Path, metavar="FILE", help="file to write (default: stdout)")
    _kafka_opts(p)
    p.set_defaults(func=cmd_audit_export)


def _add_report(sub: Any) -> None:
    report = sub.add_parser("report", help="governance reports from the decision history").add_subparsers(
        dest="report_command", required=True
    )
    from streams.report.command import add_arguments as report_arguments

    p = report.add_parser("month", help="the month's board pack: one self-contained HTML file")
    p.add_argument("period", metavar="YYYY-MM", help="the calendar month, e.g. 2026-11")
    report_arguments(p)
    p.set_defaults(func=cmd_report)
    p = report.add_parser("register", help="the quarter's register of external shares, as CSV and HTML")
    p.add_argument("period", metavar="YYYYQn", help="the quarter, e.g. 2026Q4")
    report_arguments(p)
    p.set_defaults(func=cmd_report)


def _add_topics(sub: Any) -> None:
    topics = sub.add_parser("topics", help="topic administration").add_subparsers(dest="topics_command", required=True)
    p = topics.add_parser("create", help="create the Gatewatch topics if missing")
    _kafka_opts(p)
    p.set_defaults(func=cmd_topics_create)


# One function per command, in the order `--help` lists them.
_COMMANDS = (
    _add_up,
    _add_worker,
    _add_check,
    _add_replay,
    _add_bench,
    _add_rules,
    _add_agreements,
    _add_simulate,
    _add_sink,
    _add_audit,
    _add_report,
    _add_topics,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatewatch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    parser.description = f"{__doc__} Commands: {', '.join(sub.choices)}."  # every command, as registered
    return parser


def _stdout_closed() -> int:
    """The reader of our output went away (`gatewatch check ... | head`): stop quietly, as a shell tool does.

    Python would print a traceback, and another at exit when it flushes stdout; pointing stdout at
    /dev/null makes that last flush harmless. 141 is what a shell reports for a process ended by SIGPIPE.
    """
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        return _stdout_closed()
    except GatewatchStreamsError as exc:
        print(f"gatewatch: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        if exc.filename is None:
            raise
        # A path a user typed that cannot be read is a usage error, not a crash (exit 2, no traceback).
        print(f"gatewatch: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except Exception as exc:
        from rules import GatewatchRulesError

        if isinstance(exc, GatewatchRulesError):
            print(f"gatewatch: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
