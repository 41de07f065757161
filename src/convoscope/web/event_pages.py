"""Events in from the web app (issue 28, SPEC 6.3, 6.4): the upload page, whose file is stored by
`events.ingest_batch`, the one path of `POST /api/v1/events`, so that it gets the API's answer (the counts
and each rejected line's reason) within the API's limits and brands; and the ingest history, what came in per
source, newest first, each source linked to its problems in the data-quality report.

An upload is a form (`multipart/form-data`) with the login's CSRF token beside the file. Its body is read
here, up to the API's 50 MB and the form's own few bytes, before the form is parsed: Starlette's form parser
would keep reading a larger one to a temporary file.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from convoscope import accounts, service
from convoscope.web.auth import require
from convoscope.web.events import MAX_BATCH, Sent, ingest_batch, source_name
from convoscope.web.server import MAX_BODY, HTTPProblem, clock, iso, problem, server_of

router = APIRouter(include_in_schema=False)

HISTORY_SHOWN = 500
ENVELOPE = 64 * 1024  # the form around the file: its boundaries, each part's headers, the CSRF token
SPLIT = "; split the file, or store it with 'convoscope ingest FILE', which takes any size"
UPLOAD = Sent(body="the file", batch="the file", per="per upload", hint=SPLIT)
LABEL = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Upload:
    """The upload form as sent: the file's bytes (None when no file was chosen), name and type."""

    data: bytes | None
    filename: str
    content_type: str


@router.get("/events/upload", response_class=HTMLResponse)
def upload_page(request: Request) -> Response:
    """The form: a file of events, JSON Lines or a JSON array, as `POST /api/v1/events` takes them."""
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.SEND_EVENTS)
    return server.page(request, "upload.html", caller, **_limits())


@router.post("/events/upload", response_class=HTMLResponse)
async def upload(request: Request) -> Response:
    """Store the file's events as the API stores a batch, and show the API's answer."""
    form = await _read_form(request)
    return await run_in_threadpool(_store_upload, request, form)


async def _read_form(request: Request) -> Upload:
    """The form's file, its CSRF token put where `require` looks for it. 413 past 50 MB of file; 400 for a
    body that is no upload form."""
    too_large = problem(413, "too_large", f"the file is over {MAX_BODY:,} bytes; upload at most that at a time{SPLIT}",
                        "file")
    if int(request.headers.get("content-length") or 0) > MAX_BODY + ENVELOPE:
        raise too_large
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_BODY + ENVELOPE:
            raise too_large
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise problem(400, "invalid_form", "send the upload form (multipart/form-data) with a file and the "
                                           "page's CSRF token")

    received = bytes(body)
    body.clear()  # one copy of up to 50 MB at a time

    async def whole() -> AsyncGenerator[bytes, None]:
        yield received

    try:
        form = await MultiPartParser(request.headers, whole(), max_files=1, max_fields=4).parse()
    except MultiPartException as exc:
        raise problem(400, "invalid_form", f"the upload form could not be read ({exc.message}); reload the page "
                                           "and choose the file again") from None
    try:
        csrf = form.get("csrf")
        request.scope["convoscope.form_csrf"] = csrf if isinstance(csrf, str) else ""
        file = form.get("file")
        if not isinstance(file, UploadFile) or not file.filename:
            return Upload(None, "", "")
        data = await file.read()
    finally:
        await form.close()
    if len(data) > MAX_BODY:
        raise too_large
    return Upload(data, file.filename, file.content_type or "")


def _store_upload(request: Request, form: Upload) -> Response:
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.SEND_EVENTS)  # with the form's CSRF token
        if form.data is None:
            return server.page(request, "upload.html", caller, status=400, error="Choose a file of events to upload.",
                               **_limits())
        source = source_name("upload", caller, _label(form.filename))
        try:
            stored = ingest_batch(server, store, caller, form.data, form.content_type, source=source, sent=UPLOAD)
        except HTTPProblem as exc:  # the file as a whole: not JSON, no events, too many
            return server.page(request, "upload.html", caller, status=exc.status, error=_sentence(exc.detail),
                               filename=form.filename, **_limits())
    return server.page(request, "upload.html", caller, stored=stored, filename=form.filename, source=source,
                       quality=quality_link(source), **_limits())


def _label(filename: str) -> str:
    """An uploaded file's name as its source name ends: the name alone (a browser may send a path), in
    letters, digits, `.`, `_` and `-`, at most 80 characters, so that the name reads in any report's cell."""
    name = PureWindowsPath(PurePosixPath(filename).name).name
    return LABEL.sub("_", name).strip("_")[:80]


def _sentence(detail: str) -> str:
    return detail[:1].upper() + detail[1:] + "."


def _limits() -> dict[str, int]:
    return {"max_events": MAX_BATCH, "max_bytes": MAX_BODY}


def quality_link(source: str) -> str:
    """The data-quality report's page, run for what came in under `source`: its rejects, conflicts, duplicates
    and the anomalies of its events."""
    return "/reports/data-quality?" + urlencode({"where": f"source={source}", "run": "1"})


@router.get("/events/history", response_class=HTMLResponse)
def history_page(request: Request) -> Response:
    """What came in, per source, the source written to last first: accepted, duplicate, rejected."""
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.ADMINISTER)
        sources = service.ingest_history(store, brands=caller.user.brands, limit=HISTORY_SHOWN)
    return server.page(request, "ingest_history.html", caller, sources=sources, shown=HISTORY_SHOWN, iso=iso,
                       clock=lambda value: clock(value, ZoneInfo("UTC")), quality=quality_link)

