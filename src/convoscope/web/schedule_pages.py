"""The Schedules page (issue 29, docs/schedules.md): the schedules an Administrator or Team Manager may manage,
a form adding one, Run now and Remove, and their runs with each failure and retry; and `/deliveries/TOKEN`, the
CSV a mail linked because it was too large to attach.

Everything goes through `service`: `schedules.add_schedule` checks a new schedule as the command line's `schedules
add` does, and a run happens on the server's one scheduler (`service.scheduler`), never in the request.
"""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from convoscope import accounts
from convoscope.errors import ConvoscopeError, ParameterError
from convoscope.reports import REPORTS
from convoscope.service import delivery
from convoscope.service import schedules as schedule_service
from convoscope.web.auth import identify, require
from convoscope.web.server import COMMON_ZONES, FieldError, blank, clock, iso, problem, server_of

router = APIRouter(include_in_schema=False)

FIELDS = ("report", "range", "cron", "timezone", "recipients", "brand", "period", "by", "where", "headers", "extra")
RUNS_SHOWN = 100


def _page(request: Request, *, status: int = 200, error: FieldError | None = None,
          form: dict[str, str] | None = None, notice: str | None = None) -> Response:
    server = server_of(request)
    with server.gate.open() as store:
        who = require(request, store, accounts.SCHEDULE)
        found = schedule_service.list_schedules(store.con, who.user)
        runs = delivery.list_runs(store, [s.id for s in found], limit=RUNS_SHOWN)
        brands = who.user.visible_brands(store.brands(kept=True))
    utc = ZoneInfo("UTC")
    return server.page(request, "schedules.html", who, status=status, schedules=found, runs=runs, error=error,
                       form=form or {}, notice=notice, reports=list(REPORTS), ranges=schedule_service.RANGES,
                       zones=COMMON_ZONES, brands=brands, iso=iso, clock=lambda value: clock(value, utc),
                       describe=schedule_service.describe, shown=RUNS_SHOWN)


@router.get("/schedules", response_class=HTMLResponse)
def schedules_page(request: Request, added: int | None = None, ran: int | None = None,
                   removed: int | None = None) -> Response:
    notice = (f"Schedule {added} added." if added else f"Schedule {ran} is running now; its run is listed below "
              "once it ends (reload the page)." if ran else f"Schedule {removed} removed." if removed else None)
    return _page(request, notice=notice)


@router.post("/schedules", response_class=HTMLResponse)
def add_schedule(request: Request, csrf: Annotated[str, Form()] = "", report: Annotated[str, Form()] = "",
                 range: Annotated[str, Form()] = "", cron: Annotated[str, Form()] = "",  # noqa: A002 (the form's name)
                 timezone: Annotated[str, Form()] = "UTC", recipients: Annotated[str, Form()] = "",
                 brand: Annotated[list[str] | None, Form()] = None, period: Annotated[str, Form()] = "",
                 by: Annotated[str, Form()] = "", where: Annotated[str, Form()] = "",
                 headers: Annotated[str, Form()] = "display", extra: Annotated[str, Form()] = "") -> Response:
    """Add a schedule owned by the caller, checked as `schedules add` checks one; a problem is shown beside its
    field, the form kept."""
    server = server_of(request)
    request.scope["convoscope.form_csrf"] = csrf
    form = {"report": report, "range": range, "cron": cron, "timezone": timezone, "recipients": recipients,
            "brand": ",".join(brand or []), "period": period, "by": by, "where": where, "headers": headers,
            "extra": extra}
    with server.gate.open() as store:
        caller = require(request, store, accounts.SCHEDULE)
        try:
            with server.gate.writing:
                schedule = schedule_service.add_schedule(
                    store, server.config, caller.user.name, report, range_name=range, timezone=timezone.strip(),
                    cron=cron.strip(), recipients=[r for part in recipients.splitlines() for r in part.split(",")],
                    brands=[b for b in brand or [] if b], period=blank(period), by=blank(by),
                    where=[w.strip() for w in where.splitlines() if w.strip()], headers=headers, extra=bool(extra))
        except ParameterError as exc:
            error = FieldError.of(exc, FIELDS)
            if exc.param in ("from", "to", "as_of", "tz"):
                error.field = None
            return _page(request, status=400, error=error, form=form)
        except ConvoscopeError as exc:
            return _page(request, status=400, error=FieldError(exc.worded(lambda name: name), None), form=form)
    return RedirectResponse(f"/schedules?added={schedule.id}", status_code=303)


def _managed(request: Request, schedule_id: int, csrf: str) -> accounts.User:
    server = server_of(request)
    request.scope["convoscope.form_csrf"] = csrf
    with server.gate.open() as store:
        caller = require(request, store, accounts.SCHEDULE)
        schedule = schedule_service.get_schedule(store.con, schedule_id)
    if schedule is None or not schedule_service.may_manage(caller.user, schedule):
        raise problem(404, "not_found", f"no schedule {schedule_id} you may manage")
    return caller.user


@router.post("/schedules/{schedule_id}/run")
def run_now(request: Request, schedule_id: int, csrf: Annotated[str, Form()] = "") -> Response:
    """Run the schedule now, on the server's scheduler: the run appears in the list when it ends."""
    _managed(request, schedule_id, csrf)
    scheduler = server_of(request).scheduler
    if scheduler is None:
        raise problem(503, "no_scheduler", "the scheduler is not running; try again in a moment")
    scheduler.run_now(schedule_id)
    return RedirectResponse(f"/schedules?ran={schedule_id}", status_code=303)


@router.post("/schedules/{schedule_id}/remove")
def remove(request: Request, schedule_id: int, csrf: Annotated[str, Form()] = "") -> Response:
    user = _managed(request, schedule_id, csrf)
    server = server_of(request)
    with server.gate.open() as store, server.gate.writing:
        schedule_service.remove_schedule(store, schedule_id, user)
    return RedirectResponse(f"/schedules?removed={schedule_id}", status_code=303)


@router.get("/deliveries/{token}")
def delivered_file(request: Request, token: str) -> Response:
    """A CSV too large to attach, for `[mail] link_days` after its run. The link alone opens a report without
    messages (it is what the attachment would have been); one with messages needs a login that may read them and
    every brand it covers, and its download is audited like any other (SPEC 6.5)."""
    server = server_of(request)
    config = server.config
    with server.gate.open() as store:
        found = delivery.linked_file(store, token, config.mail.link_days)
        if found is None:
            raise problem(404, "not_found", "this link is unknown or has expired; ask for the report again")
        path, run, schedule = found
        name = schedule.report if schedule else "report"
        personal = schedule is not None and REPORTS.get(schedule.report) is not None and REPORTS[schedule.report].personal_data
        if personal or schedule is None:
            caller = identify(request, store)
            if caller is None:
                raise problem(401, "not_authenticated", "this report holds messages: log in to download it")
            brands = list(schedule.brands) if schedule else []
            if not caller.user.can(accounts.REPORTS_WITH_MESSAGES) or any(
                    caller.user.brands is not None and b not in caller.user.brands for b in brands):
                raise problem(403, "forbidden", "your role or brands may not read this report")
            server.audit(store, caller, "download", name, {"schedule": run.schedule_id, "via": "link",
                                                            "from": str(run.date_from), "to": str(run.date_to)},
                         brands or None)
    filename = f"{name}_{run.date_from}_{run.date_to}.csv"
    return FileResponse(path, media_type="text/csv; charset=utf-8", filename=filename)
