"""The administrators' pages (SPEC 6.4, 6.5): the audit log and the users. Users are managed from the
command line; these pages show them, limited to the administrator's brands.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from convoscope import accounts
from convoscope.web.auth import require
from convoscope.web.server import clock, iso, server_of

router = APIRouter(include_in_schema=False)

AUDIT_SHOWN = 500


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request) -> Response:
    """The newest entries of the audit log: downloads, conversation views, logins that failed, erasures."""
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.ADMINISTER)
        entries = accounts.audit_entries(store.con, limit=AUDIT_SHOWN, brands=caller.user.brands)
    return server.page(request, "audit.html", caller, entries=entries, shown=AUDIT_SHOWN, iso=iso,
                       clock=lambda value: clock(value, ZoneInfo("UTC")))


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request) -> Response:
    """Who may log in, in which role and for which brands; managed from the command line."""
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.ADMINISTER)
        users = accounts.list_users(store.con, brands=caller.user.brands)
    return server.page(request, "users.html", caller, users=users,
                       clock=lambda value: clock(value, ZoneInfo("UTC")))
