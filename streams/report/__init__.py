"""Governance reports from the decision history: the monthly board pack and the quarterly register of shares.

The names below load on first use, so the command line does not pay for the plotting library when it
only builds its parser.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "ApprovalFinding": "build",
    "MonthReport": "build",
    "RegisterReport": "build",
    "approval_findings": "build",
    "build_month": "build",
    "build_register": "build",
    "CHARTS": "month_html",
    "render_month": "month_html",
    "Period": "periods",
    "month": "periods",
    "quarter": "periods",
    "FileHistory": "reading",
    "History": "reading",
    "Progress": "reading",
    "TopicHistory": "reading",
    "COLUMNS": "register_out",
    "render_register_csv": "register_out",
    "render_register_html": "register_out",
    "export_history": "export",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
