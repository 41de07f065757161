"""The server's one open store (`StoreGate`): shared by the requests in flight through cursors, kept open a few
seconds after the last one, and let go of for another process that waits for the file (`store.wanted`, decision
183); the lock of the writers of data, which counts how often it was taken (`CountedLock`), and an audit entry's
(`StoreGate.recorded`, decision 181)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from convoscope.events.known import KnownIds
from convoscope.store import Store, file_stamp, log_of, same_data, wanted


class StoreGate:
    """One open store shared by the requests in flight, kept open `keep` seconds after the last one finishes (the
    next finds DuckDB's buffers warm, not the file to open again: a page with messages at 10M events took 0.33 s
    opening the file per request, 0.17 s with it kept) unless another process waits for it (`store.wanted`): then
    it is closed as soon as no request uses it, and not opened again until that process has it or stops waiting.

    It keeps the ids the writer knows are stored (`known`, events/known.py) for as long as nothing else can have
    written: while the store is open nobody else can, and when it opens the file again the filter is kept only if
    the file is as the server left it (`file_stamp`)."""

    KEEP = 5.0  # seconds an unused store stays open
    WATCH = 0.1  # seconds between two looks, while it is open unused, at whether it is wanted or has been kept enough
    HANDOVER = 2.0  # seconds a request waits, at most, for a waiting process to take the file before opening it

    def __init__(self, path: Path, *, keep: float = KEEP) -> None:
        self.path = path
        self.keep = keep
        self._lock = threading.Lock()
        self._users = 0
        self._store: Store | None = None
        self._unused_since = 0.0
        self._watched = False  # a thread closes the store when it is wanted or kept long enough (`_watch`)
        self.writing = CountedLock()  # one writer of events and derived tables at a time; readers never wait for it
        # The audit log's appends: they touch nothing the writer does, so a page's audit entry never waits for a round.
        self.recording = threading.Lock()
        self.known = KnownIds()
        self._left: tuple[object, ...] | None = None  # the store file's stamp when the server last closed it

    @contextmanager
    def open(self) -> Iterator[Store]:
        self._hand_over()
        with self._lock:
            if self._store is None:
                if self._left is None or file_stamp(self.path) != self._left:
                    self.known = KnownIds()  # another process may have written: learn the ids again
                self._store = Store(self.path)
            self._users += 1
            shared = self._store
        view = Store.over(shared.con.cursor(), self.path)
        try:
            yield view
        finally:
            view.close()
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._store is not None:
                    if self.keep <= 0 or wanted(self.path):
                        self._close()
                    else:
                        self._checkpoint()
                        self._unused_since = time.monotonic()
                        if not self._watched:
                            self._watched = True
                            threading.Thread(target=self._watch, name="convoscope-store-gate", daemon=True).start()

    def close(self) -> None:
        """Close the store unless a request uses it (a server stopping)."""
        with self._lock:
            if self._users == 0 and self._store is not None:
                self._close()

    def _close(self) -> None:
        """Under `_lock`, no request using the store."""
        assert self._store is not None
        with same_data(self._store):  # closing checkpoints the log into the file: the same data
            self._store.close()
        self._store = None
        self._left = file_stamp(self.path)

    def _checkpoint(self) -> None:
        """Under `_lock`, no request using the store: write its log into the file, as closing it did. Left to DuckDB,
        a store kept open under continuous load is checkpointed only at a commit that finds no other transaction
        running, by then after a long log: the writer's round that met it took seconds (bench/live.py at 10M: webhook
        freshness 6.0 s at p99, 1.6 s with the store closed when unused)."""
        assert self._store is not None
        try:
            if log_of(self.path).stat().st_size == 0:
                return
        except OSError:  # no log: nothing committed since the last checkpoint
            return
        with same_data(self._store):  # the same data, as when closing
            self._store.con.execute("CHECKPOINT")

    def _watch(self) -> None:
        """While the store is open: close it once no request uses it and another process wants it, or `keep`
        seconds after the last request."""
        while True:
            time.sleep(self.WATCH)
            with self._lock:
                if self._store is None:
                    self._watched = False
                    return
                unused = self._users == 0
                if unused and (wanted(self.path) or time.monotonic() - self._unused_since >= self.keep):
                    self._close()
                    self._watched = False
                    return

    def _hand_over(self) -> None:
        """Before opening a closed store: while another process waits for it, give that process the file first,
        for up to HANDOVER seconds (it tries again every quarter of a second at most). Once it has the file, opening
        waits for it as before."""
        if self._store is not None:
            return
        until = time.monotonic() + self.HANDOVER
        while wanted(self.path) and time.monotonic() < until:
            time.sleep(0.05)

    def recorded(self, store: Store) -> AbstractContextManager[None]:
        """The lock around an audit entry's write (`recording`), which also keeps what pages keep of the store
        (`store.same_data`) when no writer of data held `writing` from before the entry to after it: the writer is
        never kept waiting, and a round that ran meanwhile changes what was kept anyway."""
        return _Recorded(self, store)


class CountedLock:
    """A lock that counts how often it was taken: whether anyone held it between two instants."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.taken = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking, timeout):
            self.taken += 1  # before its holder can commit anything
            return True
        return False

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


class _Recorded:
    """`StoreGate.recorded`: a lock entered once per audit entry, and again for the next one."""

    def __init__(self, gate: StoreGate, store: Store) -> None:
        self.gate, self.store = gate, store

    def __enter__(self) -> None:
        self.gate.recording.acquire()
        writing = self.gate.writing
        taken, free = writing.taken, not writing.locked()  # the count first: a writer taking the lock changes it
        self._entry = same_data(self.store, lambda: free and not writing.locked() and writing.taken == taken)
        self._entry.__enter__()

    def __exit__(self, *exc: Any) -> bool | None:
        try:
            return self._entry.__exit__(*exc)
        finally:
            self.gate.recording.release()
