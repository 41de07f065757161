"""Gladly's limits (issue 25 point 4, decision 97): at most `[server] rate_limit` requests a second per API token
on the report API and on Gladly's organization, agents and customer-profiles endpoints, never on events in or
webhooks. Every answer of a limited endpoint carries `Ratelimit-Limit-Second` and `Ratelimit-Remaining-Second`,
as Gladly's do; one over the limit is 429 with the `errors` body and an integer `Retry-After`.

A middleware, so that every answer of those paths carries the headers — a refusal, a 400 or a 404 as well as a
report — and a request over the limit costs nothing beyond it. The count is per caller: the API token (bearer,
or HTTP Basic's), else the login's session cookie, else the client's address. Each caller has a window of one
second opened by its first request (not by the clock's second, which would cut a burst in two at random), and
the window's count goes up by each request it lets through.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from convoscope.web.auth import SESSION_COOKIE
from convoscope.web.errors import Errors, errors_answer
from convoscope.web.server import Server

# The report API (GET and POST /api/v1/reports…), search (issue 29) and Gladly's endpoints of issue 25 point 3.
LIMITED_PATHS = ("/api/v1/reports", "/api/v1/compare", "/api/v1/search", "/api/v1/organization", "/api/v1/agents", "/api/v1/customer-profiles")
LIMIT_HEADER = "Ratelimit-Limit-Second"
REMAINING_HEADER = "Ratelimit-Remaining-Second"
WINDOW = 1.0  # seconds

RATE_HEADERS = {
    LIMIT_HEADER: {"description": "Requests a second this endpoint takes per API token ([server] rate_limit)",
                   "schema": {"type": "integer"}},
    REMAINING_HEADER: {"description": "Requests left in the current second for this token",
                       "schema": {"type": "integer"}},
}
LIMITED_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": RATE_HEADERS},
    429: {"model": Errors, "headers": {**RATE_HEADERS, "Retry-After": {
        "description": "Seconds to wait before sending again", "schema": {"type": "integer"}}},
          "description": "More requests in one second than [server] rate_limit allows for this token, or too many "
                         "failed logins (HTTP Basic); wait the seconds Retry-After gives"},
}


def limited(path: str) -> bool:
    """Whether requests to `path` count against the rate limit."""
    return any(path == prefix or path.startswith(prefix + "/") for prefix in LIMITED_PATHS)


def caller_key(scope: Scope) -> bytes:
    """Whom a request counts against: its API token, else its login, else its client's address. Hashed, so
    that the table of counts holds no secret; a malformed Authorization header counts as itself."""
    connection = HTTPConnection(scope)
    header = connection.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        who = f"authorization:{header}"
        if scheme.lower() == "bearer":
            who = f"token:{value.strip()}"
        elif scheme.lower() == "basic":
            try:
                _, sep, token = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                sep, token = "", ""
            if sep:
                who = f"token:{token}"
    elif cookie := connection.cookies.get(SESSION_COOKIE):
        who = f"session:{cookie}"
    else:
        who = f"client:{connection.client.host if connection.client else ''}"
    return hashlib.sha256(who.encode()).digest()


class Windows:
    """A window of WINDOW seconds per caller, opened by its first request after the last one closed, counting
    the requests it let through. Windows that closed are dropped at most once a window, so callers that went
    away (or made-up tokens) do not pile up."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[bytes, list[float]] = {}  # caller → [opened at, requests let through]
        self._swept = clock()

    def take(self, key: bytes, limit: int) -> tuple[bool, int, int]:
        """Count one request of `key` under `limit`: whether it may go on, the requests left in its window,
        and (refused) the whole seconds until the window closes, at least 1."""
        now = self._clock()
        with self._lock:
            if now - self._swept >= WINDOW:
                self._open = {k: w for k, w in self._open.items() if w[0] + WINDOW > now}
                self._swept = now
            window = self._open.get(key)
            if window is None or window[0] + WINDOW <= now:
                window = self._open[key] = [now, 0]
            if window[1] >= limit:
                return False, 0, max(1, math.ceil(window[0] + WINDOW - now))
            window[1] += 1
            return True, max(0, limit - int(window[1])), 0


class RateLimit:
    """The middleware: counts the requests of LIMITED_PATHS per caller under the configuration's `rate_limit`
    (read as the file says now: a change applies without a restart; 0 lets every request through, without the
    headers), refuses those over it, and adds the headers to every answer of those paths."""

    def __init__(self, app: ASGIApp, server: Server) -> None:
        self.app = app
        self.server = server
        self.windows = Windows()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not limited(scope["path"]):
            await self.app(scope, receive, send)
            return
        limit = self.server.config.server.rate_limit
        if limit <= 0:
            await self.app(scope, receive, send)
            return
        allowed, remaining, wait = self.windows.take(caller_key(scope), limit)
        headers = {LIMIT_HEADER: str(limit), REMAINING_HEADER: str(remaining)}
        if not allowed:
            detail = (f"more than {limit} requests in one second with these credentials ([server] rate_limit); wait "
                      f"{wait} second{'s' if wait > 1 else ''} (Retry-After) and send the request again")
            refusal = errors_answer(429, [{"attr": None, "code": "rate_limited", "detail": detail}],
                                    {**headers, "Retry-After": str(wait)})
            await refusal(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, sending)
