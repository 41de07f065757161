"""The dashboard of SPEC 6.3: the sessions-summary over time as charts and a table, its totals, and the top
handoff categories and subcategories, channels and AI agents (`reports/dashboard.py`).

Every number is a cell of a report run through `web.reports`' data path, as the API runs it: the
sessions-summary with the dashboard's checked parameters, and the top lists with the same parameters; the
charts draw those cells and nothing else (`web/charts.py`). The Outcomes section below them (issue 26) is
`web/outcomes_dashboard.py`'s, run with the same parameters. Date presets sit beside the range, and a range
without sessions says where the brands' events are (`web/ranges.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from convoscope import accounts
from convoscope.errors import ParameterError
from convoscope.reports import dashboard, meanings
from convoscope.reports.base import GUARDED_PREFIXES, PERIODS, Params, Report
from convoscope.reports.sessions import SESSIONS_SUMMARY
from convoscope.store import Store
from convoscope.web import charts, drill
from convoscope.web.auth import require
from convoscope.web.outcomes_dashboard import outcomes
from convoscope.web.previous import compare
from convoscope.web.ranges import ranges
from convoscope.web.reports import Prepared, prepare, run, totals
from convoscope.web.server import PERIOD_NAMES, FieldError, ReportForm, Server, blank, server_of, zones

router = APIRouter(include_in_schema=False)

CHARTED = ("sessions", "resolution_rate", "handoff_rate", "recontact_rate")
RATES = ("resolution_rate", "handoff_rate", "recontact_rate")
FIELDS = ("from", "to", "tz", "period", "brand")


@dataclass(frozen=True)
class TopRow:
    """One value of a dimension over the whole range, with its summary cells by snake header."""

    label: str
    figures: dict[str, str | None]
    count: int
    links: dict[str, str | None] = field(default_factory=dict)  # each figure's detail rows (web/drill.py)


@dataclass
class Dashboard:
    """Everything the dashboard shows, each number a cell of the sessions-summary or of a top list of
    `reports/dashboard.py`, and the definitions that produced them."""

    columns: list[tuple[str, str]]  # (snake, display) of the sessions-summary columns after Period
    rows: list[tuple[str | None, ...]]  # the sessions-summary rows, exactly as the CSV's cells
    totals: dict[str, str | None] | None
    categories: list[TopRow]
    subcategories: list[TopRow]
    channels: list[TopRow]
    ai_agents: list[TopRow]
    chart: dict[str, Any]
    definitions: str


def _top(server: Server, store: Store, prepared: Prepared, top: Report, counted: str, by: str | None) -> list[TopRow]:
    """A top list's rows: its value (or `(none)`), its figures by snake header, the figure it is ranked by, and the
    detail rows behind each figure: the sessions of that value of `by` (None: of that category and subcategory)."""
    found = run(server, store, replace(prepared, report=top), given={})
    names = [c.snake for c in top.columns]
    rows = []
    for row in found.rows:
        figures = dict(zip(names[1:], row[1:], strict=True))
        dimension = [(by, row[0])] if by else [("handoff_category", figures["category"]),
                                               ("handoff_subcategory", figures["subcategory"])]
        links = {name: drill.href(SESSIONS_SUMMARY.name, prepared.params, name, dimension=dimension)
                 for name in names[1:]}
        rows.append(TopRow(row[0] if row[0] is not None else dashboard.NONE_LABEL, figures,
                           int(figures[counted] or 0), links))
    return rows


def _dashboard(server: Server, store: Store, prepared: Prepared) -> Dashboard:
    params = prepared.params
    columns = [(c.snake, c.display) for c in SESSIONS_SUMMARY.output_columns(params)[1:]]
    rows = run(server, store, prepared, given={}).rows
    total = totals(server, store, prepared)
    return Dashboard(
        columns=columns,
        rows=rows,
        totals=dict(zip([s for s, _ in columns], total[1:], strict=True)) if total is not None else None,
        categories=_top(server, store, prepared, dashboard.TOP_HANDOFF_CATEGORIES, "handed_off", "handoff_category"),
        subcategories=_top(server, store, prepared, dashboard.TOP_HANDOFF_SUBCATEGORIES, "handed_off", None),
        channels=_top(server, store, prepared, dashboard.TOP_CHANNELS, "sessions", "channel"),
        ai_agents=_top(server, store, prepared, dashboard.TOP_AI_AGENTS, "sessions", "ai_agent"),
        chart=_chart(store, params, [s for s, _ in columns], rows),
        definitions=prepared.definitions,
    )


def _chart(store: Store, params: Params, names: list[str], rows: list[tuple[str | None, ...]]) -> dict[str, Any]:
    """The series dashboard.js draws: the summary's cells as numbers over every period of the range, a period
    without rows drawn as zero and a rate without a denominator as a gap (`web/charts.py`)."""
    labels = charts.axis(store, params, [row[0] for row in rows if row[0] is not None])
    return {"labels": labels, "series": charts.series(labels, names, rows, RATES), "rates": list(RATES),
            "zone": params.tz, "period": params.period}


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(
    request: Request,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    tz: Annotated[str | None, Query()] = None,
    period: Annotated[str | None, Query()] = None,
    brand: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """SPEC 6.3's dashboard: the sessions-summary over time, its totals and the top dimension values; then the
    outcomes of issue 26 (`web/outcomes_dashboard.py`)."""
    server = server_of(request)
    form = ReportForm(date_from=blank(from_), date_to=blank(to), tz=blank(tz), period=blank(period) or "day",
                      brands=tuple(b for b in (brand or []) if b.strip()))
    config = server.config  # one reading for every report of the page
    with server.gate.open() as store:
        caller = require(request, store, accounts.REPORTS)
        visible = caller.user.visible_brands(store.brands(kept=True))
        board, section, error, zone, params = None, None, None, None, None
        previous = None
        try:
            prepared = prepare(server, store, caller, SESSIONS_SUMMARY.name, "page", brands=list(form.brands),
                               date_from=form.date_from, date_to=form.date_to, tz=form.tz, period=form.period,
                               config=config)
        except ParameterError as exc:
            error = FieldError.of(exc, FIELDS)
        else:
            zone, params = prepared.params.tz, prepared.params
            board = _dashboard(server, store, prepared)
            previous = compare(server, store, prepared, form, board.totals)
            section = outcomes(server, store, caller, form, prepared)
        dates = ranges(store, config, path="/dashboard", query=form.query(), tz=form.tz, chosen=list(form.brands),
                       visible=visible)
    csv_query = urlencode(form.query())
    over_the_range = replace(form, period=None).query()
    return server.page(
        request, "dashboard.html", caller, status=400 if error else 200, form=form, error=error, board=board,
        outcomes=section, ranges=dates, previous=previous, meaning=meanings.meaning,
        brands=visible, zones=zones(config, visible), default_zone=zone or "brand default",
        periods=[(p, PERIOD_NAMES[p]) for p in PERIODS], charted=CHARTED, rates=RATES,
        csv_url=f"/api/v1/reports/{SESSIONS_SUMMARY.name}?{csv_query}",
        report_url=f"/reports/{SESSIONS_SUMMARY.name}?{csv_query}&run=1",
        percent=charts.percent,
        # Every figure opens the detail rows behind it (web/drill.py): a report's column, in a period row or the
        # whole range's (None), of a dimension's value.
        figure_url=lambda report, column, period=None, dimension=(): drill.href(
            report, params, column, period=period, dimension=dimension) if params is not None else None,
        # A dimension's value opens its sessions: sessions-detail over the same range, filtered by it.
        detail_url=lambda key, value: "/reports/sessions-detail?" + urlencode(
            [*over_the_range, ("where", f"{key}={_unguarded(value)}"), ("run", "1")]),
    )


def _unguarded(cell: str) -> str:
    """A summary's dimension cell as the value it shows, without the quote SPEC 4.1 puts before a
    formula's first character in a CSV: a filter compares stored values. (A value that itself starts
    with a quote and such a character reads the same; it is not one a brand would use.)"""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in GUARDED_PREFIXES else cell
