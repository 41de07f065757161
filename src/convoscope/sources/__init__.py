"""Sources: a helpdesk's records turned into SPEC 2 events, as `../shared/SOURCES.md` maps them.

One module per helpdesk (`chatwoot`, `gladly`) reads that helpdesk's records and says what each became,
as an `Outcome`: events, or ignored on purpose (counted by reason, not kept), or rejected (kept with its
raw text and a one-line reason). A source never touches the store: its events go through the same
validation, merge and rejects as plain events (`service.ingest_source`). Adding a helpdesk is one module
with the same shape and a page in `docs/sources/` (docs/architecture.md says how).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
