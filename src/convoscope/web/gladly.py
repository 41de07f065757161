"""`POST /api/v1/reports`, the request shape of Gladly's reporting API (SPEC 6.2, Appendix B; issue 25): a
translation layer over `web/reports.py`'s one data path, not a second report engine.

Two dialects share the endpoint, told apart by `metricSet`:
- one of Gladly's report names (any case: `contactExportReportV3`) is answered in Gladly's shape
  (`reports/gladly.py`) with Gladly's validation: `startAt` and `endAt` required, `filters.channel` in
  Gladly's spellings, `filters.inboxes`, `filters.teams` and `phoneNumber` accepted (docs/gladly.md);
- one of convoscope's report names (any case) keeps SPEC 6.2's answer exactly.
Gladly's other report names get a 400 saying what convoscope lacks to produce them. Either way the report is
prepared and run by `web.reports.prepare` / `csv_answer`, through `service`, audited as every other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from convoscope import accounts, reports
from convoscope.reports import gladly
from convoscope.reports.base import Report
from convoscope.store import Store
from convoscope.web.auth import require
from convoscope.web.errors import ERROR_RESPONSES, errors_answer, named
from convoscope.web.reports import CSV_RESPONSE, Prepared, csv_answer, prepare
from convoscope.web.server import Caller, Server, problem, server_of

router = APIRouter(prefix="/api/v1")

LEVELS = {"halfHourly": "half_hour", "daily": "day", "weekly": "week", "monthly": "month",
          "quarterly": "quarter", "yearly": "year"}
_LEVELS_ANY_CASE = {level.lower(): period for level, period in LEVELS.items()}
# The names of POST /api/v1/reports for the common parameters, as its errors call them.
POST_NAMES = {"from": "startAt", "to": "endAt", "tz": "timezone", "brand": "filters.brand"}

_IDS = WithJsonSchema({"type": "array", "items": {"type": "string"}})


class ReportFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: list[str] | Literal["allChannels"] | str | None = Field(
        default=None, description="allChannels, or channels: convoscope's names, or Gladly's (chat, email, fbMessenger, sms, "
                          "twitter, voice, whatsapp, instagramDirect) for Gladly's reports")
    brand: list[str] | str | None = None
    # Gladly's reports only (convoscope's own reports refuse them, as SPEC 6.2 does any other filter):
    inboxes: Annotated[Any, _IDS] = Field(default=None,
                                          description="Gladly's reports: inboxes as the events carry them")
    teams: Annotated[Any, _IDS] = Field(default=None,
                                        description="Gladly's reports: must be empty (events carry no team)")
    phoneNumber: Annotated[Any, WithJsonSchema({"type": "string"})] = Field(
        default=None, description="Gladly's reports: accepted and ignored")


class ReportRequest(BaseModel):
    """Gladly's reporting API request (SPEC 6.2, Appendix B)."""

    model_config = ConfigDict(extra="forbid")
    metricSet: str = Field(description="One of Gladly's report names (ContactExportReportV3 …, any case) or of "
                                       "convoscope's (SPEC 4)")
    startAt: str | None = Field(default=None, description="First local date, inclusive (YYYY-MM-DD)")
    endAt: str | None = Field(default=None, description="Last local date, inclusive (YYYY-MM-DD)")
    timezone: str | None = Field(default=None, description="IANA time zone")
    aggregationLevel: str | None = Field(default=None,
                                         description="halfHourly, daily, weekly, monthly, quarterly or yearly")
    filters: ReportFilters | None = None
    startAtTime: datetime | None = Field(default=None,
                                         description="Narrows the range to instants from this one (RFC 3339)")
    endAtTime: datetime | None = Field(default=None,
                                       description="Narrows the range to instants up to this one (RFC 3339)")
    phoneNumber: Annotated[Any, WithJsonSchema({"type": "string"})] = Field(
        default=None, description="Gladly's reports: accepted and ignored")


GLADLY_ONLY = {"inboxes": "filters.inboxes", "teams": "filters.teams", "phoneNumber": "filters.phoneNumber"}


def supported() -> str:
    return (f"Gladly's {', '.join(r.name for r in gladly.GLADLY_REPORTS.values())}, or convoscope's "
            f"{', '.join(reports.REPORTS)}")


@router.post("/reports", responses=CSV_RESPONSE | ERROR_RESPONSES, response_class=Response,
             summary="Run a report with Gladly's reporting-API request shape; answers CSV")
def post_report(request: Request, body: ReportRequest) -> Response:
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.REPORTS)
        key = body.metricSet.lower()
        if key in gladly.GLADLY_REPORTS:
            return _gladly_report(server, store, caller, gladly.GLADLY_REPORTS[key], body)
        if key in gladly.UNSUPPORTED:
            raise problem(400, "invalid", f"convoscope cannot produce {body.metricSet}: it has no "
                                          f"{gladly.UNSUPPORTED[key]}. Supported: {supported()}", "metricSet")
        if key not in reports.REPORTS:
            raise problem(400, "invalid", f"metricSet {body.metricSet!r} is not a report; use one of {supported()}",
                          "metricSet")
        return _own_report(server, store, caller, reports.REPORTS[key], body)


def _as_list(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


# --- convoscope's own report names: SPEC 6.2, unchanged ---------------------------------------------------

def _own_report(server: Server, store: Store, caller: Caller, report: Report, body: ReportRequest) -> Response:
    filters = body.filters or ReportFilters()
    extra = [attr for field, attr in GLADLY_ONLY.items() if field in filters.model_fields_set]
    extra += ["phoneNumber"] if "phoneNumber" in body.model_fields_set else []
    if extra:  # SPEC 6.2: filters other than channel and brand are refused, as the model refused them before
        return errors_answer(400, [{"attr": attr, "code": "invalid", "detail": "Extra inputs are not permitted"}
                                   for attr in extra])
    level = body.aggregationLevel
    if level is not None and level not in LEVELS:
        raise problem(400, "invalid", f"aggregationLevel {level!r} is not one of {', '.join(LEVELS)}",
                      "aggregationLevel")
    prepared = _prepare(server, store, caller, report, body, LEVELS[level] if level else None)
    channels = _as_list(filters.channel)
    if channels and channels != ["allChannels"]:
        if "channel" not in report.where:
            raise problem(400, "invalid", f"{report.name} has no channel to filter on; leave filters.channel out",
                          "filters.channel")
        prepared.params.channels = channels
    return _answer(server, store, prepared, body)


def _prepare(server: Server, store: Store, caller: Caller, report: Report, body: ReportRequest,
             period: str | None) -> Prepared:
    """Either dialect's report prepared through `web.reports.prepare` with the body's range, time zone and
    brands, a parameter's error naming the body's field (`POST_NAMES`); `period` only for a report that takes
    one."""
    filters = body.filters or ReportFilters()
    with named(POST_NAMES):
        return prepare(server, store, caller, report.name, "api", brands=_as_list(filters.brand),
                       date_from=body.startAt, date_to=body.endAt, tz=body.timezone,
                       period=period if report.takes_period else None)


def _answer(server: Server, store: Store, prepared: Prepared, body: ReportRequest, *,
            filename: str | None = None) -> Response:
    """Either dialect's last steps: the range narrowed to the body's instants, then the CSV, the body audited."""
    _narrow(prepared, body)
    return csv_answer(server, store, prepared, body.model_dump(mode="json", exclude_none=True), filename=filename)


def _narrow(prepared: Prepared, body: ReportRequest) -> None:
    """`startAtTime` / `endAtTime`: the range narrowed to instants, inclusive."""
    for attr, value in (("startAtTime", body.startAtTime), ("endAtTime", body.endAtTime)):
        if value is not None and value.tzinfo is None:
            raise problem(400, "invalid", f"{attr} needs a UTC offset, such as 2026-05-01T00:00:00Z", attr)
    if body.startAtTime and body.endAtTime and body.startAtTime > body.endAtTime:
        raise problem(400, "invalid", f"startAtTime {body.startAtTime.isoformat()} is after endAtTime "
                                      f"{body.endAtTime.isoformat()}; swap them", "startAtTime")
    prepared.params.start_at, prepared.params.end_at = body.startAtTime, body.endAtTime


# --- Gladly's report names: Gladly's shape and validation (docs/gladly.md) ---------------------------------

def _gladly_report(server: Server, store: Store, caller: Caller, report: Report, body: ReportRequest) -> Response:
    key = report.name.lower()
    filters = body.filters or ReportFilters()
    _gladly_range(report, body)
    level = body.aggregationLevel
    if level is not None and level.lower() not in _LEVELS_ANY_CASE:
        raise problem(400, "invalid", f"the specified value is not a valid aggregation level: {level!r}; use one of "
                                      f"{', '.join(LEVELS)}", "aggregationLevel")
    channels = _gladly_channels(filters.channel)
    if channels and key not in gladly.CHANNEL_FILTERED:
        raise problem(400, "invalid", f"Gladly's {report.name} takes no channel filter; send allChannels or leave "
                                      "filters.channel out", "filters.channel")
    if _ids(filters.teams, "filters.teams"):
        raise problem(400, "present", "the requested team does not exist: convoscope's events carry no team, so "
                                      "filters.teams must be empty", "filters.teams")
    inboxes = _ids(filters.inboxes, "filters.inboxes")
    if inboxes and key not in gladly.INBOX_FILTERED:
        raise problem(400, "invalid", f"Gladly's {report.name} takes no inbox filter; leave filters.inboxes empty",
                      "filters.inboxes")
    prepared = _prepare(server, store, caller, report, body, _LEVELS_ANY_CASE[(level or "daily").lower()])
    params = prepared.params
    if inboxes:
        known = gladly.known_inboxes(store, params, inboxes)
        missing = [i for i in inboxes if i not in known]
        if missing:
            carried = gladly.inbox_examples(store, params)
            raise problem(400, "present", f"the requested inbox does not exist: {missing[0]!r} is on no event of "
                                          f"{', '.join(params.brands) or 'any brand'}"
                                          + (f"; inboxes there include {', '.join(carried)}" if carried else ""),
                          "filters.inboxes")
        params.inboxes = inboxes
    if channels:
        params.channel_names = [name for name, _ in channels]
        params.channels = gladly.channels_spelled([s for _, spelled in channels for s in spelled])
    return _answer(server, store, prepared, body, filename=_filename(report, body))


def _gladly_range(report: Report, body: ReportRequest) -> None:
    """Gladly's required range: `startAt` and `endAt`, or — for ContactExportReportV3 only — `startAtTime` and
    `endAtTime` in their place."""
    if body.startAtTime is not None or body.endAtTime is not None:
        if report.name.lower() not in gladly.TIME_RANGED:
            attr = "startAtTime" if body.startAtTime is not None else "endAtTime"
            raise problem(400, "invalid", f"{attr} applies only to ContactExportReportV3; give {report.name} "
                                          "startAt and endAt", attr)
        for attr, value in (("startAtTime", body.startAtTime), ("endAtTime", body.endAtTime)):
            if value is None:
                raise problem(400, "blank", f"{attr} must be specified with "
                                            f"{'endAtTime' if attr == 'startAtTime' else 'startAtTime'}", attr)
        for attr, text in (("startAt", body.startAt), ("endAt", body.endAt)):
            if text is not None:
                raise problem(400, "present", f"{attr} must not be specified with startAtTime and endAtTime", attr)
        return
    for attr, text in (("startAt", body.startAt), ("endAt", body.endAt)):
        if not text:
            raise problem(400, "blank", f"{attr} must be specified", attr)


def _gladly_channels(value: list[str] | str | None) -> list[tuple[str, tuple[str, ...]]]:
    """Gladly's `filters.channel` (one value or a list, any case): each channel's canonical request spelling
    and the Gladly channels it selects; empty for allChannels."""
    chosen: dict[str, tuple[str, ...]] = {}
    for item in _as_list(value):
        if item.lower() == "allchannels":
            return []
        if item.lower() not in gladly.REQUEST_CHANNELS:
            spellings = ", ".join(["allChannels", *(name for name, _ in gladly.REQUEST_CHANNELS.values())])
            raise problem(400, "invalid", f"filters.channel {item!r} is not one of {spellings}", "filters.channel")
        name, spelled = gladly.REQUEST_CHANNELS[item.lower()]
        chosen[name] = spelled
    return list(chosen.items())


def _ids(value: Any, attr: str) -> list[str]:
    """A list of ids (`filters.inboxes`, `filters.teams`); one string is a list of one, null an empty one."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise problem(400, "invalid", f"{attr} must be a list of ids (strings)", attr)
    return list(dict.fromkeys(items))


def _filename(report: Report, body: ReportRequest) -> str:
    """Gladly's name for the attachment: `ContactExportReportV3-20260521-20260521.csv`, or with instants
    `…-20260521T1000Z-20260521T1700Z.csv`."""
    if body.startAtTime is not None and body.endAtTime is not None:
        start, end = (t.astimezone(UTC).strftime("%Y%m%dT%H%MZ") for t in (body.startAtTime, body.endAtTime))
    else:
        start, end = ((text or "").replace("-", "") for text in (body.startAt, body.endAt))
    return f"{report.name}-{start}-{end}.csv"
