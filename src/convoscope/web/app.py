"""The web application and HTTP API (SPEC 6.2–6.5) over the same store the command line uses.

The server opens the store when a request needs it and closes it when no request does, so commands
run from a terminal take their turn instead of failing on DuckDB's file lock (SPEC 6.1). Requests
share one open database through cursors; whatever writes (ingest, derivation, logins, the audit log)
goes through one lock, so concurrent requests never conflict, while reads run side by side.

Who is asking: an API token (bearer, or HTTP Basic with user name and token), else the web login's
session cookie. Forms and cookie-authenticated API calls that change something carry the login's CSRF
token. Failed logins — the form's, and HTTP Basic's with a wrong token — are counted per user name and
per client address, and refused for a while past a limit (`accounts.login_wait`).
"""

from __future__ import annotations

import base64
import math
import os
import re
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from convoscope import accounts, service
from convoscope.accounts import User
from convoscope.config import Config, load_config
from convoscope.errors import ConvoscopeError
from convoscope.store import Store

HERE = Path(__file__).parent
SESSION_COOKIE = "convoscope_session"
LOGIN_CSRF_COOKIE = "convoscope_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
API_PREFIX = "/api/"
# Chart.js and the CSS come from npm packages installed by the setup (never pasted into the repository):
# `npm ci` fills node_modules next to pyproject.toml ($CONVOSCOPE_ASSETS overrides the folder).
NODE_MODULES = Path(os.environ.get("CONVOSCOPE_ASSETS", Path(__file__).resolve().parents[3] / "node_modules"))
VENDOR = {"chart.js": "chart.js/dist", "pico": "@picocss/pico/css",  # URL folder under /vendor: package folder
          "swagger-ui": "swagger-ui-dist"}


class StoreGate:
    """One open store shared by the requests in flight; closed when the last one finishes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._users = 0
        self._store: Store | None = None
        self.writing = threading.Lock()  # one writer at a time; readers never wait for it

    @contextmanager
    def open(self) -> Iterator[Store]:
        with self._lock:
            if self._store is None:
                self._store = Store(self.path)
            self._users += 1
            shared = self._store
        view = Store.over(shared.con.cursor(), self.path)
        try:
            yield view
        finally:
            view.close()
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._store is not None:
                    self._store.close()
                    self._store = None


@dataclass
class Caller:
    """The authenticated user of a request, how they proved it, and their login's CSRF token."""

    user: User
    by_cookie: bool
    csrf: str | None = None
    session_id: str | None = None


class HTTPProblem(Exception):
    """An error answered as `{"errors": [{"attr", "code", "detail"}]}` (API) or an error page."""

    def __init__(self, status: int, code: str, detail: str, attr: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.attr = status, code, detail, attr
        self.headers = headers or {}


def problem(status: int, code: str, detail: str, attr: str | None = None, *,
            headers: dict[str, str] | None = None) -> HTTPProblem:
    return HTTPProblem(status, code, detail, attr, headers)


MAX_BODY = 50_000_000  # SPEC 6.2: at most 50 MB, for a batch of events and for a webhook delivery alike


async def read_body(request: Request) -> bytes:
    """The request's body, refused with 413 past MAX_BODY: told by Content-Length before anything is read,
    else once that much has come."""
    length = int(request.headers.get("content-length") or 0)
    if length > MAX_BODY:
        raise problem(413, "too_large", f"the body is {length:,} bytes; send at most {MAX_BODY:,} per request", "body")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_BODY:
            raise problem(413, "too_large", f"the body is over {MAX_BODY:,} bytes; send at most that per request",
                          "body")
    return bytes(body)


def _credentials(request: Request) -> tuple[str, str | None] | None:
    """(token, user name or None) from the Authorization header."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), None
    if scheme.lower() == "basic":
        try:
            name, sep, token = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise problem(401, "bad_credentials", "the Basic credentials are not base64 of name:token") from None
        if sep:
            return token, name
    raise problem(401, "bad_credentials", "use 'Authorization: Bearer TOKEN' or HTTP Basic with your user name and token")


def client_of(request: Request) -> str | None:
    """The client's address (the proxy's X-Forwarded-For when uvicorn trusts the proxy)."""
    return request.client.host if request.client else None


def identify(request: Request, store: Store) -> Caller | None:
    credentials = _credentials(request)
    if credentials is not None:
        token, name = credentials
        server = server_of(request)
        if name is None:
            user = accounts.user_of_token(store.con, token)
            refused = accounts.token_refusal(store.con, token) if user is None else None
            if refused is not None:  # a token that once worked: worth an administrator's attention
                with server.gate.writing:
                    accounts.audit(store, refused[0], "token_refused", None,
                                   {"client": client_of(request), "reason": refused[1]})
        else:
            user = server.log_in(store, request, name, lambda: accounts.user_of_token(store.con, token, name), "basic")
        if user is None:
            # The same words whether the token never existed, expired or was revoked.
            raise problem(401, "bad_credentials", "the API token is unknown, expired or revoked; "
                                                  "create one with 'convoscope users token NAME'")
        return Caller(user, by_cookie=False)
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        found = accounts.session_user(store.con, session_id)
        if found is not None:
            return Caller(found[0], by_cookie=True, csrf=found[1], session_id=session_id)
    return None


def require(request: Request, store: Store, permission: str | None) -> Caller:
    """The caller, who must hold `permission`: 401 without credentials, 403 without the permission.
    Cookie-authenticated requests that change something must carry the login's CSRF token."""
    caller = identify(request, store)
    if caller is None:
        raise problem(401, "not_authenticated", "log in, or send an API token (Authorization: Bearer TOKEN)")
    if permission is not None and not caller.user.can(permission):
        raise problem(403, "forbidden", f"the {caller.user.role_title} role may not do this")
    if caller.by_cookie and request.method not in ("GET", "HEAD", "OPTIONS"):
        sent = request.headers.get(CSRF_HEADER) or request.scope.get("convoscope.form_csrf")
        if not sent or not caller.csrf or not secrets.compare_digest(sent, caller.csrf):
            raise problem(403, "csrf", "the form is stale or came from another site; reload the page and try again")
    return caller


def _authenticated(request: Request) -> None:
    """Raise the 401, or the 403, that the endpoint's own `require` would have raised. Only the report
    endpoints take parameters that can be malformed (the others read a body or an id themselves)."""
    permission = accounts.REPORTS if request.url.path.startswith(f"{API_PREFIX}v1/reports") else None
    with server_of(request).gate.open() as store:
        require(request, store, permission)


class NoStore:
    """`Cache-Control: no-store` on every answer but the static files: pages, reports and API answers
    hold data that must not outlive the login (SPEC 6.5). Without it a browser's back button showed a
    conversation's messages again after logging out, from its cache."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(("/static/", "/vendor/")):
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, sending)


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith(API_PREFIX)


class Server:
    """What every route needs: the store gate, the configuration and the templates."""

    def __init__(self, db_path: Path, config_path: Path | None = None, config: Config | None = None) -> None:
        from convoscope.spool import spool_folder
        from convoscope.web.webhooks import SpoolWorker

        self.gate = StoreGate(db_path)
        self.config = config if config is not None else load_config(config_path)
        self.spool_folder = spool_folder(db_path)
        self.spool_worker = SpoolWorker(self)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        # One login check at a time: a burst of parallel guesses cannot all pass before the first is counted.
        self.logins = threading.Lock()

    def ensure_derived(self, store: Store) -> None:
        """Derive what changed since the last ingest before anything reads the derived tables."""
        from convoscope.derive.duckdb_engine import needs_derive

        if needs_derive(store, self.config):
            with self.gate.writing:
                service.ensure_derived(store, self.config)

    def log_in(self, store: Store, request: Request, name: str, verify: Callable[[], User | None],
               via: str) -> User | None:
        """`verify()`'s user, or None when the secret was wrong; 429 without calling it while logins as
        `name` or from this client are throttled. Every failure and refusal (and every form login, which
        starts the name's count again) goes to the audit log, with the client's address, never the secret."""
        client = client_of(request)
        # A "name" no user could have (a space, a symbol) is most often a password typed in the wrong box:
        # the audit log does not keep it, and only the client's count applies to it.
        recorded = name if re.fullmatch(accounts.NAME_PATTERN, name) else None
        with self.logins:
            wait = accounts.login_wait(store.con, recorded, client)
            if wait is not None:
                with self.gate.writing:
                    accounts.audit(store, recorded, "login_throttled", None, {"client": client, "via": via})
                seconds = max(1, math.ceil(wait.total_seconds()))
                raise problem(429, "throttled", f"too many failed logins; wait {math.ceil(seconds / 60)} minutes "
                                                "and try again", headers={"Retry-After": str(seconds)})
            user = verify()
            if user is None or via == "form":
                with self.gate.writing:
                    accounts.audit(store, recorded, "login_failed" if user is None else "login", None,
                                   {"client": client, "via": via})
        return user

    def audit(self, store: Store, caller: Caller, action: str, target: str | None, parameters: dict[str, Any],
              brands: list[str] | None) -> None:
        with self.gate.writing:
            accounts.audit(store, caller.user.name, action, target, parameters, brands)

    def page(self, request: Request, template: str, caller: Caller | None, status: int = 200,
             **context: Any) -> HTMLResponse:
        return self.templates.TemplateResponse(request, template, {"caller": caller, "user": caller.user if caller else None,
                                                                   "csrf": caller.csrf if caller else None, **context},
                                               status_code=status)


def server_of(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


def create_app(db_path: Path, config_path: Path | None = None, *, config: Config | None = None) -> FastAPI:
    from convoscope.web import api, pages, webhooks

    server = Server(db_path, config_path, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """The spool worker runs while the server does; a stopping server merges what is left first."""
        server.spool_worker.start()
        yield
        await run_in_threadpool(server.spool_worker.drain)

    app = FastAPI(
        lifespan=lifespan,
        title="convoscope",
        version="1",
        summary="Reports on AI sessions, team contacts and conversations derived from a support event log.",
        docs_url=None,  # served below from the installed swagger-ui-dist, not from a CDN
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
    )
    app.state.server = server

    @app.exception_handler(HTTPProblem)
    async def on_problem(request: Request, exc: HTTPProblem) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="convoscope"'} if exc.status == 401 else {}
        headers |= exc.headers
        if wants_html(request):
            return await pages.error_page(request, exc, headers)
        return JSONResponse({"errors": [{"attr": exc.attr, "code": exc.code, "detail": exc.detail}]},
                            status_code=exc.status, headers=headers)

    @app.exception_handler(ConvoscopeError)
    async def on_error(request: Request, exc: ConvoscopeError) -> Response:
        return await on_problem(request, problem(400 if exc.exit_code == 2 else 500, "invalid", exc.message))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        """Refusals of the framework itself (a body that is not JSON, an unknown path or method) in the
        API's `errors` shape too (SPEC 6.2), and as the app's own error page to a browser."""
        code = {400: "invalid_json", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
        if wants_html(request) and exc.status_code in (404, 405):
            detail = (f"there is no page at {request.url.path}" if exc.status_code == 404 else
                      f"{request.url.path} does not answer a {request.method} request; use the app's links and buttons")
            return await on_problem(request, problem(exc.status_code, code, detail, headers=dict(exc.headers or {})))
        if wants_html(request):
            return await http_exception_handler(request, exc)
        return await on_problem(request, problem(exc.status_code, code, str(exc.detail),
                                                 "body" if exc.status_code == 400 else None,
                                                 headers=dict(exc.headers or {})))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        """400 with the `errors` body (SPEC 6.2). FastAPI checks a request's shape before the endpoint
        asks for credentials, so the API answers 401 or 403 here first, as it would to a well-formed
        request."""
        if request.url.path.startswith(API_PREFIX):
            try:
                await run_in_threadpool(_authenticated, request)
            except HTTPProblem as refused:
                return await on_problem(request, refused)
        errors = [{"attr": ".".join(str(p) for p in e["loc"][1:]) or None, "code": "invalid", "detail": e["msg"]}
                  for e in exc.errors()]
        return JSONResponse({"errors": errors}, status_code=400)

    def openapi() -> dict[str, Any]:
        """The document FastAPI generates, without the 422 answers it assumes: invalid requests get
        400 with the `errors` body here (SPEC 6.2)."""
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            for path in document.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = document.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """The OpenAPI document, browsable, with Swagger UI from this server: it works offline and
        tells no third party who reads it."""
        return get_swagger_ui_html(openapi_url="/api/v1/openapi.json", title="convoscope API",
                                   swagger_js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
                                   swagger_css_url="/vendor/swagger-ui/swagger-ui.css",
                                   swagger_favicon_url="/vendor/swagger-ui/favicon-32x32.png")
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for name, folder in VENDOR.items():
        if (NODE_MODULES / folder).is_dir():
            app.mount(f"/vendor/{name}", StaticFiles(directory=str(NODE_MODULES / folder)), name=f"vendor-{name}")
    app.include_router(api.router)
    app.include_router(webhooks.router)
    app.include_router(pages.router)
    app.add_middleware(NoStore)
    return app
