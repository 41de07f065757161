"""What every report shares (SPEC 4): parameters, time anchors and periods, cell formats, CSV.

A report is data: a `Report` names its columns (display header, whether it is free text), what it
filters on and whether it takes a period; its module supplies one SQL query. Rendering — CSV here,
JSON and charts later — goes through `render_rows`, so the numbers cannot differ between outputs.
"""

from __future__ import annotations

import csv
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TextIO

import duckdb
import pyarrow as pa

from convoscope.config import Config
from convoscope.errors import ReportError
from convoscope.reports import zones
from convoscope.store import BRAND_PATTERN
from convoscope.store import sql_string as q

PERIODS = ("half_hour", "day", "week", "month", "quarter", "year")
GUARDED_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# What a column's cells are, which the API's JSON gives as JSON types (issue 28): counts (whole numbers), rates
# (fractions with four decimals), percentages (0–100, two decimals), durations (seconds, whole or averaged) and other
# numbers (averages, medians, scores) as numbers; booleans as booleans; identifiers, times (instants, dates, periods)
# and text as strings, whatever they look like. A page shows each kind in one format (web/formats.py).
KINDS = ("count", "rate", "percent", "duration", "number", "boolean", "id", "time", "text")


@dataclass(frozen=True)
class Column:
    display: str
    text: bool = False  # a free-text column: the spreadsheet guard applies (SPEC 4.1)
    kind: str = "text"  # one of KINDS

    def __post_init__(self) -> None:
        if self.kind not in KINDS or (self.text and self.kind != "text"):
            raise ValueError(f"column {self.display!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}, "
                             "or it is free text and not of kind text")

    @property
    def snake(self) -> str:
        return snake_header(self.display)


def columns(kind: str, *displays: str) -> tuple[Column, ...]:
    """Columns of one kind (not free text), in order."""
    return tuple(Column(display, kind=kind) for display in displays)


@dataclass
class Params:
    """The common parameters of SPEC 4, already checked."""

    date_from: date | None = None
    date_to: date | None = None
    tz: str = "UTC"
    brands: list[str] = field(default_factory=list)
    as_of: datetime = field(default_factory=lambda: datetime.now(UTC))
    period: str | None = None
    by: str | None = None
    where: list[tuple[str, str]] = field(default_factory=list)
    headers: str = "display"
    extra: bool = False
    anchor: str = "created"  # the time a detail report's range and `period` filter read (issue 28: `Report.anchors`)
    every_brand: bool = True  # no brand chosen and none withheld: rows of no known brand are shown too
    channels: list[str] | None = None  # the API's channel list: any of these (SPEC 6.2)
    start_at: datetime | None = None  # the API's startAtTime / endAtTime: the range narrowed to instants
    end_at: datetime | None = None
    inboxes: list[str] | None = None  # Gladly's filters.inboxes: rows of any of these inboxes (empty: all)
    channel_names: list[str] | None = None  # the channels as Gladly's request named them, for Channel Filter
    # A page of a detail report read in two steps (reports/paging.py, decision 160), not a parameter of SPEC 4: its
    # query also gives each row's key as a last column (`keyed`), or gives only the rows of these keys (`keys`).
    keyed: bool = False
    keys: tuple[int, ...] | None = None
    sorted_by: int | None = None  # the output column the keys are listed sorted by (`cell_needed`)
    # What a report computed in Python for these parameters (`Report.inputs`), kept for the page's several queries;
    # shared by copies made with `replace`, and keyed by the parameters it was computed for.
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Report:
    name: str
    columns: tuple[Column, ...]
    where: dict[str, tuple[str, ...]]  # --where keys and the values each allows (() for any)
    query: Callable[[Report, Params, Config], str]
    takes_period: bool = False
    default_period: str | None = None
    by_columns: dict[str, Column] = field(default_factory=dict)  # --by keys and their column, after Period
    extra_columns: tuple[Column, ...] = ()
    personal_data: bool = False
    # A detail report's anchors (issue 28): the times its range may read, `created` first, the default; a summary
    # places its rows by one time of its own and takes none. Drill-down links ask the anchor of the figure's summary.
    anchors: tuple[str, ...] = ()
    in_lakes: bool = True  # a lake (spark-derive's) holds what it reads; the sources report's records are not
    # Brand settings judged when the report runs, not when the tables were derived (`durable_window`): named in
    # its definitions beside the derivation settings; `extra_judged_with` only with --extra.
    judged_with: tuple[str, ...] = ()
    extra_judged_with: tuple[str, ...] = ()
    # Tables computed in Python before the query runs (the themes of issue 27, grouped by scikit-learn), by the name
    # the query reads them under; given the cursor the query will run on.
    inputs: Callable[[duckdb.DuckDBPyConnection, Report, Params, Config], dict[str, pa.Table]] | None = None
    # A detail report whose rows each have a unique key (a BIGINT) that its query gives with `Params.keyed` and
    # selects by with `Params.keys`: its pages are read in two steps (reports/paging.py, decision 160).
    keyed: bool = False
    # A report of a row per guide or theme: few rows, which a page reads computed once (decision 173), as a summary's.
    few_rows: bool = False

    @property
    def rows_are_few(self) -> bool:
        """A summary (a row per period and dimension value) or a report of `few_rows`."""
        return self.default_period is not None or self.few_rows

    def judges_with(self, params: Params) -> tuple[str, ...]:
        return self.judged_with + (self.extra_judged_with if params.extra else ())

    def output_columns(self, params: Params) -> tuple[Column, ...]:
        lead, rest = self.columns[:1], self.columns[1:]
        dimension = (self.by_columns[params.by],) if params.by else ()
        return lead + dimension + rest + (self.extra_columns if params.extra else ())


def snake_header(display: str) -> str:
    """SPEC 4.1: lower-case, % → pct, runs of other characters → _, no leading/trailing _."""
    text = display.lower().replace("%", "pct")
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


# --- SQL fragments -----------------------------------------------------------------------------------

def local(ts: str, params: Params) -> str:
    """The wall-clock time of UTC timestamp `ts` in the report's zone: ICU's, by offsets over the report's window
    (reports/zones.py)."""
    return zones.wall_clock(ts, params.tz, _window(params))


def _window(params: Params) -> tuple[datetime, datetime]:
    """The instants a report's times mostly fall in: its range, or the year before its as-of time."""
    first = [datetime.combine(d, time()) for d in (params.date_from, params.date_to) if d]
    first += [naive_utc(i) for i in (params.start_at, params.end_at) if i]
    if not first:
        first = [naive_utc(params.as_of) - timedelta(days=366), naive_utc(params.as_of)]
    return zones.window(min(first), max(first))


def naive_utc(value: datetime) -> datetime:
    """An aware instant as the naive UTC timestamp the store keeps."""
    return value.astimezone(UTC).replace(tzinfo=None)


def fmt_timestamp(ts: str, params: Params) -> str:
    """`YYYY-MM-DDTHH:MM:SS±HH:MM` in the report's zone, seconds truncated (SPEC 4.1)."""
    loc = local(ts, params)
    minutes = f"((epoch({loc}) - epoch({ts}))::BIGINT // 60)"
    return (f"strftime({loc}, '%Y-%m-%dT%H:%M:%S') || CASE WHEN {minutes} < 0 THEN '-' ELSE '+' END "
            f"|| lpad((abs({minutes}) // 60)::VARCHAR, 2, '0') || ':' || lpad((abs({minutes}) % 60)::VARCHAR, 2, '0')")


def period_label(ts: str, params: Params, period: str | None) -> str:
    """The label of the period holding `ts` (SPEC 4.1); the local day without a period."""
    return label_of(local(ts, params), period)


def period_start(ts: str, params: Params, period: str | None) -> str:
    """The wall-clock instant the period holding `ts` starts at, in the report's zone: what a summary groups and
    sorts by, an 8-byte value where a label is a string made per row. `label_of` the start is `period_label` of
    `ts` (every instant of a period has its start's label), and starts sort as their labels do."""
    loc = local(ts, params)
    match period:
        case "all":
            return "NULL::TIMESTAMP"
        case None | "day" | "week" | "month" | "quarter" | "year":  # ISO weeks start on Monday, as date_trunc's
            return f"date_trunc('{period or 'day'}', {loc})::TIMESTAMP"
        case "half_hour":
            return f"time_bucket(INTERVAL 30 MINUTE, {loc})"
    raise ReportError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")


def label_of(loc: str, period: str | None) -> str:
    """The label (SPEC 4.1) of the period holding `loc`, a wall-clock timestamp in the report's zone."""
    match period:
        case "all":  # one row over the whole selection: the totals of a summary
            return "'Total'"
        case None | "day":
            return f"strftime({loc}, '%Y-%m-%d')"
        case "half_hour":
            return f"strftime(time_bucket(INTERVAL 30 MINUTE, {loc}), '%Y-%m-%dT%H:%M')"
        case "week":
            return f"lpad(isoyear({loc})::VARCHAR, 4, '0') || '-W' || lpad(week({loc})::VARCHAR, 2, '0')"
        case "month":
            return f"strftime({loc}, '%Y-%m')"
        case "quarter":
            return f"strftime({loc}, '%Y-Q') || quarter({loc})::VARCHAR"
        case "year":
            return f"strftime({loc}, '%Y')"  # four digits, as the other labels: years 1 to 999 sort first
    raise ReportError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")


# The shape of each period's labels (SPEC 4.1), which tells a label's period: `--where period=2026-W21` needs no
# `--period`.
LABEL_SHAPES = {
    "half_hour": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[03]0"),
    "day": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
    "week": re.compile(r"[0-9]{4}-W[0-9]{2}"),
    "month": re.compile(r"[0-9]{4}-[0-9]{2}"),
    "quarter": re.compile(r"[0-9]{4}-Q[1-4]"),
    "year": re.compile(r"[0-9]{4}"),
}


def period_of_label(label: str) -> str | None:
    """The period whose labels look like `label`, None when none does."""
    return next((period for period, shape in LABEL_SHAPES.items() if shape.fullmatch(label)), None)


def in_period(ts: str, params: Params, label: str) -> str:
    """`--where period=LABEL` (issue 28): `ts` falls in the period of that label, in the report's zone; the exact
    rows a summary's row of that label counts, a half hour included (clocks going back: both half hours of one
    wall-clock label, as the summary groups them)."""
    period = period_of_label(label)
    if period is None:
        raise ReportError(f"period label {label!r} has no period's shape")
    return f"{period_label(ts, params, period)} = {q(label)}"


def truth(column: str, value: str) -> str:
    """A boolean filter's condition (issue 28): `true`, `false`, `unknown` (an empty cell) or `known` (either)."""
    return {"true": f"{column} IS TRUE", "false": f"{column} IS FALSE", "unknown": f"{column} IS NULL",
            "known": f"{column} IS NOT NULL"}[value]


TRUTH = ("true", "false", "known", "unknown")  # the values a boolean filter takes


def in_range(ts: str, params: Params) -> str:
    """The anchor falls on a local date within [from, to] (SPEC 4: `to` covers its whole day)."""
    conditions = []
    loc = local(ts, params)
    if params.date_from or params.date_to:
        # A local date is within a day of its UTC instant: first the instants of the window around the range, which
        # DuckDB compares cheaply and prunes whole row groups by, then the exact local dates.
        start, stop = _window(params)
        conditions += [f"{ts} >= {zones.literal(start)}"] if params.date_from else []
        conditions += [f"{ts} < {zones.literal(stop)}"] if params.date_to else []
    if params.date_from:
        conditions.append(f"{loc}::DATE >= DATE '{params.date_from.isoformat()}'")
    if params.date_to:
        conditions.append(f"{loc}::DATE <= DATE '{params.date_to.isoformat()}'")
    if params.start_at:
        conditions.append(f"{ts} >= {instant(params.start_at)}")
    if params.end_at:
        conditions.append(f"{ts} <= {instant(params.end_at)}")
    return " AND ".join(conditions) or "true"


def channel_in(params: Params, column: str, listed: bool = False) -> str:
    """The API's channel list: the value of `column` (a list of channels when `listed`) is one of them."""
    if params.channels is None:
        return "true"
    values = "[" + ", ".join(q(c.lower()) for c in params.channels) + "]::VARCHAR[]"
    return f"list_has_any({column}, {values})" if listed else f"coalesce(list_contains({values}, {column}), false)"


def inbox_in(params: Params, column: str) -> str:
    """Gladly's `filters.inboxes`: the value of `column` is one of the listed inboxes, exactly as ingested; an
    empty list filters nothing, as Gladly's does."""
    if not params.inboxes:
        return "true"
    return f"coalesce({column} IN ({', '.join(q(i) for i in params.inboxes)}), false)"


def inbox_is(column: str, value: str) -> str:
    """`--where inbox=VALUE` on a column of inboxes: the value exactly as ingested (an id, a name), and an
    empty value the rows without one (decision 22)."""
    return f"{column} = {q(value)}" if value else f"{column} IS NULL"


def summary_query(params: Params, facts: str, anchor: str, keep: str, figures: list[str],
                  dimension: str | None = None) -> str:
    """A summary (SPEC 4): the aggregate `figures` over the rows of `facts` that `keep` selects, per
    period of `anchor` in the report's zone and, with `dimension`, per value of it."""
    by = ", dimension" if dimension else ""
    # Grouped by the period's start and labelled once per row of the summary, not per row of the facts: formatting
    # a label for each of 1.5M sessions and grouping by it cost 170 of a 30-day summary's 250 ms at 10M events.
    return f"""
        SELECT {label_of("period_start", params.period)} AS period,
               {guard("dimension") + ", " if dimension else ""}{", ".join(figures)}
        FROM (SELECT *, {period_start(anchor, params, params.period)} AS period_start
                     {f", {dimension} AS dimension" if dimension else ""}
              FROM ({facts}) WHERE {keep})
        GROUP BY period_start{by}
        ORDER BY period_start{by} {"NULLS FIRST" if dimension else ""}
    """


def key_cell(params: Params, column: str) -> list[str]:
    """The row's key as the last cell, when the page asks for it (`Params.keyed`)."""
    return [column] if params.keyed else []


def cell_needed(params: Params, column: int) -> bool:
    """Whether the query must compute the cell of output column `column`: always, but while a page lists its keys
    (`Params.keyed` without `keys`) only that of the column they are sorted by. For a cell that costs a join of its
    own (a message history): DuckDB leaves out unused cells itself, not joins."""
    return not params.keyed or params.keys is not None or params.sorted_by == column


def in_keys(params: Params, column: str) -> str:
    """The row is one of the page's (`Params.keys`); every row when there are none."""
    if params.keys is None:
        return "true"
    return f"{column} IN ({', '.join(str(int(k)) for k in params.keys)})" if params.keys else "false"


def in_brands(params: Params, column: str = "brand") -> str:
    return f"{column} IN ({', '.join(q(b) for b in params.brands)})" if params.brands else "false"


def in_brands_or_unknown(params: Params, column: str = "brand") -> str:
    """Like `in_brands`, and rows of no brand (none given, or a name that is none: a reject's) when every
    brand is visible."""
    if not params.every_brand:
        return in_brands(params, column)
    return f"({in_brands(params, column)} OR {column} IS NULL OR NOT regexp_full_match({column}, '{BRAND_PATTERN}'))"


def instant(value: datetime) -> str:
    """A UTC timestamp literal of an aware datetime."""
    return zones.literal(naive_utc(value))


def as_of(params: Params) -> str:
    return instant(params.as_of)


def boolean(expr: str) -> str:
    return f"CASE WHEN {expr} THEN 'true' WHEN NOT ({expr}) THEN 'false' END"


def seconds_between(start: str, end: str) -> str:
    """Whole seconds from `start` to `end`, truncated (SPEC 4.1 durations)."""
    return f"((epoch_us({end}) - epoch_us({start})) // 1000000)"


def decimal(numerator: str, denominator: str, places: int, scale: int = 1) -> str:
    """numerator × scale ÷ denominator with `places` decimals, rounded half away from zero, computed
    exactly in integers (SPEC 4.1 rates, % and averages); an empty cell for a zero denominator.
    Both operands are non-negative counts or sums of whole seconds."""
    unit = 10**places
    scaled = f"(2 * ({numerator})::HUGEINT * {scale * unit} + ({denominator})) // (2 * ({denominator})::HUGEINT)"
    return (f"CASE WHEN coalesce({denominator}, 0) = 0 THEN NULL ELSE "
            f"({scaled} // {unit})::VARCHAR || '.' || lpad(({scaled} % {unit})::VARCHAR, {places}, '0') END")


def rate(numerator: str, denominator: str) -> str:
    return decimal(numerator, denominator, 4)


def percent(numerator: str, denominator: str) -> str:
    return decimal(numerator, denominator, 2, scale=100)


def average(values: str) -> str:
    """The mean of whole numbers, 2 decimals."""
    return decimal(f"sum({values})", f"count({values})", 2)


def median(values: str) -> str:
    """The median of whole numbers, 2 decimals: an even count gives the mean of the middle two."""
    doubled = f"round(2 * quantile_cont({values}, 0.5))::HUGEINT"  # exact: the sum of the middle two
    return decimal(doubled, f"(CASE WHEN count({values}) > 0 THEN 2 ELSE 0 END)", 2)


def guard(expr: str) -> str:
    """SPEC 4.1 spreadsheet safety for a free-text cell."""
    prefixes = ", ".join(q(p) if p not in ("\t", "\r") else ("chr(9)" if p == "\t" else "chr(13)") for p in GUARDED_PREFIXES)
    return f"CASE WHEN left({expr}, 1) IN ({prefixes}) THEN '''' || {expr} ELSE {expr} END"


def public_url(config: Config, params: Params) -> str:
    cases = [f"WHEN {q(b)} THEN {q(config.for_brand(b).public_url)}" for b in params.brands
             if config.for_brand(b).public_url != config.defaults.public_url]
    default = q(config.defaults.public_url)
    return f"CASE brand {' '.join(cases)} ELSE {default} END" if cases else default


def brand_window(config: Config, params: Params, setting: str, column: str = "brand") -> str:
    """A duration setting of the brand named in `column` (`durable_window`, `recontact_window`) as an
    INTERVAL, for the brands of the report (the others are filtered out by `in_brands`)."""
    def micros(value: timedelta) -> int:
        return value // timedelta(microseconds=1)

    default = micros(getattr(config.defaults, setting))
    cases = [f"WHEN {q(b)} THEN {micros(getattr(config.for_brand(b), setting))}" for b in params.brands
             if micros(getattr(config.for_brand(b), setting)) != default]
    value = f"CASE {column} {' '.join(cases)} ELSE {default} END" if cases else str(default)
    return f"to_microseconds(({value})::BIGINT)"


# --- rendering -----------------------------------------------------------------------------------------

def write_rows(header: list[str], rows: Sequence[Sequence[str | None]], target: Path | TextIO) -> None:
    """A few rows computed in Python (`compare`'s table) as SPEC 4.1's CSV: the header row, RFC 4180 with quotes only
    where needed, CRLF, an empty cell for None; to a file (whole or not at all) or an open text stream."""
    if not isinstance(target, Path):
        writer = csv.writer(target, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows([["" if cell is None else cell for cell in row] for row in rows])
        target.flush()
        return
    partial = target.with_name(target.name + ".part")
    with partial.open("w", encoding="utf-8", newline="") as handle:
        write_rows(header, rows, handle)
    partial.replace(target)


def copy_csv(con: duckdb.DuckDBPyConnection, sql: str, header: list[str], path: Path, *,
             header_row: bool = True) -> int:
    """Write the rows of `sql` to `path` as CSV (SPEC 4.1): UTF-8, the header row, RFC 4180 with quotes
    only where needed, CRLF, and an empty cell for NULL (empty strings too, so nothing is quoted
    for being empty). DuckDB writes it, in the query's order; with no comment character, since it
    would otherwise quote every value holding a `#` ("Order #1234"). Run on `con`, a cursor of the report's own
    (`reports.cursor_for`). Without `header_row`, the rows alone: after `header_csv`'s bytes, the same file.
    Returns the number of data rows."""
    names = ", ".join('"' + name.replace('"', '""') + '"' for name in header)
    written = con.execute(f"""
        COPY (SELECT nullif(COLUMNS(*)::VARCHAR, '') FROM ({sql}) AS report({names}))
        TO {q(str(path))} (FORMAT csv, HEADER {str(header_row).lower()}, NEW_LINE '\r\n', COMMENT '')
    """).fetchall()
    return int(written[0][0])


def header_csv(con: duckdb.DuckDBPyConnection, header: list[str]) -> bytes:
    """The header row `copy_csv` writes for `header`, written by the same COPY over no rows, so that its quoting is
    DuckDB's."""
    with tempfile.TemporaryDirectory(prefix="convoscope-header-") as folder:
        path = Path(folder) / "header.csv"
        copy_csv(con, f"SELECT {', '.join(['NULL'] * len(header))} LIMIT 0", header, path)
        return path.read_bytes()
