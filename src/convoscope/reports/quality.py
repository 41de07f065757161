"""Data quality (SPEC 4.8): one row per problem in what was sent — rejected events and conflicts that
are still unresolved, duplicates that were dropped, and the anomalies derivation counted.

A problem is placed by its event time; a record whose time could not be read has none, so it shows
only in a report without a date range. A record whose brand could not be read shows only to those who
see every brand. `--where source=NAME` keeps the problems of what came in under that source name (a file's
path as given, an API batch's or an upload's name): the ingest history page links each source to them.
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
WHERE: dict[str, tuple[str, ...]] = {"source": ()}  # the source exactly as stored, without its line


def _source(source: str, line: str) -> str:
    return f"{source} || coalesce(':' || {line}, '')"


def _query(report: Report, params: Params, config: Config) -> str:
    explained = " ".join(f"WHEN {q(kind)} THEN {q(f'{kind}: {text}')}" for kind, text in ANOMALIES.items())
    sources = "".join(f" AND origin = {q(value)}" for key, value in params.where if key == "source")
    return f"""
        SELECT kind, {guard("reason")}, event_id, brand, customer_id, {fmt_timestamp("occurred_at", params)},
               {guard("source")}
        FROM (
            SELECT kind, reason, event_id, brand, customer_id, occurred_at, {_source("source", "line")} AS source,
                   source AS origin
            FROM rejects WHERE NOT resolved
            UNION ALL
            SELECT 'duplicate', 'the same event as one already stored, dropped', event_id, brand, customer_id,
                   occurred_at, {_source("source", "line")}, source
            FROM duplicates
            UNION ALL
            SELECT 'anomaly', CASE a.kind {explained} ELSE a.kind END, a.event_id, a.brand, a.customer_id,
                   a.occurred_at, {_source("e.source", "e.line")}, e.source
            FROM anomalies a JOIN events e ON e.brand = a.brand AND e.event_id = a.event_id
        )
        WHERE {in_brands_or_unknown(params)} AND {in_range("occurred_at", params)}{sources}
        ORDER BY occurred_at NULLS LAST, event_id NULLS LAST, source, kind
    """


DATA_QUALITY = Report(name="data-quality", columns=COLUMNS, where=WHERE, query=_query)
