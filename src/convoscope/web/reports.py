"""Reports over HTTP (SPEC 4, 6.2): the one data path every report of the server takes, its three renderers
(CSV, JSON, an HTML table), and the two API endpoints.

Every report the server runs — either API endpoint, a report page's Run, the dashboard — is prepared and
run by `service.prepare_report` / `service.run_report`, as the command line's are: the parameters checked
and the brands scoped to the caller there, the derived tables brought up to date under the server's write
lock, and the audit row of a report with messages written there (SPEC 6.5). As Datasette serves one view
as HTML, JSON and CSV, only the renderers differ, so the numbers cannot. Beside each report, never inside
its CSV, go the definitions that produced it (`service.describe_report`): the `X-Convoscope-Definitions`
header and the JSON's `definitions` field here, a line under the table on the pages.

`GET /api/v1/reports/{name}` takes the common parameters of SPEC 4; `POST /api/v1/reports`, the request shape
of Gladly's reporting API, is `web/gladly.py`'s, which runs its reports through this module's data path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request
from fastapi import Path as PathParameter
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from convoscope import accounts, reports, service
from convoscope.config import Config
from convoscope.errors import ParameterError
from convoscope.reports.base import Column, Params, Report
from convoscope.reports.meanings import meaning
from convoscope.reports.stream import CsvStream
from convoscope.store import Store
from convoscope.web import drill, formats
from convoscope.web.auth import is_operator, operators_parameters, require
from convoscope.web.errors import ERROR_RESPONSES, Errors
from convoscope.web.server import Caller, Server, problem, server_of

router = APIRouter(prefix="/api/v1")

DEFINITIONS_HEADER = "X-Convoscope-Definitions"


# --- the one data path ---------------------------------------------------------------------------------------

@dataclass
class Prepared:
    """A report checked for its caller: the definition, its parameters, who asks, and the configuration the
    whole request uses (read once: the file may change while it runs)."""

    report: Report
    params: Params
    asker: service.Asker
    config: Config

    @property
    def definitions(self) -> str:
        return service.describe_report(self.config, self.report, self.params)


def prepare(server: Server, store: Store, caller: Caller, name: str, via: str, *, brands: list[str],
            config: Config | None = None, **options: Any) -> Prepared:
    """Report `name` with the common parameters of SPEC 4 (`service.prepare_report`'s `options`), as `caller`
    may run it; a bad parameter raises `ParameterError`, a refusal `Forbidden`. `config`: the one a request
    already read for another report (a page of several), else the server's as its file says now."""
    user = caller.user
    # The command line asking through its running server gets what it would get alone: an empty report for a
    # brand the store does not hold, which it warns of itself (decision 167).
    asker = service.Asker(user.name, via, brands=user.brands, messages=user.can(accounts.REPORTS_WITH_MESSAGES),
                          lenient_brands=is_operator(user))
    config = config if config is not None else server.config
    report, params = service.prepare_report(store, config, name, asker, brands=brands, **options)
    return Prepared(report, params, asker, config)


def run(server: Server, store: Store, prepared: Prepared, *, given: dict[str, Any], to: Path | None = None,
        limit: int | None = None, offset: int = 0, order: reports.Order | None = None,
        action: str = "download") -> service.ReportRun:
    """`service.run_report` as the server runs it (derived tables brought up to date its way, the audit row under
    its audit lock); `given` is what the audit row records."""
    return service.run_report(store, prepared.config, prepared.report, prepared.params, prepared.asker, given=given,
                              to=to, limit=limit, offset=offset, order=order, action=action,
                              writing=server.gate.recorded(store), catch_up=server.ensure_derived)


def definitions_header(prepared: Prepared) -> dict[str, str]:
    return described(prepared.definitions)


def described(definitions: str) -> dict[str, str]:
    """Definitions as the header's value: printable ASCII, anything else (a configuration path's letters, a line
    break) percent-encoded as UTF-8."""
    return {DEFINITIONS_HEADER: quote(definitions, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")}


# --- the renderers -------------------------------------------------------------------------------------------

def csv_answer(server: Server, store: Store, prepared: Prepared, given: dict[str, Any], *,
               filename: str | None = None) -> Response:
    """The report's CSV as an attachment (named `filename`, else after the report), the very bytes the command
    line writes, streamed as DuckDB writes them (decision 169): what can be refused — the parameters, the
    permission, bringing the derived tables up to date, the audit row — is settled before the answer starts, so
    it gets the one-line error; a failure after the first byte ends the answer without its last chunk, which
    every HTTP client reports as an incomplete download. `store` is the request's: the stream holds the store
    open on its own (`server.gate`) until its last byte."""
    hold = ExitStack()
    streamed = hold.enter_context(server.gate.open())
    try:
        stream = service.stream_report(streamed, prepared.config, prepared.report, prepared.params, prepared.asker,
                                       given=given, writing=server.gate.recorded(streamed), catch_up=server.ensure_derived,
                                       on_done=hold.close)
    except BaseException:
        hold.close()
        raise
    return CsvResponse(stream, headers=attachment(filename or f"{prepared.report.name}.csv")
                       | definitions_header(prepared))


class CsvResponse(StreamingResponse):
    """A report's CSV stream as a chunked answer; however the answer ends (the last byte sent, the client gone), the
    stream is closed, so the query stops and the store is let go."""

    def __init__(self, stream: CsvStream, *, headers: dict[str, str]) -> None:
        super().__init__(iter(stream), media_type="text/csv; charset=utf-8", headers=headers)
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.stream.close()


def attachment(filename: str) -> dict[str, str]:
    """`Content-Disposition` for a download, the name quoted as is (RFC 6266). The names given here are made of
    report and brand names, dates and times (letters, digits, `-`, `_`, `+`, `.`), which need no `filename*`:
    Starlette would use one for the `+` of several brands, and some clients (`curl -J`) do not read it. Any
    other name gets only `filename*`, percent-encoded."""
    if re.fullmatch(r"[A-Za-z0-9._+-]+", filename):
        return {"Content-Disposition": f'attachment; filename="{filename}"'}
    return {"Content-Disposition": f"attachment; filename*=utf-8''{quote(filename, safe='')}"}


MAX_BRAND_PART = 100  # characters: a file name stays well under the 255 bytes file systems allow


def download_name(report: str, brands: Sequence[str], date_from: date | str | None, date_to: date | str | None) -> str:
    """A download's file name (issue 28): `<report>_<brand>_<from>_<to>.csv`. The brand part is `all` when no brand
    was asked for (every brand the caller may see), else the brands asked for joined by `+` (`<N>-brands` past
    MAX_BRAND_PART characters); `from` and `to` are the dates given, `start` and `end` when not given. Brand and
    report names hold letters, digits, `-` and `_`, and dates `YYYY-MM-DD`: nothing a file system refuses."""
    named = list(dict.fromkeys(brands))
    brand = "+".join(named) or "all"
    if len(brand) > MAX_BRAND_PART:
        brand = f"{len(named)}-brands"
    first = date_from.isoformat() if isinstance(date_from, date) else date_from or "start"
    last = date_to.isoformat() if isinstance(date_to, date) else date_to or "end"
    return f"{report}_{brand}_{first}_{last}.csv"


JsonValue = str | int | float | bool | None


def json_value(kind: str, cell: str | None) -> JsonValue:
    """A report's CSV cell as JSON gives it, by its column's kind (`reports.base.KINDS`, issue 28): a count a whole
    number, a rate or a percentage a number, another number (a duration's seconds too) whole or not as written, a
    boolean `true` or `false`, anything else (an identifier, a time, a text) the very string; None for an empty cell.
    A cell that is not of its kind is a definition's mistake, and raises ValueError."""
    if cell is None:
        return None
    match kind:
        case "count":
            return int(cell)
        case "rate" | "percent":
            return float(cell)
        case "number" | "duration":
            return int(cell) if cell.lstrip("-").isdigit() else float(cell)
        case "boolean":
            if cell not in ("true", "false"):
                raise ValueError(f"{cell!r} is not a boolean cell")
            return cell == "true"
    return cell


def json_rows(kinds: Sequence[str], header: Sequence[str],
              rows: Sequence[Sequence[str | None]]) -> list[dict[str, JsonValue]]:
    """Rows of CSV cells as JSON objects, each header mapped to its cell's value (`json_value`) by `kinds`, one per
    column: the one place the API's JSON answers are typed."""
    return [{name: json_value(kind, cell) for name, kind, cell in zip(header, kinds, row, strict=True)} for row in rows]


def json_answer(server: Server, store: Store, prepared: Prepared, given: dict[str, Any]) -> JSONResponse:
    """The report's rows as objects of the CSV's cells, each typed by its column's kind (`json_value`)."""
    found = run(server, store, prepared, given=given)
    kinds = [column.kind for column in prepared.report.output_columns(prepared.params)]
    return JSONResponse({"report": prepared.report.name, "columns": found.header,
                         "rows": json_rows(kinds, found.header, found.rows),
                         "definitions": prepared.definitions}, headers=definitions_header(prepared))


SHOWN_ROWS = 100  # a page's rows unless the page asks for another of PAGE_SIZES
PAGE_SIZES = (50, 100, 500)
LONG_CELL = 160


@dataclass(frozen=True)
class View:
    """Which rows of a report a page's table shows (issue 28): page `page` (from 1) of `size` rows, in the report's
    order or sorted by the column whose snake header is `sort`. The CSV is never paged nor sorted."""

    page: int = 1
    size: int = SHOWN_ROWS
    sort: str | None = None
    descending: bool = False

    @classmethod
    def of(cls, page: str | None, size: str | None, sort: str | None, desc: str | None) -> View:
        """The view a page's query asks for; a value that is none a `ParameterError` saying what to give."""
        if desc not in (None, "", "0", "1"):
            raise ParameterError("desc", lambda n: f"{n('desc')} {desc!r} is not 1 (descending) or 0 (ascending)")
        view = cls(sort=sort or None, descending=desc == "1")
        if page:
            if not page.isdigit() or int(page) < 1:
                raise ParameterError("page", lambda n: f"{n('page')} {page!r} is not a page number; use 1 or more")
            view = replace(view, page=int(page))
        if size:
            if not size.isdigit() or int(size) not in PAGE_SIZES:
                raise ParameterError("size", lambda n: f"{n('size')} {size!r} is not a page size; use one of "
                                                       f"{', '.join(map(str, PAGE_SIZES))}")
            view = replace(view, size=int(size))
        return view

    def order(self, columns: Sequence[Column]) -> reports.Order | None:
        """The sort as the report run takes it; a column the report does not have a `ParameterError`."""
        if self.sort is None:
            return None
        snakes = [column.snake for column in columns]
        if self.sort not in snakes:
            sort = self.sort
            raise ParameterError("sort", lambda n: f"{n('sort')} {sort!r} is not a column of this table; use one of "
                                                   f"{', '.join(snakes)}, or click a column's header")
        return reports.Order(snakes.index(self.sort), self.descending)


@dataclass(frozen=True)
class Cell:
    """One cell of a report table: the text shown, and a link where the cell is one; `value` is the CSV's cell,
    exact (a page keeps it beside the text it shows)."""

    text: str
    href: str | None = None
    numeric: bool = False
    long: bool = False  # a message history or another long text: shown in a box of its own height
    value: str = ""


@dataclass
class Table:
    """What a page shows of a report: the columns, one page of rows, how many rows there are, a summary's
    totals, the definitions that produced it, and which page in which order (`view`)."""

    header: list[str]
    rows: list[list[Cell]]
    count: int
    totals: list[Cell] | None
    definitions: str
    columns: list[Column] = field(default_factory=list)
    view: View = field(default_factory=View)
    meanings: list[str | None] = field(default_factory=list)  # each column's, from docs/reports.md (issue 28)

    @property
    def pages(self) -> int:
        return max(1, -(-self.count // self.view.size))

    @property
    def first(self) -> int:
        """The number of the page's first row, from 1 (0 when there is none)."""
        return (self.view.page - 1) * self.view.size + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0

    @property
    def sorted_by(self) -> str | None:
        """The header of the column the rows are sorted by, if they are."""
        snakes = [column.snake for column in self.columns]
        return self.header[snakes.index(self.view.sort)] if self.view.sort in snakes else None


def _cell(column: str, value: str | None, kind: str = "text", href: str | None = None) -> Cell:
    text = value or ""
    if href is not None and text:  # a figure: the detail rows behind it (web/drill.py), shown as its kind is
        shown = formats.shown(kind, value) if kind in reports.NUMERIC_KINDS else text
        return Cell(shown, href, numeric=True, value=text)
    # A link is relative, so that it opens on the host serving this page whatever public_url says, and shows what it
    # opens rather than the whole address (the CSV has that): a conversation's id, or a theme's sessions (issue 27).
    if column.endswith("Link") and "/conversations/" in text:
        conversation = text.rsplit("/conversations/", 1)[1]
        return Cell(conversation, "/conversations/" + quote(conversation, safe=""), value=text)
    if column.endswith("Link") and "/reports/" in text:
        return Cell("Sessions", "/reports/" + text.rsplit("/reports/", 1)[1], value=text)
    if kind in reports.NUMERIC_KINDS:  # one format per kind (web/formats.py), the exact cell kept beside it
        return Cell(formats.shown(kind, value), numeric=True, value=text)
    numeric = bool(text) and text.replace(".", "", 1).lstrip("-").isdigit()
    return Cell(text, numeric=numeric, long=len(text) > LONG_CELL or "\n" in text, value=text)


def totals(server: Server, store: Store, prepared: Prepared) -> tuple[str | None, ...] | None:
    """A summary's figures over the whole selection, as one row labelled Total (`reports.totals`); None for
    an empty selection."""
    whole = replace(prepared.params, period="all", by=None)
    found = run(server, store, replace(prepared, params=whole), given={})
    return found.rows[0] if found.rows else None


def html_table(server: Server, store: Store, prepared: Prepared, given: dict[str, Any], *, action: str,
               view: View | None = None) -> Table:
    """One page of rows (`view`: the first SHOWN_ROWS in the report's order unless it says otherwise) as cells,
    the number of rows, and a summary's totals. A sort by a column the report lacks, or a page past the last, is a
    `ParameterError`."""
    report, params, config = prepared.report, prepared.params, prepared.config
    view = view or View()
    columns = list(report.output_columns(params))
    order = view.order(columns)
    count = reports.count_rows(store, config, report, params)
    pages = max(1, -(-count // view.size))
    if view.page > pages:
        raise ParameterError("page", lambda n: f"{n('page')} {view.page} is past the last page, {pages}; "
                                               f"use 1 to {pages}")
    found = run(server, store, prepared, given=given, limit=view.size, offset=(view.page - 1) * view.size,
                order=order, action=action)
    links = drill.linker(prepared)
    total, kinds = None, [column.kind for column in columns]
    if report.default_period is not None:  # a summary; the detail reports take a period only as a label
        whole = totals(server, store, prepared)
        if whole is not None:
            cells = list(whole)
            if params.by:  # the totals run without the dimension: leave its column empty
                cells.insert(1, None)
            total = [_cell(c, v, k, h) for c, v, k, h in zip(found.header, cells, kinds, links(cells), strict=True)]
    rows = [[_cell(c, v, k, h) for c, v, k, h in zip(found.header, row, kinds, links(row), strict=True)]
            for row in found.rows]
    return Table(found.header, rows, count, total, prepared.definitions, columns, view,
                 [meaning(report.name, column.display) for column in columns])


# --- the API ---------------------------------------------------------------------------------------------------

# A row of a JSON answer (issue 28): each header mapped to its cell, typed by the column's kind.
JSON_ROW = {"type": "object", "additionalProperties": {
    "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]},
    "description": "Each column's header mapped to its cell: counts, rates and other numbers (seconds, averages, "
                   "scores) as numbers, booleans as booleans, identifiers, times, dates, periods and text as "
                   "strings, an empty cell as null; the values of the CSV's cells (docs/reports.md)"}
DEFINED = {DEFINITIONS_HEADER: {"description": "The definitions that produced the report: its as-of time and time "
                                               "zone, each brand's derivation settings (SPEC 5) and the "
                                               "configuration file", "schema": {"type": "string"}}}
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "headers": DEFINED,
          "description": "The report as CSV (SPEC 4.1)"},
}


REPORT_QUERY = ("from", "to", "tz", "as_of", "period", "by", "where", "headers", "extra", "anchor", "brand")


def _names_and_columns() -> str:
    """The `name` parameter's description: every report of SPEC 4 and issue 26 with its columns (docs/reports.md
    says what fills each), so that a client generated from the document knows what it will get."""
    lines = []
    for report in reports.REPORTS.values():
        dimension = f" (then, with by, one of {', '.join(c.display for c in report.by_columns.values())})" \
            if report.by_columns else ""
        first, *rest = [c.display for c in report.columns]
        extra = f"; with extra: {', '.join(c.display for c in report.extra_columns)}" if report.extra_columns else ""
        lines.append(f"- `{report.name}`: {', '.join([first + dimension, *rest])}{extra}")
    return "The report, with its columns:\n" + "\n".join(lines)


@router.get("/reports/{name}", responses=CSV_RESPONSE | ERROR_RESPONSES | {404: {
    "model": Errors, "description": "No report of that name"}} | {200: {
    "content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {
        "type": "object", "required": ["report", "columns", "rows", "definitions"], "properties": {
            "report": {"type": "string"}, "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": JSON_ROW},
            "definitions": {"type": "string", "description": f"The definitions, as {DEFINITIONS_HEADER} gives "
                                                             "them"}}}}},
    "headers": DEFINED, "description": "The report: CSV, or JSON with `Accept: application/json`"}},
    response_class=Response, summary="Run a report with the common parameters of SPEC 4")
def get_report(
    request: Request,
    name: Annotated[str, PathParameter(description=_names_and_columns(), json_schema_extra={"enum": list(reports.REPORTS)})],
    from_: Annotated[str | None, Query(alias="from", description="First local date, inclusive")] = None,
    to: Annotated[str | None, Query(description="Last local date, inclusive")] = None,
    tz: Annotated[str | None, Query(description="IANA time zone")] = None,
    as_of: Annotated[str | None, Query(description="RFC 3339 instant (default now)")] = None,
    period: Annotated[str | None, Query(description="Summaries: half_hour, day, week, month, quarter, year")] = None,
    by: Annotated[str | None, Query(description="sessions-summary and outcomes-summary: channel, ai_agent, guide, "
                                                "handoff_category, handoff_subcategory, inbox; automation-summary: "
                                                "channel, ai_agent, brand")] = None,
    where: Annotated[list[str] | None, Query(description="KEY=VALUE filter, repeatable")] = None,
    headers: Annotated[Literal["display", "snake"], Query()] = "display",
    extra: Annotated[bool, Query()] = False,
    anchor: Annotated[str | None, Query(description="Detail reports: the time from, to and a `period=LABEL` filter "
                                                    "read: created (default); ended for sessions-detail and "
                                                    "contact-export; last_closed for conversation-export")] = None,
    brand: Annotated[list[str] | None, Query(description="Only these brands (default: every brand you may see)")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.REPORTS)
        if name not in reports.REPORTS:
            raise problem(404, "not_found", f"no report {name!r}; use one of {', '.join(reports.REPORTS)}", "name")
        unknown = sorted(set(request.query_params) - set(REPORT_QUERY))
        if unknown:  # SPEC 4: a usage error; the value is not repeated (it may be a token sent by mistake)
            raise problem(400, "invalid", f"unknown parameter {unknown[0]!r}; "
                                          f"the reports take {', '.join(REPORT_QUERY)}", unknown[0])
        prepared = prepare(server, store, caller, name, "api", brands=list(brand or []), date_from=from_, date_to=to,
                           tz=tz, as_of=as_of, period=period, by=by, where=list(where or []), headers=headers,
                           extra=extra, anchor=anchor)
        given = operators_parameters(request, caller) or {
            key: values if len(values := request.query_params.getlist(key)) > 1 else values[0]
            for key in request.query_params}
        wanted = (accept or "").lower()  # media types ignore case
        if "application/json" in wanted and "text/csv" not in wanted:
            return json_answer(server, store, prepared, given)
        return csv_answer(server, store, prepared, given, filename=download_name(
            name, brand or [], prepared.params.date_from, prepared.params.date_to))
