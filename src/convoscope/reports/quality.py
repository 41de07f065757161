"""Data quality (SPEC 4.8): one row per problem in what was sent — rejected events and conflicts that
are still unresolved, duplicates that were dropped, and the anomalies derivation counted.

A problem is placed by its event time; a record whose time could not be read has none, so it shows
only in a report without a date range. A record whose brand could not be read shows only to those who
see every brand.
"""

from __future__ import annotations

from convoscope.config import Config
from convoscope.derive.names import ANOMALIES
from convoscope.reports.base import (
    Column,
    Params,
    Report,
    columns,
    fmt_timestamp,
    guard,
    in_brands_or_unknown,
    in_range,
    q,
)

COLUMNS = (
    Column("Kind"), Column("Reason", text=True), *columns("id", "Event ID", "Brand", "Customer ID"),
    Column("Time", kind="time"), Column("Source", text=True),
)



def _source(source: str, line: str) -> str:
    return f"{source} || coalesce(':' || {line}, '')"


def _query(report: Report, params: Params, config: Config) -> str:
    explained = " ".join(f"WHEN {q(kind)} THEN {q(f'{kind}: {text}')}" for kind, text in ANOMALIES.items())
    return f"""
        SELECT kind, {guard("reason")}, event_id, brand, customer_id, {fmt_timestamp("occurred_at", params)},
               {guard("source")}
        FROM (
            SELECT kind, reason, event_id, brand, customer_id, occurred_at, {_source("source", "line")} AS source
            FROM rejects WHERE NOT resolved
            UNION ALL
            SELECT 'duplicate', 'the same event as one already stored, dropped', event_id, brand, customer_id,
                   occurred_at, {_source("source", "line")}
            FROM duplicates
            UNION ALL
            SELECT 'anomaly', CASE a.kind {explained} ELSE a.kind END, a.event_id, a.brand, a.customer_id,
                   a.occurred_at, {_source("e.source", "e.line")}
            FROM anomalies a JOIN events e ON e.brand = a.brand AND e.event_id = a.event_id
        )
        WHERE {in_brands_or_unknown(params)} AND {in_range("occurred_at", params)}
        ORDER BY occurred_at NULLS LAST, event_id NULLS LAST, source, kind
    """


DATA_QUALITY = Report(name="data-quality", columns=COLUMNS, where={}, query=_query)
