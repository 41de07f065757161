"""What the web and API tests share: a real `convoscope serve` process on a free loopback port, users
made with the command line, and the few HTTP steps a browser or a script takes (log in, send a token).

Nothing here reaches into the server: it is started as a user starts it and spoken to over HTTP.
"""

from __future__ import annotations

import csv
import io
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx

from cli_helpers import WORKED_EXAMPLE, Convoscope, make_id
from convoscope.cli import cli

CONVOSCOPE = Path(sys.executable).with_name("convoscope")
PASSWORD = "correct horse battery"
ROLES = ("administrator", "team_manager", "analyst", "agent")

# The worked example (SPEC 3.7): brand `default`, customer `c1`, events e01..e10.
WORKED_CONVERSATION = make_id("cnv_", "default", "c1", "e01")
WORKED_SESSION_1 = make_id("ses_", "default", "c1", "e01")
WORKED_SESSION_2 = make_id("ses_", "default", "c1", "e05")
WORKED_CONTACT = make_id("ctc_", "default", "c1", "e07")


def past_start(days_ago: int = 28) -> str:
    """A first day for a generated brand far enough in the past that everything in it is closed now, so
    reports judged now (the POST API cannot pass an as-of time) do not change between two calls."""
    return (date.today() - timedelta(days=days_ago)).isoformat()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli_ok(store: Convoscope, *args: str, input: str | None = None) -> str:
    """Run the command line on `store`; it must succeed. Returns standard output."""
    config = ["--config", str(store.config)] if store.config is not None else []
    result = store.runner.invoke(cli, ["--db", str(store.db), *config, *args], input=input)
    assert result.exit_code == 0, (args, result.exit_code, result.stderr)
    return result.stdout


def generate_brand(store: Convoscope, *, brand: str = "default", customers: int = 150, days: int = 7, seed: int = 3,
                   start: str | None = None, bad_rate: float = 0.0) -> Path:
    """`convoscope generate` then `convoscope ingest` of that file into `store` (bad records, if any,
    are rejected: the ingest then exits 3)."""
    path = store.dir / f"generated-{brand}-{seed}.jsonl"
    cli_ok(store, "generate", "--customers", str(customers), "--days", str(days), "--seed", str(seed),
           "--brand", brand, "--start", start or past_start(), "--bad-rate", str(bad_rate), "--out", str(path))
    result = store("ingest", str(path))
    assert result.exit_code == (3 if bad_rate else 0), result.stderr
    return path


def ingest_worked_example(store: Convoscope) -> None:
    cli_ok(store, "ingest", str(WORKED_EXAMPLE))


def add_user(store: Convoscope, name: str, role: str, *, brands: str | None = None,
             password: str = PASSWORD) -> str:
    """`users add NAME --role ROLE --password-stdin`, then `users token NAME`; returns the token."""
    cli_ok(store, "users", "add", name, "--role", role, *(["--brands", brands] if brands else []),
           "--password-stdin", input=password + "\n")
    return cli_ok(store, "users", "token", name).strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class LiveServer:
    """`convoscope --db DB --config CONFIG serve --port PORT` as a child process."""

    def __init__(self, store: Convoscope) -> None:
        self.store = store
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = store.dir / f"serve-{self.port}.log"
        config = ["--config", str(store.config)] if store.config is not None else []
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(CONVOSCOPE), "--db", str(store.db), *config, "serve", "--port", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise

    def _wait_until_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/login", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"convoscope serve did not answer GET /login: {self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextmanager
def serving(store: Convoscope) -> Iterator[LiveServer]:
    server = LiveServer(store)
    try:
        yield server
    finally:
        server.stop()


HIDDEN_CSRF = re.compile(r'<input[^>]*name="csrf"[^>]*value="([^"]*)"')


def post_events(store: Convoscope, batch: list[dict]) -> dict:
    """`batch` sent to the API of a live server by a new administrator: the answer's JSON (status 200)."""
    token = add_user(store, "sender", "administrator")
    with serving(store) as server, server.client(headers=bearer(token)) as client:
        answer = client.post("/api/v1/events", json=batch)
    assert answer.status_code == 200, answer.text
    return answer.json()


def csrf_of(html: str) -> str | None:
    """The value of the page's hidden `csrf` input (the login form's, or the log-out form's)."""
    found = HIDDEN_CSRF.search(html)
    return found.group(1) if found else None


def log_in(client: httpx.Client, name: str, password: str = PASSWORD, next_page: str = "/") -> httpx.Response:
    """Log in through the form as a browser does: GET /login for the form and its cookie, POST it back."""
    form = client.get("/login")
    assert form.status_code == 200
    assert form.cookies, "the login form set no cookie to bind its CSRF token to"
    token = csrf_of(form.text)
    assert token, "the login form has no hidden csrf input"
    return client.post("/login", data={"name": name, "password": password, "csrf": token, "next": next_page},
                       follow_redirects=False)


@dataclass
class AnalystSite:
    """The worked example served, with the analyst `ana`: their API token, and a browser logged in as them
    through the login form (whose own audit row is written before anything else)."""

    store: Convoscope
    server: LiveServer
    token: str
    browser: httpx.Client


@contextmanager
def analyst_site(directory: Path) -> Iterator[AnalystSite]:
    store = Convoscope(directory)
    ingest_worked_example(store)
    token = add_user(store, "ana", "analyst")
    with serving(store) as server, server.client() as browser:
        assert log_in(browser, "ana").status_code == 303
        yield AnalystSite(store, server, token, browser)


@dataclass
class Served:
    """A store served with the analyst `ana`: their API token, a browser logged in as them through the login form,
    and an API client sending the token."""

    store: Convoscope
    token: str
    browser: httpx.Client
    api: httpx.Client

    def report_csv(self, name: str, **query: str) -> list[dict[str, str]]:
        """Report `name` through the API with snake headers, as rows of cells by header."""
        answer = self.api.get(f"/api/v1/reports/{name}", params={**query, "headers": "snake"})
        assert answer.status_code == 200, answer.text
        return csv_dicts(answer.text)


def number(cell: str) -> int | float | None:
    """A report's CSV cell as the number a chart draws; None for an empty cell."""
    return None if cell == "" else int(cell) if cell.isdigit() else float(cell)


@contextmanager
def served_to_analyst(store: Convoscope) -> Iterator[Served]:
    token = add_user(store, "ana", "analyst")
    with serving(store) as server, server.client() as browser, server.client(headers=bearer(token)) as api:
        assert log_in(browser, "ana").status_code == 303
        yield Served(store, token, browser, api)


def csv_table(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def csv_dicts(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def assert_json_cell(kind: str, value: object, cell: str, where: object = None) -> None:
    """A value of an API's JSON answer is the CSV's `cell` as JSON gives a column of `kind` (issue 28): null for an
    empty cell; a count a whole number and a rate a fraction, written as the cell (a number parses to the cell's
    value); another number either; a boolean `true` or `false`; anything else the very string."""
    where = (where, kind, cell, value)
    if cell == "":
        assert value is None, where
        return
    match kind:
        case "count":
            assert type(value) is int and str(value) == cell, where
        case "rate" | "percent":
            assert type(value) is float and value == float(cell), where
        case "number" | "duration":
            assert type(value) in (int, float) and value == float(cell), where
            assert type(value) is float or str(value) == cell, where
        case "boolean":
            assert type(value) is bool and cell == ("true" if value else "false"), where
        case _:
            assert type(value) is str and value == cell, where
