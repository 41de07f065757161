"""The brand settings on screen (issue 28 point 1). `/settings`, for every reader of reports: each brand's settings
(SPEC 5) with their meanings and where each value comes from — the brand's own table, the file's defaults, or the
built-in default — and the file they are read from. `/settings/edit`, for administrators: a form of one brand's table
(or, for an administrator of every brand, of the defaults) that previews what the change does to the headline
figures, through the what-if machinery (`service.compare`: stored against proposed, the brand's last 30 days of data
unless told another range), and saves it to the configuration file (`config_file`: validated as `load_config` reads
it, written atomically, refused when the file changed since the form was shown), with an audit entry.

A saved file takes effect as any change of the file does: the server reads it at the next request (`Settings`), and a
brand whose derivation settings changed is derived again before its next report (`Server.ensure_derived`). The form is
a POST carrying the login's CSRF token, as the upload form does; its body is a few kilobytes, read here within a limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from convoscope import accounts, config_file, service
from convoscope.accounts import User
from convoscope.config import (
    DERIVATION_KEYS,
    KEYS,
    WHAT_IF_KEYS,
    Config,
    format_duration,
    parse_config,
    set_label,
)
from convoscope.errors import ConfigError, ParameterError
from convoscope.reports import zone_for
from convoscope.reports.filters import event_span
from convoscope.store import BRAND_PATTERN, Store
from convoscope.web.auth import require
from convoscope.web.server import Caller, FieldError, Server, problem, server_of

router = APIRouter(include_in_schema=False)

MAX_FORM = 64 * 1024  # the form's fields: nine settings, a range, the token and the fingerprint
PREVIEW_DAYS = 30
ORIGINS = {"brand": "brand", "file": "file's defaults", "built-in": "built-in"}
DEFAULTS_LABEL = "the defaults"


@dataclass
class Setting:
    """One row of the form: the key, the value the table writes (the field's text), what an empty field means (the
    value taken from the defaults), the key's meaning, and what is wrong with the value typed."""

    key: str
    value: str
    inherited: str
    meaning: str
    error: str | None = None


@dataclass
class Preview:
    """The headline figures of `brands` under the stored settings and the proposed ones (`service.compare`)."""

    brands: list[str]
    result: service.Comparison


@dataclass
class Edit:
    """The form's state: its table, fields, range, and what Preview or Save answered."""

    brand: str | None  # None: the defaults
    fingerprint: str
    settings: list[Setting]
    date_from: str = ""
    date_to: str = ""
    previews: list[Preview] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the preview or the save tells beside its figures
    saved: list[config_file.Change] | None = None
    error: FieldError | None = None

    @property
    def title(self) -> str:
        return f"brand {self.brand}" if self.brand is not None else DEFAULTS_LABEL

    def error_of(self, name: str) -> str | None:
        return self.error.message if self.error is not None and self.error.field == name else None


def shown(value: Any) -> str:
    """A setting's effective value as the page shows it: a duration as the file writes one, channels by commas."""
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, tuple | list):
        return ", ".join(value)
    return "" if value is None else str(value)


def may_edit(user: User, brand: str | None) -> bool:
    """An administrator edits the tables of the brands they administer; the defaults apply to every brand, so only an
    administrator of every brand edits them."""
    if not user.can(accounts.ADMINISTER):
        return False
    return user.brands is None or (brand is not None and brand in user.brands)


def _brands(caller: Caller, store: Store, config: Config) -> list[str]:
    """The brands the caller may see: those with events and those the file has a table for."""
    return caller.user.visible_brands(sorted(set(store.brands(kept=True)) | set(config.brands)))


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request) -> Response:
    """Every brand's settings, where each comes from and what it means, and the file they are read from."""
    server = server_of(request)
    config = server.config
    with server.gate.open() as store:
        caller = require(request, store, accounts.REPORTS)
        brands = _brands(caller, store, config)
    tables: list[tuple[str | None, list[tuple[str, str, str]]]] = [(None, [(key, shown(getattr(config.defaults, key)), config.origin(None, key)) for key in KEYS])]
    tables += [(brand, [(key, shown(getattr(config.for_brand(brand), key)), config.origin(brand, key)) for key in KEYS])
               for brand in brands]
    return server.page(request, "settings.html", caller, tables=tables, meanings={k: KEYS[k][1] for k in KEYS},
                       origins=ORIGINS, path=server.settings.watched.resolve(), exists=server.settings.watched.exists(),
                       editable=lambda brand: may_edit(caller.user, brand),
                       derivation=DERIVATION_KEYS)


def _target(caller: Caller, text: str | None) -> str | None:
    """The table a form is about: a brand's name, or None (empty) for the defaults; 400 for no brand name, 403 for a
    table the caller may not edit."""
    brand = (text or "").strip() or None
    if brand is not None and not re.fullmatch(BRAND_PATTERN, brand):
        raise problem(400, "invalid", f"brand {brand!r} is not a brand name; use lower-case letters, digits, _ or -",
                      "brand")
    if may_edit(caller.user, brand):
        return brand
    if not caller.user.can(accounts.ADMINISTER):
        raise problem(403, "forbidden", f"the {caller.user.role_title} role may not change settings; ask an "
                                        "administrator")
    if brand is None:
        raise problem(403, "forbidden", "the defaults apply to every brand, so only an administrator of every brand "
                                        "may change them; change your brands' own tables instead", "brand")
    raise problem(403, "forbidden", f"you administer {', '.join(caller.user.brands or ())}; brand {brand} is not one "
                                    "of them", "brand")


def _current(snapshot: config_file.Snapshot) -> Config:
    """The configuration the snapshot's file says; the built-in defaults for a file not written yet."""
    return parse_config(snapshot.text, snapshot.path) if snapshot.text else Config(path=snapshot.path)


def _form(snapshot: config_file.Snapshot, brand: str | None, typed: dict[str, str] | None = None) -> Edit:
    """The form of `brand`'s table as the file writes it now, or as `typed` when the form was sent."""
    current = _current(snapshot)
    own = snapshot.own(brand)
    settings = []
    for key, (default, meaning) in KEYS.items():
        inherited = shown(getattr(current.defaults, key)) if brand is not None else shown(default)
        value = typed.get(key, "") if typed is not None else shown(own.get(key))
        settings.append(Setting(key, value, inherited, meaning))
    return Edit(brand, snapshot.fingerprint, settings)


@router.get("/settings/edit", response_class=HTMLResponse)
def edit_page(request: Request, brand: str | None = None) -> Response:
    """The form of one table: `brand`'s, or the defaults' without one."""
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.ADMINISTER)
        target = _target(caller, brand)
        try:
            edit = _form(config_file.read(server.settings.watched), target)
        except ConfigError as exc:
            raise problem(409, "config_unreadable", exc.message) from None
    return _render(server, request, caller, edit)


@router.post("/settings/edit", response_class=HTMLResponse)
async def edit(request: Request) -> Response:
    """Preview (`action=preview`) or save (`action=save`) the form's table."""
    too_large = problem(413, "too_large", f"the form is over {MAX_FORM:,} bytes; reload the settings page", "body")
    if int(request.headers.get("content-length") or 0) > MAX_FORM:
        raise too_large
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_FORM:
            raise too_large
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50))
    except (UnicodeDecodeError, ValueError):
        raise problem(400, "invalid_form", "the settings form could not be read; reload the page") from None
    request.scope["convoscope.form_csrf"] = fields.get("csrf", "")
    return await run_in_threadpool(_answer, request, fields)


def _answer(request: Request, fields: dict[str, str]) -> Response:
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.ADMINISTER)  # with the form's CSRF token
        brand = _target(caller, fields.get("brand"))
        try:
            snapshot = config_file.read(server.settings.watched)
            edit = _form(snapshot, brand, typed=fields)
        except ConfigError as exc:
            raise problem(409, "config_unreadable", exc.message) from None
        edit.fingerprint = fields.get("fingerprint", "")  # the file the form was shown with, kept until a reload
        edit.date_from, edit.date_to = fields.get("from", "").strip(), fields.get("to", "").strip()
        values = {key: config_file.form_value(key, fields.get(key, "")) for key in KEYS}
        for setting in edit.settings:
            setting.error = config_file.check(brand, setting.key, values[setting.key])
        if any(setting.error for setting in edit.settings):
            return _render(server, request, caller, edit, status=400)
        stale = edit.fingerprint != snapshot.fingerprint
        try:
            found = config_file.changes(snapshot, brand, values)
            text, proposed = config_file.edited(snapshot, brand, found)
            if fields.get("action") == "save":
                if found:
                    _save(server, store, caller, snapshot, edit.fingerprint, brand, found, text)
                    edit.fingerprint = config_file.read(server.settings.watched).fingerprint
                edit.saved = found
                edit.notes = _effects(_current(snapshot), proposed, brand, found, store)
            else:
                if stale:
                    edit.notes.append(_stale_note(snapshot))
                if found:
                    _preview(server, store, caller, edit, proposed)
                else:
                    edit.notes.append("The form's values are those of the file: change one to preview it.")
        except config_file.StaleFile as exc:
            return _render(server, request, caller, edit, status=409, error=FieldError(exc.message, None))
        except ConfigError as exc:
            return _render(server, request, caller, edit, status=400, error=FieldError(exc.message, None))
        except ParameterError as exc:
            return _render(server, request, caller, edit, status=400, error=FieldError.of(exc, ("from", "to")))
    return _render(server, request, caller, edit)


def _stale_note(snapshot: config_file.Snapshot) -> str:
    return (f"{snapshot.path} changed since this form was shown: the preview is of the file as it is now, and Save "
            "will be refused until the page is reloaded.")


def _save(server: Server, store: Store, caller: Caller, snapshot: config_file.Snapshot, shown_with: str,
          brand: str | None, found: list[config_file.Change], text: str) -> None:
    """Write the file (refused when it changed since the form was shown with the fingerprint `shown_with`) and the
    audit entry: the table's keys with their old and new values as written (null: the table did not set it, or no
    longer does)."""
    config_file.write(snapshot, text, expected=shown_with)
    parameters = {change.key: {"old": change.old, "new": change.new} for change in found}
    server.audit(store, caller, "settings", brand if brand is not None else "defaults",
                 parameters | {"file": str(snapshot.path)}, [brand] if brand is not None else None)
    server.settings.current()  # the server reads it now rather than at the next request


def _affected(current: Config, proposed: Config, brand: str | None, brands: list[str]) -> dict[str, dict[str, Any]]:
    """Per brand whose figures the change may move, the what-if settings it changes for that brand, as a set."""
    candidates = [brand] if brand is not None else brands
    found = {}
    for name in candidates:
        before, after = current.for_brand(name), proposed.for_brand(name)
        values = {key: getattr(after, key) for key in WHAT_IF_KEYS if getattr(before, key) != getattr(after, key)}
        if values:
            found[name] = values
    return found


def _preview(server: Server, store: Store, caller: Caller, edit: Edit, proposed: Config) -> None:
    """The headline figures under the stored settings and the proposed ones, per group of brands the change moves
    alike, over the form's range, else the last PREVIEW_DAYS days of their events."""
    config = server.config  # what the stored tables are derived with
    with_events = caller.user.visible_brands(store.brands(kept=True))
    affected = {name: values for name, values in _affected(config, proposed, edit.brand, with_events).items()
                if name in with_events}
    if not affected:
        moved = edit.brand is None or edit.brand in with_events
        edit.notes.append("No headline figure depends on what this change sets (the time zone and the links change "
                          "no figure)." if moved else f"Brand {edit.brand} has no events yet, so there is no figure "
                                                      "to preview.")
        return
    if not edit.date_from and not edit.date_to:
        edit.date_from, edit.date_to = _last_days(store, config, list(affected))
    groups: dict[str, list[str]] = {}
    for name, values in affected.items():
        groups.setdefault(set_label(values), []).append(name)
    user = caller.user
    asker = service.Asker(user.name, "page", brands=user.brands, messages=user.can(accounts.REPORTS_WITH_MESSAGES))
    for label, names in groups.items():
        result = service.compare(store, config, [label], asker, brands=names, date_from=edit.date_from or None,
                                 date_to=edit.date_to or None, writing=server.gate.writing)
        edit.previews.append(Preview(names, result))


def _last_days(store: Store, config: Config, brands: list[str]) -> tuple[str, str]:
    """The last PREVIEW_DAYS local days of the brands' events, the day of the last one included."""
    span = event_span(store, brands)
    if span is None:
        return "", ""
    last = span[1].astimezone(ZoneInfo(zone_for(config, brands))).date()
    return (last - timedelta(days=PREVIEW_DAYS - 1)).isoformat(), last.isoformat()


def _effects(current: Config, proposed: Config, brand: str | None, found: list[config_file.Change],
             store: Store) -> list[str]:
    """What a save does, in sentences: nothing, or when the server uses it and what is derived again."""
    if not found:
        return ["Nothing to save: the form's values are those of the file."]
    brands = [brand] if brand is not None else sorted(set(store.brands(kept=True)) | set(proposed.brands))
    derived = [name for name in brands
               if current.for_brand(name).derivation_fingerprint() != proposed.for_brand(name).derivation_fingerprint()]
    notes = ["The server uses the file from the next request, as it does any change of the file."]
    if derived:
        notes.append(f"The derivation settings of {', '.join(derived)} changed: their sessions, contacts and "
                     "conversations are derived again before their next report or dashboard.")
    return notes


def _render(server: Server, request: Request, caller: Caller, edit: Edit, *, status: int = 200,
            error: FieldError | None = None) -> HTMLResponse:
    if error is not None:
        edit.error = error
    return server.page(request, "settings_edit.html", caller, status=status, edit=edit,
                       path=server.settings.watched.resolve(), derivation=DERIVATION_KEYS)
