"""The `gatewatch` command line: up, worker, check, rules, agreements, simulate, topics."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streams.exceptions import GatewatchStreamsError

__all__ = ["main"]


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
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
    return Settings(**values)


def cmd_up(args: argparse.Namespace) -> int:
    from streams.logs import configure_logging
    from streams.runner import run_up

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
    from faust.worker import Worker

    from streams.app import build_worker_app
    from streams.logs import configure_logging

    settings = _settings(args)
    if not settings.kafka_bootstrap:
        raise GatewatchStreamsError(
            "the worker needs GATEWATCH_KAFKA_BOOTSTRAP (or --bootstrap); `gatewatch up` starts an embedded broker"
        )
    configure_logging(settings.log_level)
    worker_app = build_worker_app(settings)
    Worker(worker_app.app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from rules import load_engine
    from streams.check import check_lines
    from streams.register_file import load_agreements_file

    engine = load_engine(args.rules)
    agreements = load_agreements_file(args.agreements) if args.agreements else []
    worst = 0
    with open(args.events, "rb") as lines:
        for decision in check_lines(lines, engine, agreements, source=str(args.events)):
            sys.stdout.write(decision.model_dump_json(exclude_none=True) + "\n")
            if decision.verdict.value != "compliant":
                worst = 1
    sys.stdout.flush()
    return worst


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
    from rules.testing import run_pack_tests

    results = run_pack_tests(args.dir)
    failed = [r for r in results if not r.passed]
    for result in results:
        print(result)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def cmd_agreements_load(args: argparse.Namespace) -> int:
    from streams.kafka import ensure_topics
    from streams.publisher import Publisher
    from streams.register_file import load_agreements_file

    settings = _settings(args)
    agreements = load_agreements_file(args.file)
    ensure_topics(settings)
    with Publisher(settings) as pub:
        count = pub.publish_agreements(agreements)
    print(f"published {count} agreements to {settings.topics.agreements}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.register_file import load_agreements_file, sample_register_path
    from streams.simulate import Simulator

    agreements = load_agreements_file(args.agreements or sample_register_path())
    events = (s.event for s in Simulator(agreements, seed=args.seed).events(args.count))
    if args.publish:
        from streams.kafka import ensure_topics
        from streams.publisher import Publisher

        settings = _settings(args)
        ensure_topics(settings)
        with Publisher(settings) as pub:
            count = pub.publish_events(events)
        print(f"published {count} events to {settings.topics.access}", file=sys.stderr)
    else:
        for event in events:
            sys.stdout.write(event.model_dump_json(exclude_none=True) + "\n")
    return 0


def cmd_topics_create(args: argparse.Namespace) -> int:
    from streams.kafka import ensure_topics

    created = ensure_topics(_settings(args))
    print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatewatch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def kafka_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: GATEWATCH_KAFKA_BOOTSTRAP)")

    p = sub.add_parser("up", help="run broker (embedded unless --bootstrap), worker and optional traffic")
    kafka_opts(p)
    p.add_argument("--simulate", type=int, default=0, metavar="N", help="publish N synthetic events, then summarise")
    p.add_argument("--duration", type=float, default=60.0, metavar="S", help="spread the events over S seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--malformed-rate", type=float, default=0.02, help="share of malformed messages mixed in")
    p.add_argument("--agreements", type=Path, help="agreements register (default: the bundled sample)")
    p.add_argument("--rules", type=Path, help="rule pack directory (default: the bundled NPD pack)")
    p.add_argument("--metrics-port", type=int, help="port of /metrics (0 = any free port)")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("worker", help="run the Faust worker against GATEWATCH_KAFKA_BOOTSTRAP")
    kafka_opts(p)
    p.add_argument("--rules", type=Path)
    p.add_argument("--metrics-port", type=int)
    p.add_argument("--data-dir", type=Path)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("check", help="evaluate a JSONL file of events offline; one decision per line")
    p.add_argument("events", type=Path)
    p.add_argument("--agreements", type=Path, help="YAML or JSON list of Agreement v1 objects")
    p.add_argument("--rules", type=Path)
    p.set_defaults(func=cmd_check)

    rules = sub.add_parser("rules", help="rule pack tools").add_subparsers(dest="rules_command", required=True)
    p = rules.add_parser("validate", help="list every problem in a rule pack as file:line: message")
    p.add_argument("dir", type=Path, nargs="?")
    p.set_defaults(func=cmd_rules_validate)
    p = rules.add_parser("test", help="run the YAML test cases beside a rule pack")
    p.add_argument("dir", type=Path, nargs="?")
    p.set_defaults(func=cmd_rules_test)

    agreements = sub.add_parser("agreements", help="agreements register").add_subparsers(
        dest="agreements_command", required=True
    )
    p = agreements.add_parser("load", help="publish a register file to the agreements topic")
    p.add_argument("file", type=Path)
    kafka_opts(p)
    p.set_defaults(func=cmd_agreements_load)

    p = sub.add_parser("simulate", help="synthetic events as JSONL on stdout, or --publish them")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--agreements", type=Path)
    p.add_argument("--publish", action="store_true")
    kafka_opts(p)
    p.set_defaults(func=cmd_simulate)

    topics = sub.add_parser("topics", help="topic administration").add_subparsers(dest="topics_command", required=True)
    p = topics.add_parser("create", help="create the Gatewatch topics if missing")
    kafka_opts(p)
    p.set_defaults(func=cmd_topics_create)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except GatewatchStreamsError as exc:
        print(f"gatewatch: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from rules import GatewatchRulesError

        if isinstance(exc, GatewatchRulesError):
            print(f"gatewatch: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
