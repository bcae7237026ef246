"""The quarter's register of external shares as CSV and as a self-contained HTML page."""

from __future__ import annotations

import csv
import io

from streams.report._html import esc, human, num, page, table, when
from streams.report.aggregate import RegisterRow
from streams.report.build import RegisterReport
from streams.report.periods import UK

__all__ = ["COLUMNS", "register_rows", "render_register_csv", "render_register_html"]

#: The register is a wide table: the whole window on screen, landscape A4 on paper, dates on one line.
_WIDE = """
body { max-width: none; }
table { font-size: 8.5pt; }
td:nth-child(7), td:nth-child(8) { white-space: nowrap; }
@page { size: A4 landscape; margin: 10mm; }
"""

#: The published register's columns, then the findings Gatewatch raised against each row.
COLUMNS = (
    "recipient",
    "recipient_org_id",
    "recipient_type",
    "agreement",
    "legal_gateway",
    "purpose",
    "datasets",
    "highest_data_tier",
    "first_share",
    "last_share",
    "shares",
    "records",
    "route",
    "findings",
)


def _tier(code: str) -> str:
    return f"Tier {code}" if code.isdigit() else code


def _findings(row: RegisterRow) -> str:
    return "; ".join(f"{c} ({n})" for c, n in sorted(row.findings.items(), key=lambda kv: (-kv[1], kv[0])))


def register_rows(report: RegisterReport) -> list[dict[str, str]]:
    """One dict per register row, keyed by COLUMNS, as text."""
    out = []
    for row in report.figures.sorted_rows():
        org, rtype, name = row.recipient
        agreement = report.agreements.get(row.agreement_id or "")
        if agreement is not None:  # the register says who the agreement is with, whoever used it
            org = agreement.recipient_org_id
            name = agreement.recipient_name or name
            rtype = agreement.recipient_org_type.value if agreement.recipient_org_type is not None else rtype
        first = row.first.astimezone(UK) if row.first else None
        last = row.last.astimezone(UK) if row.last else None
        out.append(
            {
                "recipient": name or org,
                "recipient_org_id": org,
                "recipient_type": rtype,
                "agreement": row.agreement_id or "(none cited)",
                "legal_gateway": "; ".join(sorted(row.gateways)),
                "purpose": "; ".join(sorted(row.purposes)),
                "datasets": "; ".join(sorted(row.datasets)),
                "highest_data_tier": _tier(row.highest_tier),
                "first_share": when(first, "%Y-%m-%d"),
                "last_share": when(last, "%Y-%m-%d"),
                "shares": str(row.shares),
                "records": str(row.records),
                "route": {"srs": "SRS", "direct": "direct"}.get(row.route, row.route),
                "findings": _findings(row),
            }
        )
    return out


def render_register_csv(report: RegisterReport) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(register_rows(report))
    return buf.getvalue()


def render_register_html(report: RegisterReport) -> str:
    rows = register_rows(report)
    heads = [
        "Recipient",
        "Agreement",
        "Legal gateway",
        "Purpose",
        "Datasets",
        "Highest tier",
        "First share",
        "Last share",
        "Shares",
        "Records",
        "Route",
        "Findings",
    ]
    cells = [
        (
            f"{r['recipient']} ({human(r['recipient_type'])})",
            r["agreement"],
            "; ".join(human(g) if g in ("none", "other") else g for g in r["legal_gateway"].split("; ") if g),
            "; ".join(human(p) for p in r["purpose"].split("; ") if p),
            r["datasets"],
            r["highest_data_tier"],
            r["first_share"],
            r["last_share"],
            num(int(r["shares"])),
            num(int(r["records"])),
            r["route"],
            "; ".join(human(f) for f in r["findings"].split("; ") if f) or "none",
        )
        for r in rows
    ]
    f = report.figures
    title = f"External shares of National Pupil Database data: {report.period.title}"
    body = (
        '<header><div class="kicker">Gatewatch · register of external data shares</div>'
        f"<h1>{esc(title)}</h1>"
        f'<p class="meta">Made {when(report.generated_at, "%d %B %Y %H:%M UTC")} from the decision record: one '
        "row per agreement and access route (SRS or direct supply), with the findings raised against its shares. "
        "Shares that cited no agreement are listed per recipient. Dates in UK time.</p></header>"
        + table(heads, cells, numeric=(8, 9))
        + f'<p class="note">{num(len(rows))} rows; {num(sum(int(r["shares"]) for r in rows))} shares. '
        f"{num(f.internal_events)} accesses by DfE's own staff are not external shares and are left out. "
        f"Read from {esc(report.source)}.</p>"
        "<footer>Gatewatch · no pupil is named or referenced in this register.</footer>"
    )
    return page(title, body, extra_css=_WIDE)
