"""What-if over HTTP (issue 27): `GET /api/v1/compare`, the headline figures under the stored definitions and under
each `set`, as CSV or JSON, and the page `/compare`: a form of sets, a chart of the rates and the table.

Both run `service.compare`, as the command line does: the brands scoped to the caller there, the stored tables
brought up to date under the server's write lock, the sets derived in memory, never in the store. Reading them takes
the permission of the reports without messages: a figure shows no message. The page's date presets are
`web/ranges.py`'s.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from convoscope import accounts, service
from convoscope.config import MAX_SETS, Config
from convoscope.errors import ParameterError
from convoscope.reports import compare as what_if
from convoscope.reports.base import write_rows
from convoscope.store import Store
from convoscope.web.auth import require
from convoscope.web.errors import ERROR_RESPONSES
from convoscope.web.ranges import ranges
from convoscope.web.reports import JSON_ROW, attachment, described, download_name, json_rows
from convoscope.web.server import Caller, FieldError, Server, blank, problem, server_of, zones

router = APIRouter()

QUERY = ("set", "from", "to", "tz", "as_of", "brand", "headers")
FIELDS = ("set", "from", "to", "tz", "as_of", "brand")
EXAMPLE_SETS = ("session_inactivity=30m", "session_inactivity=4h", "recontact_window=72h,durable_window=14d")


def _run(server: Server, store: Store, caller: Caller, via: str, sets: list[str], config: Config,
         **options: Any) -> service.Comparison:
    user = caller.user
    asker = service.Asker(user.name, via, brands=user.brands, messages=user.can(accounts.REPORTS_WITH_MESSAGES))
    return service.compare(store, config, sets, asker, writing=server.gate.writing, **options)


def _csv(result: service.Comparison, headers: str, filename: str) -> Response:
    import io

    buffer = io.StringIO()
    write_rows(result.header(headers), result.rows(headers), buffer)
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers=attachment(filename) | described(result.describe()))


@router.get("/api/v1/compare", responses=ERROR_RESPONSES | {200: {
    "content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {
        "type": "object", "required": ["columns", "rows", "definitions"], "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": JSON_ROW}, "definitions": {"type": "string"}}}}},
    "description": "One row per figure (Sessions, Resolution Rate, Handoff Rate, Recontact Rate, Durable Resolution "
                   "Rate, Automation Rate), one column per definition set, the stored definitions first: CSV, or JSON "
                   "with `Accept: application/json`"}},
    response_class=Response, summary="Headline figures under other definitions, derived in memory (what-if)")
def compare_api(
    request: Request,
    set_: Annotated[list[str] | None, Query(alias="set", description=(
        "A definition set: comma-separated brand settings, such as session_inactivity=30m,recontact_window=72h "
        f"(durations as in the configuration; ai_channels as chat|email); repeatable, at most {MAX_SETS}"))] = None,
    from_: Annotated[str | None, Query(alias="from", description="First local date, inclusive")] = None,
    to: Annotated[str | None, Query(description="Last local date, inclusive")] = None,
    tz: Annotated[str | None, Query(description="IANA time zone")] = None,
    as_of: Annotated[str | None, Query(description="RFC 3339 instant (default now)")] = None,
    brand: Annotated[list[str] | None, Query(description="Only these brands (default: every brand you may see)")] = None,
    headers: Annotated[Literal["display", "snake"], Query()] = "display",
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.REPORTS)
        unknown = sorted(set(request.query_params) - set(QUERY))
        if unknown:
            raise problem(400, "invalid", f"unknown parameter {unknown[0]!r}; compare takes {', '.join(QUERY)}",
                          unknown[0])
        result = _run(server, store, caller, "api", list(set_ or []), server.config, brands=list(brand or []),
                      date_from=from_, date_to=to, tz=tz, as_of=as_of)
    wanted = (accept or "").lower()
    if "application/json" in wanted and "text/csv" not in wanted:
        header = result.header(headers)
        # A row is one figure: its name, then its value under each set, typed as the figure's column is (issue 28).
        rows = [json_rows(["text", *[what_if.kind(figure)] * len(result.labels)], header, [cells])[0]
                for figure, cells in zip(result.figures, result.rows(headers), strict=True)]
        return JSONResponse({"columns": header, "rows": rows, "definitions": result.describe()},
                            headers=described(result.describe()))
    return _csv(result, headers, download_name("compare", brand or [], from_, to))


@router.get("/compare", response_class=HTMLResponse, include_in_schema=False)
def compare_page(
    request: Request,
    set_: Annotated[list[str] | None, Query(alias="set")] = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    tz: Annotated[str | None, Query()] = None,
    as_of: Annotated[str | None, Query()] = None,
    brand: Annotated[str | None, Query()] = None,
    run: Annotated[str | None, Query()] = None,
) -> Response:
    """The form of definition sets; Run shows the chart of the rates and the table, under the same numbers the
    API's CSV gives."""
    server = server_of(request)
    config = server.config  # one reading for the figures and the form
    sets = [s.strip() for s in set_ or [] if s.strip()]
    given = {"from": blank(from_), "to": blank(to), "tz": blank(tz), "as_of": blank(as_of), "brand": blank(brand)}
    form = {"set": sets, **given}
    with server.gate.open() as store:
        caller = require(request, store, accounts.REPORTS)
        visible = caller.user.visible_brands(store.brands(kept=True))
        result, error = None, None
        if run:
            try:
                result = _run(server, store, caller, "page", sets, config, brands=[given["brand"]] if given["brand"] else [],
                              date_from=given["from"], date_to=given["to"], tz=given["tz"], as_of=given["as_of"])
            except ParameterError as exc:
                error = FieldError.of(exc, FIELDS)
        query = [(key, value) for key, value in given.items() if value] + [("set", s) for s in sets]
        dates = ranges(store, config, path="/compare", query=query + ([("run", "1")] if run else []), tz=given["tz"],
                       chosen=[given["brand"]] if given["brand"] else [], visible=visible)
    chart = None
    if result is not None:  # the rates, one dataset per set; Sessions is a count, on another scale: the table has it
        rates = [i for i, name in enumerate(result.figures) if name.endswith("Rate")]
        chart = {"figures": [result.figures[i] for i in rates],
                 "sets": [{"label": label, "values": [_number(result.values[i][c]) for i in rates]}
                          for c, label in enumerate(result.labels)]}
    # Every set a comparison takes has its box: those given and one more in sight (at least three), the rest folded.
    set_fields = (sets + [""] * MAX_SETS)[:MAX_SETS]
    shown = min(MAX_SETS, max(3, len(sets) + 1))
    return server.page(request, "compare.html", caller, status=400 if error else 200, form=form, set_fields=set_fields,
                       shown_sets=shown, ranges=dates,
                       error=error, result=result, chart=chart, brands=visible, zones=zones(config, visible),
                       examples=EXAMPLE_SETS, csv_url="/api/v1/compare" + (f"?{urlencode(query)}" if query else ""))


def _number(cell: str | None) -> float | None:
    """A rate's cell for the chart: a number, or None (a gap) where it has no denominator."""
    return None if cell is None else float(cell)
