"""The `sources` report (issue 23, SOURCES.md): what became of the records each helpdesk sent, per
period of the records' own time, source, way in and reason — events accepted and duplicate, records
ignored (counted, never kept) and rejected (kept, and listed one by one in data-quality), and texts cut
to SPEC 2.2's 100,000 characters.

A record is placed by its own time (a message's, a status change's), as data-quality places its rows:
a backfill fills the days the webhook missed, not the day it ran. A record whose time could not be read
has none, so it shows only in a report without a date range.
"""

from __future__ import annotations

from convoscope.config import Config
from convoscope.reports.base import Column, Params, Report, columns, in_brands, in_range, period_label, q

COLUMNS = (
    Column("Period", kind="time"), Column("Source"), Column("Via"), Column("Reason", text=True),
    *columns("count", "Accepted", "Duplicate", "Ignored", "Rejected", "Truncated"),
)
SOURCE_WHERE: dict[str, tuple[str, ...]] = {"source": ("chatwoot", "gladly"), "via": ("file", "webhook", "pull")}


def _query(report: Report, params: Params, config: Config) -> str:
    conditions = [in_brands(params), in_range("occurred_at", params)]
    conditions += [f"{'system' if key == 'source' else key} = {q(value)}" for key, value in params.where]
    return f"""
        SELECT period, system, via, reason,
               count(*) FILTER (WHERE outcome = 'accepted'), count(*) FILTER (WHERE outcome = 'duplicate'),
               count(*) FILTER (WHERE outcome = 'ignored'), count(*) FILTER (WHERE outcome = 'rejected'),
               count(*) FILTER (WHERE truncated)
        FROM (SELECT *, {period_label("occurred_at", params, params.period)} AS period FROM source_records
              WHERE {" AND ".join(conditions)})
        GROUP BY period, system, via, reason
        ORDER BY period NULLS FIRST, system, via, reason NULLS FIRST
    """


SOURCES = Report(name="sources", columns=COLUMNS, where=SOURCE_WHERE, query=_query, takes_period=True,
                 default_period="day", in_lakes=False)
