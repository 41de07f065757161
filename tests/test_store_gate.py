"""The server's store gate (web/gate.py `StoreGate`): the store stays open a few seconds after the last request,
so that the next finds DuckDB's buffers warm, and is let go of as soon as no request uses it when a command waits
for it (`store.wanted`): commands take their turn as before (SPEC 6.1). Commands run here as processes of their
own, as a terminal runs them: within one process DuckDB shares an open file, and nothing would wait."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from cli_helpers import Convoscope, ev
from convoscope import accounts
from convoscope.store import log_of, wanted, wanted_mark
from convoscope.web.gate import StoreGate
from web_helpers import CONVOSCOPE

# Opens the file as a tool other than convoscope does: no waiting, no mark; exits 0 if it got the file.
RAW_OPEN = "import duckdb, sys; duckdb.connect(sys.argv[1], read_only=True).close()"


def _store(tmp_path: Path) -> Convoscope:
    cs = Convoscope(tmp_path)
    result = cs("ingest", str(cs.write_events([ev("e1", "customer_message", "2026-05-01T09:00:00Z")])))
    assert result.exit_code == 0, result.output
    return cs


def _raw_open(db: Path) -> bool:
    return subprocess.run([sys.executable, "-c", RAW_OPEN, str(db)], capture_output=True, timeout=120).returncode == 0


def test_a_command_gets_a_store_the_server_keeps_open_as_soon_as_no_request_uses_it(tmp_path: Path) -> None:
    cs = _store(tmp_path)
    gate = StoreGate(cs.db, keep=3600)  # kept for an hour: only the command's waiting can make the gate let go
    with gate.open() as store:
        assert accounts.list_users(store.con) == []
    assert not _raw_open(cs.db), "the gate let go of the store: the test proves nothing"

    with gate.open():  # a request under way while the command starts: the command waits for it to end
        command = subprocess.Popen(
            [str(CONVOSCOPE), "--db", str(cs.db), "--config", str(cs.config), "users", "add", "ana", "--role",
             "analyst", "--password-stdin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        assert command.stdin is not None
        command.stdin.write("a long enough password\n")
        command.stdin.close()
        deadline = time.monotonic() + 60
        while not wanted(cs.db) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert wanted(cs.db), "the command never said it waits for the store"
        assert command.poll() is None  # still waiting: the request holds the store
    assert command.wait(timeout=120) == 0, command.stderr.read() if command.stderr else ""
    assert not wanted_mark(cs.db).exists()  # the command took its mark away once it had the store

    with gate.open() as store:  # opened again after the command, which wrote meanwhile
        assert [user.name for user, _ in accounts.list_users(store.con)] == ["ana"]
    gate.close()


def test_a_store_nobody_uses_is_closed_after_the_time_it_is_kept(tmp_path: Path) -> None:
    cs = _store(tmp_path)
    gate = StoreGate(cs.db, keep=0.5)
    with gate.open():
        pass
    deadline = time.monotonic() + 60
    while not _raw_open(cs.db):  # no mark: only the time the gate keeps the store lets a tool in
        assert time.monotonic() < deadline, "the gate never closed the store"
        time.sleep(0.2)
    with gate.open() as store:  # and opens it again for the next request
        assert accounts.list_users(store.con) == []
    gate.close()
    assert _raw_open(cs.db)  # a stopping server closes it (the app's lifespan calls `close`)


def test_what_a_request_wrote_is_in_the_file_when_it_ends_though_the_store_stays_open(tmp_path: Path) -> None:
    """The gate writes the log into the file once no request uses the store, as closing it did: a store kept open
    under continuous load is otherwise checkpointed by DuckDB only when a commit finds no other transaction running,
    after a long log (decision 183)."""
    cs = _store(tmp_path)
    wal = log_of(cs.db)
    gate = StoreGate(cs.db, keep=3600)
    with gate.open() as store:
        store.con.execute("INSERT INTO meta VALUES ('test', 'written by a request')")
        assert wal.exists() and wal.stat().st_size > 0, "nothing in the log: the test proves nothing"
    assert not wal.exists() or wal.stat().st_size == 0
    assert not _raw_open(cs.db)  # still open
    gate.close()
    assert _raw_open(cs.db)
