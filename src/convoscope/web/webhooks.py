"""Helpdesk webhooks (issue 23, SOURCES.md 1.7): deliveries in, into the spool, and the worker that moves
the spool into the store.

A delivery is authenticated by the helpdesk's own means (Chatwoot: an HMAC signature over the timestamp
and the body, checked within a window and compared in constant time; or a secret token in the URL for
versions that do not sign), never by a convoscope login. It is mapped at once, for the answer's counts,
and written durably to the spool before the answer: the handler never waits for the store, which a long
ingest or a command may hold. The server's writer (`web/writer.py`) merges the spool into the store in rounds and
derives the customers that changed; a stopping server drains it first, and a spool a crash left behind is merged
by whichever process opens the store next.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from convoscope import service
from convoscope.config import Config
from convoscope.spool import Spool
from convoscope.web.errors import Errors
from convoscope.web.server import problem, read_body, server_of

router = APIRouter(prefix="/api/v1/sources")
log = logging.getLogger("convoscope.webhooks")

SIGNATURE_WINDOW = 300  # seconds between Chatwoot's timestamp and our clock (SOURCES.md 1.7, inferred)


class WebhookAnswer(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    ignored: int


def signature_problem(secret: str, body: bytes, timestamp: str | None, signature: str | None,
                      *, now: float) -> str | None:
    """Why a signed delivery is not Chatwoot's (SOURCES.md 1.7), or None when it is: the signature is
    `sha256=` + hex HMAC-SHA256(secret, `{timestamp}.{body}`), the timestamp whole epoch seconds within
    SIGNATURE_WINDOW of `now`."""
    if not timestamp or not signature:
        return "the delivery is not signed: send X-Chatwoot-Timestamp and X-Chatwoot-Signature"
    if not timestamp.isascii() or not timestamp.isdigit():
        return "X-Chatwoot-Timestamp is not whole epoch seconds"
    if abs(int(now) - int(timestamp)) > SIGNATURE_WINDOW:  # whole seconds, as Chatwoot stamps them
        return (f"X-Chatwoot-Timestamp is more than {SIGNATURE_WINDOW} s from this server's clock; "
                "check both clocks")
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace")):
        return "the signature does not match: check webhook_secret in [sources.chatwoot]"
    return None


def _accept(request: Request, body: bytes) -> JSONResponse:
    """Map the delivery for the answer, keep it in the spool, answer (SOURCES.md 1.7)."""
    from convoscope import sources

    server = server_of(request)
    config: Config = server.config
    brand = service.source_brand(config, "chatwoot", None)
    delivery = request.headers.get("x-chatwoot-delivery") or uuid.uuid4().hex
    record = sources.map_delivery("chatwoot", body, source=f"webhook:chatwoot:{delivery}")  # as the merge maps it
    try:
        path, place, _ = Spool(server.spool_folder).keep("chatwoot", brand, body, delivery=delivery)
    except OSError as exc:  # nothing kept: the helpdesk is told so, and the server's log says why
        log.error("a webhook delivery could not be kept in %s: %s", server.spool_folder, exc)
        raise problem(503, "not_kept", f"{exc}; the delivery was not kept: check the disk beside the store") from exc
    if server.writer is not None:
        server.writer.spooled(path, place, "chatwoot", brand, record)
    if record.rejected == "malformed":
        return JSONResponse({"errors": [{"attr": "body", "code": "malformed",
                                         "detail": record.message or "the body is not a Chatwoot webhook"}]},
                            status_code=400)
    answer = WebhookAnswer(accepted=len(record.events), duplicate=0, rejected=int(record.rejected is not None),
                           ignored=int(record.ignored is not None))
    return JSONResponse(answer.model_dump())


# No convoscope credentials: Chatwoot signs a delivery, or puts a secret token in its URL (the OpenAPI document's
# `security: []`, where every other operation takes an API token).
BY_SIGNATURE: dict[str, Any] = {"security": []}

WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Kept: the events the delivery gave (accepted), and whether it was rejected or "
                         "ignored; whether an event is new or a duplicate is known once merged (the sources "
                         "report)"},
    400: {"model": Errors, "description": "Not a Chatwoot webhook body (not a JSON object, or no string "
                                                "`event`); kept as a reject"},
    401: {"model": Errors, "description": "Signature missing, wrong or out of its window, wrong token, or "
                                                "no [sources.chatwoot] secret or token configured; nothing kept"},
    413: {"model": Errors, "description": "Body over 50,000,000 bytes"},
    503: {"model": Errors, "description": "The delivery could not be kept in the spool (a full or failing disk); "
                                          "nothing kept"},
}


@router.post("/chatwoot/webhook", response_model=WebhookAnswer, responses=WEBHOOK_RESPONSES, openapi_extra=BY_SIGNATURE,
             summary="A Chatwoot webhook delivery, signed with the webhook's secret (SOURCES.md 1.7)")
async def chatwoot_webhook(request: Request) -> JSONResponse:
    body = await read_body(request)
    secret = server_of(request).config.for_source("chatwoot").webhook_secret
    if not secret:
        raise problem(401, "not_configured", "no webhook_secret in [sources.chatwoot]; set the secret Chatwoot "
                                             "shows for this webhook")
    refused = signature_problem(secret, body, request.headers.get("x-chatwoot-timestamp"),
                                request.headers.get("x-chatwoot-signature"), now=time.time())
    if refused:
        raise problem(401, "bad_signature", refused)
    return await run_in_threadpool(_accept, request, body)


@router.post("/chatwoot/webhook/{token}", response_model=WebhookAnswer, responses=WEBHOOK_RESPONSES,
             openapi_extra=BY_SIGNATURE, summary="A Chatwoot webhook delivery from a version that does not sign: the token in the URL "
                     "authenticates it")
async def chatwoot_webhook_token(request: Request, token: str) -> JSONResponse:
    body = await read_body(request)
    expected = server_of(request).config.for_source("chatwoot").webhook_token
    if not expected or not hmac.compare_digest(expected.encode(), token.encode("utf-8", "replace")):
        raise problem(401, "bad_token", "the webhook URL's token is not webhook_token of [sources.chatwoot]")
    return await run_in_threadpool(_accept, request, body)
