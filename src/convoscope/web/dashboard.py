"""The dashboard of SPEC 6.3: the sessions-summary over time as charts and a table, its totals, and the top
handoff categories and subcategories, channels and AI agents (`reports/dashboard.py`).

Every number is a cell of a report run through `web.reports`' data path, as the API runs it: the
sessions-summary with the dashboard's checked parameters, and the top lists with the same parameters; the
charts draw those cells and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from convoscope import accounts, reports
from convoscope.errors import ParameterError
from convoscope.reports import dashboard
from convoscope.reports.base import GUARDED_PREFIXES, PERIODS, Params, Report
from convoscope.reports.sessions import SESSIONS_SUMMARY
from convoscope.store import Store
from convoscope.web.auth import require
from convoscope.web.reports import Prepared, prepare, run, totals
from convoscope.web.server import PERIOD_NAMES, FieldError, ReportForm, Server, blank, server_of, zones

router = APIRouter(include_in_schema=False)

CHARTED = ("sessions", "resolution_rate", "handoff_rate", "recontact_rate")
RATES = ("resolution_rate", "handoff_rate", "recontact_rate")
MAX_FILLED_DAYS = {"half_hour": 93}  # beyond this a chart shows only the periods with rows
MAX_DAYS = 36_600
FIELDS = ("from", "to", "tz", "period", "brand")


@dataclass(frozen=True)
class TopRow:
    """One value of a dimension over the whole range, with its summary cells by snake header."""

    label: str
    figures: dict[str, str | None]
    count: int


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


def _top(server: Server, store: Store, prepared: Prepared, top: Report, counted: str) -> list[TopRow]:
    """A top list's rows: its value (or `(none)`), its figures by snake header, and the figure it is ranked by."""
    found = run(server, store, replace(prepared, report=top), given={})
    names = [c.snake for c in top.columns]
    rows = []
    for row in found.rows:
        figures = dict(zip(names[1:], row[1:], strict=True))
        rows.append(TopRow(row[0] if row[0] is not None else dashboard.NONE_LABEL, figures,
                           int(figures[counted] or 0)))
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
        categories=_top(server, store, prepared, dashboard.TOP_HANDOFF_CATEGORIES, "handed_off"),
        subcategories=_top(server, store, prepared, dashboard.TOP_HANDOFF_SUBCATEGORIES, "handed_off"),
        channels=_top(server, store, prepared, dashboard.TOP_CHANNELS, "sessions"),
        ai_agents=_top(server, store, prepared, dashboard.TOP_AI_AGENTS, "sessions"),
        chart=_chart(store, params, [s for s, _ in columns], rows),
        definitions=prepared.definitions,
    )


def _chart(store: Store, params: Params, names: list[str], rows: list[tuple[str | None, ...]]) -> dict[str, Any]:
    """The series dashboard.js draws: the summary's cells as numbers, every period of the range on the
    axis, a period without rows drawn as zero (SPEC 4.1) and an empty cell as a gap."""
    found = {row[0]: row for row in rows if row[0] is not None}
    labels = _all_periods(store, params, list(found))
    series = {name: [(_number(found[label][i]) if label in found else 0) for label in labels]
              for i, name in enumerate(names, start=1)}
    return {"labels": labels, "series": series, "rates": list(RATES), "zone": params.tz, "period": params.period}


def _number(cell: str | None) -> int | float | None:
    if cell is None:
        return None
    return int(cell) if cell.isdigit() else float(cell)


def _first_day(label: str, period: str) -> date | None:
    """The first local day of the period labelled `label` (SPEC 4.1 labels)."""
    try:
        match period:
            case "half_hour" | "day":
                return date.fromisoformat(label[:10])
            case "week":
                year, week = label.split("-W")
                return date.fromisocalendar(int(year), int(week), 1)
            case "month":
                return date(int(label[:4]), int(label[5:7]), 1)
            case "quarter":
                year, quarter = label.split("-Q")
                return date(int(year), 3 * int(quarter) - 2, 1)
            case "year":
                return date(int(label), 1, 1)
    except ValueError:
        return None
    return None


def _all_periods(store: Store, params: Params, found: list[str]) -> list[str]:
    """Every period label of the range (from its first to its last day, or the rows' when the range is
    open), so that a chart shows the periods without rows; just the labels found when the range is too
    long to draw every period. The labels come from the summaries' own `period_label`."""
    period = params.period or "day"
    first = params.date_from or (_first_day(found[0], period) if found else None)
    last = params.date_to or (_first_day(found[-1], period) if found else None)
    if first is None or last is None or first > last:
        return found
    if (last - first).days + 1 > MAX_FILLED_DAYS.get(period, MAX_DAYS):
        return found
    labels = reports.period_labels(store, params, first, last)
    return labels if set(found) <= set(labels) else found  # never hide a period that has rows


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(
    request: Request,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    tz: Annotated[str | None, Query()] = None,
    period: Annotated[str | None, Query()] = None,
    brand: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """SPEC 6.3's dashboard: the sessions-summary over time, its totals and the top dimension values."""
    server = server_of(request)
    form = ReportForm(date_from=blank(from_), date_to=blank(to), tz=blank(tz), period=blank(period) or "day",
                      brands=tuple(b for b in (brand or []) if b.strip()))
    with server.gate.open() as store:
        caller = require(request, store, accounts.REPORTS)
        visible = caller.user.visible_brands(store.brands())
        board, error, zone = None, None, None
        try:
            prepared = prepare(server, store, caller, SESSIONS_SUMMARY.name, "page", brands=list(form.brands),
                               date_from=form.date_from, date_to=form.date_to, tz=form.tz, period=form.period)
        except ParameterError as exc:
            error = FieldError.of(exc, FIELDS)
        else:
            zone = prepared.params.tz
            board = _dashboard(server, store, prepared)
    csv_query = urlencode(form.query())
    over_the_range = replace(form, period=None).query()
    return server.page(
        request, "dashboard.html", caller, status=400 if error else 200, form=form, error=error, board=board,
        brands=visible, zones=zones(server.config, visible), default_zone=zone or "brand default",
        periods=[(p, PERIOD_NAMES[p]) for p in PERIODS], charted=CHARTED, rates=RATES,
        csv_url=f"/api/v1/reports/{SESSIONS_SUMMARY.name}?{csv_query}",
        report_url=f"/reports/{SESSIONS_SUMMARY.name}?{csv_query}&run=1",
        percent=_percent,
        # A dimension's value opens its sessions: sessions-detail over the same range, filtered by it.
        detail_url=lambda key, value: "/reports/sessions-detail?" + urlencode(
            [*over_the_range, ("where", f"{key}={_unguarded(value)}"), ("run", "1")]),
    )


def _unguarded(cell: str) -> str:
    """A summary's dimension cell as the value it shows, without the quote SPEC 4.1 puts before a
    formula's first character in a CSV: a filter compares stored values. (A value that itself starts
    with a quote and such a character reads the same; it is not one a brand would use.)"""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in GUARDED_PREFIXES else cell


def _percent(cell: str | None) -> str:
    """A rate cell (`0.5333`) as a percentage (`53.33%`), exactly: a rate has four decimals (SPEC 4.1)."""
    if not cell:
        return "–"
    whole, _, fraction = cell.partition(".")
    units = int(whole) * 10_000 + int(fraction.ljust(4, "0")[:4])  # ten-thousandths
    return f"{units // 100}.{units % 100:02d}%"
