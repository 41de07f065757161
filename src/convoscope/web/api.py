"""The HTTP API of SPEC 6.2: events in, reports out, and the entities behind the reports' ids.

`POST /api/v1/reports` speaks the request shape of the reporting API of the system the seeds describe,
so existing scripts keep working; `GET /api/v1/reports/{name}` takes the common parameters of SPEC 4.
Both render through the command line's own code, so the CSV is the same bytes.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pyarrow as pa
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from convoscope import accounts, reports, service, timeline
from convoscope.accounts import User
from convoscope.errors import ParameterError
from convoscope.reports.base import Params, Report
from convoscope.store import Store
from convoscope.web.app import Caller, Server, problem, read_body, require, server_of

router = APIRouter(prefix="/api/v1")

MAX_BATCH = 10_000
ALIASES = {
    "gladlyaisessionsdetailreport": "sessions-detail",
    "gladlyaisessionsdetailwithmessagesreport": "sessions-detail-with-messages",
    "contactexportreport": "contact-export",
    "contactexportreportv3": "contact-export",
    "contactsummaryreport": "contact-summary",
    "contactsummaryreportv2": "contact-summary",
    "conversationexportreport": "conversation-export",
    "conversationsummaryreport": "conversation-summary",
}
LEVELS = {"halfHourly": "half_hour", "daily": "day", "weekly": "week", "monthly": "month",
          "quarterly": "quarter", "yearly": "year"}
ERRORS = {"description": "The request is invalid: `{\"errors\": [{\"attr\", \"code\", \"detail\"}]}`"}
AUTH_ERRORS = {401: {"description": "No credentials, or unknown ones"},
               403: {"description": "The role lacks the permission"},
               429: {"description": "Too many failed logins for this user name or from this address (HTTP Basic); "
                                    "wait the seconds Retry-After gives"}}


class ErrorItem(BaseModel):
    attr: str | None
    code: str
    detail: str


class Errors(BaseModel):
    errors: list[ErrorItem]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Errors, **ERRORS}, 401: {"model": Errors, **AUTH_ERRORS[401]},
    403: {"model": Errors, **AUTH_ERRORS[403]}, 429: {"model": Errors, **AUTH_ERRORS[429]},
}
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The report as CSV (SPEC 4.1)"},
}



# --- events ------------------------------------------------------------------------------------------

class RejectedEvent(BaseModel):
    index: int = Field(description="Position of the event in the batch, from 0")
    reason: str


class IngestAnswer(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    errors: list[RejectedEvent]


def _batch_lines(body: bytes, content_type: str) -> list[str]:
    """The batch as one JSON text per event: a JSON array, or NDJSON (one object per line). Bytes that are
    not UTF-8 are kept (as surrogates) so that the ingester rejects their event rather than storing `�`."""
    text = body.decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise problem(400, "invalid_json", f"the body is not a JSON array: {exc}", "body") from None
        except (ValueError, RecursionError):  # Python's limits: 4,300 digits, about 1,000 levels
            raise problem(400, "invalid_json", "the body holds a number too long or JSON nested too deeply to "
                                               "read as an array; send the events as NDJSON, one per line", "body") from None
        lines = [json.dumps(item, ensure_ascii=False) for item in items]
    elif "json" in content_type or text.strip():
        # Only a line feed ends an NDJSON line: U+2028 and friends are allowed inside JSON strings.
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        if lines and not lines[-1].strip():
            lines.pop()
    else:
        lines = []
    if not any(line.strip() for line in lines):
        raise problem(400, "empty", "the batch holds no events; send a JSON array or NDJSON lines", "body")
    if len(lines) > MAX_BATCH:
        raise problem(413, "too_many", f"the batch holds {len(lines):,} events; send at most {MAX_BATCH:,} per request",
                      "body")
    return lines


def _utf8(line: str) -> bytes:
    """A line as it came: bytes that were not UTF-8 go back as they were, so that the ingester rejects
    their event; a lone surrogate from a JSON array's `\\ud800` goes back as that escape (not valid JSON)."""
    try:
        return line.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return line.encode("utf-8", errors="backslashreplace")


def _brand_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if sum(key == "brand" for key, _ in pairs) > 1:
        raise ValueError("brand is given twice")
    return dict(pairs)


def _foreign(lines: list[str], user: User) -> dict[int, str]:
    """Events of a brand the user may not send, by index. The ingester reads JSON more leniently than
    Python does (a trailing comma) and takes the first of two equal keys, Python the last: an event
    whose brand Python cannot read for certain is refused too."""
    if user.brands is None:
        return {}
    foreign = {}
    for index, line in enumerate(lines):
        if not line.strip():
            continue  # a blank NDJSON line is no event
        try:
            record = json.loads(line, object_pairs_hook=_brand_once)
        except (ValueError, RecursionError) as exc:
            foreign[index] = (f"the brand of this event cannot be checked ({str(exc).split(';')[0]}); "
                              f"send valid JSON of {', '.join(user.brands)}")
            continue
        if not isinstance(record, dict):
            continue  # the ingester rejects what is not an object
        brand = record.get("brand")
        brand = brand.strip() if isinstance(brand, str) and brand.strip() else "default"
        if brand not in user.brands:
            foreign[index] = f"brand {brand!r} is not one of yours; send events of {', '.join(user.brands)}"
    return foreign


@router.post("/events", response_model=IngestAnswer, responses=ERROR_RESPONSES | {413: {"model": Errors}},
             summary="Send a batch of events (SPEC 2): a JSON array or NDJSON, at most 10,000 events and 50 MB",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "array", "items": {"type": "object"}, "maxItems": MAX_BATCH}},
                 "application/x-ndjson": {"schema": {"type": "string"}}}}})
async def post_events(request: Request) -> IngestAnswer:
    body = await read_body(request)
    return await run_in_threadpool(_ingest_batch, server_of(request), request, body)


def _ingest_batch(server: Server, request: Request, body: bytes) -> IngestAnswer:
    with server.gate.open() as store:
        caller = require(request, store, accounts.SEND_EVENTS)
        lines = _batch_lines(body, request.headers.get("content-type", ""))
        foreign = _foreign(lines, caller.user)
        source = f"api:{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}:{caller.user.name}:{secrets.token_hex(4)}"
        with tempfile.TemporaryDirectory(prefix="convoscope-api-") as scratch:
            path = Path(scratch) / "batch.jsonl"
            # A foreign event keeps its line, blanked, so every other index still maps to its line.
            path.write_bytes(b"\n".join(b"" if i in foreign else _utf8(line.replace("\n", " "))
                                         for i, line in enumerate(lines)) + b"\n")
            with server.gate.writing:
                result = service.ingest(store, server.config, [str(path)], fmt="jsonl", source_name=source)
                _keep_refused(store, source, lines, foreign)
        reasons = store.con.execute("SELECT line, reason FROM rejects WHERE source = ? ORDER BY line, kind",
                                    [source]).fetchall()
    errors = {int(line) - 1: reason for line, reason in reasons if line is not None}
    errors.update(foreign)
    counts = result.counts
    return IngestAnswer(accepted=counts.accepted, duplicate=counts.duplicate, rejected=counts.rejected + len(foreign),
                        errors=[RejectedEvent(index=i, reason=r) for i, r in sorted(errors.items())])


def _keep_refused(store: Store, source: str, lines: list[str], foreign: dict[int, str]) -> None:
    """Events a brand-limited sender may not send are rejected and kept like any reject (SPEC 2.4: nothing
    is lost), with no brand: they stay out of the brand they name, and an administrator of every brand can
    list them (`convoscope rejects`) and ingest them for the right brand."""
    if not foreign:
        return
    indexes = sorted(foreign)
    store.con.register("_refused", pa.table({
        "reason": [foreign[i] for i in indexes], "line": [i + 1 for i in indexes],
        "raw": [_utf8(lines[i]).decode("utf-8", errors="replace") for i in indexes],
    }))
    try:
        store.con.execute("INSERT INTO rejects (kind, reason, source, line, raw, rejected_at, resolved) "
                          "SELECT 'rejected', reason, ?, line, raw, now()::TIMESTAMP, false FROM _refused", [source])
    finally:
        store.con.unregister("_refused")


# --- reports -----------------------------------------------------------------------------------------

def _visible(store: Store, user: User, requested: list[str], attr: str) -> tuple[list[str], bool]:
    """The brands a report covers and whether rows of no known brand are shown (SPEC 6.4)."""
    visible = user.visible_brands(store.brands())
    for brand in requested:
        if brand not in visible:
            raise problem(400, "invalid", f"{attr} {brand!r} is not one you may see; "
                                          f"choose from {', '.join(visible) or 'none'}", attr)
    return (requested or visible), (user.brands is None and not requested)


def check_params(server: Server, store: Store, caller: Caller, report: Report, brands: list[str],
                 names: dict[str, str] | None = None, **options: Any) -> Params:
    """The common parameters of SPEC 4 checked as the command line checks them, for this user's brands.
    An error names a parameter as the request did: `names` maps the query's names to the request's."""
    names = names or {}
    if report.personal_data and not caller.user.can(accounts.REPORTS_WITH_MESSAGES):
        raise problem(403, "forbidden", f"the {caller.user.role_title} role may not read reports with messages")
    chosen, every = _visible(store, caller.user, brands, names.get("brand", "brand"))
    try:
        params = reports.build_params(report, server.config, store.brands(), brands=chosen or None, **options)
    except ParameterError as exc:  # worded with the parameter names of the API, or of this request

        def name(param: str) -> str:
            return names.get(param, param)

        raise problem(400, "invalid", exc.worded(name), name(exc.param)) from None
    params.brands, params.every_brand = chosen, every
    return params


def audited_brands(params: Params) -> list[str] | None:
    """The brands a report's audit entry concerns: those it covered, or None when it covered every brand."""
    return None if params.every_brand else params.brands


def csv_response(server: Server, store: Store, caller: Caller, report: Report, params: Params,
                 parameters: dict[str, Any]) -> Response:
    """The report's CSV as an attachment, written by the command line's code; downloads of reports with
    messages go to the audit log (SPEC 6.5)."""
    server.ensure_derived(store)
    scratch = tempfile.TemporaryDirectory(prefix="convoscope-report-")
    path = Path(scratch.name) / f"{report.name}.csv"
    reports.render_csv(store, server.config, report, params, path)
    if report.personal_data:
        server.audit(store, caller, "download", report.name, parameters, audited_brands(params))
    return FileResponse(path, media_type="text/csv; charset=utf-8", filename=f"{report.name}.csv",
                        background=BackgroundTask(scratch.cleanup))


def json_response(server: Server, store: Store, caller: Caller, report: Report, params: Params,
                  parameters: dict[str, Any]) -> JSONResponse:
    server.ensure_derived(store)
    header, rows = reports.report_rows(store, server.config, report, params)
    if report.personal_data:
        server.audit(store, caller, "download", report.name, parameters, audited_brands(params))
    return JSONResponse({"report": report.name, "columns": header,
                         "rows": [dict(zip(header, row, strict=True)) for row in rows]})


class ReportFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: list[str] | Literal["allChannels"] | str | None = None
    brand: list[str] | str | None = None


class ReportRequest(BaseModel):
    """The reporting API request of the system the seeds describe (SPEC 6.2)."""

    model_config = ConfigDict(extra="forbid")
    metricSet: str = Field(description="A report name of SPEC 4, or an alias such as ConversationExportReport")
    startAt: str | None = Field(None, description="First local date, inclusive (YYYY-MM-DD)")
    endAt: str | None = Field(None, description="Last local date, inclusive (YYYY-MM-DD)")
    timezone: str | None = Field(None, description="IANA time zone")
    aggregationLevel: str | None = Field(None, description="halfHourly, daily, weekly, monthly, quarterly or yearly")
    filters: ReportFilters | None = None
    startAtTime: datetime | None = Field(None, description="Narrows the range to instants from this one (RFC 3339)")
    endAtTime: datetime | None = Field(None, description="Narrows the range to instants up to this one (RFC 3339)")


def _report_of(metric_set: str) -> Report:
    name = ALIASES.get(metric_set.lower(), metric_set.lower())
    if name not in reports.REPORTS:
        raise problem(400, "invalid", f"metricSet {metric_set!r} is not a report; use one of "
                                      f"{', '.join(reports.REPORTS)} or an alias such as ConversationExportReport",
                      "metricSet")
    return reports.REPORTS[name]


def _as_list(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


# The names of POST /api/v1/reports for the common parameters, as its errors call them.
POST_NAMES = {"from": "startAt", "to": "endAt", "tz": "timezone", "brand": "filters.brand"}


@router.post("/reports", responses=CSV_RESPONSE | ERROR_RESPONSES, response_class=Response,
             summary="Run a report with the seeds' reporting-API request shape; answers CSV")
def post_report(request: Request, body: ReportRequest) -> Response:
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.REPORTS)
        report = _report_of(body.metricSet)
        level = body.aggregationLevel
        if level is not None and level not in LEVELS:
            raise problem(400, "invalid", f"aggregationLevel {level!r} is not one of {', '.join(LEVELS)}",
                          "aggregationLevel")
        filters = body.filters or ReportFilters()
        params = check_params(server, store, caller, report, _as_list(filters.brand), names=POST_NAMES,
                              date_from=body.startAt, date_to=body.endAt, tz=body.timezone,
                              period=LEVELS[level] if level and report.takes_period else None)
        channels = _as_list(filters.channel)
        if channels and channels != ["allChannels"]:
            if "channel" not in report.where:
                raise problem(400, "invalid", f"{report.name} has no channel to filter on; leave filters.channel out",
                              "filters.channel")
            params.channels = channels
        for attr, value in (("startAtTime", body.startAtTime), ("endAtTime", body.endAtTime)):
            if value is not None and value.tzinfo is None:
                raise problem(400, "invalid", f"{attr} needs a UTC offset, such as 2026-05-01T00:00:00Z", attr)
        if body.startAtTime and body.endAtTime and body.startAtTime > body.endAtTime:
            raise problem(400, "invalid", f"startAtTime {body.startAtTime.isoformat()} is after endAtTime "
                                          f"{body.endAtTime.isoformat()}; swap them", "startAtTime")
        params.start_at, params.end_at = body.startAtTime, body.endAtTime
        return csv_response(server, store, caller, report, params, body.model_dump(mode="json", exclude_none=True))


REPORT_QUERY = ("from", "to", "tz", "as_of", "period", "by", "where", "headers", "extra", "brand")


@router.get("/reports/{name}", responses=CSV_RESPONSE | ERROR_RESPONSES | {404: {
    "model": Errors, "description": "No report of that name"}} | {200: {
    "content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {
        "type": "object", "required": ["report", "columns", "rows"], "properties": {
            "report": {"type": "string"}, "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {"type": "object", "additionalProperties": {
                "anyOf": [{"type": "string"}, {"type": "null"}]}}}}}}},
    "description": "The report: CSV, or JSON with `Accept: application/json`"}},
    response_class=Response, summary="Run a report with the common parameters of SPEC 4")
def get_report(
    request: Request,
    name: str,
    from_: Annotated[str | None, Query(alias="from", description="First local date, inclusive")] = None,
    to: Annotated[str | None, Query(description="Last local date, inclusive")] = None,
    tz: Annotated[str | None, Query(description="IANA time zone")] = None,
    as_of: Annotated[str | None, Query(description="RFC 3339 instant (default now)")] = None,
    period: Annotated[str | None, Query(description="Summaries: half_hour, day, week, month, quarter, year")] = None,
    by: Annotated[str | None, Query(description="sessions-summary: channel, ai_agent, guide, handoff_category")] = None,
    where: Annotated[list[str] | None, Query(description="KEY=VALUE filter, repeatable")] = None,
    headers: Annotated[Literal["display", "snake"], Query()] = "display",
    extra: Annotated[bool, Query()] = False,
    brand: Annotated[list[str] | None, Query(description="Only these brands (default: every brand you may see)")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.REPORTS)
        if name not in reports.REPORTS:
            raise problem(404, "not_found", f"no report {name!r}; use one of {', '.join(reports.REPORTS)}", "name")
        report = reports.REPORTS[name]
        unknown = sorted(set(request.query_params) - set(REPORT_QUERY))
        if unknown:  # SPEC 4: a usage error; the value is not repeated (it may be a token sent by mistake)
            raise problem(400, "invalid", f"unknown parameter {unknown[0]!r}; "
                                          f"the reports take {', '.join(REPORT_QUERY)}", unknown[0])
        params = check_params(server, store, caller, report, list(brand or []), date_from=from_, date_to=to, tz=tz,
                              as_of=as_of, period=period, by=by, where=list(where or []), headers=headers,
                              extra=extra)
        parameters = {key: values if len(values := request.query_params.getlist(key)) > 1 else values[0]
                      for key in request.query_params}
        wanted = (accept or "").lower()  # media types ignore case
        if "application/json" in wanted and "text/csv" not in wanted:
            return json_response(server, store, caller, report, params, parameters)
        return csv_response(server, store, caller, report, params, parameters)


# --- sessions, contacts, conversations ---------------------------------------------------------------

def _entity(request: Request, permission: str, kind: str, entity_id: str, audited: bool) -> dict[str, Any]:
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, permission)
        server.ensure_derived(store)
        brands = caller.user.visible_brands(store.brands())
        found = getattr(timeline, kind)(store.con, entity_id, brands)
        if found is None:
            raise problem(404, "not_found", f"no {kind} {entity_id!r}", "id")
        if audited:
            server.audit(store, caller, "view", f"{kind}/{entity_id}", {"via": "api"}, [found["brand"]])
    return jsonable(found)


def jsonable(value: Any) -> Any:
    """Times as RFC 3339 UTC strings, nested."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat().replace("+00:00", "Z")
    return value


class SessionOut(BaseModel):
    """An AI session judged now (SPEC 3.6); outcome is open, no_response, handed_off or resolved."""

    session_id: str
    conversation_id: str
    brand: str
    customer_id: str
    created_at: datetime
    ended_at: datetime | None
    is_open: bool
    end_reason: str | None
    outcome: str
    channel: str | None
    ai_agent: str | None
    guides: list[str] | None
    first_response_at: datetime | None
    handed_off: bool | None
    resolved: bool | None
    recontacted: bool | None
    handoff_category: str | None
    handoff_subcategory: str | None
    handoff_reason: str | None
    transfer_rationale: str | None
    contact_id: str | None = Field(description="The team contact a handoff opened")


class ContactOut(BaseModel):
    """A team contact judged now (SPEC 3.2)."""

    contact_id: str
    conversation_id: str
    session_id: str | None = Field(description="The AI session whose handoff opened it")
    brand: str
    customer_id: str
    source: str
    channel: str | None
    created_at: datetime
    first_response_at: datetime | None
    ended_at: datetime | None
    is_open: bool | None
    end_reason: str | None
    agents: list[str] | None
    customer_messages: int
    agent_messages: int


class EventOut(BaseModel):
    """One event of the conversation, with the session or contact it belongs to."""

    event_id: str
    type: str
    occurred_at: datetime
    speaker: Literal["customer", "ai", "agent", "system"]
    channel: str | None
    text: str | None
    route: str | None
    ai_agent: str | None
    guides: list[str] | None
    category: str | None
    subcategory: str | None
    reason: str | None
    transfer_rationale: str | None
    agent: str | None
    session_id: str | None
    contact_id: str | None
    anomaly: str | None = Field(description="The SPEC 3.3 anomaly derivation found in this event, if any")


class ConversationOut(BaseModel):
    """A conversation judged now (SPEC 3.3, 4.6) with its timeline: sessions, contacts and events."""

    conversation_id: str
    brand: str
    customer_id: str
    created_at: datetime
    ended_at: datetime | None
    status: Literal["OPEN", "CLOSED"]
    times_closed: int
    times_reopened: int
    first_channel: str | None
    last_channel: str | None
    channels: list[str] | None
    session_count: int
    contact_count: int
    handled_by: str
    first_closed_at: datetime | None
    last_closed_at: datetime | None
    closes: list[datetime] = Field(description="Every counted close up to now, inferred ones included (SPEC 3.3)")
    reopens: list[datetime] = Field(description="Every reopen up to now, by a message or a conversation_reopen")
    sessions: list[SessionOut]
    contacts: list[ContactOut]
    events: list[EventOut]


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Errors, "description": "No such id among your brands"}}


@router.get("/sessions/{session_id}", response_model=SessionOut, responses=ERROR_RESPONSES | NOT_FOUND,
            summary="One AI session, judged now")
def get_session(request: Request, session_id: str) -> dict[str, Any]:
    return _entity(request, accounts.CONVERSATIONS, "session", session_id, audited=True)


@router.get("/contacts/{contact_id}", response_model=ContactOut, responses=ERROR_RESPONSES | NOT_FOUND,
            summary="One team contact, judged now")
def get_contact(request: Request, contact_id: str) -> dict[str, Any]:
    return _entity(request, accounts.CONVERSATIONS, "contact", contact_id, audited=True)


@router.get("/conversations/{conversation_id}", response_model=ConversationOut,
            responses=ERROR_RESPONSES | NOT_FOUND,
            summary="One conversation with its sessions, contacts and every event (its timeline)")
def get_conversation(request: Request, conversation_id: str) -> dict[str, Any]:
    return _entity(request, accounts.CONVERSATIONS, "conversation", conversation_id, audited=True)
