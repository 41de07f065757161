"""What-if's figures (issue 27): the headline numbers of a brand and period, each the Total row of the report that
defines it, so that a column of `compare` is what those reports say when their tables are derived with its
definitions: run over the stored tables, the stored definitions' column is today's reports.
"""

from __future__ import annotations

from dataclasses import replace

from convoscope.config import Config
from convoscope.reports import report_rows
from convoscope.reports.automation import AUTOMATION_SUMMARY
from convoscope.reports.base import Params, Report
from convoscope.reports.outcomes import OUTCOMES_SUMMARY
from convoscope.reports.sessions import SESSIONS_SUMMARY
from convoscope.store import Store

# Each figure: its name (the column of its report), and the report whose Total row holds it.
FIGURES: tuple[tuple[str, Report], ...] = (
    ("Sessions", SESSIONS_SUMMARY),
    ("Resolution Rate", SESSIONS_SUMMARY),
    ("Handoff Rate", SESSIONS_SUMMARY),
    ("Recontact Rate", SESSIONS_SUMMARY),
    ("Durable Resolution Rate", OUTCOMES_SUMMARY),
    ("Automation Rate", AUTOMATION_SUMMARY),
)
REPORTS = tuple({report.name: report for _, report in FIGURES}.values())

# The derived tables those reports read: a what-if derivation writes only these.
TABLES = ("sessions", "contacts", "conversations", "conversation_closes", "conversation_reopens")


def kind(figure: str) -> str:
    """What the figure is (`base.KINDS`: a count, a rate), as its column in the report that defines it says."""
    (column,) = [c for name, report in FIGURES if name == figure for c in report.columns if c.display == figure]
    return column.kind


def figures(store: Store, config: Config, params: dict[str, Params]) -> list[str | None]:
    """The FIGURES over the selection of `params` (per report name), as the reports' cells: a count, or a rate
    with four decimals, empty where its denominator is zero. An empty selection counts zero sessions."""
    totals: dict[str, dict[str, str | None]] = {}
    for report in REPORTS:
        whole = replace(params[report.name], period="all", by=None, headers="display")
        header, rows = report_rows(store, config, report, whole)
        totals[report.name] = dict(zip(header, rows[0], strict=True)) if rows else {}
    return [totals[report.name].get(name, "0" if name == "Sessions" else None) for name, report in FIGURES]
