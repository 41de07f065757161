"""The handoff funnel (issue 26 point 4): `handoff-funnel`, per period of session creation and handoff category,
what became of the AI sessions handed to the team — their contacts, the first team replies and how long they
took, the contacts resolved first time, and those whose customer still came back.

Each step counts among the one before it, from the rows of sessions-detail (the handed-off sessions) and of
contact-export `--extra` (their contacts: First Response Seconds, Resolved First Time); Came Back is judged as
`contacts.contact_facts` says, with the brand's `durable_window`.
"""

from __future__ import annotations

from dataclasses import replace

from convoscope.config import Config
from convoscope.reports.base import Column, Params, Report, columns, median, summary_query
from convoscope.reports.contacts import contact_facts
from convoscope.reports.sessions import SESSION_FILTERS, judged, session_facts, session_filters

COLUMNS = (
    Column("Period", kind="time"), Column("Handoff Category", text=True),
    *columns("count", "Handed Off", "Contacts", "First Responses"),
    Column("Median First Response Seconds", kind="duration"),
    *columns("count", "Resolved First Time", "Came Back"),
)


def _funnel(report: Report, params: Params, config: Config) -> str:
    """The sessions the filters select that were handed off, each with the contact linked to it (by its handoff or
    the takeover), if any. The filters are the sessions': the contacts are those of the sessions selected."""
    sessions = (f"SELECT * FROM ({session_facts(params, config if judged(params) else None)}) "
                f"WHERE {session_filters(params, config)} AND was_handed_off")
    contacts = contact_facts(replace(params, where=[], channels=None, inboxes=None), config)
    steps = f"""
        SELECT s.created_at, s.handoff_category, c.contact_key, c.first_response_seconds,
               c.first_response_seconds IS NOT NULL AND coalesce(c.resolved_first_time, false) AS first_time,
               c.came_back
        FROM ({sessions}) s
        LEFT JOIN ({contacts}) c ON c.session_key = s.session_key AND c.brand = s.brand AND c.customer_id = s.customer_id
    """
    figures = [
        "count(*)", "count(contact_key)", "count(first_response_seconds)", median("first_response_seconds"),
        "count(*) FILTER (WHERE first_time)", "count(*) FILTER (WHERE first_time AND came_back)",
    ]
    # The totals (period "all") are one row over every category.
    category = "NULL::VARCHAR" if params.period == "all" else "handoff_category"
    return summary_query(params, steps, "created_at", "true", figures, category)


HANDOFF_FUNNEL = Report(
    name="handoff-funnel",
    columns=COLUMNS,
    where=SESSION_FILTERS,
    query=_funnel,
    takes_period=True,
    default_period="day",
    judged_with=("durable_window",),
)
