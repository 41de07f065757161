"""Events in over HTTP (SPEC 6.2): `POST /api/v1/events`, a batch of up to 10,000 events as a JSON array or
NDJSON, read as a file's events are and stored by the server's writer (`web/writer.py`) in its next round, with
whatever else came meanwhile; the answer comes once the round derived them, so the next report shows them. A sender
limited to some brands has the events of other brands refused, and kept as rejects. `ingest_batch` is that
one path, which the upload page (`event_pages.py`) takes too, so that a file uploaded there gets the API's
answer. Helpdesks' webhooks come in through `webhooks.py`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from convoscope import accounts, service
from convoscope.accounts import User
from convoscope.store import Store
from convoscope.web.auth import require
from convoscope.web.errors import ERROR_RESPONSES, Errors
from convoscope.web.server import Caller, Server, problem, read_body, server_of

router = APIRouter(prefix="/api/v1")

MAX_BATCH = 10_000


class RejectedEvent(BaseModel):
    index: int = Field(description="Position of the event in the batch, from 0")
    reason: str


class IngestAnswer(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    errors: list[RejectedEvent]


@dataclass(frozen=True)
class Sent:
    """How a refusal of a batch names what was sent, and what to do: the API's request body, or a file
    uploaded on the events page (`hint`: another way, added to a refusal for its size)."""

    body: str = "the body"
    batch: str = "the batch"
    per: str = "per request"
    hint: str = ""


REQUEST = Sent()


@dataclass
class Stored:
    """A batch stored: the API's answer, and whether the batch was a JSON array (an error's index counts its
    items) or NDJSON (an error's index is its line's number less one)."""

    answer: IngestAnswer
    array: bool


def _batch_lines(body: bytes, content_type: str, sent: Sent = REQUEST) -> tuple[list[str], bool]:
    """The batch as one JSON text per event, and whether it was a JSON array: a JSON array, or NDJSON (one
    object per line). Bytes that are not UTF-8 are kept (as surrogates) so that the ingester rejects their
    event rather than storing `�`."""
    text = body.decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
    array = text.lstrip().startswith("[")
    if array:
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise problem(400, "invalid_json", f"{sent.body} is not a JSON array: {exc}", "body") from None
        except (ValueError, RecursionError):  # Python's limits: 4,300 digits, about 1,000 levels
            raise problem(400, "invalid_json", f"{sent.body} holds a number too long or JSON nested too deeply "
                                               "to read as an array; send the events as NDJSON, one per line",
                          "body") from None
        lines = [json.dumps(item, ensure_ascii=False) for item in items]
    elif "json" in content_type or text.strip():
        # Only a line feed ends an NDJSON line: U+2028 and friends are allowed inside JSON strings.
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        if lines and not lines[-1].strip():
            lines.pop()
    else:
        lines = []
    if not any(line.strip() for line in lines):
        raise problem(400, "empty", f"{sent.batch} holds no events; send a JSON array or NDJSON lines", "body")
    if len(lines) > MAX_BATCH:
        raise problem(413, "too_many", f"{sent.batch} holds {len(lines):,} events; send at most {MAX_BATCH:,} "
                                       f"{sent.per}{sent.hint}", "body")
    return lines, array


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
        return ingest_batch(server, store, caller, body, request.headers.get("content-type", ""),
                            source=source_name("api", caller)).answer


def source_name(via: str, caller: Caller, label: str = "") -> str:
    """A batch's source in rejects, duplicates and events (SPEC 2.4): how it came, when, who sent it, a few
    random digits that tell two batches of one second apart, and a label (an uploaded file's name)."""
    return (f"{via}:{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}:{caller.user.name}:{secrets.token_hex(4)}"
            + (f":{label}" if label else ""))


def ingest_batch(server: Server, store: Store, caller: Caller, body: bytes, content_type: str, *, source: str,
                 sent: Sent = REQUEST) -> Stored:
    """Store a batch of events for `caller`, who holds the permission to send events, and answer as
    `POST /api/v1/events` does: the counts, and the reason of every rejected event by its index. Events of a
    brand outside the caller's are refused and kept as rejects."""
    lines, array = _batch_lines(body, content_type, sent)
    foreign = _foreign(lines, caller.user)
    batch = service.Batch([_utf8(line) for line in lines], source, foreign)
    if server.writer is not None:
        outcome = server.writer.store(batch)  # answered once its round stored and derived it (web/writer.py)
    else:
        with server.gate.writing:
            outcome, = service.store_batches(store, [batch], known=server.gate.known)
            service.ensure_derived(store, server.config)
    counts = outcome.counts
    answer = IngestAnswer(accepted=counts.accepted, duplicate=counts.duplicate, rejected=counts.rejected,
                          errors=[RejectedEvent(index=i, reason=r) for i, r in sorted(outcome.errors.items())])
    return Stored(answer, array)
