"""The command line beside a running server (issue 30 point 1, decision 167): `convoscope serve` leaves a 0600 file
beside the store saying where it listens, with a local token; `convoscope report` asks that server for the report
instead of waiting for the store it holds, and writes the very bytes it would have written itself. The token works
from this machine only; a file left by a server that is gone is ignored, and replaced by the next server.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cli_helpers import Convoscope
from convoscope.cli import cli
from web_helpers import LiveServer, add_user, bearer, free_port, generate_brand, serving

AS_OF = "2030-01-01T00:00:00Z"  # every generated session has ended: the reports do not move with the clock
SUMMARY = ("report", "sessions-summary", "--as-of", AS_OF, "--period", "day")
OPERATOR = f"cli:{getpass.getuser()}"  # who the command line is when it makes a report itself


@dataclass
class Site:
    store: Convoscope
    token: str  # an administrator's API token

    @property
    def serve_file(self) -> Path:
        return self.store.db.with_name(self.store.db.name + ".serve")

    def announced(self) -> dict:
        return json.loads(self.serve_file.read_text(encoding="utf-8"))


@pytest.fixture
def site(tmp_path: Path) -> Site:
    store = Convoscope(tmp_path)
    generate_brand(store, customers=120, days=5)
    return Site(store, add_user(store, "admin", "administrator"))


@contextmanager
def busy(server: LiveServer, token: str) -> Iterator[list[int]]:
    """A reader polling the sessions summary through the API until the block ends, so that the server keeps
    opening the store; the statuses it was answered."""
    statuses: list[int] = []
    done = threading.Event()

    def poll() -> None:
        with server.client(headers=bearer(token)) as client:
            while not done.is_set():
                statuses.append(client.get("/api/v1/reports/sessions-summary").status_code)

    reader = threading.Thread(target=poll, daemon=True)
    reader.start()
    try:
        yield statuses
    finally:
        done.set()
        reader.join(timeout=60)


def api_csv(server: LiveServer, token: str, name: str, **query: str) -> bytes:
    with server.client(headers=bearer(token)) as client:
        answer = client.get(f"/api/v1/reports/{name}", params=query)
    assert answer.status_code == 200, answer.text
    return answer.content


def test_report_answers_through_the_running_server_with_the_bytes_it_would_write(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "summary.csv"
    with serving(site.store) as server:
        announced = site.announced()
        assert announced["url"] == server.url + "/" and announced["pid"] == server.process.pid
        assert stat.S_IMODE(site.serve_file.stat().st_mode) == 0o600
        with busy(server, site.token) as statuses:
            to_file = site.store(*SUMMARY, "--out", str(out))
            to_stdout = site.store(*SUMMARY, "--describe")
        assert statuses and set(statuses) == {200}
        assert to_file.exit_code == 0, to_file.stderr
        assert to_file.stderr.strip().endswith(f"(made by the server running at {server.url}/)")
        served = api_csv(server, site.token, "sessions-summary", as_of=AS_OF, period="day")
    assert not site.serve_file.exists()  # removed when the server stopped
    alone = site.store(*SUMMARY, "--describe")  # the command makes it itself now
    assert alone.exit_code == 0 and to_stdout.exit_code == 0, (alone.stderr, to_stdout.stderr)
    assert served.count(b"\n") > 3
    assert out.read_bytes() == to_stdout.stdout_bytes == alone.stdout_bytes == served
    assert to_stdout.stderr == alone.stderr  # the definitions line, and nothing else
    assert "made by" not in alone.stderr


def test_a_report_with_messages_through_the_server_is_audited_as_the_command_lines_user(site: Site) -> None:
    out = site.store.dir / "messages.csv"
    detail = ("report", "sessions-detail-with-messages", "--as-of", AS_OF, "--where", "channel=chat", "--out", str(out))
    with serving(site.store) as server:
        through = site.store(*detail)
        assert through.exit_code == 0 and "made by the server" in through.stderr, through.stderr
        served = out.read_bytes()
        with server.client(headers=bearer(site.token)) as client:  # an API user is audited under their own name
            assert client.get("/api/v1/reports/sessions-detail-with-messages", params={"as_of": AS_OF}).status_code == 200
    alone = site.store(*detail)
    assert alone.exit_code == 0 and "made by" not in alone.stderr
    assert out.read_bytes() == served
    audit = site.store("audit")
    assert audit.exit_code == 0, audit.stderr
    entries = [(row["user"], row["action"], row["parameters"]) for row in csv.DictReader(io.StringIO(audit.stdout))
               if row["target"] == "sessions-detail-with-messages"]
    given = {"as_of": AS_OF, "where": ["channel=chat"], "out": str(out)}
    assert [(user, action, json.loads(parameters)) for user, action, parameters in entries] == [
        (OPERATOR, "download", given), ("admin", "download", {"as_of": AS_OF}), (OPERATOR, "download", given)]


def test_errors_and_warnings_through_the_server_are_the_command_lines_own(site: Site) -> None:
    cases = [
        ("report", "sessions-detail", "--by", "channel"),  # a usage error: exit 2
        ("report", "sessions-summary", "--as-of", "yesterday"),
        ("report", "no-such-report"),
        ("report", "sessions-summary", "--as-of", AS_OF, "--out", str(site.store.dir / "no" / "such.csv")),
        ("report", "sessions-summary", "--as-of", AS_OF, "--brand", "default", "--brand", "nope"),  # a warning
        ("report", "sessions-summary", "--as-of", AS_OF, "--brand", "nope", "--headers", "snake"),  # empty, warned
    ]
    with serving(site.store):
        through = [site.store(*args) for args in cases]
    alone = [site.store(*args) for args in cases]
    for args, served, made in zip(cases, through, alone, strict=True):
        assert (served.exit_code, served.stderr, served.stdout_bytes) == (made.exit_code, made.stderr,
                                                                          made.stdout_bytes), args
    assert [result.exit_code for result in alone] == [2, 2, 2, 1, 0, 0]
    assert "the store holds no brand 'nope'" in alone[4].stderr


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("pid", ["dead", "alive"])
def test_a_stale_file_is_ignored_and_replaced(site: Site, pid: str) -> None:
    """A file left by a killed server: its pid is gone, or (reused) answers nothing at its URL."""
    stale = {"url": f"http://127.0.0.1:{free_port()}/", "pid": dead_pid() if pid == "dead" else os.getpid(),
             "token": "stale", "config": str(site.store.config.resolve() if site.store.config else "")}
    site.serve_file.write_text(json.dumps(stale), encoding="utf-8")
    made = site.store(*SUMMARY, "--out", str(site.store.dir / "alone.csv"))
    assert made.exit_code == 0, made.stderr
    assert made.stderr.strip() == f"wrote 5 rows to {site.store.dir / 'alone.csv'}"
    with serving(site.store) as server:
        announced = site.announced()
        assert announced["pid"] == server.process.pid and announced["token"] != "stale"
        assert stat.S_IMODE(site.serve_file.stat().st_mode) == 0o600
    assert not site.serve_file.exists()


def test_a_server_following_another_configuration_is_not_asked(site: Site) -> None:
    """Its reports would be judged with its settings, not the command's: the command makes its own."""
    assert site.store.config is not None
    other = site.store.dir / "other.toml"
    other.write_text(site.store.config.read_text(encoding="utf-8"), encoding="utf-8")
    with serving(site.store):
        made = site.store.runner.invoke(cli, ["--db", str(site.store.db), "--config", str(other), *SUMMARY,
                                              "--out", str(site.store.dir / "other.csv")])
    assert made.exit_code == 0, made.stderr
    assert "made by" not in made.stderr


def test_the_local_token_is_refused_unless_it_comes_from_this_machine(site: Site) -> None:
    """uvicorn takes X-Forwarded-For from a proxy on 127.0.0.1 (its default `forwarded_allow_ips`), so a request
    sent so is, to the server, one from 10.1.2.3: how a request from another machine through a local proxy looks.
    (A request from another machine's own address cannot be made honestly from this test.)"""
    with serving(site.store) as server, server.client() as client:
        local = site.announced()["token"]
        path = "/api/v1/reports/sessions-summary"
        assert client.get(path, headers=bearer(local)).status_code == 200
        forwarded = client.get(path, headers=bearer(local) | {"X-Forwarded-For": "10.1.2.3"})
        assert forwarded.status_code == 401
        assert "only from this machine" in forwarded.json()["errors"][0]["detail"]
        wrong = client.get(path, headers=bearer(local[:-2] + ("AA" if not local.endswith("AA") else "BB")))
        assert wrong.status_code == 401
        basic = httpx.BasicAuth(OPERATOR, local)  # the local token is no account's password
        assert client.get(path, auth=basic).status_code == 401
