"""The web pages of SPEC 6.3: log in and out, reports, the dashboard, conversations, the audit log.

Every page answers 401 with the login form when nobody is logged in, and 403 when the role lacks the
permission (SPEC 6.4). Forms that change something carry the login's CSRF token.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from convoscope import accounts
from convoscope.web.app import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    HTTPProblem,
    Server,
    identify,
    problem,
    require,
)

router = APIRouter(include_in_schema=False)


def _server(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


def _login_form(request: Request, status: int, message: str | None = None,
                headers: dict[str, str] | None = None) -> HTMLResponse:
    """The login page, with a fresh CSRF token bound to a cookie (double submit)."""
    token = secrets.token_urlsafe(32)
    response = _server(request).page(request, "login.html", None, status=status, login_csrf=token, message=message,
                                     next=request.url.path if request.url.path != "/login" else "/")
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


async def error_page(request: Request, exc: HTTPProblem, headers: dict[str, str] | None) -> Response:
    if exc.status == 401:
        return _login_form(request, 401, None, headers)

    def render() -> Response:
        server = _server(request)
        caller = None
        if exc.status != 401:
            try:
                with server.gate.open() as store:
                    caller = identify(request, store)
            except HTTPProblem:
                caller = None
        return server.page(request, "error.html", caller, status=exc.status, problem=exc)

    return await run_in_threadpool(render)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return _login_form(request, 200)


@router.post("/login")
def login(request: Request, name: Annotated[str, Form()], password: Annotated[str, Form()],
          csrf: Annotated[str, Form()], next: Annotated[str, Form()] = "/") -> Response:
    server = _server(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not cookie or not secrets.compare_digest(cookie, csrf):
        raise problem(403, "csrf", "the login form is stale or came from another site; reload the page and try again")
    with server.gate.open() as store:
        user = accounts.verify_password(store.con, name, password)
        if user is None:
            with server.gate.writing:
                accounts.audit(store, name[:64], "login_failed", None, {"client": request.client.host if request.client else None})
            return _login_form(request, 401, "Unknown user name or wrong password.")
        with server.gate.writing:
            session_id, _ = accounts.start_session(store, user)
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target if target != "/login" else "/", status_code=303)
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax",
                        max_age=int(accounts.SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    server = _server(request)
    request.scope["convoscope.form_csrf"] = csrf
    with server.gate.open() as store:
        caller = require(request, store, None)
        if caller.session_id:
            with server.gate.writing:
                accounts.end_session(store, caller.session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    server = _server(request)
    with server.gate.open() as store:
        caller = require(request, store, None)
    if caller.user.can(accounts.REPORTS):
        return RedirectResponse("/dashboard", status_code=303)
    return server.page(request, "home.html", caller)
