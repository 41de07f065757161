"""A report's CSV handed over while DuckDB writes it (issue 30 point 2, decision 169).

DuckDB's `COPY` writes the CSV the command line writes (reports/base.copy_csv); here it writes into a named pipe
in a folder of its own, on a thread, and the reader takes the bytes as they come, so a download starts before the
report is finished and no copy of it is kept in memory or on disk: what is in flight is the pipe's buffer and one
chunk. The header row goes first, written by the same `COPY` over no rows, so the first bytes leave before the
query has sorted its rows; the rows follow as DuckDB writes them, the very bytes of a `COPY ... (HEADER)` of the
whole. A failure after the first byte can only be told by ending the stream early: iterating raises it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb

PIPE_BYTES = 1 << 20  # the pipe's buffer where the system lets us set it (Linux), and the most one read takes

# What writes the rows into the pipe (on its thread): given the pipe's path and a way to hand over the cursor it
# runs on (so that `close` can interrupt it), it returns the number of rows.
Writer = Callable[[Path, Callable[[duckdb.DuckDBPyConnection], None]], int]


class CsvStream:
    """The header's bytes, then the rows `write` puts into a named pipe, read on the caller's thread. Iterate it
    once; `close` it when the reader stops early (the client went away): the query is interrupted and the pipe
    drained until the writer has let go. `on_done` runs once, after the writer has finished and the pipe is
    gone (a server releases its store there)."""

    def __init__(self, header: bytes, write: Writer, *, on_done: Callable[[], None] | None = None) -> None:
        self.header = header
        self.count: int | None = None  # rows written, once the writer is done
        self.error: BaseException | None = None
        self._write = write
        self._on_done = on_done
        self._folder = Path(tempfile.mkdtemp(prefix="convoscope-stream-"))
        self._pipe = self._folder / "report.csv"
        os.mkfifo(self._pipe, 0o600)
        # Opened before the writer starts, and without waiting: DuckDB's open for writing then never waits for a
        # reader, and the read end is only closed once the writer is done.
        self._fd = os.open(self._pipe, os.O_RDONLY | os.O_NONBLOCK)
        with contextlib.suppress(AttributeError, OSError):
            fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()  # whoever reads the pipe holds it: the iterator, then the drain
        self._closed = False
        self._finished = False
        self._thread = threading.Thread(target=self._run, name="convoscope-csv-stream", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.count = self._write(self._pipe, self._hand_over)
        except BaseException as exc:  # told to the reader, which raises it
            self.error = exc

    def _hand_over(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self._cursor = cursor
        if self._closed:
            cursor.interrupt()

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield self.header
            while True:
                with self._lock:
                    if self._closed:
                        return
                    chunk = self._read()
                if chunk is None:
                    break
                if chunk:
                    yield chunk
        except GeneratorExit:  # the reader stopped early
            self.close()
            raise
        self._finish()
        if self.error is not None:
            raise self.error

    def _read(self) -> bytes | None:
        """The next bytes in the pipe (b"" when none came within a moment), None once the writer is done and the
        pipe empty."""
        ready, _, _ = select.select([self._fd], [], [], 0.5)
        if not ready:
            return b""
        try:
            data = os.read(self._fd, PIPE_BYTES)
        except BlockingIOError:
            return b""
        if data:
            return data
        # No writer holds the pipe: DuckDB has not opened it yet, or has closed it after its last byte.
        self._thread.join(0.01)
        return b"" if self._thread.is_alive() else None

    def close(self) -> None:
        """Stop early, without waiting: interrupt the query, and drain the pipe on a thread of its own until the
        writer has finished (it may be blocked writing into a full pipe, or about to open it)."""
        if self._closed or self._finished:
            return
        self._closed = True
        if self._cursor is not None:
            self._cursor.interrupt()
        threading.Thread(target=self._drain, name="convoscope-csv-drain", daemon=True).start()

    def _drain(self) -> None:
        with self._lock:
            if self._finished:
                return
            while self._read() is not None:
                pass
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
        os.close(self._fd)
        shutil.rmtree(self._folder, ignore_errors=True)
        if self._on_done is not None:
            self._on_done()
