"""The report pages of SPEC 6.3: every report, grouped; a report's form, whose Run shows the first rows and
the totals (through `web.reports`' data path, as the API runs it) and whose Download hands over to the
API's CSV. A parameter that cannot be used is told beside its field; date presets sit beside the range, and a
range without rows says where the brands' events are (`web/ranges.py`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from convoscope import accounts, reports
from convoscope.errors import ParameterError
from convoscope.reports.base import PERIODS, Report
from convoscope.reports.filters import suggested_values
from convoscope.store import Store
from convoscope.web import charts, drill
from convoscope.web.auth import require
from convoscope.web.ranges import ranges
from convoscope.web.reports import PAGE_SIZES, SHOWN_ROWS, Prepared, Table, View, html_table, prepare, run
from convoscope.web.server import (
    PERIOD_NAMES,
    FieldError,
    ReportForm,
    Server,
    blank,
    problem,
    server_of,
    value_name,
    zones,
)

router = APIRouter(include_in_schema=False)

REPORT_GROUPS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("AI", (
        ("sessions-detail", "One row per AI session: channel, AI agent, guides used, outcome and handoff details."),
        ("sessions-detail-with-messages", "The sessions detail with each session's customer and AI messages."),
        ("sessions-summary", "AI sessions per period, optionally by channel, AI agent, guide or handoff category, "
                             "with resolution, handoff and recontact rates."),
        ("outcomes-summary", "What became of the sessions resolved per period: confirmed or disputed by the customer, "
                             "came back, durable or still pending, with the durable resolution and negative feedback "
                             "rates."),
        ("guide-effectiveness", "Per guide: its sessions and their resolution, durable resolution, handoff, negative "
                                "feedback and recontact rates, with the top handoff categories."),
        ("handoff-themes", "Why sessions were handed off: the period's handoffs grouped into themes by the words of "
                           "their reason, transfer rationale and the customer's last message, with counts, share, trend "
                           "against the period before, top categories, guides and example conversations."),
        ("handoff-themes-with-examples", "The handoff themes with three example texts each: what the customers and "
                                         "the AI wrote."),
        ("handoff-theme-sessions", "The handed-off sessions behind the themes, one row each with its theme: where a "
                                   "theme's Sessions Link leads."),
    )),
    ("Team", (
        ("contact-export", "One row per team contact: source, channel, team members, response time and duration."),
        ("contact-summary", "Contacts ended per period: inbound, outbound and from a handoff, with response times "
                            "and durations."),
        ("handoff-funnel", "Sessions handed off per period and category, then their contacts, first replies, "
                           "contacts resolved first time and customers who came back anyway."),
    )),
    ("Conversations", (
        ("conversation-export", "One row per conversation: channels, sessions, contacts, who handled it and when "
                                "it closed."),
        ("conversation-summary", "Conversations closed per period: multichannel, AI-only and handed-off shares, "
                                 "and averages."),
        ("automation-summary", "Closed conversations per period of creation: with AI, team only, handed off, and "
                               "resolved by the AI alone with nothing coming back, over all demand."),
    )),
    ("Data quality", (
        ("data-quality", "Rejected events, conflicts, dropped duplicates and derivation anomalies, one row per "
                         "problem."),
        ("sources", "What became of the records each helpdesk sent, per period, source, way in and reason: "
                    "accepted, duplicate, ignored, rejected, truncated."),
    )),
)
# Reports shown as a list of causes above their table (issue 27: `_themes.html`).
THEME_LISTS = frozenset({"handoff-themes", "handoff-themes-with-examples"})
DESCRIPTIONS = {name: text for _, listed in REPORT_GROUPS for name, text in listed}
GROUP_OF = {name: group for group, listed in REPORT_GROUPS for name, _ in listed}
FILTER_NAMES = {"channel": "Channel", "ai_agent": "AI agent", "guide": "Guide", "handoff_category": "Handoff category",
                "outcome": "Outcome", "source": "Source", "agent": "Team member", "handled_by": "Handled by",
                "handoff_subcategory": "Handoff subcategory", "handed_off": "Handed off", "resolved": "Resolved",
                "responded": "Responded", "recontacted": "Recontacted", "closed": "Closed",
                "durable_resolution": "Durable resolution", "resolution_class": "Resolution class",
                "feedback": "Feedback", "handoff_step": "Handoff step reached", "direction": "Direction",
                "status": "Status", "multichannel": "Multichannel", "with_ai": "With AI",
                "automated_resolution": "Automated resolution", "first_channel": "First channel",
                "period": "In period (label)", "inbox": "Inbox"}


def form_fields(report: Report) -> tuple[str, ...]:
    """The parameters `report`'s form has one field for, by SPEC 4's names (the fields' own). A filter's
    error (`where`) names its key, and is shown above the fields: it is not told which of them it is about."""
    return ("from", "to", "tz", "as_of", *(("period",) if report.takes_period else ()),
            *(("by",) if report.by_columns else ()), *(("anchor",) if report.anchors else ()), "brand")


def table_url(name: str, query: list[tuple[str, str]], view: View, **changes: object) -> str:
    """The page showing the report's rows as `view` shows them with `changes` (`page=3`, `sort=…`,
    `descending=True`): its parameters, then the view's, each only when it is not the default."""
    wanted = replace(view, **changes)  # type: ignore[arg-type]
    pairs = [*query, ("run", "1")]
    if wanted.sort:
        pairs += [("sort", wanted.sort)] + ([("desc", "1")] if wanted.descending else [])
    if wanted.size != SHOWN_ROWS:
        pairs.append(("size", str(wanted.size)))
    if wanted.page != 1:
        pairs.append(("page", str(wanted.page)))
    return f"/reports/{name}?{urlencode(pairs)}"


@router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request) -> Response:
    """Every report, grouped as SPEC 6.3 groups them, with what each one holds."""
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.REPORTS)
    groups = [(title, [(reports.REPORTS[name], text) for name, text in listed]) for title, listed in REPORT_GROUPS]
    return server.page(request, "reports.html", caller, groups=groups,
                       may_read_messages=caller.user.can(accounts.REPORTS_WITH_MESSAGES))


def _report_form(request: Request, report: Report, date_from: str | None, date_to: str | None, tz: str | None,
                 as_of: str | None, period: str | None, by: str | None, where: list[str] | None,
                 brand: list[str] | None, anchor: str | None = None, extra: str | None = None) -> ReportForm:
    """The form's fields. A filter comes as `where=KEY=VALUE` (the API's form, so an API query works
    here too) or as the form's own field `where.KEY`; an empty one is no filter."""
    filters = [item for item in (where or []) if item.strip()]
    for key in report.where:
        value = blank(request.query_params.get(f"where.{key}"))
        if value is not None:
            filters.append(f"{key}={value}")
    return ReportForm(date_from=blank(date_from), date_to=blank(date_to), tz=blank(tz), period=blank(period),
                      by=blank(by), where=tuple(filters), brands=tuple(b for b in (brand or []) if b.strip()),
                      as_of=blank(as_of), anchor=blank(anchor),
                      extra=bool(report.extra_columns) and (blank(extra) or "false").lower() in ("1", "true", "on", "yes"))


def _chart(server: Server, store: Store, prepared: Prepared | None, table: Table | None) -> dict[str, Any] | None:
    """The chart above a summary's table (`charts.report_chart`): drawn from the report's own rows for the page's
    parameters, all of them up to CHART_ROWS (not the table's first rows). A summary holds no messages: running it
    again audits nothing."""
    if prepared is None or table is None or not charts.draws(prepared.report):
        return None
    rows = run(server, store, prepared, given={}, limit=charts.CHART_ROWS, action="view").rows
    return charts.report_chart(store, prepared.report, prepared.params, rows, table.count)


@router.get("/reports/{name}", response_class=HTMLResponse)
def report_page(
    request: Request,
    name: str,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    tz: Annotated[str | None, Query()] = None,
    as_of: Annotated[str | None, Query()] = None,
    period: Annotated[str | None, Query()] = None,
    by: Annotated[str | None, Query()] = None,
    where: Annotated[list[str] | None, Query()] = None,
    brand: Annotated[list[str] | None, Query()] = None,
    anchor: Annotated[str | None, Query()] = None,
    extra: Annotated[str | None, Query()] = None,
    of: Annotated[list[str] | None, Query()] = None,
    run: Annotated[str | None, Query()] = None,
    download: Annotated[str | None, Query()] = None,
    page: Annotated[str | None, Query()] = None,
    size: Annotated[str | None, Query()] = None,
    sort: Annotated[str | None, Query()] = None,
    desc: Annotated[str | None, Query()] = None,
) -> Response:
    """A report's form; Run shows a page of its rows (sorted by a column when `sort` says so) and its totals,
    Download CSV hands over to the API."""
    server = server_of(request)
    config = server.config  # one reading for the report and the form
    with server.gate.open() as store:
        caller = require(request, store, accounts.REPORTS)
        report = reports.REPORTS.get(name)
        if report is None:
            raise problem(404, "not_found", f"no report {name!r}; use one of {', '.join(reports.REPORTS)}", "name")
        form = _report_form(request, report, from_, to, tz, as_of, period, by, where, brand, anchor, extra)
        visible = caller.user.visible_brands(store.brands(kept=True))
        prepared, error, table, chart, view, part = None, None, None, None, View(), None
        try:
            view = View.of(page, size, sort, desc)
            prepared = prepare(server, store, caller, name, "page", brands=list(form.brands), date_from=form.date_from,
                               date_to=form.date_to, tz=form.tz, as_of=form.as_of, period=form.period, by=form.by,
                               where=list(form.where), anchor=form.anchor, extra=form.extra, config=config)
        except ParameterError as exc:
            error = FieldError.of(exc, form_fields(report))
        csv_url = f"/api/v1/reports/{name}" + (f"?{urlencode(form.query())}" if form.query() else "")
        if prepared is not None and download:
            return RedirectResponse(csv_url, status_code=303)
        if prepared is not None and run:
            # Seeing the rows is reading them: as audited as a download (SPEC 6.5), as a `view`.
            try:
                table = html_table(server, store, prepared, form.audited(), action="view", view=view)
            except ParameterError as exc:
                error = FieldError.of(exc, form_fields(report))
            else:
                part = drill.part(store, prepared, of or [], form.query(), table.count)
        chart = _chart(server, store, prepared, table)
        suggestions = suggested_values(store, [key for key, choices in report.where.items() if not choices], visible)
        # The presets keep the page as it is, its rows shown when they were.
        dates = ranges(store, config, path=f"/reports/{name}", query=form.query() + ([("run", "1")] if run else []),
                       tz=form.tz, chosen=list(form.brands), visible=visible)
    zone = prepared.params.tz if prepared is not None else None
    linked = form.query()
    if prepared is not None and form.as_of is None:
        # The other pages and sorts of a result are of the same result (decision 161): judged at the instant this one
        # was, not each at its own now, so rows do not move between pages and a page's keys are listed once.
        linked.append(("as_of", prepared.params.as_of.strftime("%Y-%m-%dT%H:%M:%S.%fZ")))
    return server.page(
        request, "report.html", caller, status=400 if error else 200, report=report, form=form, error=error,
        result=table, chart=chart, ranges=dates, csv_url=csv_url, group=GROUP_OF.get(name, ""), description=DESCRIPTIONS.get(name, ""),
        brands=visible, zones=zones(config, visible), default_zone=zone or "brand default",
        periods=[(p, PERIOD_NAMES[p]) for p in PERIODS], default_period=report.default_period,
        dimensions=[(key, column.display) for key, column in report.by_columns.items()],
        filters=[(key, FILTER_NAMES.get(key, key), [(v, value_name(v)) for v in choices])
                 for key, choices in report.where.items()],
        suggestions=suggestions, view=view, page_sizes=PAGE_SIZES,
        table_url=lambda **changes: table_url(name, linked, view, **changes),
        anchors=report.anchors, part=part,
        themes=[dict(zip(table.header, row, strict=True)) for row in table.rows]
        if name in THEME_LISTS and table is not None else None,
    )
