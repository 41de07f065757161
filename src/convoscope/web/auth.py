"""Who is asking, and signing in and out (SPEC 6.2, 6.4): API tokens, the web login's session cookie, CSRF
tokens, and the throttling of failed logins.

Who is asking: an API token (bearer, or HTTP Basic with user name and token), else the web login's
session cookie. Forms and cookie-authenticated API calls that change something carry the login's CSRF
token. Failed logins — the form's, and HTTP Basic's with a wrong token — are counted per user name and
per client address, and refused for a while past a limit (`accounts.login_wait`).

The machine's operator: `convoscope serve` makes a random local token at start and writes it to the 0600 file
beside the store (`cli/running.py`), so that `convoscope report` can ask the running server instead of waiting
for the store (decision 167). That token, sent as a bearer from this machine and not through a proxy, is the
command line's own user (`cli:<login>`, every permission on every brand): whoever can read that file can read
the store file itself.
"""

from __future__ import annotations

import base64
import getpass
import ipaddress
import json
import math
import re
import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from convoscope import accounts
from convoscope.accounts import User
from convoscope.store import Store
from convoscope.web.server import API_PREFIX, Caller, HTTPProblem, Server, client_of, problem, server_of

router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "convoscope_session"
LOGIN_CSRF_COOKIE = "convoscope_login_csrf"
CSRF_HEADER = "X-CSRF-Token"

# The API's credentials as the OpenAPI document declares them (issue 28), either of the two: its operations
# reference them (`SIGNED_IN`), so that Swagger's page offers to authorize with them. An operation that
# authenticates otherwise (a helpdesk's webhook, by its signature) says so with `security: []`.
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "apiToken": {"type": "http", "scheme": "bearer",
                 "description": "An API token as `Authorization: Bearer TOKEN` (`convoscope users token NAME` makes one)"},
    "userAndToken": {"type": "http", "scheme": "basic",
                     "description": "HTTP Basic with your user name and an API token as the password; failed "
                                    "attempts count as failed logins"},
}
SIGNED_IN: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]


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


def operator(request: Request, token: str) -> User | None:
    """The command line's user when `token` is the running server's local token (decision 167) and the request
    came from this machine: from a loopback address, or from the very address it reached (a server listening on
    one address of the machine), with no proxy's forwarding headers. None for any other token."""
    local: str | None = getattr(request.app.state, "local_token", None)
    if local is None or not secrets.compare_digest(token.encode(), local.encode()):
        return None
    client = client_of(request)
    server_address = (request.scope.get("server") or (None,))[0]
    try:
        loopback = client is not None and (ipaddress.ip_address(client).is_loopback or client == server_address)
    except ValueError:  # a client named otherwise than by an address (a Unix socket, a test client)
        loopback = False
    forwarded = "x-forwarded-for" in request.headers or "forwarded" in request.headers
    if not loopback or forwarded:
        raise problem(401, "bad_credentials", "the server's local token works only from this machine; "
                                              "use an API token ('convoscope users token NAME')")
    return operator_user()


def operator_user() -> User:
    """Who the command line is when it runs a report itself (`cli/reports.py`): the audit log names it so."""
    return User(f"cli:{getpass.getuser()}", "administrator", None)


AUDITED_HEADER = "X-Convoscope-Audited"


def operators_parameters(request: Request, caller: Caller) -> dict[str, object] | None:
    """The parameters the operator's command line gave, as JSON in AUDITED_HEADER: what the audit row of its report
    records, as when it makes the report itself (`--out` too). None for anyone else, or without the header."""
    sent = request.headers.get(AUDITED_HEADER)
    if sent is None or not is_operator(caller.user):
        return None
    try:
        given = json.loads(sent)
    except ValueError:
        return None
    return given if isinstance(given, dict) else None


def is_operator(user: User) -> bool:
    """Whether `user` is the machine's operator: no account's name holds a colon (`accounts.NAME_PATTERN`)."""
    return user.name.startswith("cli:")


def identify(request: Request, store: Store) -> Caller | None:
    credentials = _credentials(request)
    if credentials is not None:
        token, name = credentials
        server = server_of(request)
        local = operator(request, token) if name is None else None
        if local is not None:
            return Caller(local, by_cookie=False)
        if name is None:
            user = accounts.user_of_token(store.con, token)
            refused = accounts.token_refusal(store.con, token) if user is None else None
            if refused is not None:  # a token that once worked: worth an administrator's attention
                with server.gate.writing:
                    accounts.audit(store, refused[0], "token_refused", None,
                                   {"client": client_of(request), "reason": refused[1]})
        else:
            user = log_in(server, store, request, name, lambda: accounts.user_of_token(store.con, token, name), "basic")
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


def authenticated(request: Request) -> None:
    """Raise the 401, or the 403, that the endpoint's own `require` would have raised. Only the report
    endpoints take parameters that can be malformed (the others read a body or an id themselves)."""
    permission = accounts.REPORTS if request.url.path.startswith(f"{API_PREFIX}v1/reports") else None
    with server_of(request).gate.open() as store:
        require(request, store, permission)


def log_in(server: Server, store: Store, request: Request, name: str, verify: Callable[[], User | None],
           via: str) -> User | None:
    """`verify()`'s user, or None when the secret was wrong; 429 without calling it while logins as
    `name` or from this client are throttled. Every failure and refusal (and every form login, which
    starts the name's count again) goes to the audit log, with the client's address, never the secret."""
    client = client_of(request)
    # A "name" no user could have (a space, a symbol) is most often a password typed in the wrong box:
    # the audit log does not keep it, and only the client's count applies to it.
    recorded = name if re.fullmatch(accounts.NAME_PATTERN, name) else None
    with server.logins:
        wait = accounts.login_wait(store.con, recorded, client)
        if wait is not None:
            with server.gate.writing:
                accounts.audit(store, recorded, "login_throttled", None, {"client": client, "via": via})
            seconds = max(1, math.ceil(wait.total_seconds()))
            raise problem(429, "throttled", f"too many failed logins; wait {math.ceil(seconds / 60)} minutes "
                                            "and try again", headers={"Retry-After": str(seconds)})
        user = verify()
        if user is None or via == "form":
            with server.gate.writing:
                accounts.audit(store, recorded, "login_failed" if user is None else "login", None,
                               {"client": client, "via": via})
    return user


# --- the login form ----------------------------------------------------------------------------------------

def login_form(request: Request, status: int, message: str | None = None,
               headers: dict[str, str] | None = None, next_page: str | None = None) -> HTMLResponse:
    """The login page, with a fresh CSRF token bound to a cookie (double submit)."""
    token = secrets.token_urlsafe(32)
    # Back to the page asked for, with its query (a report's parameters, a conversation's zone).
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if next_page is None:
        next_page = wanted if request.url.path != "/login" else "/"
    response = server_of(request).page(request, "login.html", None, status=status, login_csrf=token, message=message,
                                       next=next_page)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return login_form(request, 200)


@router.post("/login")
def login(request: Request, name: Annotated[str, Form()], password: Annotated[str, Form()],
          csrf: Annotated[str, Form()], next: Annotated[str, Form()] = "/") -> Response:
    server = server_of(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not cookie or not secrets.compare_digest(cookie, csrf):
        # Nobody is logged in by it. A stale form is most often one of two tabs showing the login page
        # (each drew its own token): the user who logged in from the other tab goes on to the page
        # asked for, anyone else gets a fresh form.
        with server.gate.open() as store:
            caller = identify(request, store)
        if caller is not None and caller.by_cookie:
            return RedirectResponse(_on_this_site(next), status_code=303)
        return login_form(request, 403, "This login form had expired (a newer one was opened, perhaps in another "
                                        "tab), so nobody was logged in; log in again.", next_page=_on_this_site(next))
    with server.gate.open() as store:
        try:
            user = log_in(server, store, request, name, lambda: accounts.verify_password(store.con, name, password),
                          "form")
        except HTTPProblem as exc:
            if exc.status != 429:
                raise
            return login_form(request, 429, exc.detail[0].upper() + exc.detail[1:] + ".", exc.headers)
        if user is None:
            return login_form(request, 401, "Unknown user name or wrong password.")
        with server.gate.writing:
            session_id, _ = accounts.start_session(store, user)
    response = RedirectResponse(_on_this_site(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax",
                        max_age=int(accounts.SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


def _on_this_site(target: str) -> str:
    """Where a login goes next: only a path on this site ("//host" and "/\\host" would leave it: browsers
    read both as a host), and never the login page again."""
    if not target.startswith("/") or target.startswith(("//", "/\\")) or target == "/login":
        return "/"
    return target


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    server = server_of(request)
    request.scope["convoscope.form_csrf"] = csrf
    with server.gate.open() as store:
        caller = require(request, store, None)
        if caller.session_id:
            with server.gate.writing:
                accounts.end_session(store, caller.session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
