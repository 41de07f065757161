"""What every route of the server needs, beneath every router: the store gate, the server's configuration
(read again when its file changes) and templates, who is asking (`Caller`), problems and the shape of
their answers, a request's body, the paths of the static files, and the helpers the forms and pages share.
It imports no router: the routers import it, and never each other.

The store gate (`gate.py`) opens the store when a request needs it and closes it a few seconds after no request
does, or as soon as none does when a command run from a terminal waits for it (`store.wanted`), so commands take
their turn instead of failing on DuckDB's file lock (SPEC 6.1). Requests share one open database through cursors;
whatever writes (ingest, derivation, logins, the audit log) goes through one lock, so concurrent requests never
conflict, while reads run side by side.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from convoscope import accounts, service
from convoscope.accounts import User
from convoscope.config import DEFAULT_PATH, Config, load_config
from convoscope.errors import ConfigError, ParameterError
from convoscope.store import Store
from convoscope.web import formats
from convoscope.web.gate import StoreGate

if TYPE_CHECKING:
    from convoscope.sources import Outcome

HERE = Path(__file__).parent
API_PREFIX = "/api/"
# Chart.js and the CSS come from npm packages installed by the setup (never pasted into the repository):
# `npm ci` fills node_modules next to pyproject.toml ($CONVOSCOPE_ASSETS overrides the folder).
NODE_MODULES = Path(os.environ.get("CONVOSCOPE_ASSETS", Path(__file__).resolve().parents[3] / "node_modules"))
VENDOR = {"chart.js": "chart.js/dist", "pico": "@picocss/pico/css",  # URL folder under /vendor: package folder
          "swagger-ui": "swagger-ui-dist"}
log = logging.getLogger("convoscope.web")


class Settings:
    """The configuration the server runs with (SPEC 5), read again when its file changes, so that the server
    and the command line give the same numbers without a restart and the store is re-derived once per
    change (issue 24). The file is the one the command line reads: `--config`, else ./convoscope.toml. Its
    change is noticed by its status (modification and change times, size, inode), looked at on each use:
    one `stat` call. A file that no longer reads (bad TOML, a bad value, gone while named by `--config`)
    leaves the server on the configuration it had, says so in the log and to administrators on every
    page (`problem`), and is read again at its next change."""

    def __init__(self, path: Path | None, config: Config | None) -> None:
        self.path = path
        self.watched = path if path is not None else DEFAULT_PATH
        self._lock = threading.Lock()
        self._seen = self._stamp()
        self.config = config if config is not None else load_config(path)
        self.problem: str | None = None

    def _stamp(self) -> tuple[int, ...] | None:
        try:
            status = self.watched.stat()
        except OSError:  # no file (the defaults), or one that cannot be read: load_config says which
            return None
        return status.st_mtime_ns, status.st_ctime_ns, status.st_size, status.st_ino

    def current(self) -> Config:
        stamp = self._stamp()
        if stamp == self._seen:
            return self.config
        with self._lock:
            if stamp != self._seen:
                self._seen = stamp
                self._read()
        return self.config

    def _read(self) -> None:
        try:
            config = load_config(self.path)
        except ConfigError as exc:
            self.problem = f"{exc.message} — the server goes on with the configuration it read before"
            log.warning("convoscope: %s", self.problem)
            return
        self.config, self.problem = config, None
        log.warning("convoscope: %s changed; the server now uses it", self.watched)


class Writes(Protocol):
    """The server's writer of events (`web/writer.py`)."""

    @property
    def running(self) -> bool: ...

    def wake(self) -> None: ...

    def spooled(self, path: Path, place: int, system: str, brand: str, record: Outcome) -> None: ...

    def store(self, batch: service.Batch) -> service.BatchOutcome: ...

    def settle(self, store: Store, config: Config) -> None: ...


class RunsNow(Protocol):
    def run_now(self, schedule_id: int) -> None: ...


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


def client_of(request: Request) -> str | None:
    """The client's address (the proxy's X-Forwarded-For when uvicorn trusts the proxy)."""
    return request.client.host if request.client else None


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith(API_PREFIX)


class Server:
    """What every route needs: the store gate, the configuration and the templates."""

    def __init__(self, db_path: Path, config_path: Path | None = None, config: Config | None = None) -> None:
        from convoscope.spool import spool_folder

        self.gate = StoreGate(db_path)
        self.settings = Settings(config_path, config)
        self.spool_folder = spool_folder(db_path)
        self.writer: Writes | None = None  # the thread storing batches and the spool (`web/writer.py`), once the app runs
        self.scheduler: RunsNow | None = None  # scheduled reports (`service.scheduler`), once the app runs
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals["formats"] = formats  # one number format per kind on every page (issue 28)
        # One login check at a time: a burst of parallel guesses cannot all pass before the first is counted.
        self.logins = threading.Lock()

    @property
    def config(self) -> Config:
        """The configuration as its file says now (`Settings`)."""
        return self.settings.current()

    def ensure_derived(self, store: Store, config: Config | None = None) -> None:
        """Derive what changed since the last ingest before anything reads the derived tables: what the writer
        stores it derives in the same round, so a reader waits for no round under way (`Writer.settle`); a brand
        whose derivation settings changed is rebuilt under the write lock, the reader waiting for it."""
        from convoscope.derive.duckdb_engine import needs_derive, stale_brands

        config = config if config is not None else self.config
        if not needs_derive(store, config):
            return
        writer = self.writer
        if writer is not None and writer.running and not stale_brands(store, config):
            writer.settle(store, config)
            return
        with self.gate.writing:
            service.ensure_derived(store, config)

    def audit(self, store: Store, caller: Caller, action: str, target: str | None, parameters: dict[str, Any],
              brands: list[str] | None) -> None:
        """An audit entry for what is not a report (a conversation viewed); reports write theirs in
        `service.run_report`."""
        with self.gate.recorded(store):
            accounts.audit(store, caller.user.name, action, target, parameters, brands)

    def page(self, request: Request, template: str, caller: Caller | None, status: int = 200,
             **context: Any) -> HTMLResponse:
        user = caller.user if caller else None
        self.settings.current()  # a page that reads no setting still tells of a file that no longer reads
        shown = self.settings.problem if user is not None and user.can(accounts.ADMINISTER) else None
        return self.templates.TemplateResponse(request, template, {"caller": caller, "user": user,
                                                                   "csrf": caller.csrf if caller else None,
                                                                   "config_problem": shown, **context},
                                               status_code=status)


def server_of(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


# --- what the forms and pages share ----------------------------------------------------------------------

COMMON_ZONES = (
    "UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin", "Europe/Madrid",
    "Europe/Amsterdam", "Europe/Stockholm", "Europe/Warsaw", "Europe/Athens", "Europe/Istanbul", "Africa/Lagos",
    "Africa/Johannesburg", "Asia/Dubai", "Asia/Kolkata", "Asia/Singapore", "Asia/Shanghai", "Asia/Tokyo",
    "Australia/Sydney", "Pacific/Auckland", "America/Sao_Paulo", "America/Mexico_City", "America/New_York",
    "America/Toronto", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
    "America/Anchorage", "Pacific/Honolulu",
)
PERIOD_NAMES = {"half_hour": "Half hour", "day": "Day", "week": "Week", "month": "Month", "quarter": "Quarter",
                "year": "Year"}
VALUE_NAMES = {"no_response": "No response", "handed_off": "Handed off", "team_only": "Team only",
               "ai_only": "AI only", "ai_then_team": "AI, then team", "ai_and_team": "AI and team"}


@dataclass
class FieldError:
    """What is wrong with a form, and the field it is about (None: the form as a whole, shown above its
    fields)."""

    message: str
    field: str | None

    @classmethod
    def of(cls, exc: ParameterError, fields: tuple[str, ...]) -> FieldError:
        """A parameter's error, beside its field when the form has one of `fields` for it, worded with the
        fields' names (the API's, SPEC 4)."""
        return cls(exc.worded(lambda name: name), exc.param if exc.param in fields else None)


@dataclass
class ReportForm:
    """A report's parameters as the form sent them, under the API's names (SPEC 4), so that the CSV
    download carries them unchanged."""

    date_from: str | None = None
    date_to: str | None = None
    tz: str | None = None
    period: str | None = None
    by: str | None = None
    where: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    as_of: str | None = None  # the instant a page's links carry (a theme's Sessions Link: issue 27)
    anchor: str | None = None  # a detail report's time the range reads (issue 28); drill-down links set it
    extra: bool = False  # the report's --extra columns too (a drill-down link sets it: they hold what it filters)

    def filter_value(self, key: str) -> str:
        """The value the form shows for filter `key` (the first, when one was given twice)."""
        return next((item.partition("=")[2] for item in self.where if item.partition("=")[0] == key), "")

    def query(self) -> list[tuple[str, str]]:
        """The parameters given, as the query of `GET /api/v1/reports/{name}`."""
        pairs = [("from", self.date_from), ("to", self.date_to), ("tz", self.tz), ("as_of", self.as_of),
                 ("period", self.period), ("by", self.by), ("anchor", self.anchor)]
        return ([(k, v) for k, v in pairs if v is not None] + ([("extra", "true")] if self.extra else [])
                + [("where", w) for w in self.where] + [("brand", b) for b in self.brands])

    def audited(self) -> dict[str, Any]:
        """The parameters as the audit log records them (SPEC 6.5)."""
        found: dict[str, Any] = {k: v for k, v in self.query() if k not in ("where", "brand")}
        if self.where:
            found["where"] = list(self.where)
        if self.brands:
            found["brand"] = list(self.brands)
        return found | {"via": "page"}


def blank(value: str | None) -> str | None:
    """A form field left empty is a parameter not given."""
    value = (value or "").strip()
    return value or None


def value_name(value: str) -> str:
    """A code such as `ai_then_team` as people read it."""
    return VALUE_NAMES.get(value, value.replace("_", " ").capitalize())


def zones(config: Config, brands: list[str]) -> list[str]:
    """Time zones to suggest: the brands' own first, then common ones."""
    return list(dict.fromkeys([*(config.for_brand(b).timezone for b in brands), *COMMON_ZONES]))


def utc(value: datetime) -> datetime:
    """The store's times are UTC; DuckDB hands TIMESTAMP columns over without a zone."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str:
    """RFC 3339 in UTC, for the `datetime` attribute of a `<time>`."""
    return utc(value).isoformat().replace("+00:00", "Z") if value is not None else ""


def clock(value: datetime | None, zone: ZoneInfo) -> str:
    """Local time `YYYY-MM-DD HH:MM:SS ±HH:MM` in `zone`, fractions of a second cut; empty for no time.
    The offset tells the two 01:30s of a night the clocks go back apart, and shows a jump forward."""
    if value is None:
        return ""
    local = utc(value).astimezone(zone)
    minutes = int((local.utcoffset() or timedelta()).total_seconds() / 60)  # seconds cut, as reports do
    sign = "-" if minutes < 0 else "+"
    return f"{local:%Y-%m-%d %H:%M:%S} {sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
