"""Outcomes that hold up (issue 26 points 2 and 5): `outcomes-summary`, what became of the sessions resolved in
each period — confirmed or disputed by the customer, came back, durable, pending — and `guide-effectiveness`, the
sessions' figures per guide they used.

Both count the rows of `session_facts` with outcomes, the very facts sessions-detail `--extra` shows (Durable
Resolution, Resolution Class, and the feedback columns), so every figure is a count of detail rows.
"""

from __future__ import annotations

from convoscope.config import Config
from convoscope.reports.base import Column, Params, Report, columns, guard, rate, summary_query
from convoscope.reports.sessions import (
    DIMENSIONS,
    FIGURES,
    RESOLUTION_CLASSES,
    SESSION_FILTERS,
    session_facts,
    session_filters,
)

OUTCOMES_COLUMNS = (
    Column("Period", kind="time"),
    *columns("count", "Resolved", "Confirmed", "Disputed", "Came Back", "Durable", "Pending"),
    Column("Durable Resolution Rate", kind="rate"), Column("Feedback Given", kind="count"),
    Column("Negative Feedback Rate", kind="rate"),
)
# The facts' columns each figure reads: resolution_class and durable_resolution (resolved sessions only) and
# feedback (any session: 'positive', 'negative' or NULL, the last one given).
DURABLE_RATE = rate("count(*) FILTER (WHERE durable_resolution)", "count(durable_resolution)")
NEGATIVE_RATE = rate("count(*) FILTER (WHERE feedback = 'negative')", "count(feedback)")


def _outcomes(report: Report, params: Params, config: Config) -> str:
    figures = [
        "count(*) FILTER (WHERE was_resolved)",
        *(f"count(*) FILTER (WHERE resolution_class = '{name}')" for name in RESOLUTION_CLASSES),
        DURABLE_RATE, "count(feedback)", NEGATIVE_RATE,
    ]
    return summary_query(params, session_facts(params, config), "created_at", session_filters(params, config), figures,
                         DIMENSIONS[params.by][1] if params.by else None)


OUTCOMES_SUMMARY = Report(
    name="outcomes-summary",
    columns=OUTCOMES_COLUMNS,
    where=SESSION_FILTERS,
    query=_outcomes,
    takes_period=True,
    default_period="day",
    by_columns={key: column for key, (column, _) in DIMENSIONS.items()},
    judged_with=("durable_window",),
)


GUIDE_COLUMNS = (
    Column("Guide", text=True), Column("Sessions", kind="count"),
    *columns("rate", "Resolution Rate", "Durable Resolution Rate", "Handoff Rate"),
    Column("Top Handoff Categories", text=True), *columns("rate", "Negative Feedback Rate", "Recontact Rate"),
)
TOP_CATEGORIES = 3


def _guides(report: Report, params: Params, config: Config) -> str:
    """One row per guide over the sessions created in the range that the filters select; a session counts
    under each guide it used, and one that used none under an empty Guide (as sessions-summary by guide).
    The figures are counted per guide before the top categories join them: a join of every session's row
    cost a fifth of the report at 10M events."""
    figures = [FIGURES["sessions"], FIGURES["resolution_rate"], DURABLE_RATE, FIGURES["handoff_rate"], None,
               NEGATIVE_RATE, FIGURES["recontact_rate"]]
    counted = ", ".join(f"{figure} AS f{n}" for n, figure in enumerate(figures) if figure)
    shown = ", ".join(guard("t.top") if figure is None else f"f.f{n}" for n, figure in enumerate(figures))
    return f"""
        WITH picked AS (
            SELECT *, {DIMENSIONS["guide"][1]} AS guide
            FROM ({session_facts(params, config)}) WHERE {session_filters(params, config)}
        ),
        categories AS (
            SELECT guide, handoff_category, count(*) AS n,
                   row_number() OVER (PARTITION BY guide ORDER BY count(*) DESC, handoff_category) AS place
            FROM picked WHERE was_handed_off AND handoff_category IS NOT NULL GROUP BY guide, handoff_category
        ),
        top AS (
            SELECT guide, string_agg(handoff_category || ' (' || n || ')', ', ' ORDER BY place) AS top
            FROM categories WHERE place <= {TOP_CATEGORIES} GROUP BY guide
        ),
        counted AS (SELECT guide, {counted} FROM picked GROUP BY guide)
        SELECT {guard("f.guide")}, {shown}
        FROM counted f LEFT JOIN top t ON t.guide IS NOT DISTINCT FROM f.guide
        ORDER BY f.guide NULLS FIRST
    """


GUIDE_EFFECTIVENESS = Report(
    name="guide-effectiveness",
    columns=GUIDE_COLUMNS,
    where=SESSION_FILTERS,
    query=_guides,
    judged_with=("durable_window",),
    few_rows=True,
)
