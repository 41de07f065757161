"""Sources: a helpdesk's records turned into SPEC 2 events, as `../shared/SOURCES.md` maps them.

One module per helpdesk (`chatwoot`, `gladly`) reads that helpdesk's records and says what each became,
as an `Outcome`: events, or ignored on purpose (counted by reason, not kept), or rejected (kept with its
raw text and a one-line reason). A source never touches the store: its events go through the same
validation, merge and rejects as plain events (`service.ingest_source`). Adding a helpdesk is one module
with the same shape and a page in `docs/sources/` (docs/architecture.md says how).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from convoscope.errors import IngestError

# SPEC 2.2's limit on `text`; a longer text is cut and counted (SOURCES.md: `text_truncated`).
MAX_TEXT = 100_000


@dataclass
class Outcome:
    """What one input record became (SOURCES.md): a line of a capture, a webhook body, a CSV row or one
    message of a backfill record.

    `events` are SPEC 2 events as JSON values (no `brand`: the ingest gives every event the brand it is
    told); a record with no event is `ignored` (a reason code such as `status_other`) or `rejected` (a
    reason code, and `message`, the one line kept with the reject saying what is wrong and what to do).
    `raw` is the record as received, which the same source can read again once fixed."""

    source: str  # a file's absolute path, or a delivery's name (`webhook:chatwoot:<delivery id>`)
    line: int | None  # the record's line in that file, from 1; None where the source has no lines
    raw: str
    events: list[dict[str, Any]] = field(default_factory=list)
    ignored: str | None = None
    rejected: str | None = None
    message: str | None = None
    truncated: int = 0  # how many of `events` had their text cut to MAX_TEXT characters
    occurred_at: str | None = None  # the record's own time where it has one and yields no event
    customer_id: str | None = None  # a rejected record's customer, where it can be read: `forget` erases it too
    event_id: str | None = None  # a rejected record's event id, where it can be made: data-quality shows it, and
    # the reject is resolved once an event of that id is stored


def cut_text(text: object) -> tuple[str | None, bool]:
    """A message text as an event carries it (SPEC 2.2): absent when null or empty, cut to MAX_TEXT
    characters. Returns the text and whether it was cut."""
    if not isinstance(text, str) or text == "":
        return None, False
    if len(text) > MAX_TEXT:
        return text[:MAX_TEXT], True
    return text, False


@dataclass
class SourceCounts:
    """What became of a source's records (SOURCES.md): events accepted and duplicate, records ignored
    and rejected (a record's events rejected by SPEC 2 count one each), events whose text was cut, and
    the ignored and rejected ones per (outcome, reason)."""

    accepted: int = 0
    duplicate: int = 0
    ignored: int = 0
    rejected: int = 0
    truncated: int = 0
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, other: SourceCounts) -> None:
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.ignored += other.ignored
        self.rejected += other.rejected
        self.truncated += other.truncated
        self.reasons.update(other.reasons)

    def answer(self) -> dict[str, int]:
        """The four counts, as the command line prints them and the webhook answers them."""
        return {"accepted": self.accepted, "duplicate": self.duplicate, "rejected": self.rejected,
                "ignored": self.ignored}


def module(name: str) -> ModuleType:
    """The module of source `name`: a module of this package with `read` (and `inputs`, `INPUTS`; a source
    that takes webhooks has `map_webhook`). Adding a helpdesk is adding such a module."""
    if re.fullmatch(r"[a-z][a-z0-9_]*", name) and (Path(__file__).parent / f"{name}.py").is_file():
        found = importlib.import_module(f"{__name__}.{name}")
        if callable(getattr(found, "read", None)):
            return found
    raise IngestError(f"unknown source {name!r}; use one of {', '.join(names())}")


def names() -> list[str]:
    """Every source convoscope reads."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and callable(getattr(importlib.import_module(f"{__name__}.{info.name}"),
                                                              "read", None)):
            found.append(info.name)
    return found


def files(paths: list[str], suffixes: tuple[str, ...], *, what: str) -> list[Path]:
    """The files `paths` name: files as given, folders as their files with one of `suffixes` (a source
    whose input is files); checked before anything is read or a store opened."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            listed = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not listed:
                raise IngestError(f"{path}: no {', '.join(suffixes)} files in this folder; give {what}")
            found.extend(listed)
        elif path.is_file():
            found.append(path)
        else:
            raise IngestError(f"{path}: no such file or folder; check the path")
    return found


def map_delivery(name: str, body: bytes, *, source: str) -> Outcome:
    """What one webhook delivery of source `name` became (SOURCES.md 1.7)."""
    mapping = module(name)
    if not callable(getattr(mapping, "map_webhook", None)):
        raise IngestError(f"source {name!r} sends no webhooks convoscope reads")
    outcome: Outcome = mapping.map_webhook(body, source=source)
    return outcome
