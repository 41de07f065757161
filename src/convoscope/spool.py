"""The spool: webhook deliveries kept on disk, each in its own file, until they are merged into the store.

A helpdesk waits a few seconds for an answer and never sends a delivery twice (Chatwoot: 5 s, no retry),
while the store may be held for minutes by a long ingest or another command. So a delivery is written
here, in a folder beside the store, and made durable (written, fsynced, renamed into place, the folder
fsynced) before the server answers; whoever holds the store next merges the spool into it
(`service.merge_spool`). A file is removed only after the transaction that merged it committed, and
merging one again (after a crash between the two) changes nothing: its records are read again from the
same source and line (SPEC 2.4).

A file holds one line of JSON (what the delivery is: its system, brand, delivery id, when it came), then
the body's bytes exactly as received.
"""

from __future__ import annotations

import contextlib
import json
import os
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
    """One spooled delivery. `name` orders deliveries as they came."""

    path: Path
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
        return self.keep(system, brand, body, delivery=delivery)[1]

    def keep(self, system: str, brand: str, body: bytes, *, delivery: str | None) -> tuple[Path, str]:
        """`put`, returning the delivery's file too."""
        self.folder.mkdir(parents=True, exist_ok=True)
        own = uuid.uuid4().hex
        name = f"{time.time_ns():020d}-{own}"
        head = {"system": system, "brand": brand, "delivery": delivery or own,
                "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        partial = self.folder / f".{name}.partial"
        with partial.open("wb") as handle:
            handle.write(json.dumps(head).encode() + b"\n" + body)
            handle.flush()
            os.fsync(handle.fileno())
        path = self.folder / (name + SUFFIX)
        os.replace(partial, path)
        self._sync_folder()
        return path, str(head["delivery"])

    def waiting(self) -> list[Path]:
        """The deliveries not merged yet, in the order they came."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.suffix == SUFFIX and not p.name.startswith("."))

    def read(self, path: Path) -> Delivery:
        data = path.read_bytes()
        head, _, body = data.partition(b"\n")
        meta = json.loads(head)
        return Delivery(path, meta["system"], meta["brand"], meta["delivery"], meta["received_at"], body)

    def set_aside(self, path: Path) -> Path:
        """Move a delivery that cannot be read (a damaged disk, a hand-edited file) out of the way, into
        `unreadable/`, so that it blocks nothing and is kept for a person to look at."""
        aside = self.folder / "unreadable"
        aside.mkdir(exist_ok=True)
        target = aside / path.name
        os.replace(path, target)
        self._sync_folder()
        return target

    def remove(self, paths: list[Path]) -> None:
        """Forget deliveries once the store holds them."""
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if paths:
            self._sync_folder()

    def clear_partial(self, older_than: float = 3600.0) -> None:
        """Remove files a crash left half written: their deliveries were never answered with 200."""
        if not self.folder.is_dir():
            return
        for path in self.folder.glob(".*.partial"):
            with contextlib.suppress(FileNotFoundError):
                if time.time() - path.stat().st_mtime > older_than:
                    path.unlink()

    def _sync_folder(self) -> None:
        descriptor = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
