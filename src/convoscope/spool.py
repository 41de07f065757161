"""The spool: webhook deliveries kept on disk until they are merged into the store.

A helpdesk waits a few seconds for an answer and never sends a delivery twice (Chatwoot: 5 s, no retry),
while the store may be held for minutes by a long ingest or another command. So a delivery is written
here, in a folder beside the store, and made durable (written, fsynced, renamed into place, the folder
fsynced) before the server answers; whoever holds the store next merges the spool into it
(`service.merge_spool`). A file is removed only after the transaction that merged it committed, and
merging one again (after a crash between the two) changes nothing: its records are read again from the
same source and line (SPEC 2.4).

Deliveries are committed in groups (issue 30, decision 177): the deliveries that come while one group is
being made durable wait, and are written together as the next group, one file with one fsync of it and one
of the folder, so that under a stream of deliveries the disk is asked for two fsyncs a group instead of two a
delivery, and a round of the server's writer removes a file a group. A delivery is answered once its group is
durable, as before. A file holds its deliveries one after the other, each a line of JSON (what the delivery
is: its system, brand, delivery id, when it came, and its body's length in bytes) then the body's bytes
exactly as received; a file written before groups holds one delivery with no length, its body running to
the end.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".delivery"


def spool_folder(db_path: Path) -> Path:
    """The spool of the store at `db_path`: `<store file>.spool` beside it."""
    return db_path.with_name(db_path.name + ".spool")


@dataclass(frozen=True)
class Delivery:
    """One spooled delivery. Files' names, then places in a file, order deliveries as they came."""

    path: Path  # the file it is kept in, with the others of its group
    system: str
    brand: str
    delivery: str  # the helpdesk's delivery id, else the spool's own
    received_at: str
    body: bytes

    @property
    def source(self) -> str:
        """Where its records came from, as rejects and the sources report name it (SOURCES.md 1.7)."""
        return f"webhook:{self.system}:{self.delivery}"


class Spool:
    """The spool folder of one store."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, system: str, brand: str, body: bytes, *, delivery: str | None) -> str:
        """Keep one delivery durably; returns its delivery id. Raises OSError when it cannot be kept."""
        return self.keep(system, brand, body, delivery=delivery)[2]

    def keep(self, system: str, brand: str, body: bytes, *, delivery: str | None) -> tuple[Path, int, str]:
        """`put`, returning the file its group was kept in and its place in that file too."""
        own = uuid.uuid4().hex
        head = {"system": system, "brand": brand, "delivery": delivery or own,
                "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "size": len(body)}
        path, place = _committer(self.folder).keep(json.dumps(head).encode() + b"\n" + body)
        return path, place, str(head["delivery"])

    def waiting(self) -> list[Path]:
        """The deliveries not merged yet, in the order they came."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.suffix == SUFFIX and not p.name.startswith("."))

    def read(self, path: Path) -> list[Delivery]:
        """The deliveries kept in the file at `path`, in the order they came. Raises ValueError for a file that is
        not a spool's (cut short, or hand-edited)."""
        data = path.read_bytes()
        found, at = [], 0
        while at < len(data):
            end = data.find(b"\n", at)
            if end < 0:
                raise ValueError("a delivery's head has no end")
            meta = json.loads(data[at:end])
            start = end + 1
            size = meta.get("size")
            stop = len(data) if size is None else start + int(size)
            if stop > len(data):
                raise ValueError("a delivery is cut short")
            found.append(Delivery(path, meta["system"], meta["brand"], meta["delivery"], meta["received_at"],
                                  data[start:stop]))
            at = stop
        return found

    def set_aside(self, path: Path) -> Path:
        """Move a delivery that cannot be read (a damaged disk, a hand-edited file) out of the way, into
        `unreadable/`, so that it blocks nothing and is kept for a person to look at."""
        aside = self.folder / "unreadable"
        aside.mkdir(exist_ok=True)
        target = aside / path.name
        os.replace(path, target)
        _sync(self.folder)
        return target

    def remove(self, paths: list[Path]) -> None:
        """Forget files once the store holds their deliveries."""
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if paths:
            _sync(self.folder)

    def clear_partial(self, older_than: float = 3600.0) -> None:
        """Remove files a crash left half written: their deliveries were never answered with 200."""
        if not self.folder.is_dir():
            return
        for path in self.folder.glob(".*.partial"):
            with contextlib.suppress(FileNotFoundError):
                if time.time() - path.stat().st_mtime > older_than:
                    path.unlink()


class _Committer:
    """Group commit of one spool folder's deliveries in this process (see the module). A delivery joins the open
    group; while no group is being written, the first delivery to find its group open writes it, with every
    delivery that joined it meanwhile, and the others wait for it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._changed = threading.Condition()
        self._open: list[bytes] = []
        self._writing = False
        self._group = 0  # the open group's number
        self._done: dict[int, tuple[Path | OSError, int]] = {}  # a group written: its file or why not, readers left

    def keep(self, record: bytes) -> tuple[Path, int]:
        """Keep `record` (a head line and a body) durably; returns its file and its place in it."""
        with self._changed:
            group, place = self._group, len(self._open)
            self._open.append(record)
            while group not in self._done:
                if self._writing:
                    self._changed.wait()
                    continue
                records, self._open, self._writing = self._open, [], True
                self._group += 1
                self._changed.release()
                outcome: Path | OSError = OSError(errno.EIO, "the spool's writer stopped")
                try:
                    outcome = self._write(records)
                except OSError as exc:
                    outcome = exc
                finally:  # even when stopped by something else, so that no delivery waits for ever
                    self._changed.acquire()
                    self._writing = False
                    self._done[group] = (outcome, len(records))
                    self._changed.notify_all()
            outcome, left = self._done.pop(group)
            if left > 1:
                self._done[group] = (outcome, left - 1)
        if isinstance(outcome, OSError):
            raise OSError(outcome.errno, f"the delivery could not be kept in the spool: {outcome.strerror or outcome}")
        return outcome, place

    def _write(self, records: list[bytes]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
        partial = self.folder / f".{name}.partial"
        with partial.open("wb") as handle:
            handle.write(b"".join(records))
            handle.flush()
            os.fsync(handle.fileno())
        path = self.folder / (name + SUFFIX)
        os.replace(partial, path)
        _sync(self.folder)
        return path


def _sync(folder: Path) -> None:
    """Make the folder's entries (a file renamed in or out) durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


_COMMITTERS: dict[Path, _Committer] = {}
_COMMITTERS_LOCK = threading.Lock()


def _committer(folder: Path) -> _Committer:
    """The one committer of `folder` in this process."""
    with _COMMITTERS_LOCK:
        found = _COMMITTERS.get(folder.absolute())
        if found is None:
            found = _COMMITTERS[folder.absolute()] = _Committer(folder)
        return found
