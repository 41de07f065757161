"""What each report column means, in a few words, for the web pages (issue 28: a short definition beside every
column and headline number).

One source with the documentation: the meanings are read from the column tables of docs/reports.md — the file a
reader of the docs reads — not written again here. The file ships inside the package (`convoscope/_docs/`, copied
there by setup.py's build step) and, in a checkout or an editable install, is read from the repository's docs/.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

_PACKAGED = Path(__file__).resolve().parents[1] / "_docs" / "reports.md"
_CHECKOUT = Path(__file__).resolve().parents[3] / "docs" / "reports.md"

# Reports whose page in docs/reports.md gives only the columns they add to another report's.
_SAME_AS = {"sessions-detail-with-messages": "sessions-detail", "handoff-themes-with-examples": "handoff-themes"}
# A meaning that only refers to another report's column (`as sessions-detail`) is that column's meaning there.
_REFERS = re.compile(r"as ([a-z-]+)(?:'s)?", re.IGNORECASE)
_SECTION = re.compile(r"^## ([a-z-]+)", re.MULTILINE)


def source() -> Path:
    """docs/reports.md as installed with the package, else the checkout's."""
    return _PACKAGED if _PACKAGED.is_file() else _CHECKOUT


def meaning(report: str, column: str) -> str | None:
    """The short definition of `column` (its display header) in `report`, as plain text; None when the
    documentation gives none."""
    for name in (report, _SAME_AS.get(report)):
        if name is None:
            continue
        found = _meanings().get(name, {}).get(column)
        if found is not None:
            return found
    return None


@functools.cache
def _meanings() -> dict[str, dict[str, str]]:
    """Every report section's column tables, report → column → meaning."""
    text = source().read_text(encoding="utf-8")
    sections = _SECTION.split(text)[1:]
    found: dict[str, dict[str, str]] = {}
    for name, body in zip(sections[::2], sections[1::2], strict=True):
        found[name] = _tables(body)
    for columns in found.values():
        for column, text_ in list(columns.items()):
            match = _REFERS.fullmatch(text_)
            if match and column in found.get(match.group(1), {}):
                columns[column] = found[match.group(1)][column]
    return found


def _tables(body: str) -> dict[str, str]:
    """The rows of the Markdown tables of one section: the first cell names one or more columns (`Example 1
    Link, Example 2 Link`), the second says what they hold, read on from the table's header when that header ends in
    `…` ("counts the sessions created in the period that…" + "had an AI reply") unless the row says it all (a
    ratio, with ÷, or a noun phrase, "the period's label")."""
    found: dict[str, str] = {}
    lead = ""
    rows = [line for line in body.splitlines() if line.startswith("|")]
    for i, line in enumerate(rows):
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(cells) < 2 or set(cells[0]) <= {"-", " "}:
            continue
        if i + 1 < len(rows) and set(rows[i + 1]) <= {"|", "-", " "}:  # a header row
            lead = cells[1].removesuffix("…") if cells[1].endswith("…") else ""
            continue
        said = plain(cells[1])
        if lead and "÷" not in said and not said.startswith("the "):
            said = lead.removesuffix(" that") if said == "all" else f"{lead} {said}"
        if not _unmarked(cells[1]).startswith("`"):  # a value such as `open` keeps its case
            said = said[:1].upper() + said[1:]
        for column in cells[0].split(", "):
            found[column] = said
    return found


def _unmarked(markdown: str) -> str:
    return markdown.removeprefix("*text* — ")


def plain(markdown: str) -> str:
    """A table cell as plain text: no `*text* — ` marker, no emphasis or code marks (a code span of punctuation
    alone, `, `, in quotes), no "(see … above)", escaped pipes as pipes."""
    text = re.sub(r"\s*\(see [^)]* above\)", "", _unmarked(markdown))
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)  # a link: its words
    text = text.replace("\\|", "|")
    text = re.sub(r"`([^`]*)`", lambda m: m[1] if re.search(r"[0-9A-Za-z]", m[1]) else f"“{m[1]}”", text)
    return re.sub(r"\*\*?([^*]+)\*\*?", r"\1", text)
