"""The web pages of SPEC 6.3: log in and out, reports, the dashboard, conversations, the audit log.

Every page answers 401 with the login form when nobody is logged in, and 403 when the role lacks the
permission (SPEC 6.4). Forms that change something carry the login's CSRF token.

The pages render reports through the same path as the CSV and the API (`reports.report_rows`), so a
number on a page is the cell the CSV holds; the dashboard's charts draw those cells and nothing else.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from convoscope import accounts, reports, timeline
from convoscope.config import is_zone
from convoscope.derive.names import ANOMALIES
from convoscope.reports.base import GUARDED_PREFIXES, PERIODS, Params, Report, in_brands, summary_query
from convoscope.reports.sessions import FIGURES, SESSIONS_SUMMARY, session_facts, session_filters
from convoscope.store import Store
from convoscope.web.api import audited_brands, check_params
from convoscope.web.app import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    HTTPProblem,
    Server,
    identify,
    problem,
    require,
    server_of,
)

router = APIRouter(include_in_schema=False)



def _login_form(request: Request, status: int, message: str | None = None,
                headers: dict[str, str] | None = None, next_page: str | None = None) -> HTMLResponse:
    """The login page, with a fresh CSRF token bound to a cookie (double submit)."""
    token = secrets.token_urlsafe(32)
    # Back to the page asked for, with its query (a report's parameters, a conversation's zone).
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if next_page is None:
        next_page = wanted if request.url.path != "/login" else "/"
    response = server_of(request).page(request, "login.html", None, status=status, login_csrf=token, message=message,
                                     next=next_page)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


async def error_page(request: Request, exc: HTTPProblem, headers: dict[str, str] | None) -> Response:
    if exc.status == 401:
        return _login_form(request, 401, None, headers)

    def render() -> Response:
        server = server_of(request)
        caller = None
        if exc.status != 429:  # identifying a throttled caller again would count another refusal
            try:
                with server.gate.open() as store:
                    caller = identify(request, store)
            except HTTPProblem:
                pass
        response = server.page(request, "error.html", caller, status=exc.status, problem=exc)
        response.headers.update(headers or {})
        return response

    return await run_in_threadpool(render)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return _login_form(request, 200)


@router.post("/login")
def login(request: Request, name: Annotated[str, Form()], password: Annotated[str, Form()],
          csrf: Annotated[str, Form()], next: Annotated[str, Form()] = "/") -> Response:
    server = server_of(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not cookie or not secrets.compare_digest(cookie, csrf):
        # Nobody is logged in by it. A stale form is most often one of two tabs showing the login page
        # (each drew its own token): the user who logged in from the other tab goes on to the page
        # asked for, anyone else gets a fresh form.
        with server.gate.open() as store:
            caller = identify(request, store)
        if caller is not None and caller.by_cookie:
            return RedirectResponse(_on_this_site(next), status_code=303)
        return _login_form(request, 403, "This login form had expired (a newer one was opened, perhaps in another "
                                         "tab), so nobody was logged in; log in again.", next_page=_on_this_site(next))
    with server.gate.open() as store:
        try:
            user = server.log_in(store, request, name, lambda: accounts.verify_password(store.con, name, password),
                                 "form")
        except HTTPProblem as exc:
            if exc.status != 429:
                raise
            return _login_form(request, 429, exc.detail[0].upper() + exc.detail[1:] + ".", exc.headers)
        if user is None:
            return _login_form(request, 401, "Unknown user name or wrong password.")
        with server.gate.writing:
            session_id, _ = accounts.start_session(store, user)
    response = RedirectResponse(_on_this_site(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax",
                        max_age=int(accounts.SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


def _on_this_site(target: str) -> str:
    """Where a login goes next: only a path on this site ("//host" and "/\\host" would leave it: browsers
    read both as a host), and never the login page again."""
    if not target.startswith("/") or target.startswith(("//", "/\\")) or target == "/login":
        return "/"
    return target


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    server = server_of(request)
    request.scope["convoscope.form_csrf"] = csrf
    with server.gate.open() as store:
        caller = require(request, store, None)
        if caller.session_id:
            with server.gate.writing:
                accounts.end_session(store, caller.session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, None)
    if caller.user.can(accounts.REPORTS):
        return RedirectResponse("/dashboard", status_code=303)
    return server.page(request, "home.html", caller)


# --- shared pieces of the forms ----------------------------------------------------------------------

COMMON_ZONES = (
    "UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin", "Europe/Madrid",
    "Europe/Amsterdam", "Europe/Stockholm", "Europe/Warsaw", "Europe/Athens", "Europe/Istanbul", "Africa/Lagos",
    "Africa/Johannesburg", "Asia/Dubai", "Asia/Kolkata", "Asia/Singapore", "Asia/Shanghai", "Asia/Tokyo",
    "Australia/Sydney", "Pacific/Auckland", "America/Sao_Paulo", "America/Mexico_City", "America/New_York",
    "America/Toronto", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
    "America/Anchorage", "Pacific/Honolulu",
)
PERIOD_NAMES = {"half_hour": "Half hour", "day": "Day", "week": "Week", "month": "Month", "quarter": "Quarter",
                "year": "Year"}
FILTER_NAMES = {"channel": "Channel", "ai_agent": "AI agent", "guide": "Guide", "handoff_category": "Handoff category",
                "outcome": "Outcome", "source": "Source", "agent": "Team member", "handled_by": "Handled by"}
VALUE_NAMES = {"no_response": "No response", "handed_off": "Handed off", "team_only": "Team only",
               "ai_only": "AI only", "ai_then_team": "AI, then team", "ai_and_team": "AI and team"}


def _blank(value: str | None) -> str | None:
    """A form field left empty is a parameter not given."""
    value = (value or "").strip()
    return value or None


def _value_name(value: str) -> str:
    """A code such as `ai_then_team` as people read it."""
    return VALUE_NAMES.get(value, value.replace("_", " ").capitalize())


def _zones(server: Server, brands: list[str]) -> list[str]:
    """Time zones to suggest: the brands' own first, then common ones."""
    return list(dict.fromkeys([*(server.config.for_brand(b).timezone for b in brands), *COMMON_ZONES]))


def _bad_request(exc: HTTPProblem) -> str:
    """The one-line message of a 400, to show in the form; any other problem goes to the error page."""
    if exc.status != 400:
        raise exc
    return exc.detail


# --- reports (SPEC 4, 6.3) ---------------------------------------------------------------------------

REPORT_GROUPS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("AI", (
        ("sessions-detail", "One row per AI session: channel, AI agent, guides used, outcome and handoff details."),
        ("sessions-detail-with-messages", "The sessions detail with each session's customer and AI messages."),
        ("sessions-summary", "AI sessions per period, optionally by channel, AI agent, guide or handoff category, "
                             "with resolution, handoff and recontact rates."),
    )),
    ("Team", (
        ("contact-export", "One row per team contact: source, channel, team members, response time and duration."),
        ("contact-summary", "Contacts ended per period: inbound, outbound and from a handoff, with response times "
                            "and durations."),
    )),
    ("Conversations", (
        ("conversation-export", "One row per conversation: channels, sessions, contacts, who handled it and when "
                                "it closed."),
        ("conversation-summary", "Conversations closed per period: multichannel, AI-only and handed-off shares, "
                                 "and averages."),
    )),
    ("Data quality", (
        ("data-quality", "Rejected events, conflicts, dropped duplicates and derivation anomalies, one row per "
                         "problem."),
        ("sources", "What became of the records each helpdesk sent, per period, source, way in and reason: "
                    "accepted, duplicate, ignored, rejected, truncated."),
    )),
)
DESCRIPTIONS = {name: text for _, listed in REPORT_GROUPS for name, text in listed}
GROUP_OF = {name: group for group, listed in REPORT_GROUPS for name, _ in listed}
SHOWN_ROWS = 100
LONG_CELL = 160
CONVERSATION_LINK = "Conversation Link"


@router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request) -> Response:
    """Every report, grouped as SPEC 6.3 groups them, with what each one holds."""
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.REPORTS)
    groups = [(title, [(reports.REPORTS[name], text) for name, text in listed]) for title, listed in REPORT_GROUPS]
    return server.page(request, "reports.html", caller, groups=groups,
                       may_read_messages=caller.user.can(accounts.REPORTS_WITH_MESSAGES))


@dataclass
class ReportForm:
    """A report's parameters as the form sent them, under the API's names (SPEC 4), so that the CSV
    download carries them unchanged."""

    date_from: str | None = None
    date_to: str | None = None
    tz: str | None = None
    period: str | None = None
    by: str | None = None
    where: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()

    def filter_value(self, key: str) -> str:
        """The value the form shows for filter `key` (the first, when one was given twice)."""
        return next((item.partition("=")[2] for item in self.where if item.partition("=")[0] == key), "")

    def query(self) -> list[tuple[str, str]]:
        """The parameters given, as the query of `GET /api/v1/reports/{name}`."""
        pairs = [("from", self.date_from), ("to", self.date_to), ("tz", self.tz), ("period", self.period),
                 ("by", self.by)]
        return ([(k, v) for k, v in pairs if v is not None] + [("where", w) for w in self.where]
                + [("brand", b) for b in self.brands])

    def audited(self) -> dict[str, Any]:
        """The parameters as the audit log records them (SPEC 6.5)."""
        found: dict[str, Any] = {k: v for k, v in self.query() if k not in ("where", "brand")}
        if self.where:
            found["where"] = list(self.where)
        if self.brands:
            found["brand"] = list(self.brands)
        return found | {"via": "page"}


def _report_form(request: Request, report: Report, date_from: str | None, date_to: str | None, tz: str | None,
                 period: str | None, by: str | None, where: list[str] | None, brand: list[str] | None) -> ReportForm:
    """The form's fields. A filter comes as `where=KEY=VALUE` (the API's form, so an API query works
    here too) or as the form's own field `where.KEY`; an empty one is no filter."""
    filters = [item for item in (where or []) if item.strip()]
    for key in report.where:
        value = _blank(request.query_params.get(f"where.{key}"))
        if value is not None:
            filters.append(f"{key}={value}")
    return ReportForm(date_from=_blank(date_from), date_to=_blank(date_to), tz=_blank(tz), period=_blank(period),
                      by=_blank(by), where=tuple(filters), brands=tuple(b for b in (brand or []) if b.strip()))


@dataclass(frozen=True)
class Cell:
    """One cell of a report table: the CSV cell's text, and a link where the cell is one."""

    text: str
    href: str | None = None
    numeric: bool = False
    long: bool = False  # a message history or another long text: shown in a box of its own height


@dataclass
class ReportRun:
    """What Run shows: the columns, the first rows, how many rows there are, and a summary's totals."""

    header: list[str]
    rows: list[list[Cell]]
    count: int
    totals: list[Cell] | None


def _cell(column: str, value: str | None) -> Cell:
    text = value or ""
    if column == CONVERSATION_LINK and "/conversations/" in text:
        # Relative, so that the link opens on the host serving this page whatever public_url says.
        return Cell(text, "/conversations/" + quote(text.rsplit("/conversations/", 1)[1], safe=""))
    numeric = bool(text) and text.replace(".", "", 1).lstrip("-").isdigit()
    return Cell(text, numeric=numeric, long=len(text) > LONG_CELL or "\n" in text)


def _run_report(server: Server, store: Store, report: Report, params: Params) -> ReportRun:
    header, rows = reports.report_rows(store, server.config, report, params, limit=SHOWN_ROWS)
    count = reports.count_rows(store, server.config, report, params)
    totals = None
    if report.default_period is not None:  # a summary; the detail reports take a period only as a label
        found = reports.totals(store, server.config, report, params)
        if found is not None:
            cells = list(found)
            if params.by:  # the totals run without the dimension: leave its column empty
                cells.insert(1, None)
            totals = [_cell(c, v) for c, v in zip(header, cells, strict=True)]
    return ReportRun(header, [[_cell(c, v) for c, v in zip(header, row, strict=True)] for row in rows], count, totals)


# The values a free-text filter can match, from the derived tables (a typo otherwise gives "0 rows").
SUGGESTED = {
    "channel": "SELECT channel FROM sessions WHERE {brands} UNION SELECT channel FROM contacts WHERE {brands}",
    "ai_agent": "SELECT ai_agent FROM sessions WHERE {brands}",
    "guide": "SELECT unnest(guides) FROM sessions WHERE {brands}",
    "handoff_category": "SELECT handoff_category FROM sessions WHERE {brands}",
    "agent": "SELECT unnest(agent_names) FROM contacts WHERE {brands}",
    "inbox": "SELECT inbox FROM sessions WHERE {brands} UNION SELECT inbox FROM contacts WHERE {brands}",
}
SUGGESTED_AT_MOST = 500


def _suggestions(store: Store, keys: list[str], brands: list[str]) -> dict[str, list[str]]:
    """Per filter key, the distinct values the user's brands hold, for the field's drop-down list."""
    where = in_brands(Params(brands=brands), "brand")
    found = {}
    for key in keys:
        if key in SUGGESTED:
            rows = store.con.cursor().execute(
                f"SELECT DISTINCT v FROM ({SUGGESTED[key].format(brands=where)}) t(v) WHERE v IS NOT NULL "
                f"ORDER BY v LIMIT {SUGGESTED_AT_MOST}").fetchall()
            found[key] = [value for (value,) in rows]
    return found


@router.get("/reports/{name}", response_class=HTMLResponse)
def report_page(
    request: Request,
    name: str,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    tz: Annotated[str | None, Query()] = None,
    period: Annotated[str | None, Query()] = None,
    by: Annotated[str | None, Query()] = None,
    where: Annotated[list[str] | None, Query()] = None,
    brand: Annotated[list[str] | None, Query()] = None,
    run: Annotated[str | None, Query()] = None,
    download: Annotated[str | None, Query()] = None,
) -> Response:
    """A report's form; Run shows its first rows and totals, Download CSV hands over to the API."""
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.REPORTS)
        report = reports.REPORTS.get(name)
        if report is None:
            raise problem(404, "not_found", f"no report {name!r}; use one of {', '.join(reports.REPORTS)}", "name")
        if report.personal_data and not caller.user.can(accounts.REPORTS_WITH_MESSAGES):
            raise problem(403, "forbidden", f"the {caller.user.role_title} role may not read reports with messages")
        form = _report_form(request, report, from_, to, tz, period, by, where, brand)
        visible = caller.user.visible_brands(store.brands())
        params, error, result = None, None, None
        try:
            params = check_params(server, store, caller, report, list(form.brands), date_from=form.date_from,
                                  date_to=form.date_to, tz=form.tz, period=form.period, by=form.by,
                                  where=list(form.where))
        except HTTPProblem as exc:
            error = _bad_request(exc)
        csv_url = f"/api/v1/reports/{name}" + (f"?{urlencode(form.query())}" if form.query() else "")
        if params is not None and download:
            return RedirectResponse(csv_url, status_code=303)
        if params is not None and run:
            server.ensure_derived(store)
            result = _run_report(server, store, report, params)
            if report.personal_data:  # seeing the rows is reading them: as audited as a download (SPEC 6.5)
                server.audit(store, caller, "view", report.name, form.audited(), audited_brands(params))
        suggestions = _suggestions(store, [key for key, choices in report.where.items() if not choices], visible)
    zone = params.tz if params is not None else None
    return server.page(
        request, "report.html", caller, status=400 if error else 200, report=report, form=form, error=error,
        result=result, csv_url=csv_url, group=GROUP_OF.get(name, ""), description=DESCRIPTIONS.get(name, ""),
        brands=visible, zones=_zones(server, visible), default_zone=zone or "brand default",
        periods=[(p, PERIOD_NAMES[p]) for p in PERIODS], default_period=report.default_period,
        dimensions=[(key, column.display) for key, column in report.by_columns.items()],
        filters=[(key, FILTER_NAMES.get(key, key), [(v, _value_name(v)) for v in choices])
                 for key, choices in report.where.items()],
        suggestions=suggestions,
    )


# --- dashboard (SPEC 4.3, 6.3) -----------------------------------------------------------------------

CHARTED = ("sessions", "resolution_rate", "handoff_rate", "recontact_rate")
RATES = ("resolution_rate", "handoff_rate", "recontact_rate")
TOP = 10
MAX_FILLED_DAYS = {"half_hour": 93}  # beyond this a chart shows only the periods with rows
MAX_DAYS = 36_600
SUBCATEGORY = ("CASE WHEN was_handed_off THEN handoff_category || ' / ' || coalesce(handoff_subcategory, '(none)') "
               "END")


@dataclass(frozen=True)
class TopRow:
    """One value of a dimension over the whole range, with its summary cells by snake header."""

    label: str
    figures: dict[str, str | None]
    count: int


@dataclass
class Dashboard:
    """Everything the dashboard shows, each number a cell of the sessions-summary (or, for the
    subcategories, of its query shape)."""

    columns: list[tuple[str, str]]  # (snake, display) of the sessions-summary columns after Period
    rows: list[tuple[str | None, ...]]  # the sessions-summary rows, exactly as the CSV's cells
    totals: dict[str, str | None] | None
    categories: list[TopRow]
    subcategories: list[TopRow]
    channels: list[TopRow]
    ai_agents: list[TopRow]
    chart: dict[str, Any]


def _count(cell: str | None) -> int:
    return int(cell) if cell else 0


def _top(rows: list[TopRow]) -> list[TopRow]:
    return sorted(rows, key=lambda r: (-r.count, r.label))[:TOP]


def _by_dimension(server: Server, store: Store, whole: Params, by: str, counted: str,
                  keep_empty: bool) -> list[TopRow]:
    """The sessions-summary over the whole range by `by` (period `all`: one Total row per value)."""
    params = replace(whole, by=by)
    names = [c.snake for c in SESSIONS_SUMMARY.output_columns(params)]
    found = []
    for row in reports.report_rows(store, server.config, SESSIONS_SUMMARY, params)[1]:
        if row[1] is None and not keep_empty:
            continue
        figures = dict(zip(names[2:], row[2:], strict=True))
        found.append(TopRow(row[1] if row[1] is not None else "(none)", figures, _count(figures[counted])))
    return _top(found)


def _subcategories(store: Store, params: Params, whole: Params) -> list[TopRow]:
    """Handed-off sessions by category and subcategory: no sessions-summary dimension, so the summary's
    own query shape and figures over the same selection."""
    sql = summary_query(whole, session_facts(params), "created_at", session_filters(params),
                        [FIGURES[k] for k in ("sessions", "handed_off")], SUBCATEGORY)
    rows = reports.fetch(store, sql)
    return _top([TopRow(str(label), {"sessions": str(sessions), "handed_off": str(handed)}, int(handed))
                 for _, label, sessions, handed in rows if label is not None])


def _dashboard(server: Server, store: Store, params: Params) -> Dashboard:
    server.ensure_derived(store)
    columns = [(c.snake, c.display) for c in SESSIONS_SUMMARY.output_columns(params)[1:]]
    rows = reports.report_rows(store, server.config, SESSIONS_SUMMARY, params)[1]
    total = reports.totals(store, server.config, SESSIONS_SUMMARY, params)
    whole = replace(params, period="all", by=None)
    return Dashboard(
        columns=columns,
        rows=rows,
        totals=dict(zip([s for s, _ in columns], total[1:], strict=True)) if total is not None else None,
        categories=_by_dimension(server, store, whole, "handoff_category", "handed_off", keep_empty=False),
        subcategories=_subcategories(store, params, whole),
        channels=_by_dimension(server, store, whole, "channel", "sessions", keep_empty=True),
        ai_agents=_by_dimension(server, store, whole, "ai_agent", "sessions", keep_empty=True),
        chart=_chart(store, params, [s for s, _ in columns], rows),
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
    form = ReportForm(date_from=_blank(from_), date_to=_blank(to), tz=_blank(tz), period=_blank(period) or "day",
                      brands=tuple(b for b in (brand or []) if b.strip()))
    with server.gate.open() as store:
        caller = require(request, store, accounts.REPORTS)
        visible = caller.user.visible_brands(store.brands())
        board, error, zone = None, None, None
        try:
            params = check_params(server, store, caller, SESSIONS_SUMMARY, list(form.brands),
                                  date_from=form.date_from, date_to=form.date_to, tz=form.tz, period=form.period)
        except HTTPProblem as exc:
            error = _bad_request(exc)
        else:
            zone = params.tz
            board = _dashboard(server, store, params)
    csv_query = urlencode(form.query())
    over_the_range = replace(form, period=None).query()
    return server.page(
        request, "dashboard.html", caller, status=400 if error else 200, form=form, error=error, board=board,
        brands=visible, zones=_zones(server, visible), default_zone=zone or "brand default",
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


# --- conversations (SPEC 6.3, 6.5) --------------------------------------------------------------------

EVENT_NAMES = {"customer_message": "Customer message", "ai_message": "AI reply", "handoff": "Handoff",
               "agent_message": "Team message", "contact_end": "Contact ended",
               "conversation_close": "Conversation closed", "conversation_reopen": "Conversation reopened"}
MESSAGES = ("customer_message", "ai_message", "agent_message")
LONG_TEXT = 2_000  # characters of a message shown before "Show all" (a pasted log can hold 100,000)


@dataclass
class EventView:
    """One event as the timeline shows it: who spoke, when on the chosen zone's clock."""

    event: dict[str, Any]
    who: str
    local: str
    utc: str
    message: bool
    name: str


@dataclass
class TimelineItem:
    """A session or contact block with its events, or an event of the conversation itself."""

    kind: str  # session, contact, event, or mark (a close or reopen no event shows)
    at: datetime
    record: dict[str, Any]
    events: list[EventView]


def _utc(value: datetime) -> datetime:
    """The store's times are UTC; DuckDB hands TIMESTAMP columns over without a zone."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str:
    """RFC 3339 in UTC, for the `datetime` attribute of a `<time>`."""
    return _utc(value).isoformat().replace("+00:00", "Z") if value is not None else ""


def _clock(value: datetime | None, zone: ZoneInfo) -> str:
    """Local time `YYYY-MM-DD HH:MM:SS ±HH:MM` in `zone`, fractions of a second cut; empty for no time.
    The offset tells the two 01:30s of a night the clocks go back apart, and shows a jump forward."""
    if value is None:
        return ""
    local = _utc(value).astimezone(zone)
    minutes = int((local.utcoffset() or timedelta()).total_seconds() / 60)  # seconds cut, as reports do
    sign = "-" if minutes < 0 else "+"
    return f"{local:%Y-%m-%d %H:%M:%S} {sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _who(event: dict[str, Any]) -> str:
    """The event's actor (SPEC 2.3): a handoff is the AI's; a contact's end or a reopen a team member's; a
    close a team member's, or the system's when it names nobody."""
    match event["type"]:
        case "customer_message":
            return "Customer"
        case "ai_message" | "handoff":
            return "AI"
        case "agent_message" | "contact_end" | "conversation_reopen":
            return str(event["agent"] or "Team member")
    return str(event["agent"] or "System")


def _event_view(event: dict[str, Any], zone: ZoneInfo) -> EventView:
    at = _utc(event["occurred_at"])
    return EventView(event, _who(event), _clock(at, zone), _iso(at),
                     event["type"] in MESSAGES, EVENT_NAMES.get(event["type"], event["type"]))


def _timeline(found: dict[str, Any], zone: ZoneInfo) -> list[TimelineItem]:
    """Sessions and contacts as blocks holding their events, and the other events, closes and reopens
    between them, in time order."""
    blocks = {("session", s["session_id"]): TimelineItem("session", _utc(s["created_at"]), s, [])
              for s in found["sessions"]}
    blocks |= {("contact", c["contact_id"]): TimelineItem("contact", _utc(c["created_at"]), c, [])
               for c in found["contacts"]}
    items = list(blocks.values())
    for event in found["events"]:
        view = _event_view(event, zone)
        block = blocks.get(("session", event["session_id"])) or blocks.get(("contact", event["contact_id"]))
        if block is not None:
            block.events.append(view)
        else:
            items.append(TimelineItem("event", _utc(event["occurred_at"]), event, [view]))
    # Closes and reopens (SPEC 3.3) as marks between the blocks: a reopen is always an interaction's
    # doing; a close shows only when no conversation_close event at that instant already shows it.
    closing_events = {_utc(event["occurred_at"]) for event in found["events"] if event["type"] == "conversation_close"}
    marks = [("reopened", at) for at in map(_utc, found["reopens"])]
    marks += [("closed", at) for at in map(_utc, found["closes"]) if at not in closing_events]
    items += [TimelineItem("mark", at, {"what": what, "local": _clock(at, zone), "utc": _iso(at)}, [])
              for what, at in marks]

    def order(item: TimelineItem) -> tuple[datetime, int]:
        """At one instant: a reopen, events (a handoff before the contact it led to), blocks, a close."""
        if item.kind == "mark":
            return item.at, 0 if item.record["what"] == "reopened" else 2
        return item.at, 0 if item.kind == "event" else 1

    return sorted(items, key=order)


def _zone(asked: str | None, default: str) -> tuple[str, str | None]:
    """The zone to show times in, and why an asked-for one was not used."""
    if asked is None:
        return default, None
    if not is_zone(asked):
        return default, f"tz {asked!r} is not an IANA time zone; showing {default}, the brand's zone"
    return asked, None


def _named_id(text: str) -> str:
    """The id in what was typed or pasted: a Conversation Link (`https://…/conversations/cnv_…?tz=…`)
    names its conversation; anything else is taken as it is, without surrounding spaces."""
    text = text.strip()
    path = urlsplit(text).path if "://" in text else text
    if "/conversations/" in path:
        return unquote(path.rsplit("/conversations/", 1)[1].strip("/"))
    return text


@router.get("/conversations", response_class=HTMLResponse)
def open_conversation(request: Request, id_: Annotated[str | None, Query(alias="id")] = None) -> Response:
    """`/conversations?id=…` opens the conversation that a conversation, session, contact or customer id
    (or a pasted Conversation Link) names, or lists them when a customer has several; without an id,
    the form that asks for one."""
    server = server_of(request)
    wanted = _blank(id_)
    with server.gate.open() as store:
        caller = require(request, store, accounts.CONVERSATIONS)
        if wanted is None:
            return server.page(request, "home.html", caller)
        wanted = _named_id(wanted)
        server.ensure_derived(store)
        found = timeline.find(store.con, wanted, caller.user.visible_brands(store.brands()))
    if len(found) == 1:
        return RedirectResponse(f"/conversations/{quote(found[0]['conversation_id'], safe='')}", status_code=303)
    for row in found:  # each in its brand's zone, as its page shows it
        zone = server.config.for_brand(row["brand"]).timezone
        row["started"] = f"{_clock(row['created_at'], ZoneInfo(zone))} ({zone})"
    return server.page(request, "home.html", caller, status=200 if found else 404, asked=wanted, found=found,
                       at_most=timeline.FOUND_AT_MOST)


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
def conversation_page(request: Request, conversation_id: str,
                      tz: Annotated[str | None, Query()] = None) -> Response:
    """The conversation's timeline (SPEC 6.3), the target of every Conversation Link; each view is
    audited (SPEC 6.5)."""
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.CONVERSATIONS)
        server.ensure_derived(store)
        brands = caller.user.visible_brands(store.brands())
        found = timeline.conversation(store.con, conversation_id, brands)
        if found is None:
            raise problem(404, "not_found", f"no conversation {conversation_id!r}", "id")
        server.audit(store, caller, "view", f"conversation/{conversation_id}", {"via": "page"}, [found["brand"]])
    brand_zone = server.config.for_brand(found["brand"]).timezone
    zone_name, zone_error = _zone(_blank(tz), brand_zone)
    zone = ZoneInfo(zone_name)
    return server.page(
        request, "conversation.html", caller, conversation=found, items=_timeline(found, zone), zone=zone_name,
        brand_zone=brand_zone, zone_error=zone_error, zones=_zones(server, [found["brand"]]),
        clock=lambda value: _clock(value, zone), iso=_iso, value_name=_value_name, anomalies=ANOMALIES,
        long_text=LONG_TEXT,
    )


# --- administration (SPEC 6.4, 6.5) ------------------------------------------------------------------

AUDIT_SHOWN = 500


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request) -> Response:
    """The newest entries of the audit log: downloads, conversation views, logins that failed, erasures."""
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.ADMINISTER)
        entries = accounts.audit_entries(store.con, limit=AUDIT_SHOWN, brands=caller.user.brands)
    return server.page(request, "audit.html", caller, entries=entries, shown=AUDIT_SHOWN, iso=_iso,
                       clock=lambda value: _clock(value, ZoneInfo("UTC")))


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request) -> Response:
    """Who may log in, in which role and for which brands; managed from the command line."""
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.ADMINISTER)
        users = accounts.list_users(store.con, brands=caller.user.brands)
    return server.page(request, "users.html", caller, users=users,
                       clock=lambda value: _clock(value, ZoneInfo("UTC")))
