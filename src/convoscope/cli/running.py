"""The file a running `convoscope serve` leaves beside its store, `<store>.serve`, and asking that server for a
report, so that `convoscope report` answers while the server holds the store instead of waiting for it
(decision 167; decision 36 is how they share the file otherwise).

The file holds the URL the server is reached at on this machine, its pid, the configuration file it follows and a
random token made at its start, which the server takes from this machine only as the command line's own user
(`web/auth.operator`). It is written atomically with mode 0600 — whoever can read it can read the store file
itself — and removed when the server stops. One whose pid is gone, or whose server does not answer, is stale: the
command line ignores it and opens the store itself, and the next `serve` replaces it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, unquote

import httpx

from convoscope.config import DEFAULT_PATH
from convoscope.errors import ConvoscopeError

SUFFIX = ".serve"
CONNECT_TIMEOUT = 5.0  # seconds: a server that takes longer to accept a connection is taken for gone
DEFINITIONS_HEADER = "X-Convoscope-Definitions"  # web/reports.py's; the command line does not import the server
AUDITED_HEADER = "X-Convoscope-Audited"  # web/auth.py's: the parameters the audit row records


@dataclass(frozen=True)
class Running:
    """A server serving this store, as its file says."""

    url: str  # http://127.0.0.1:8000/
    pid: int
    token: str
    config: str  # the configuration file it follows, absolute


class NotAnswering(Exception):
    """The server of a file did not take the connection: the file is stale, the command opens the store."""


def serve_file(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + SUFFIX)


def followed_config(config_path: Path | None) -> str:
    """The configuration file a process follows, absolute: `--config`, else ./convoscope.toml of its folder."""
    return str((config_path if config_path is not None else DEFAULT_PATH).resolve())


def announce(db_path: Path, running: Running) -> Path:
    """Write the file for `running`, replacing any other (a stale one, left by a server that was killed)."""
    path = serve_file(db_path)
    text = json.dumps({"url": running.url, "pid": running.pid, "token": running.token, "config": running.config})
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")  # mode 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(partial)
        raise
    return path


def withdraw(db_path: Path, token: str) -> None:
    """Remove the file, if it is still this server's (another `serve` on the store may have replaced it)."""
    found = read(db_path)
    if found is not None and found.token == token:
        with suppress(OSError):
            serve_file(db_path).unlink()


def read(db_path: Path) -> Running | None:
    """What the file says, or None when there is none or it does not read (being replaced, say)."""
    try:
        fields = json.loads(serve_file(db_path).read_text(encoding="utf-8"))
        return Running(str(fields["url"]), int(fields["pid"]), str(fields["token"]), str(fields["config"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running(db_path: Path, config_path: Path | None) -> Running | None:
    """The server serving the store at `db_path` with the configuration file this command follows, when its
    file says there is one and its process is alive; None otherwise. A server following another configuration
    would judge with other settings than the command's, so the command makes its report itself then."""
    found = read(db_path)
    if found is None or found.config != followed_config(config_path) or not _alive(found.pid):
        return None
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@contextmanager
def asking(found: Running, path: str, query: Sequence[tuple[str, str]], *,
           headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
    """GET `path` of the running server with its local token; the answer, its body not read yet. A server that
    does not take the connection raises `NotAnswering`; one that refuses, a `ConvoscopeError` in its words."""
    url = found.url.rstrip("/") + path
    timeout = httpx.Timeout(None, connect=CONNECT_TIMEOUT)  # a large export takes as long as it takes
    try:
        with httpx.stream("GET", url, params=list(query), headers={"Authorization": f"Bearer {found.token}", **(headers or {})},
                          timeout=timeout, trust_env=False) as answer:
            if answer.status_code != 200:
                answer.read()
                raise refusal(found, answer)
            yield answer
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise NotAnswering(str(exc)) from None
    except httpx.TransportError as exc:
        raise ConvoscopeError(f"the server running at {found.url} (pid {found.pid}) stopped answering ({exc}); "
                              "run the command again") from None


class ServerRefusal(ConvoscopeError):
    """What the server answered instead of a report, in the words it would have been said here: a usage error
    (400) exits 2, any other 1."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def refusal(found: Running, answer: httpx.Response) -> ServerRefusal:
    """The API's `errors` body as the command line's one line (the server's message is the one the command
    would have given: the same `service` path raised it); anything else, named with the server's address."""
    try:
        detail = "; ".join(str(error["detail"]) for error in answer.json()["errors"])
    except (ValueError, KeyError, TypeError):
        detail = ""
    if answer.status_code in (400, 403, 500) and detail:
        return ServerRefusal(detail, 2 if answer.status_code == 400 else 1)
    return ServerRefusal(f"the server running at {found.url} (pid {found.pid}) answered {answer.status_code}"
                         f"{': ' + detail if detail else ''}; run the command again, or stop the server and run it "
                         "then", 1)


def report_to(found: Running, name: str, query: Sequence[tuple[str, str]], out: BinaryIO, *,
              given: dict[str, Any]) -> str:
    """Report `name` from the running server, its CSV's bytes written to `out`; returns the definitions it
    was made with (the header the API gives them in). `given`: what an audit row of it records."""
    with asking(found, f"/api/v1/reports/{quote(name, safe='')}", query,
                headers={AUDITED_HEADER: json.dumps(given)}) as answer:
        for chunk in answer.iter_bytes():
            out.write(chunk)
        return unquote(answer.headers.get(DEFINITIONS_HEADER, ""))


def brands(found: Running) -> list[str]:
    """The brands the store holds, as the server's organization gives them."""
    with asking(found, "/api/v1/organization", ()) as answer:
        answer.read()
        return [brand["id"] for brand in answer.json()["brands"]]
