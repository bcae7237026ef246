"""The board pack: one self-contained HTML page for a month, charts inline as SVG, exact numbers in tables."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from schemas import Category, Severity
from streams.report import charts
from streams.report._html import esc, human, num, page, pct, table, when
from streams.report.build import ApprovalFinding, MonthReport

__all__ = ["CHARTS", "render_month"]

#: Every chart the pack draws, by its `data-chart` name (the browser test checks each is on the page).
CHARTS = (
    "records-by-gateway",
    "records-by-purpose",
    "records-by-recipient-type",
    "records-by-tier",
    "records-by-route",
    "home-office-vs-cap",
    "findings-by-category",
    "findings-trend",
)
_SEVERITIES = [s.value for s in Severity]


def _chart(name: str, svg: str, caption: str) -> str:
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure class="chart" data-chart="{name}">{svg}{cap}</figure>'


def _tile(value: str, label: str, *, alert: bool = False) -> str:
    cls = "tile alert" if alert else "tile"
    return f'<div class="{cls}"><div class="value">{esc(value)}</div><div class="label">{esc(label)}</div></div>'


def _summary(r: MonthReport) -> str:
    f = r.figures
    verdicts, total = f.verdicts(), f.total_records
    events = sum(verdicts.values())
    findings = sum(f.findings.values())
    ho = f.home_office_persons.get(f.month, 0)
    cap = r.home_office_cap
    srs = f.records_by_route().get("srs", 0)
    tiles = [
        _tile(num(events), "access events decided"),
        _tile(num(total), "records disclosed"),
        _tile(num(findings), f"findings on {num(verdicts.get('violation', 0))} events", alert=findings > 0),
        _tile(num(len(r.approvals)), "findings against approvals", alert=bool(r.approvals)),
        _tile(pct(f.records_where(tier="1"), total), "of records include Tier 1 data"),
        _tile(pct(f.records_where(special=True), total), "of records include special-category data"),
        _tile(pct(srs, total), "of records through the Secure Research Service"),
        _tile(
            f"{num(ho)} / {num(cap)}" if cap is not None else num(ho),
            "Home Office persons requested / monthly cap",
            alert=cap is not None and ho > cap,
        ),
    ]
    return f'<section><h2>The month at a glance</h2><div class="tiles">{"".join(tiles)}</div></section>'


def _breakdown(
    name: str, title: str, counts: Counter[str], total: int, heading: str, label: Callable[[str], str] = human
) -> str:
    data = [(label(k), v) for k, v in counts.items()]
    rows = [(label(k), num(v), pct(v, total)) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    svg = charts.bars(title, data)
    tab = table([heading, "Records", "Share"], rows, numeric=(1, 2), total=("Total", num(total), pct(total, total)))
    return f'<h3>{esc(title)}</h3><div class="pair">{_chart(name, svg, "")}{tab}</div>'


def _tier(code: str) -> str:
    return f"Tier {code}" if code.isdigit() else human(code)


def _disclosed(r: MonthReport) -> str:
    f = r.figures
    total = f.total_records
    parts = [
        "<section><h2>What was disclosed</h2>",
        '<p class="note">Records disclosed to recipients, counted once per access event, by the month of the '
        "event (UK time). Tier 1 is the most sensitive data; an event counts under its most sensitive field.</p>",
        _breakdown(
            "records-by-gateway",
            "Records by legal gateway",
            f.records_by(1),
            total,
            "Legal gateway",
            label=lambda c: c if c not in ("none", "other") else human(c),
        ),
        _breakdown("records-by-purpose", "Records by purpose", f.records_by(2), total, "Purpose"),
        _breakdown("records-by-recipient-type", "Records by recipient type", f.records_by(0), total, "Recipient type"),
        _breakdown(
            "records-by-tier", "Records by most sensitive data tier", f.records_by(3), total, "Tier", label=_tier
        ),
        "</section>",
    ]
    return "".join(parts)


def _sensitive(r: MonthReport) -> str:
    f = r.figures
    total = f.total_records
    t1, special = f.records_where(tier="1"), f.records_where(special=True)
    both = sum(n for (_, t, s), n in f.records_by_channel.items() if t == "1" and s == "true")
    rows = [
        ("Tier 1 (most sensitive)", num(t1), pct(t1, total)),
        ("Special category (ethnicity, health, ...)", num(special), pct(special, total)),
        ("Both", num(both), pct(both, total)),
    ]
    by_route = f.records_by_route()
    route_rows = [
        (human(k), num(f.events_by_route.get(k, 0)), num(v), pct(v, total))
        for k, v in sorted(by_route.items(), key=lambda kv: -kv[1])
    ]
    route_events = sum(f.events_by_route.values())
    svg = charts.bars("Records by access route", [(human(k), v) for k, v in by_route.items()])
    return (
        "<section><h2>Sensitive data and access route</h2>"
        + table(["Records including", "Records", "Share of all records"], rows, numeric=(1, 2))
        + "<h3>Secure Research Service against direct supply</h3>"
        + '<div class="pair">'
        + _chart("records-by-route", svg, "Records by access route: SRS keeps data inside DfE's environment")
        + table(
            ["Route", "Events", "Records", "Share"],
            route_rows,
            numeric=(1, 2, 3),
            total=("Total", num(route_events), num(total), pct(total, total)),
        )
        + "</div></section>"
    )


def _over(value: int, cap: int | None) -> str:
    return f"over by {num(value - cap)}" if cap is not None and value > cap else ""


def _home_office(r: MonthReport) -> str:
    f, cap = r.figures, r.home_office_cap
    values = [f.home_office_persons.get(m, 0) for m in f.trend_months]
    svg = charts.months_against_cap("Home Office persons requested per month", f.trend_months, values, cap)
    rows = [
        (
            m,
            num(v),
            num(cap) if cap is not None else "-",
            ("over by " + num(v - cap)) if cap is not None and v > cap else "",
        )
        for m, v in zip(f.trend_months, values, strict=True)
    ]
    return (
        "<section><h2>Home Office requests against the monthly cap</h2>"
        '<p class="note">Persons the Home Office asked about (record count of its requests), by month, against '
        "the cap the rule pack enforces.</p>"
        + '<div class="pair">'
        + _chart("home-office-vs-cap", svg, "Persons requested per month; the dashed line is the cap")
        + table(["Month", "Persons requested", "Cap", ""], rows, numeric=(1, 2))
        + "</div></section>"
    )


def _findings(r: MonthReport) -> str:
    f = r.figures
    by_cat: dict[str, Counter[str]] = {}
    for (_, category, severity), n in f.findings.items():
        by_cat.setdefault(category, Counter())[severity] += n
    order = [c.value for c in Category if c.value in by_cat] + sorted(set(by_cat) - {c.value for c in Category})
    order.sort(key=lambda c: -sum(by_cat[c].values()))  # as the chart: most findings first (stable on ties)
    rows = [(human(c), *(num(by_cat[c].get(s, 0)) for s in _SEVERITIES), num(sum(by_cat[c].values()))) for c in order]
    sev_totals = f.findings_by(2)
    total_row = ("Total", *(num(sev_totals.get(s, 0)) for s in _SEVERITIES), num(sum(sev_totals.values())))
    cat_svg = charts.bars(
        "Findings by category", [(human(c), sum(by_cat[c].values())) for c in order], unit="findings", limit=30
    )
    series = {s: [f.findings_trend.get((m, s), 0) for m in f.trend_months] for s in _SEVERITIES}
    trend_svg = charts.stacked_months("Findings per month by severity", f.trend_months, series, charts.SEVERITY_COLOURS)
    trend_rows = [
        (
            m,
            num(f.events_trend.get(m, 0)),
            *(num(series[s][i]) for s in _SEVERITIES),
            num(sum(series[s][i] for s in _SEVERITIES)),
        )
        for i, m in enumerate(f.trend_months)
    ]
    rule_rows = [
        (esc(rule), esc(r.rule_titles.get(rule, "")), f'<span class="sev-{esc(sev)}">{esc(sev)}</span>', num(n))
        for (rule, _, sev), n in sorted(f.findings.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    sev_heads = [s.capitalize() for s in _SEVERITIES]
    return (
        "<section><h2>Findings</h2>"
        '<p class="note">A finding is a rule an access event broke; one event can break several. Windowed rules '
        "(volumes, repeated look-ups) count every event over the limit.</p>"
        + '<h3>This month, by category and severity</h3><div class="pair">'
        + _chart("findings-by-category", cat_svg, "")
        + table(["Category", *sev_heads, "Total"], rows, numeric=range(1, 6), total=total_row)
        + "</div><h3>The last 12 months</h3>"
        + '<div class="pair">'
        + _chart("findings-trend", trend_svg, "Findings per month, stacked by severity")
        + table(["Month", "Events", *sev_heads, "Findings"], trend_rows, numeric=range(1, 7))
        + "</div>"
        + "<h3>This month, by rule</h3>"
        + table(["Rule", "Title", "Severity", "Events"], rule_rows, numeric=(3,), raw=(0, 1, 2))
        + "</section>"
    )


def _recipients(r: MonthReport) -> str:
    rows = []
    for i, (org, t) in enumerate(r.figures.top_recipients(10), start=1):
        name = r.recipient_names.get(org) or t.name or org
        rows.append((i, name, org, human(t.recipient_type), num(t.events), num(t.records), num(t.findings)))
    return (
        "<section><h2>Top recipients</h2>"
        + table(
            ["#", "Recipient", "Organisation id", "Type", "Events", "Records", "Findings"], rows, numeric=(0, 4, 5, 6)
        )
        + "</section>"
    )


def _approval_rows(findings: list[ApprovalFinding]) -> list[tuple[str, ...]]:
    return [
        (
            f.agreement_id,
            f.recipient_name or f.recipient_org_id,
            human(f.approver) if f.approver not in ("dsap", "dmap") else f.approver.upper(),
            f.status,
            f.title,
            f'<span class="sev-{esc(f.severity)}">{esc(f.severity)}</span>',
        )
        for f in findings
    ]


def _approvals(r: MonthReport) -> str:
    heads = ["Agreement", "Recipient", "Approved by", "Status", "Finding", "Severity"]
    gap_rows = [
        (
            agreement,
            r.agreement_recipients.get(agreement, "(not in the register)"),
            rule,
            r.rule_titles.get(rule, ""),
            num(n),
        )
        for (agreement, rule), n in sorted(r.figures.approval_gaps.items())
    ]
    return (
        "<section><h2>Approvals with findings</h2>"
        f'<p class="note">The {num(r.agreements)} agreements of the register as read when this pack was made, judged '
        f"by the agreement rules of {esc(r.judging_pack)} as at {when(r.judged_at, '%d %B %Y')}.</p>"
        + table(heads, _approval_rows(r.approvals), raw=(5,))
        + "<h3>Governance findings on this month's shares</h3>"
        + '<p class="note">Shares made under an approval that lacks what the data needs (a DPIA, an ethics '
        "review, the panel's approval, a current audit), by agreement.</p>"
        + table(["Agreement", "Recipient", "Rule", "Finding", "Events"], gap_rows, numeric=(4,))
        + "<h3>Overdue recipient audits</h3>"
        + table(heads, _approval_rows(r.overdue_audits), raw=(5,))
        + "<h3>Destruction not confirmed after the agreement ended</h3>"
        + table(heads, _approval_rows(r.unconfirmed_destructions), raw=(5,))
        + "</section>"
    )


def _packs_and_method(r: MonthReport) -> str:
    packs = [
        (name, version, sha[:12], num(use.decisions), when(use.first), when(use.last))
        for (name, version, sha), use in sorted(r.figures.packs.items())
    ]
    s = r.stats
    notes = [
        ("Access messages read", num(s.access_messages)),
        ("of which unreadable (dead letters)", num(s.access_unreadable)),
        ("Access events in the month", num(s.period_events)),
        ("Decisions read", num(s.decisions)),
        ("Decisions counted (last 12 months)", num(s.decisions_in_window)),
        ("Repeated decisions for the same event, counted once", num(s.duplicates)),
        ("Decisions of the month whose access event was not found", num(r.figures.missing_events)),
        ("Unreadable decisions", num(s.decisions_unreadable)),
    ]
    return (
        "<section><h2>Rule packs in force</h2>"
        + table(
            ["Pack", "Version", "sha256", "Decisions", "First decision (UTC)", "Last decision (UTC)"],
            packs,
            numeric=(3,),
        )
        + "<h2>About these figures</h2>"
        + f'<p class="note">Read from {esc(r.source)}. Counts are of access events by event time, in UK time; '
        "each event counted once by its id. No pupil is named or referenced in this pack.</p>"
        + table(["Read", "Count"], notes, numeric=(1,))
        + "</section>"
    )


def render_month(r: MonthReport) -> str:
    """The board pack for `r.period` as one HTML document."""
    title = f"NPD sharing: board pack for {r.period.title}"
    header = (
        '<header><div class="kicker">Gatewatch · National Pupil Database sharing</div>'
        f"<h1>{esc(title)}</h1>"
        f'<p class="meta">Made {when(r.generated_at, "%d %B %Y %H:%M UTC")} from the decision record. '
        f"Months run in UK time.</p></header>"
    )
    body = "".join(
        [
            header,
            _summary(r),
            _disclosed(r),
            _sensitive(r),
            _home_office(r),
            _findings(r),
            _recipients(r),
            _approvals(r),
            _packs_and_method(r),
            "<footer>Gatewatch board pack · figures from the decision record; "
            "nothing in it identifies a pupil.</footer>",
        ]
    )
    return page(title, body)
