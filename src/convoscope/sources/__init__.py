"""Sources: a helpdesk's records turned into SPEC 2 events, as `../shared/SOURCES.md` maps them.

One module per helpdesk (`chatwoot`, `gladly`) reads that helpdesk's records and says what each became,
as an `Outcome`: events, or ignored on purpose (counted by reason, not kept), or rejected (kept with its
raw text and a one-line reason). A source never touches the store: its events go through the same
validation, merge and rejects as plain events (`service.ingest_source`). Adding a helpdesk is one module
with the same shape and a page in `docs/sources/` (docs/architecture.md says how).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convoscope.config import SourceSettings
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


# The helpdesks convoscope reads, each a module of this package: `NAMES[name]` says what its PATHs are.
NAMES = {
    "chatwoot": "Chatwoot captures: JSON Lines files of webhook bodies and REST backfill records, or folders of them",
    "gladly": "Gladly export job folders (conversation_items.jsonl and the AI Sessions Detail CSV)",
}
CAPTURE_SUFFIXES = (".jsonl", ".ndjson", ".json")


def inputs(name: str, paths: list[str]) -> list[Path]:
    """The inputs `paths` name for source `name`, checked before anything is read or a store opened."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if name == "gladly":
            if not path.is_dir():
                raise IngestError(f"{path}: not a folder; give the folder of a Gladly export job "
                                  "(with conversation_items.jsonl and the AI Sessions Detail CSV)")
            found.append(path)
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CAPTURE_SUFFIXES)
            if not files:
                raise IngestError(f"{path}: no .jsonl files in this folder; give Chatwoot capture files")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            raise IngestError(f"{path}: no such file or folder; check the path")
    return found


def read(name: str, path: Path, settings: SourceSettings) -> Iterator[Outcome]:
    """What every record of one input of source `name` became."""
    if name == "chatwoot":
        from convoscope.sources import chatwoot

        return chatwoot.read_capture(path)
    if name == "gladly":
        from convoscope.sources import gladly

        return gladly.read_export(path, ai_api_users=settings.ai_api_users)
    raise IngestError(f"unknown source {name!r}; use one of {', '.join(NAMES)}")


def map_delivery(name: str, body: bytes, *, source: str) -> Outcome:
    """What one webhook delivery of source `name` became (SOURCES.md 1.7)."""
    if name == "chatwoot":
        from convoscope.sources import chatwoot

        return chatwoot.map_webhook(body, source=source)
    raise IngestError(f"source {name!r} sends no webhooks convoscope reads")
