"""Charts for the board pack: matplotlib (Agg-free SVG backend, no pyplot state) drawn to inline SVG text."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

__all__ = ["SEVERITY_COLOURS", "bars", "months_against_cap", "stacked_months"]

SEVERITY_COLOURS = {"critical": "#7f1d1d", "high": "#c2410c", "medium": "#d97706", "low": "#60a5fa"}
_BAR = "#1f4e79"
#: Typed loosely: matplotlib types rc keys as a Literal of every known key.
_RC: Any = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, set in the page's font
    "svg.hashsalt": "gatewatch",  # stable element ids: the same figures give the same file
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _svg(fig: Figure, label: str) -> str:
    FigureCanvasSVG(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG sits inline in HTML
    return text.replace("<svg ", f'<svg role="img" aria-label="{_attr(label)}" ', 1)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _fmt(value: float) -> str:
    return f"{value:,.0f}"


def _short(value: float, _pos: object = None) -> str:
    """Axis ticks: 12M, 350k, 900 (the tables beside each chart give exact numbers)."""
    for size, suffix in ((1e9, "bn"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:,.3g}{suffix}"
    return f"{value:,.0f}"


def bars(label: str, data: Sequence[tuple[str, int]], *, unit: str = "records", limit: int = 12) -> str:
    """Horizontal bars, largest first (the rest summed as `all others` beyond `limit`), values printed."""
    ranked = sorted(data, key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) > limit:
        ranked = [*ranked[: limit - 1], ("all others", sum(v for _, v in ranked[limit - 1 :]))]
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.2, 0.35 * max(len(ranked), 1) + 0.7))
        ax = fig.add_subplot()
        names = [k for k, _ in ranked][::-1]
        values = [v for _, v in ranked][::-1]
        drawn = ax.barh(names or ["(none)"], values or [0], color=_BAR)
        ax.bar_label(drawn, labels=[_fmt(v) for v in values or [0]], padding=3, fontsize=8)
        ax.set_xlabel(unit)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_short))
        ax.margins(x=0.15)
        return _svg(fig, label)


def stacked_months(
    label: str, months: Sequence[str], series: Mapping[str, Sequence[int]], colours: Mapping[str, str]
) -> str:
    """Columns per month, stacked by series (e.g. severity), with each month's total above it."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.2, 3.0))
        ax = fig.add_subplot()
        bottom = [0] * len(months)
        for name, values in series.items():
            ax.bar(months, values, bottom=bottom, label=name, color=colours.get(name, _BAR), width=0.7)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        for x, total in enumerate(bottom):
            if total:
                ax.annotate(
                    _fmt(total),
                    (x, total),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
        ax.set_ylabel("findings")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_short))
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.legend(frameon=False, fontsize=7, ncols=len(series), loc="upper left", bbox_to_anchor=(0, 1.15))
        ax.margins(y=0.15)
        return _svg(fig, label)


def months_against_cap(label: str, months: Sequence[str], values: Sequence[int], cap: int | None) -> str:
    """Columns per month with the cap drawn across; months over the cap in red."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.2, 2.8))
        ax = fig.add_subplot()
        colours = ["#b91c1c" if cap is not None and v > cap else _BAR for v in values]
        drawn = ax.bar(months, values, color=colours, width=0.7)
        ax.bar_label(drawn, labels=[_fmt(v) if v else "" for v in values], padding=2, fontsize=7)
        if cap is not None:
            ax.axhline(cap, color="#b91c1c", linestyle="--", linewidth=1)
            ax.annotate(
                f"monthly cap {_fmt(cap)}",
                (0, cap),
                xytext=(2, 3),
                textcoords="offset points",
                fontsize=7,
                color="#b91c1c",
            )
        ax.set_ylabel("persons requested")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_short))
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.margins(y=0.2)
        return _svg(fig, label)
