"""The dashboard's figures (SPEC 6.3) as report definitions: the top handoff categories and subcategories,
channels and AI agents over a whole range. Each is the sessions-summary's own query shape and figures
(SPEC 4.3) over the same session facts, reduced to its ten largest values, so that a number on the
dashboard is the cell the sessions-summary CSV holds for the same selection. They are not in `REPORTS`:
no one asks for them by name, the dashboard runs them as it runs the sessions-summary
(`service.run_report`), with the sessions-summary's checked parameters.
"""

from __future__ import annotations

from dataclasses import replace

from convoscope.config import Config
from convoscope.reports.base import Column, Params, Report, columns, summary_query
from convoscope.reports.sessions import (
    DIMENSIONS,
    FIGURES,
    SESSION_WHERE,
    SESSIONS_SUMMARY,
    SUMMARY_COLUMNS,
    session_facts,
    session_filters,
)

TOP = 10  # values a top list shows
NONE_LABEL = "(none)"  # how a top list names the sessions without a value
SUBCATEGORY = ("CASE WHEN was_handed_off THEN handoff_category || ' / ' || coalesce(handoff_subcategory, '(none)') "
               "END")


def _top(query: str, columns: tuple[Column, ...], counted: str, *, keep_empty: bool) -> str:
    """The rows of a summary `query` over the whole range (period `all`: one row per value), without its
    period, largest `counted` first, then by value, the first TOP of them."""
    names = ", ".join(f'"{name}"' for name in ["period", *(c.snake for c in columns)])
    value = f'"{columns[0].snake}"'
    keep = "" if keep_empty else f"WHERE {value} IS NOT NULL"
    return f"""
        SELECT * EXCLUDE (period) FROM ({query}) AS summary({names}) {keep}
        ORDER BY "{counted}" DESC, coalesce({value}, '{NONE_LABEL}') LIMIT {TOP}
    """


def _by(by: str, counted: str, *, keep_empty: bool) -> Report:
    """The sessions-summary by dimension `by` over the whole range, its TOP values by `counted`."""
    columns = (DIMENSIONS[by][0], *SUMMARY_COLUMNS[1:])

    def query(report: Report, params: Params, config: Config) -> str:
        whole = replace(params, period="all", by=by)
        return _top(SESSIONS_SUMMARY.query(SESSIONS_SUMMARY, whole, config), columns, counted, keep_empty=keep_empty)

    return Report(name=f"dashboard-top-{by.replace('_', '-')}", columns=columns, where=SESSION_WHERE, query=query,
                  takes_period=True)


# After the figures, the category and subcategory apart (not guarded: the values a drill-down link filters by).
SUBCATEGORY_COLUMNS = (Column("Handoff Subcategory", text=True), *columns("count", "Sessions", "Handed Off"),
                       Column("Category"), Column("Subcategory"))


def _subcategories(report: Report, params: Params, config: Config) -> str:
    """Handed-off sessions by category and subcategory: no sessions-summary dimension, so the summary's
    query shape and figures over the same selection."""
    whole = replace(params, period="all", by=None)
    query = summary_query(whole, session_facts(params), "created_at", session_filters(params),
                          [*(FIGURES[k] for k in ("sessions", "handed_off")),
                           "any_value(CASE WHEN was_handed_off THEN handoff_category END)",
                           "any_value(CASE WHEN was_handed_off THEN handoff_subcategory END)"], SUBCATEGORY)
    return _top(query, SUBCATEGORY_COLUMNS, "handed_off", keep_empty=False)


TOP_HANDOFF_CATEGORIES = _by("handoff_category", "handed_off", keep_empty=False)
TOP_HANDOFF_SUBCATEGORIES = Report(name="dashboard-top-handoff-subcategories", columns=SUBCATEGORY_COLUMNS,
                                   where=SESSION_WHERE, query=_subcategories, takes_period=True)
TOP_CHANNELS = _by("channel", "sessions", keep_empty=True)
TOP_AI_AGENTS = _by("ai_agent", "sessions", keep_empty=True)
