"""HTML building blocks shared by the reports: escaping, tables, the page with its print stylesheet."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Sequence

__all__ = ["esc", "human", "num", "page", "pct", "table", "when"]

_CSS = """
:root { --ink: #1b1f24; --muted: #5b6470; --rule: #d4d9e0; --band: #f4f6f9; --accent: #1f4e79; }
* { box-sizing: border-box; }
body { font: 10.5pt/1.45 "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1100px; padding: 24px 32px 48px; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 18px; padding-bottom: 8px; }
header .kicker { color: var(--muted); text-transform: uppercase; letter-spacing: .06em; font-size: 8.5pt; }
h1 { font-size: 19pt; margin: 2px 0 4px; }
h2 { font-size: 13.5pt; color: var(--accent); border-bottom: 1px solid var(--rule); padding-bottom: 3px;
     margin: 26px 0 10px; }
h3 { font-size: 11pt; margin: 14px 0 6px; }
p.meta, p.note, figcaption { color: var(--muted); font-size: 9pt; }
.tiles { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; margin: 12px 0; }
.tile { background: var(--band); border-left: 4px solid var(--accent); padding: 8px 10px; }
.tile.alert { border-left-color: #b91c1c; }
.tile .value { font-size: 16pt; font-weight: 700; }
.tile .label { color: var(--muted); font-size: 8.5pt; }
.pair { display: grid; grid-template-columns: minmax(0, 1.25fr) minmax(0, 1fr); gap: 18px; align-items: start; }
figure.chart { margin: 0; }
figure.chart svg { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; margin: 4px 0 10px; }
th, td { border-bottom: 1px solid var(--rule); padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { font-weight: 700; border-top: 2px solid var(--ink); }
.sev-critical { color: #7f1d1d; font-weight: 700; } .sev-high { color: #c2410c; font-weight: 600; }
code { font-size: 8.5pt; }
footer { margin-top: 28px; border-top: 1px solid var(--rule); padding-top: 6px; color: var(--muted); font-size: 8pt; }
@media (max-width: 900px) { .pair { grid-template-columns: 1fr; } .tiles { grid-template-columns: repeat(2, 1fr); } }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 9.5pt; }
  .pair { grid-template-columns: 1fr; gap: 4px; }
  figure.chart svg { max-width: 15cm; }
  h2 { break-after: avoid; page-break-after: avoid; }
  section { break-inside: auto; }
  figure.chart, table, .tiles, .pair { break-inside: avoid; page-break-inside: avoid; }
  thead { display: table-header-group; }
  a { color: inherit; text-decoration: none; }
}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def num(value: int) -> str:
    return f"{value:,}"


def pct(part: int, whole: int) -> str:
    """A share to one decimal; a share too small to show as 0.1% but not nil reads `<0.1%`, never `0.0%`."""
    if not whole:
        return "-"
    share = 100 * part / whole
    return "<0.1%" if 0 < share < 0.05 else f"{share:.1f}%"


def when(value: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return value.strftime(fmt) if value is not None else "-"


_WORDS = {
    "srs": "SRS",
    "dwp": "DWP",
    "hmrc": "HMRC",
    "none": "(none)",
    "other": "other (not in the catalogue)",
    "npd_team": "NPD team",
    "home_office": "Home Office",
}


def human(code: str) -> str:
    """A vocabulary code as a reader says it: `home_office` -> `Home office`, `srs` -> `SRS`."""
    if code in _WORDS:
        return _WORDS[code]
    words = code.replace("_", " ")
    return words[:1].upper() + words[1:]


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    numeric: Iterable[int] = (),
    total: Sequence[object] | None = None,
    raw: Iterable[int] = (),
) -> str:
    """A table; cells in `numeric` columns right-aligned, cells in `raw` columns already HTML."""
    nums, raws = set(numeric), set(raw)

    def cell(i: int, value: object, tag: str = "td") -> str:
        cls = ' class="n"' if i in nums else ""
        text = str(value) if i in raws else esc(value)
        return f"<{tag}{cls}>{text}</{tag}>"

    head = "".join(cell(i, h, "th") for i, h in enumerate(headers))
    body = ["<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>" for row in rows]
    if not body:
        body = [f'<tr><td colspan="{len(headers)}">None.</td></tr>']
    if total is not None:
        body.append('<tr class="total">' + "".join(cell(i, v) for i, v in enumerate(total)) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(title: str, body: str, *, extra_css: str = "") -> str:
    """A self-contained page: inline style, no script, nothing fetched when it is opened or printed."""
    return (
        '<!DOCTYPE html>\n<html lang="en-GB"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}{extra_css}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
