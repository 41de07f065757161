"""The web application and HTTP API (SPEC 6.2–6.5) over the same store the command line uses: this module
only builds it — middleware, error handlers, the OpenAPI document, static files and the routers.

The rooms of `web/`, one way down: the routers (`auth` for signing in and out, `reports`, `report_pages`
and `dashboard` for reports, `entities` and `conversation_pages` for sessions, contacts and
conversations, `search` for finding them, `events` and `webhooks` for events in, `event_pages` for the upload page
and the ingest history, `admin` for the audit log and users, `settings_pages` for the brand settings and their form,
`schedule_pages` for scheduled reports, `organization` and `unsupported` for Gladly's other endpoints) import `errors`
(problems in each interface's words) and `auth` (who is asking), which import
`server` (the store gate, the configuration, problems, forms); no router imports another router's routes
(`event_pages` uses `events`' one path in, as `report_pages` uses `reports`' data path). `rate_limit` is the middleware counting requests per token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from convoscope.config import Config
from convoscope.service.scheduler import Scheduler
from convoscope.web import (
    admin,
    auth,
    compare,
    conversation_pages,
    dashboard,
    entities,
    errors,
    event_pages,
    events,
    gladly,
    organization,
    report_pages,
    reports,
    schedule_pages,
    search,
    settings_pages,
    unsupported,
    webhooks,
)
from convoscope.web.rate_limit import RateLimit
from convoscope.web.server import HERE, NODE_MODULES, VENDOR, Server
from convoscope.web.writer import Writer


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


def create_app(db_path: Path, config_path: Path | None = None, *, config: Config | None = None,
               local_token: str | None = None, stopping: Callable[[], None] | None = None) -> FastAPI:
    """The app over the store at `db_path`. `local_token`: the token `convoscope serve` wrote beside the store for
    the command line of this machine (`auth.operator`, decision 167); None accepts no such token. `stopping` is
    called first when the server stops: `serve` removes that file then, before uvicorn ends the process by the
    signal that stopped it."""
    server = Server(db_path, config_path, config)
    worker = Writer(server)
    server.writer = worker
    scheduler = Scheduler(server.gate.open, server.gate.writing, lambda: server.config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """The writer and the scheduler of reports run while the server does; a stopping server stores what is
        left first, and lets a run under way end recorded."""
        worker.start()
        scheduler.start()
        server.scheduler = scheduler
        yield
        if stopping is not None:
            stopping()
        server.scheduler = None
        await run_in_threadpool(scheduler.stop)
        await run_in_threadpool(worker.drain)
        await run_in_threadpool(server.gate.close)  # kept open for the next request: none comes

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
    app.state.local_token = local_token
    errors.install(app)

    def openapi() -> dict[str, Any]:
        """The document FastAPI generates, without the 422 answers it assumes: invalid requests get
        400 with the `errors` body here (SPEC 6.2). It declares the API's credentials, and every operation
        takes them but those that say how they authenticate instead (the webhooks' `security: []`)."""
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            for path in document.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
                    operation.setdefault("security", auth.SIGNED_IN)
            document.setdefault("components", {})["securitySchemes"] = auth.SECURITY_SCHEMES
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
    # In the order of before (the API's, the webhooks', the pages'): the OpenAPI document lists paths so.
    for module in (events, gladly, reports, compare, entities, webhooks, auth, conversation_pages, report_pages, dashboard,
                   admin, event_pages, settings_pages, schedule_pages, search):
        app.include_router(module.router)
    for module in (organization, unsupported):  # Gladly's organization, agents, customers; what convoscope lacks
        app.include_router(module.router)
    app.add_middleware(RateLimit, server=server)
    app.add_middleware(NoStore)
    return app
