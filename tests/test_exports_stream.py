"""A report's CSV download is streamed (issue 30 point 2, decision 169): the bytes of the command line, sent as
DuckDB writes them, chunked; the audit row of a report with messages is written; what can be refused is refused
with the one-line JSON error before the first byte; a failure after it cuts the download, and a client that leaves
early lets the store go. Real server processes, real DuckDB, real HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from cli_helpers import Convoscope
from convoscope.reports.base import copy_csv, header_csv
from convoscope.reports.stream import PIPE_BYTES, CsvStream
from convoscope.store import connect as connect_waiting
from convoscope.web.reports import CsvResponse
from web_helpers import LiveServer, add_user, bearer, cli_ok, free_port, generate_brand, serving

MESSAGES = "sessions-detail-with-messages"
START = "2026-05-01"
QUERY = {"from": "2026-05-01", "to": "2026-05-07", "tz": "UTC", "as_of": "2026-06-01T00:00:00Z"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Convoscope, LiveServer, str]]:
    """A brand large enough that its with-messages export (some 7 MB) is several times the pipe's buffer."""
    store = Convoscope(tmp_path_factory.mktemp("exports"))
    generate_brand(store, customers=20000, days=7, start=START)
    token = add_user(store, "admin", "administrator")
    with serving(store) as server:
        yield store, server, token


def cli_bytes(store: Convoscope, name: str, query: dict[str, str]) -> bytes:
    result = store("report", name, "--from", query["from"], "--to", query["to"], "--tz", query["tz"],
                   "--as-of", query["as_of"])
    assert result.exit_code == 0, result.stderr
    return result.stdout_bytes


def audit_rows(db: Path) -> list[tuple[Any, ...]]:
    """The audit log as the store holds it, read when the server has let the file go."""
    with connect_waiting(db, read_only=True) as con:
        return con.execute("SELECT user_name, action, target, parameters FROM audit_log "
                           "ORDER BY logged_at, rowid").fetchall()


@pytest.mark.parametrize("name", [MESSAGES, "conversation-export"])
def test_a_large_export_is_streamed_chunked_with_the_bytes_the_cli_writes(
        site: tuple[Convoscope, LiveServer, str], name: str) -> None:
    store, server, token = site
    with server.client(headers=bearer(token)) as client, \
            client.stream("GET", f"/api/v1/reports/{name}", params=QUERY) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["content-disposition"] == f'attachment; filename="{name}_all_2026-05-01_2026-05-07.csv"'
        body = b"".join(response.iter_raw())
    expected = cli_bytes(store, name, QUERY)
    if name == MESSAGES:
        assert len(expected) > 4 * PIPE_BYTES, "an export that fits in the pipe proves little"
    assert body == expected


def test_a_streamed_export_with_messages_writes_its_audit_row(site: tuple[Convoscope, LiveServer, str]) -> None:
    store, server, token = site
    before = audit_rows(store.db)
    with server.client(headers=bearer(token)) as client:
        assert client.get(f"/api/v1/reports/{MESSAGES}", params=QUERY).status_code == 200
        assert client.get("/api/v1/reports/sessions-detail", params=QUERY).status_code == 200
    written = audit_rows(store.db)[len(before):]
    assert [(user, action, target, json.loads(parameters)) for user, action, target, parameters in written] == [
        ("admin", "download", MESSAGES, QUERY)]


def test_an_export_refused_before_its_first_byte_is_the_one_line_json_error(
        site: tuple[Convoscope, LiveServer, str]) -> None:
    store, server, token = site
    agent = add_user(store, "agent-exports", "agent")
    with server.client(headers=bearer(token)) as client:
        bad = client.get(f"/api/v1/reports/{MESSAGES}", params=QUERY | {"from": "last week"})
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("application/json")
        (error,) = bad.json()["errors"]
        assert error["attr"] == "from" and "\n" not in error["detail"] and "YYYY-MM-DD" in error["detail"]
        unknown = client.get(f"/api/v1/reports/{MESSAGES}", params=QUERY | {"brand": "nope"})
        assert unknown.status_code == 400 and unknown.json()["errors"][0]["attr"] == "brand"
    with server.client(headers=bearer(agent)) as client:
        refused = client.get(f"/api/v1/reports/{MESSAGES}", params=QUERY)
        assert refused.status_code == 403
        (error,) = refused.json()["errors"]
        assert error["detail"] and "\n" not in error["detail"]


def test_a_download_left_early_lets_the_store_go(site: tuple[Convoscope, LiveServer, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store, server, token = site
    with server.client(headers=bearer(token)) as client, \
            client.stream("GET", f"/api/v1/reports/{MESSAGES}", params=QUERY) as response:
        assert response.status_code == 200
        first = next(response.iter_raw())
        assert first.startswith(b"Session ID,Customer ID,")
    # The client has gone with most of the export unread; a command that writes gets the store (or fails after
    # the wait below, instead of the default ten minutes).
    monkeypatch.setenv("CONVOSCOPE_LOCK_TIMEOUT", "60")
    cli_ok(store, "users", "add", "after-the-download", "--role", "analyst", "--password-stdin",
           input="correct horse battery\n")


# --- the stream itself, and a failure after the first byte ------------------------------------------------

FAILING = "SELECT CASE WHEN i < 2000000 THEN i::VARCHAR ELSE error('row ' || i || ' cannot be read') END " \
          "FROM range(3000000) AS t(i)"


def failing_stream(con: duckdb.DuckDBPyConnection, *, on_done: Any = None) -> CsvStream:
    """A CSV whose query fails after two million rows, some megabytes after its first byte."""
    def write(pipe: Path, hand_over: Any) -> int:
        cursor = con.cursor()
        hand_over(cursor)
        try:
            return copy_csv(cursor, FAILING, ["n"], pipe, header_row=False)
        finally:
            cursor.close()
    return CsvStream(header_csv(con, ["n"]), write, on_done=on_done)


def test_a_stream_is_a_copy_with_its_header_and_raises_what_fails_after_the_first_byte(tmp_path: Path) -> None:
    con = duckdb.connect()
    whole = tmp_path / "whole.csv"
    copy_csv(con, "SELECT i, 'a, \"b\"' || i, NULL FROM range(300000) AS t(i)", ["n", "text, quoted", "c"], whole)
    done = threading.Event()

    def write(pipe: Path, hand_over: Any) -> int:
        cursor = con.cursor()
        hand_over(cursor)
        return copy_csv(cursor, "SELECT i, 'a, \"b\"' || i, NULL FROM range(300000) AS t(i)",
                        ["n", "text, quoted", "c"], pipe, header_row=False)
    stream = CsvStream(header_csv(con, ["n", "text, quoted", "c"]), write, on_done=done.set)
    assert b"".join(stream) == whole.read_bytes()
    assert stream.count == 300000 and done.is_set()

    received = bytearray()
    with pytest.raises(duckdb.InvalidInputException, match="cannot be read"):
        for chunk in failing_stream(con):
            received += chunk
    assert received.startswith(b"n\r\n0\r\n1\r\n") and len(received) > PIPE_BYTES


def test_a_stream_closed_early_stops_its_query_and_lets_go(tmp_path: Path) -> None:
    con = duckdb.connect()
    done = threading.Event()

    def write(pipe: Path, hand_over: Any) -> int:
        cursor = con.cursor()
        hand_over(cursor)
        return copy_csv(cursor, "SELECT i FROM range(100000000) AS t(i) ORDER BY i DESC", ["n"], pipe,
                        header_row=False)
    stream = CsvStream(b"n\r\n", write, on_done=done.set)
    chunks = iter(stream)
    assert next(chunks) == b"n\r\n"
    assert next(chunks).startswith(b"99999999\r\n")
    stream.close()
    assert done.wait(60), "the writer never let go"
    assert isinstance(stream.error, duckdb.InterruptException)


def test_a_failure_after_the_first_byte_cuts_the_download() -> None:
    """Served by uvicorn as `serve` does, a stream that fails midway ends without the chunked body's last chunk:
    the client is told the download is incomplete, never handed a shorter file as if whole."""
    con = duckdb.connect()

    def endpoint(request: Request) -> CsvResponse:
        return CsvResponse(failing_stream(con), headers={})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/export", endpoint)]), port=port,
                                           log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        received = bytearray()
        with pytest.raises(httpx.RemoteProtocolError), httpx.Client(timeout=60) as client, \
                client.stream("GET", f"http://127.0.0.1:{port}/export") as response:
            assert response.status_code == 200
            for chunk in response.iter_raw():
                received += chunk
        assert received.startswith(b"n\r\n0\r\n") and len(received) > PIPE_BYTES
    finally:
        server.should_exit = True
        thread.join(30)
