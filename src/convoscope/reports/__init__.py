"""The reports of SPEC 4, by name, and the one path that checks parameters and renders a report."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from convoscope.config import Config, check_zone
from convoscope.errors import ParameterError, ReportError
from convoscope.events.schema import TIMESTAMP_PATTERN
from convoscope.reports.automation import AUTOMATION_SUMMARY
from convoscope.reports.base import (
    PERIODS,
    Column,
    Params,
    Report,
    copy_csv,
    header_csv,
    period_label,
    period_of_label,
    q,
)
from convoscope.reports.contacts import CONTACT_EXPORT, CONTACT_SUMMARY
from convoscope.reports.conversations import CONVERSATION_EXPORT, CONVERSATION_SUMMARY
from convoscope.reports.funnel import HANDOFF_FUNNEL
from convoscope.reports.gladly import GLADLY_REPORTS
from convoscope.reports.outcomes import GUIDE_EFFECTIVENESS, OUTCOMES_SUMMARY
from convoscope.reports.paging import NUMERIC_KINDS as NUMERIC_KINDS  # web/reports.py reads both from here
from convoscope.reports.paging import Order as Order
from convoscope.reports.paging import count as count_keys
from convoscope.reports.paging import names, page_rows, sort_key
from convoscope.reports.quality import DATA_QUALITY
from convoscope.reports.sessions import SESSIONS_DETAIL, SESSIONS_DETAIL_WITH_MESSAGES, SESSIONS_SUMMARY
from convoscope.reports.sources import SOURCES
from convoscope.reports.stream import CsvStream
from convoscope.reports.themes import HANDOFF_THEME_SESSIONS, HANDOFF_THEMES, HANDOFF_THEMES_WITH_EXAMPLES
from convoscope.store import Store

REPORTS: dict[str, Report] = {r.name: r for r in (
    SESSIONS_DETAIL, SESSIONS_DETAIL_WITH_MESSAGES, SESSIONS_SUMMARY, OUTCOMES_SUMMARY, GUIDE_EFFECTIVENESS,
    HANDOFF_THEMES, HANDOFF_THEMES_WITH_EXAMPLES, HANDOFF_THEME_SESSIONS,
    CONTACT_EXPORT, CONTACT_SUMMARY, HANDOFF_FUNNEL, CONVERSATION_EXPORT, CONVERSATION_SUMMARY, AUTOMATION_SUMMARY,
    DATA_QUALITY, SOURCES,
)}


# Gladly's reports by Gladly's own spelling (docs/gladly.md): runnable by name, not listed with SPEC 4's.
GLADLY_BY_NAME: dict[str, Report] = {r.name: r for r in GLADLY_REPORTS.values()}


def get_report(name: str) -> Report:
    """A report of SPEC 4 by its name, or one of Gladly's by its name in any case (`contactExportReportV3`)."""
    found = REPORTS.get(name) or GLADLY_REPORTS.get(name.lower())  # Gladly's in any case, as its API takes them
    if found is None:
        raise ReportError(f"unknown report {name!r}; available: {', '.join(REPORTS)}, and Gladly's "
                          f"{', '.join(GLADLY_BY_NAME)}")
    return found


# Python's ISO readers also take week dates, basic formats and offsets without a colon; SPEC 4 asks
# for plain dates and RFC 3339 instants, so the text must have this shape first: an instant the shape
# ingestion accepts (its offset, optional there, is required by `parse_as_of`).
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INSTANT = re.compile(TIMESTAMP_PATTERN, re.ASCII)


def parse_date(text: str, param: str) -> date:
    with contextlib.suppress(ValueError):
        if _DATE.fullmatch(text):
            return date.fromisoformat(text)
    raise ParameterError(param, lambda n: f"{n(param)} {text!r} is not a date; use YYYY-MM-DD")


def parse_as_of(text: str) -> datetime:
    """An RFC 3339 instant with an offset (SPEC 4: as_of)."""
    try:
        value = datetime.fromisoformat(text.replace("z", "Z")) if _INSTANT.fullmatch(text) else None
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise ParameterError("as_of", lambda n: f"{n('as_of')} {text!r} is not an RFC 3339 timestamp with offset, "
                                                "such as 2026-06-01T00:00:00Z")
    return value.astimezone(UTC)


def build_params(
    report: Report,
    config: Config,
    store_brands: list[str],
    *,
    date_from: str | None = None,
    date_to: str | None = None,
    tz: str | None = None,
    brands: list[str] | None = None,
    as_of: str | None = None,
    period: str | None = None,
    by: str | None = None,
    where: list[str] | None = None,
    headers: str = "display",
    extra: bool = False,
    anchor: str | None = None,
) -> Params:
    """Check the common parameters of SPEC 4 against `report`; a bad one is a `ParameterError` naming it."""
    name = report.name
    params = Params(headers=headers, extra=extra)
    if date_from:
        params.date_from = parse_date(date_from, "from")
    if date_to:
        params.date_to = parse_date(date_to, "to")
    if params.date_from and params.date_to and params.date_from > params.date_to:
        raise ParameterError("from", lambda n: f"{n('from')} {date_from} is after {n('to')} {date_to}; swap them")
    params.brands = list(dict.fromkeys(brands)) if brands else list(store_brands)  # a brand named twice is one
    params.every_brand = not brands
    params.tz = zone_for(config, params.brands, tz)
    if as_of:
        params.as_of = parse_as_of(as_of)
    if period is not None:
        if not report.takes_period:
            raise ParameterError("period", lambda n: f"report {name} does not take {n('period')}")
        if period not in PERIODS:
            raise ParameterError("period", lambda n: f"{n('period')} {period!r} is not one of {', '.join(PERIODS)}")
    params.period = period or report.default_period
    if by is not None:
        if by not in report.by_columns:
            usable = f"; use one of {', '.join(report.by_columns)}" if report.by_columns else ""
            raise ParameterError("by", lambda n: f"report {name} does not take {n('by')} {by}{usable}")
        params.by = by
    if extra and not report.extra_columns:
        raise ParameterError("extra", lambda n: f"report {name} does not take {n('extra')}")
    if headers not in ("display", "snake"):
        raise ParameterError("headers", lambda n: f"{n('headers')} {headers!r} must be display or snake")
    if anchor is not None:
        if not report.anchors:
            raise ParameterError("anchor", lambda n: f"report {name} does not take {n('anchor')}: a summary places its "
                                                     "rows by its own time; its detail report takes it")
        if anchor not in report.anchors:
            raise ParameterError("anchor", lambda n: f"{n('anchor')} {anchor!r} is not one of "
                                                     f"{', '.join(report.anchors)}")
        params.anchor = anchor
    params.where = [_filter(report, item) for item in where or []]
    return params


def zone_for(config: Config, brands: list[str], tz: str | None = None) -> str:
    """The time zone a report over `brands` is read in (SPEC 4): `tz` when given (a `ParameterError` when it is
    none), else the brand's own when there is one brand, else UTC."""
    if tz:
        return check_zone(tz, param="tz")
    return config.for_brand(brands[0]).timezone if len(brands) == 1 else "UTC"


def _filter(report: Report, item: str) -> tuple[str, str]:
    """One `--where KEY=VALUE` of `report` (SPEC 4)."""
    key, sep, value = item.partition("=")
    if not sep:
        raise ParameterError("where", lambda n: f"{n('where')} {item!r} must be KEY=VALUE")
    if key not in report.where:
        usable = f"; use one of {', '.join(report.where)}" if report.where else ""
        raise ParameterError("where", lambda n: f"report {report.name} cannot be filtered by {key!r}{usable}")
    choices = report.where[key]
    if choices and value not in choices:
        raise ParameterError("where", lambda n: f"{key} {value!r} is not one of {', '.join(choices)}")
    if key == "period" and period_of_label(value) is None:
        raise ParameterError("where", lambda n: f"period {value!r} is not a period's label; use one such as "
                                                "2026-05-21T10:30, 2026-05-21, 2026-W21, 2026-05, 2026-Q2 or 2026")
    return key, value


@contextlib.contextmanager
def cursor_for(store: Store, config: Config, report: Report, params: Params) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor of its own for the report's query (requests share the store's connection), with the tables the
    report computes in Python first (`Report.inputs`) registered on it, once per parameters."""
    cursor = store.con.cursor()
    try:
        if report.inputs is not None:
            key = (report.name, repr(replace(params, memo={})), config.path)
            if key not in params.memo:
                params.memo[key] = report.inputs(cursor, report, params, config)
            for name, table in params.memo[key].items():
                cursor.register(name, table)
        yield cursor
    finally:
        cursor.close()


def report_rows(store: Store, config: Config, report: Report, params: Params, limit: int | None = None,
                offset: int = 0, order: Order | None = None) -> tuple[list[str], list[tuple[str | None, ...]]]:
    """The header and rows of the report exactly as its CSV cells (None for an empty cell): `limit` rows from
    the `offset`th, in the report's order or, with `order`, sorted by a column. A page of a keyed report is read
    in two steps (reports/paging.py)."""
    if limit is not None and report.keyed:
        with cursor_for(store, config, report, params) as cursor:
            return _header(report, params), page_rows(store, cursor, config, report, params, limit=limit,
                                                      offset=offset, order=order)
    query = report.query(report, params, config)
    paging = (f" LIMIT {int(limit)}" if limit is not None else "") + (f" OFFSET {int(offset)}" if offset else "")
    if report.rows_are_few and (limit is not None or order is not None):
        return _header(report, params), _summary_rows(store, config, report, params, query, paging, order)
    if order is None:
        sql = f"SELECT nullif(COLUMNS(*)::VARCHAR, '') FROM ({query})" + paging
    else:
        sql = _ordered(report.output_columns(params), query, order) + paging
    with cursor_for(store, config, report, params) as cursor:
        return _header(report, params), cursor.execute(sql).fetchall()


def _whole(store: Store, config: Config, report: Report, params: Params, query: str) -> pa.Table:
    """A summary's rows as their CSV cells, computed once for the parameters (`Params.memo`): a page counts them,
    shows some and charts them, and each of these is read from the same rows instead of running the report again.
    Only for a report whose rows are few (`Report.rows_are_few`): a row per period and dimension value, guide or
    theme."""
    key = ("whole", query)
    if key not in params.memo:
        with cursor_for(store, config, report, params) as cursor:
            params.memo[key] = cursor.sql(f"SELECT nullif(COLUMNS(*)::VARCHAR, '') FROM ({query})").to_arrow_table()
    table: pa.Table = params.memo[key]
    return table


def _summary_rows(store: Store, config: Config, report: Report, params: Params, query: str, paging: str,
                  order: Order | None) -> list[tuple[str | None, ...]]:
    """A page of a summary's rows, from its rows computed once (`_whole`), in its order or sorted by `order`."""
    whole = _whole(store, config, report, params, query)
    listed = "SELECT * FROM summary_whole"
    sql = (f"{listed}{paging}" if order is None else _ordered(report.output_columns(params), listed, order) + paging)
    cursor = store.con.cursor()
    try:
        cursor.register("summary_whole", whole)
        return cursor.execute(sql).fetchall()
    finally:
        cursor.close()


def _ordered(columns: tuple[Column, ...], query: str, order: Order) -> str:
    """`query`'s rows as CSV cells, sorted by `order`. The columns are renamed by position (a report's own names
    need not be unique), and each row is numbered as the report gives it, so that ties keep that order."""
    renamed = names(columns)
    return f"""
        SELECT {", ".join(f"nullif({name}::VARCHAR, '')" for name in renamed)}
        FROM (SELECT *, row_number() OVER () AS report_order FROM ({query}) AS r({", ".join(renamed)}))
        ORDER BY {sort_key(columns, order)}, report_order"""


def count_rows(store: Store, config: Config, report: Report, params: Params) -> int:
    """The number of rows of the report; of a keyed report, the length of its keys, which its pages read too."""
    with cursor_for(store, config, report, params) as cursor:
        if report.keyed:
            return count_keys(store, cursor, config, report, params)
        query = report.query(report, params, config)
        if report.rows_are_few:  # a summary's page and chart read the same rows (`_whole`)
            return _whole(store, config, report, params, query).num_rows
        return int(cursor.execute(f"SELECT count(*) FROM ({query})").fetchall()[0][0])


def fetch(store: Store, sql: str) -> list[tuple[Any, ...]]:
    """The rows of `sql`, read on a cursor of their own (requests share the store's connection)."""
    cursor = store.con.cursor()
    try:
        return cursor.execute(sql).fetchall()
    finally:
        cursor.close()


def period_labels(store: Store, params: Params, first: date, last: date) -> list[str]:
    """Every label of `params.period` over the local days first…last in the report's zone, in order: the
    labels a summary gives its rows, half hours as the wall clock shows them on a day the clocks change."""
    zone = q(params.tz)
    start = f"timezone({zone}, TIMESTAMP '{first.isoformat()} 00:00:00')::TIMESTAMP"
    stop = f"timezone({zone}, TIMESTAMP '{(last + timedelta(days=1)).isoformat()} 00:00:00')::TIMESTAMP"
    rows = fetch(store, f"""
        SELECT {period_label("t", params, params.period)} AS label FROM range({start}, {stop}, INTERVAL 30 MINUTE) AS g(t)
        GROUP BY label ORDER BY min(t)
    """)
    return [label for (label,) in rows]


def _header(report: Report, params: Params) -> list[str]:
    return [c.snake if params.headers == "snake" else c.display for c in report.output_columns(params)]


def totals(store: Store, config: Config, report: Report, params: Params) -> tuple[str | None, ...] | None:
    """A summary's figures over the whole selection, as one row labelled Total; None for other reports and
    for an empty selection."""
    if report.default_period is None:  # a detail report: its rows are the totals
        return None
    whole = replace(params, period="all", by=None)
    rows = report_rows(store, config, report, whole)[1]
    return rows[0] if rows else None


def render_csv(store: Store, config: Config, report: Report, params: Params, path: Path) -> int:
    """Write the report as CSV (SPEC 4.1) to `path`; returns the number of data rows."""
    with cursor_for(store, config, report, params) as cursor:
        return copy_csv(cursor, report.query(report, params, config), _header(report, params), path)


def stream_csv(store: Store, config: Config, report: Report, params: Params, *,
               on_done: Callable[[], None] | None = None) -> CsvStream:
    """The report's CSV as `render_csv` writes it, handed over while DuckDB writes it (reports/stream.py): the
    header row at once, then the rows; `on_done` runs when the writing is over and `store` is no longer used."""
    header = _header(report, params)
    cursor = store.con.cursor()  # not cursor_for: the header needs none of the tables a report computes first
    try:
        first = header_csv(cursor, header)
    finally:
        cursor.close()

    def write(pipe: Path, hand_over: Callable[[duckdb.DuckDBPyConnection], None]) -> int:
        with cursor_for(store, config, report, params) as cursor:
            hand_over(cursor)
            return copy_csv(cursor, report.query(report, params, config), header, pipe, header_row=False)

    return CsvStream(first, write, on_done=on_done)
