"""Automation over all demand (issue 26 point 3): `automation-summary`, one row per period of conversation creation
over the conversations closed at the as-of time — how many the AI took part in, and how many it resolved alone
with nothing coming back.

It counts the rows of `conversation_facts` with outcomes, whose Automated Resolution conversation-export `--extra`
shows: a conversation whose resolved sessions are not all judged yet (Durable Resolution unknown) is Pending, and
left out of both rates until it is known.
"""

from __future__ import annotations

from convoscope.config import Config
from convoscope.reports.base import Column, Params, Report, columns, in_range, rate, summary_query
from convoscope.reports.conversations import CONVERSATION_FILTERS, conversation_facts, conversation_filters

COLUMNS = (
    Column("Period", kind="time"),
    *columns("count", "Conversations", "With AI", "Team Only", "Handed Off", "AI Only Resolved", "Pending"),
    *columns("rate", "Automation Rate", "AI Coverage"),
)
DIMENSIONS = {  # --by: the dimension column and each conversation's value of it (decision 116)
    "channel": (Column("Channel", text=True), "first_channel"),
    "ai_agent": (Column("AI Agent", text=True), "first_ai_agent"),
    "brand": (Column("Brand", kind="id"), "brand"),
}


def _summary(report: Report, params: Params, config: Config) -> str:
    known = "count(automated_resolution)"  # closed conversations whose Automated Resolution is known
    figures = [
        "count(*)", "count(*) FILTER (WHERE session_count > 0)", "count(*) FILTER (WHERE handled_by = 'team_only')",
        "count(*) FILTER (WHERE handled_by = 'ai_then_team')", "count(*) FILTER (WHERE automated_resolution)",
        "count(*) FILTER (WHERE automated_resolution IS NULL)",
        rate("count(*) FILTER (WHERE automated_resolution)", known),
        rate("count(*) FILTER (WHERE session_count > 0 AND automated_resolution IS NOT NULL)", known),
    ]
    facts = conversation_facts(params, in_range("v.created_at", params), config=config)
    return summary_query(params, facts, "created_at", f"is_closed AND {conversation_filters(params)}", figures,
                         DIMENSIONS[params.by][1] if params.by else None)


AUTOMATION_SUMMARY = Report(
    name="automation-summary",
    columns=COLUMNS,
    where=CONVERSATION_FILTERS,
    query=_summary,
    takes_period=True,
    default_period="day",
    by_columns={key: column for key, (column, _) in DIMENSIONS.items()},
    judged_with=("durable_window",),
)
