"""Brand configuration (SPEC 5): one TOML file, defaults for every key, per-brand overrides.

`convoscope.toml` in the working directory is read when present; `--config PATH` names another file.
Derivation settings (the four durations of SPEC 5, `feedback_window` and `ai_channels`) decide how events
become sessions, contacts and conversations and where a feedback belongs, so the store records them with the
derived tables; rendering settings (`timezone`, `public_url`) and the report-time window `durable_window` apply
when a report is written. The `[server]` table says what `serve` calls
the installation and how many requests a second it takes per token; `[sources.NAME]` tables, how each
helpdesk's records come in; `[mail]`, the SMTP server scheduled reports are sent through.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

from convoscope.errors import ConfigError, ParameterError
from convoscope.events.schema import CHANNEL_PATTERN
from convoscope.store import BRAND_PATTERN

DEFAULT_PATH = Path("convoscope.toml")

_DURATION = re.compile(r"([0-9]+)([smhd])")
_LONGEST = timedelta(days=36_500)  # a hundred years: beyond it a duration is a typo, and time sums overflow
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CHANNEL = re.compile(CHANNEL_PATTERN)  # SPEC 2.2's, as ingestion checks them
_BRAND = re.compile(BRAND_PATTERN)

# Every key with its default and what it means; tests check that each is documented in docs/.
KEYS: dict[str, tuple[Any, str]] = {
    "timezone": ("UTC", "IANA time zone in which the brand's reports are rendered by default"),
    "session_inactivity": ("2h", "S: an AI session ends this long after its last activity"),
    "contact_inactivity": ("24h", "C: a team contact ends this long after its last activity"),
    "conversation_window": ("24h", "W: reopen window, measured from a conversation's last close"),
    "recontact_window": ("24h", "R: a resolved session counts as recontacted if another session starts within R of its end"),
    "feedback_window": ("24h", "F: a feedback given when no interaction is open attaches to the one that ended last, "
                               "if it ended at most F before (docs/outcomes.md)"),
    "ai_channels": (["*"], "channels whose unrouted customer messages go to the AI; \"*\" for all"),
    "public_url": ("http://127.0.0.1:8000", "base of every Conversation Link"),
    "durable_window": ("7d", "D: a resolved session's Durable Resolution is false when a session or contact of its "
                             "customer is created within D of its end, true once D has passed with none; judged "
                             "at report time"),
}
DERIVATION_KEYS = ("session_inactivity", "contact_inactivity", "conversation_window", "recontact_window",
                   "feedback_window", "ai_channels")

# `[sources.NAME]` tables (SOURCES.md): how each helpdesk's records come in. Every key is optional.
SOURCE_KEYS: dict[str, dict[str, str]] = {
    "chatwoot": {
        "brand": "brand given to the events of Chatwoot's records (default: --brand, else \"default\")",
        "webhook_secret": "the secret Chatwoot shows for the webhook: deliveries must carry its signature (SOURCES.md 1.7)",
        "webhook_token": "for Chatwoot versions that do not sign: the last part of the webhook URL, at least 32 characters",
    },
    "gladly": {
        "brand": "brand given to the events of a Gladly export (default: --brand, else \"default\")",
        "ai_api_users": "ids of the API users that are the AI agent; set, other API items are ignored (SOURCES.md 2.2)",
    },
}
MIN_WEBHOOK_TOKEN = 32  # it alone authenticates, in a URL: as hard to guess as a 160-bit secret

# The `[server]` table: what `serve` answers with and how much it takes, not per brand (decision 98).
SERVER_KEYS: dict[str, tuple[Any, str]] = {
    "name": ("convoscope", "the installation's name, as GET /api/v1/organization answers it"),
    "rate_limit": (10, "requests per second per API token (or login) on the report API and Gladly's organization, "
                       "agents and customer-profiles endpoints, as Gladly's default; 0 turns the limit off"),
}
MAX_NAME = 200  # as the events' names (SPEC 2.2)

# The `[mail]` table: the SMTP server scheduled reports go through (issue 29, docs/schedules.md). None: not set.
MAIL_KEYS: dict[str, tuple[Any, str]] = {
    "host": (None, "the SMTP server's host name; unset, schedules cannot send and each run fails saying so"),
    "port": (25, "its port: 25, or 587 with starttls"),
    "from": ("convoscope@localhost", "the sender's address"),
    "starttls": (False, "upgrade the connection with STARTTLS before logging in"),
    "username": (None, "log in with this name (SMTP AUTH); unset, no login"),
    "password": (None, "its password; prefer password_env, which keeps it out of the file"),
    "password_env": (None, "the environment variable holding the password"),
    "timeout": (30, "seconds to wait for the server before an attempt fails"),
    "attach_limit": (10_000_000, "bytes: a CSV larger than this is kept on the server and the mail carries a link "
                                 "to it instead"),
    "link_days": (7, "days a linked CSV is kept and its link works"),
    "attempts": (3, "attempts of a run before it is shown as failed"),
    "retry_after": ("5m", "the pause before the second attempt, doubled before each further one"),
}


@functools.cache
def _duckdb_zones() -> frozenset[str]:
    con = duckdb.connect()
    names = frozenset(name for (name,) in con.execute("SELECT name FROM pg_timezone_names()").fetchall())
    con.close()
    return names


def is_zone(name: object) -> bool:
    """Whether `name` is a time zone both DuckDB (reports) and Python (web pages) know. Python alone
    also opens files such as `posixrules` or `right/UTC` that DuckDB's ICU does not know."""
    if not isinstance(name, str) or name not in _duckdb_zones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def check_zone(name: str, *, param: str) -> str:
    """`name`, when it is a time zone (`is_zone`); else a ParameterError naming the parameter `param`."""
    if not is_zone(name):
        raise ParameterError(param, lambda n: f"{n(param)} {name!r} is not an IANA time zone; use a name such as UTC "
                                              "or Europe/Berlin")
    return name


def parse_duration(text: str) -> timedelta:
    """Parse `90m`, `1h30m`, `2d` (SPEC 5). Raises ValueError for anything else, zero, or more than
    a hundred years."""
    if not isinstance(text, str) or not text or _DURATION.sub("", text) != "":
        raise ValueError(text)
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text))
    if not 0 < seconds <= _LONGEST.total_seconds():
        raise ValueError(text)
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class BrandSettings:
    """The effective settings of one brand."""

    timezone: str = "UTC"
    session_inactivity: timedelta = timedelta(hours=2)
    contact_inactivity: timedelta = timedelta(hours=24)
    conversation_window: timedelta = timedelta(hours=24)
    recontact_window: timedelta = timedelta(hours=24)
    feedback_window: timedelta = timedelta(hours=24)
    ai_channels: tuple[str, ...] = ("*",)
    public_url: str = "http://127.0.0.1:8000"
    durable_window: timedelta = timedelta(days=7)  # a report-time setting, like timezone: not in the fingerprint

    def derivation_fingerprint(self) -> str:
        """The derivation settings as one stable string, recorded with the derived tables."""
        return (
            f"S={format_duration(self.session_inactivity)};C={format_duration(self.contact_inactivity)};"
            f"W={format_duration(self.conversation_window)};R={format_duration(self.recontact_window)};"
            f"F={format_duration(self.feedback_window)};ai_channels={','.join(sorted(self.ai_channels))}"
        )


@dataclass(frozen=True)
class SourceSettings:
    """One helpdesk's `[sources.NAME]` table (SOURCE_KEYS)."""

    brand: str | None = None
    webhook_secret: str | None = None
    webhook_token: str | None = None
    ai_api_users: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ServerSettings:
    """The `[server]` table (SERVER_KEYS)."""

    name: str = "convoscope"
    rate_limit: int = 10


@dataclass(frozen=True)
class MailSettings:
    """The `[mail]` table (MAIL_KEYS)."""

    host: str | None = None
    port: int = 25
    sender: str = "convoscope@localhost"  # `from` in the file
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    timeout: int = 30
    attach_limit: int = 10_000_000
    link_days: int = 7
    attempts: int = 3
    retry_after: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class Config:
    """Defaults plus per-brand overrides, and the helpdesk sources, as read from one TOML file."""

    defaults: BrandSettings = field(default_factory=BrandSettings)
    brands: dict[str, BrandSettings] = field(default_factory=dict)
    path: Path | None = None
    sources: dict[str, SourceSettings] = field(default_factory=dict)
    server: ServerSettings = field(default_factory=ServerSettings)
    # The keys the file itself sets, at its top (the defaults) and in each `[brands.NAME]`: where a value comes from.
    default_keys: tuple[str, ...] = ()
    brand_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    mail: MailSettings = field(default_factory=MailSettings)

    def for_brand(self, brand: str) -> BrandSettings:
        return self.brands.get(brand, self.defaults)

    def origin(self, brand: str | None, key: str) -> str:
        """Where `brand`'s (None: the defaults') value of `key` comes from: `brand` (its own table), `file` (the
        file's defaults) or `built-in` (KEYS' default)."""
        if brand is not None and key in self.brand_keys.get(brand, ()):
            return "brand"
        return "file" if key in self.default_keys else "built-in"

    def for_source(self, name: str) -> SourceSettings:
        return self.sources.get(name, SourceSettings())


def _convert(key: str, value: Any, where: str) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {key} = {value!r} is not valid; expected {expected}")

    if key in ("session_inactivity", "contact_inactivity", "conversation_window", "recontact_window",
               "feedback_window", "durable_window"):
        try:
            return parse_duration(value)
        except ValueError:
            raise bad('a duration such as "2h", "90m" or "1h30m" (units s, m, h, d), at most 36500d') from None
    if key == "timezone":
        if not is_zone(value):
            raise bad('an IANA time zone name such as "UTC" or "Europe/Berlin"')
        return value
    if key == "ai_channels":
        if not isinstance(value, list) or not all(
            isinstance(c, str) and (c == "*" or _CHANNEL.fullmatch(c.lower())) for c in value
        ):
            raise bad('a list of channel names, or ["*"] for every channel')
        return tuple(c.lower() for c in value)
    if key == "public_url":
        if not isinstance(value, str) or not re.match(r"https?://", value):
            raise bad('an http(s) URL such as "https://reports.example.com"')
        return value.rstrip("/")
    raise AssertionError(key)


# What `compare --set` may change (issue 27): the derivation settings and the report-time window. The time zone and
# the links change no figure (`--tz` chooses the zone the range is read in).
WHAT_IF_KEYS = (*DERIVATION_KEYS, "durable_window")
MAX_SETS = 6  # definition sets compared at once: each is a derivation in memory


def parse_definition_set(text: str, *, param: str = "set") -> dict[str, Any]:
    """One definition set of `compare --set`: comma-separated `key=value` brand keys of WHAT_IF_KEYS, a duration as
    in the file (`30m`, `1h30m`), `ai_channels` as channel names joined by `|` (`chat|email`) or `*`. A bad one is a
    ParameterError naming `param`."""
    def bad(problem: str) -> ParameterError:
        return ParameterError(param, lambda n: f"{n(param)} {text!r}{problem}")

    values: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key:
            raise bad(f": {item.strip()!r} is not KEY=VALUE; write a set as session_inactivity=30m,recontact_window=72h")
        if key not in WHAT_IF_KEYS:
            raise bad(f": {key!r} is not a setting a set can change; use {', '.join(WHAT_IF_KEYS)}")
        if key in values:
            raise bad(f" gives {key} twice; give it once")
        raw: Any = value.split("|") if key == "ai_channels" else value
        try:
            values[key] = _convert(key, raw, "")
            if key == "ai_channels":  # one spelling of each set: `*` alone, or the names sorted once each
                values[key] = ("*",) if "*" in values[key] else tuple(sorted(set(values[key])))
        except ConfigError as exc:
            if key == "ai_channels":
                raise bad(f": ai_channels = {value!r} is not valid; expected channel names joined by |, such as "
                          "chat|email, or * for every channel") from None
            raise bad(str(exc)) from None
    return values


def set_label(values: dict[str, Any]) -> str:
    """A definition set as `compare` labels its column: `session_inactivity=30m,recontact_window=72h`."""
    return ",".join(f"{key}={_shown(value)}" for key, value in values.items())


def _shown(value: Any) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    return "|".join(value) if isinstance(value, tuple) else str(value)


def with_overrides(config: Config, values: dict[str, Any]) -> Config:
    """`config` with `values` (a definition set) applied to every brand and to the defaults."""
    return replace(config, defaults=replace(config.defaults, **values),
                   brands={name: replace(settings, **values) for name, settings in config.brands.items()})


def parse_setting(key: str, value: Any, where: str) -> Any:
    """A brand key's value as the file writes it, converted as `load_config` converts it; else a ConfigError that
    names `where`, the key and the expected form."""
    if key not in KEYS:
        raise ConfigError(f"{where}: unknown key {key!r}; known keys: {', '.join(KEYS)}")
    return _convert(key, value, where)


def _settings(table: dict[str, Any], base: BrandSettings, where: str) -> BrandSettings:
    values = {}
    for key, value in table.items():
        if key not in KEYS:
            elsewhere = f" ({key} belongs in the [server] table)" if key in SERVER_KEYS else ""
            raise ConfigError(f"{where}: unknown key {key!r}{elsewhere}; known keys: {', '.join(KEYS)}")
        values[key] = _convert(key, value, where)
    return replace(base, **values)


def _source_settings(name: str, table: Any, where: str) -> SourceSettings:
    if name not in SOURCE_KEYS:
        raise ConfigError(f"{where}: [sources.{name}] is not a source convoscope reads; use one of "
                          f"{', '.join(f'[sources.{n}]' for n in SOURCE_KEYS)}")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: sources.{name} must be a table such as [sources.{name}]")
    values: dict[str, Any] = {}
    for key, value in table.items():
        at = f"{where} [sources.{name}]"
        if key not in SOURCE_KEYS[name]:
            raise ConfigError(f"{at}: unknown key {key!r}; known keys: {', '.join(SOURCE_KEYS[name])}")
        if key == "brand" and not (isinstance(value, str) and _BRAND.fullmatch(value)):
            raise ConfigError(f"{at}: brand = {value!r} is not valid; expected a brand name such as \"acme\" "
                              "(lower-case letters, digits, _ or -)")
        if key == "webhook_secret" and not (isinstance(value, str) and value.strip()):
            raise ConfigError(f"{at}: webhook_secret must be the secret Chatwoot shows for the webhook, a non-empty string")
        if key == "webhook_token" and not (isinstance(value, str) and len(value) >= MIN_WEBHOOK_TOKEN
                                           and re.fullmatch(r"[A-Za-z0-9_-]+", value)):
            raise ConfigError(f"{at}: webhook_token must be at least {MIN_WEBHOOK_TOKEN} letters, digits, _ or -; "
                              "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
        if key == "ai_api_users":
            if not (isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)):
                raise ConfigError(f"{at}: ai_api_users must be a list of Gladly user ids, such as [\"aOTp3CrbS2K7BOwxD0ZMqQ\"]")
            value = tuple(value)
        values[key] = value
    return SourceSettings(**values)


def _server_settings(table: Any, where: str) -> ServerSettings:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: server must be a table such as [server]")
    at = f"{where} [server]"
    for key, value in table.items():
        if key not in SERVER_KEYS:
            raise ConfigError(f"{at}: unknown key {key!r}; known keys: {', '.join(SERVER_KEYS)}")
        if key == "name" and not (isinstance(value, str) and value.strip() and len(value) <= MAX_NAME
                                  and not re.search(r"[\x00-\x1f\x7f-\x9f]", value)):
            raise ConfigError(f"{at}: name = {value!r} is not valid; expected the installation's name, such as "
                              f"\"Acme support\" (at most {MAX_NAME} characters, on one line)")
        if key == "rate_limit" and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise ConfigError(f"{at}: rate_limit = {value!r} is not valid; expected a whole number of requests "
                              "per second per API token, such as 10, or 0 to turn the limit off")
    return ServerSettings(**table)


def _mail_settings(table: Any, where: str) -> MailSettings:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: mail must be a table such as [mail]")
    at = f"{where} [mail]"
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in MAIL_KEYS:
            raise ConfigError(f"{at}: unknown key {key!r}; known keys: {', '.join(MAIL_KEYS)}")

        def bad(expected: str, key: str = key, value: Any = value) -> ConfigError:
            return ConfigError(f"{at}: {key} = {value!r} is not valid; expected {expected}")

        if key in ("host", "from", "username", "password", "password_env"):
            if not (isinstance(value, str) and value.strip() and not re.search(r"[\s\x00-\x1f\x7f]", value.strip())):
                raise bad("a non-empty string on one line")
            value = value.strip()
        if key == "from" and not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", value):
            raise bad('an e-mail address such as "reports@example.com"')
        if key == "password_env" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise bad('the name of an environment variable, such as "SMTP_PASSWORD"')
        if key == "starttls" and not isinstance(value, bool):
            raise bad("true or false")
        limits = {"port": (1, 65535), "timeout": (1, 3600), "attach_limit": (0, 2**40), "link_days": (1, 3650),
                  "attempts": (1, 20)}
        if key in limits and not (isinstance(value, int) and not isinstance(value, bool)
                                  and limits[key][0] <= value <= limits[key][1]):
            raise bad(f"a whole number from {limits[key][0]} to {limits[key][1]}")
        if key == "retry_after":
            try:
                value = parse_duration(value)
            except ValueError:
                raise bad('a duration such as "5m", "30s" or "1h"') from None
        values["sender" if key == "from" else key] = value
    return MailSettings(**values)


def load_config(path: Path | None = None) -> Config:
    """Read the configuration (SPEC 5): `path`, else ./convoscope.toml if present, else defaults."""
    explicit = path is not None
    path = path if path is not None else DEFAULT_PATH
    if not path.exists():
        if explicit:
            raise ConfigError(lambda n: f"configuration file {path} does not exist; check the {n('config')} path",
                              param="config")
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problem = str(exc)
        raise ConfigError(lambda n: f"{path}: not valid TOML ({problem}); fix the file or pass another with {n('config')}",
                          param="config") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """The configuration `text` says, as if read from `path` (which its errors name): what `load_config` does once
    the file is read, and what the settings page checks a changed file with before writing it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problem = str(exc)
        raise ConfigError(lambda n: f"{path}: not valid TOML ({problem}); fix the file or pass another with {n('config')}",
                          param="config") from None
    brands_table = data.pop("brands", {})
    sources_table = data.pop("sources", {})
    server = _server_settings(data.pop("server", {}), str(path))
    mail = _mail_settings(data.pop("mail", {}), str(path))
    if not isinstance(sources_table, dict):
        raise ConfigError(f"{path}: sources must be tables such as [sources.chatwoot]")
    sources = {name: _source_settings(name, table, str(path)) for name, table in sources_table.items()}
    defaults = _settings(data, BrandSettings(), str(path))
    if not isinstance(brands_table, dict):
        raise ConfigError(f"{path}: brands must be tables such as [brands.acme]")
    brands = {}
    for name, table in brands_table.items():
        if not _BRAND.fullmatch(name):
            raise ConfigError(f"{path}: [brands.{name}] is not a valid brand name; expected [a-z0-9][a-z0-9_-]*")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: brands.{name} must be a table such as [brands.{name}]")
        brands[name] = _settings(table, defaults, f"{path} [brands.{name}]")
    return Config(defaults=defaults, brands=brands, path=path, sources=sources, server=server, mail=mail,
                  default_keys=tuple(data), brand_keys={name: tuple(table) for name, table in brands_table.items()})
