"""Fuzzing of ingestion (issue 6): every input format of SPEC 2.1 and `POST /api/v1/events` of SPEC 6.2,
fed generated records, byte-level mutations of valid ones and hand-picked hostile inputs — truncated
lines, values of the wrong type, fields over the SPEC 2.2 limits, a 10 MB line, invalid UTF-8, NUL
bytes, 10,000 levels of nesting, timestamps out of range, blank lines, BOMs, stray CSV quotes, wrong
column counts, Parquet columns of unexpected types.

Whatever the input, these must hold:
- ingestion raises nothing but the one-line `IngestError` of a file that cannot be read at all;
- every record ends accepted, duplicate or rejected, and the three counts add up to the records given
  (JSON Lines and NDJSON: non-blank lines; CSV: records after the header; Parquet: rows; a JSON array:
  its elements);
- every accepted event is in `events`, every duplicate in `duplicates`, every reject in `rejects` with
  its source, its own line and a non-empty one-line reason — nothing is lost, nothing is counted twice;
- the server answers 200 or a 4xx with an `errors` body, never a 5xx; an oversized body or batch is a
  413 naming the limit, and other clients are served while one sends it.

`make test` runs few examples of each property. A long run gives every property that many examples:

    CONVOSCOPE_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/test_fuzz.py -p no:xdist
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from cli_helpers import Convoscope
from convoscope import service
from convoscope.cli import cli
from convoscope.config import Config
from convoscope.errors import IngestError
from convoscope.events.schema import FIELDS, MAX_LENGTH
from convoscope.store import EVENT_TYPES, Store
from web_helpers import LiveServer, add_user, bearer, serving

Record = dict[str, Any]

EXAMPLES = int(os.environ.get("CONVOSCOPE_FUZZ_EXAMPLES") or 0)


def fuzz(examples: int) -> settings:
    """`examples` per property in `make test`, or CONVOSCOPE_FUZZ_EXAMPLES of them for a long run."""
    return settings(max_examples=EXAMPLES or examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])


# A reason is one line: no line feed, carriage return or other control character (a terminal obeys them).
NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f]")
MESSAGE_TYPES = ("customer_message", "ai_message", "agent_message")
SEQUENCE = itertools.count(1)
# Records per generated file: ingesting a file costs about the same for one record or thirty (most of it is
# planning the validation query), so examples are files of many records, and few.
RECORDS = 30


# --- generated records ---------------------------------------------------------------------------------

# Values of every JSON type but a string, for fields that expect one (and strings where lists belong).
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
wrong_types = st.one_of(st.integers(), st.floats(allow_nan=True), st.booleans(), st.lists(json_values, max_size=3),
                        st.dictionaries(st.text(max_size=6), json_values, max_size=3))
# Any text: control characters, NUL, line separators, combining marks, astral characters.
any_text = st.text(max_size=12)
near_limit = st.sampled_from([1, 199, 200, 201])

EDGE_TIMESTAMPS = [
    "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59-00:01", "99999-01-01T00:00:00Z", "-0001-01-01T00:00:00Z", "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z", "2026-02-29T10:00:00Z", "2024-02-29T10:00:00Z", "2026-05-21T24:00:00Z",
    "2026-05-21T23:59:60Z", "2026-05-21T10:00:00+25:00", "2026-05-21T10:00:00+23:59", "2026-05-21T10:00:00-24:00",
    "2026-05-21T10:00:00+02", "2026-05-21T10:00:00+0200", "2026-05-21T10:00:00", "2026-05-21t10:00:00z",
    "2026-05-21 10:00:00Z", "2026-05-21T10:00:00.123456789123Z", "2026-05-21T10:00Z", "2026-05-21", "",
    " 2026-05-21T10:00:00Z", "2026-05-21T10:00:00Z\n", "１２３４-05-21T10:00:00Z",
]


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    kind = draw(st.integers(0, 5))
    if kind <= 2:  # a valid RFC 3339 timestamp, any year, any offset
        moment = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
        minutes = draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))
        offset = "Z" if minutes == 0 else f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        return moment.isoformat(timespec=draw(st.sampled_from(["seconds", "milliseconds", "microseconds"]))) + offset
    if kind == 3:
        return draw(st.sampled_from(EDGE_TIMESTAMPS))
    return draw(any_text | wrong_types)


def valid_value(field: str) -> st.SearchStrategy[Any]:
    """A value of `field` that SPEC 2.2 allows (on a suitable type)."""
    return {
        "event_id": st.sampled_from(["e1", "e2", "e3"]) | st.text(min_size=1, max_size=20).filter(str.strip),
        "customer_id": st.sampled_from(["c1", "c2", "+15551234567"]),
        "brand": st.sampled_from(["default", "acme", "a" * 64, "", "  "]),
        "channel": st.sampled_from(["chat", "Email", "SMS", "whatsapp", "c" * 32]),
        "route": st.sampled_from(["ai", "team", ""]),
        "guides": st.lists(st.text(max_size=10), max_size=3),
        "category": st.sampled_from(["handoff_manual", "handoff_qc"]),
    }.get(field, st.text(max_size=30))


@st.composite
def records(draw: st.DrawFn) -> Record:
    """A record that is often a valid event and often not: fields missing, of the wrong type, too long,
    on the wrong event type, with unknown fields beside them."""
    type_ = draw(st.sampled_from(EVENT_TYPES) | st.sampled_from(EVENT_TYPES) | any_text | wrong_types)
    record: Record = {"type": type_}
    for field in FIELDS:
        if field == "type":
            continue
        required = field in ("event_id", "occurred_at", "customer_id") or (
            field == "channel" and type_ in MESSAGE_TYPES) or (field == "category" and type_ == "handoff")
        if not draw(st.booleans()) and not (required and draw(st.integers(0, 9)) > 0):
            continue
        choice = draw(st.integers(0, 9))
        if field == "occurred_at":
            value = draw(timestamps())
        elif choice <= 5:
            value = draw(valid_value(field))
        elif choice == 6:
            size = MAX_LENGTH.get(field, 200)
            value = "x" * (size + draw(st.sampled_from([0, 1]))) if draw(st.booleans()) else "é" * draw(near_limit)
            value = [value] if field == "guides" else value
        elif choice == 7:
            value = draw(any_text)
        elif choice == 8:
            value = draw(wrong_types)
        else:
            value = None
        record[field] = value
    for name, value in draw(st.dictionaries(st.text(max_size=8).filter(lambda n: n not in FIELDS), json_values,
                                            max_size=2)).items():
        record[name] = value
    return record


@st.composite
def valid_events(draw: st.DrawFn) -> Record:
    """A valid event (SPEC 2.2); its event_id starts with `v`, for a test to make it unique."""
    type_ = draw(st.sampled_from(EVENT_TYPES))
    moment = draw(st.datetimes(min_value=datetime(2026, 5, 1), max_value=datetime(2026, 6, 1)))
    event: Record = {"event_id": "v" + draw(st.text("0123456789abcdef", min_size=8, max_size=8)), "type": type_,
                     "occurred_at": moment.isoformat() + "Z",
                     "customer_id": draw(st.sampled_from(["c1", "c2", "Ünïcode ☃"]))}
    if type_ in MESSAGE_TYPES:
        event["channel"] = draw(st.sampled_from(["chat", "email"]))
        event["text"] = draw(st.text(max_size=20).filter(lambda t: "\x00" not in t))
    if type_ == "customer_message" and draw(st.booleans()):
        event["route"] = draw(st.sampled_from(["ai", "team"]))
    if type_ == "ai_message":
        event["guides"] = draw(st.lists(st.sampled_from(["Refunds", "Order Status"]), max_size=2))
    if type_ == "handoff":
        event["category"] = "handoff_manual"
        event["reason"] = draw(st.text(max_size=20))
    if type_ == "feedback":  # issue 26: a rating is required, a score of 1-5 and a text are not
        event["rating"] = draw(st.sampled_from(["positive", "negative"]))
        if draw(st.booleans()):
            event["score"] = draw(st.integers(1, 5))
        if draw(st.booleans()):
            event["text"] = draw(st.text(max_size=20).filter(lambda t: "\x00" not in t))
    return event


# --- serialising and mutating ------------------------------------------------------------------------------

INTERESTING = [b"\n", b"\r", b"\r\n", b"\x00", b'"', b",", b"\\", b"{", b"}", b"[", b"]", b"\xef\xbb\xbf", b"\xff",
               b"\xc3", b"\xed\xa0\x80", b"\xe2\x80\xa8", b"\\u0000", b"\\ud800", b"   ", b"null", b"1e999"]


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with one to eight byte-level changes: a byte flipped or replaced, bytes inserted (random or
    ones that matter to JSON and CSV: quotes, commas, line breaks, NUL, a BOM, broken UTF-8), bytes
    deleted, the end cut off."""
    buffer = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(buffer)))
        operation = draw(st.sampled_from(["flip", "replace", "insert", "insert", "delete", "truncate"]))
        if operation in ("flip", "replace") and buffer:
            at = min(at, len(buffer) - 1)
            buffer[at] = buffer[at] ^ (1 << draw(st.integers(0, 7))) if operation == "flip" else draw(st.integers(0, 255))
        elif operation == "insert":
            buffer[at:at] = draw(st.sampled_from(INTERESTING) | st.binary(min_size=1, max_size=4))
        elif operation == "delete":
            del buffer[at:at + draw(st.integers(1, 8))]
        elif operation == "truncate":
            del buffer[at:]
    return bytes(buffer)


@st.composite
def jsonl_files(draw: st.DrawFn, items: st.SearchStrategy[Record], *, unique: bool = False) -> bytes:
    """Records as JSON Lines: either line ending, blank lines here and there, maybe a BOM, maybe no final
    line break, non-ASCII written as is or escaped. `unique`: no two records of one event_id."""
    lines = []
    for record in draw(st.lists(items, max_size=RECORDS, unique_by=(lambda r: r["event_id"]) if unique else None)):
        if draw(st.integers(0, 4)) == 0:
            lines.append(draw(st.sampled_from(["", "   ", "\t", "\r"])))
        lines.append(json.dumps(record, ensure_ascii=draw(st.booleans())))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    text = ending.join(lines) + (ending if draw(st.booleans()) else "")
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + text.encode("utf-8", errors="surrogatepass")


def csv_cell(value: Any, *, pipes: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and pipes and all(isinstance(v, str) for v in value):
        return "|".join(value)
    return json.dumps(value)


@st.composite
def csv_files(draw: st.DrawFn, items: st.SearchStrategy[Record]) -> tuple[bytes, int]:
    """Records as CSV, with the columns they use (in any order); returns the bytes and the number of
    records, not counting those whose every cell is empty (they read as blank lines)."""
    rows = draw(st.lists(items, max_size=RECORDS))
    columns = list(dict.fromkeys(name for row in rows for name in row)) or ["event_id", "type"]
    columns = draw(st.permutations(columns))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=draw(st.sampled_from(["\n", "\r\n"])),
                        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
    writer.writerow(columns)
    pipes = draw(st.booleans())
    cells = [[csv_cell(row.get(name), pipes=pipes) for name in columns] for row in rows]
    writer.writerows(cells)
    data = (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + buffer.getvalue().encode("utf-8", "surrogatepass")
    return data, sum(1 for row in cells if any(row))


def jsonl_records(data: bytes) -> int:
    """Records of a JSON Lines file: its non-blank lines (only a line feed ends a line; a BOM starts the file)."""
    return sum(1 for line in data.removeprefix(b"\xef\xbb\xbf").split(b"\n") if line.decode("utf-8", "replace").strip())


def csv_records(data: bytes) -> range:
    """Records after the header (the first line, even a blank one) of a CSV file as Python's csv module
    reads them — the reference the reader's count is held to. A blank line is no record, nor is a row of
    the header's width whose cells are all empty. A row read as one cell of white space may have been
    a quoted one (a record) or a blank line (none): the answer is a range."""
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    width = (len(rows[0]) or 1) if rows else 0
    body = [row for row in rows[1:] if row]  # a blank line reads as no row at all
    # One empty cell where the header has more is a record too: a quoted empty value, or a quote left open.
    certain = sum(1 for row in body if (any(row) if len(row) == width
                                        else len(row) > 1 or bool(row[0].strip()) or row[0] == ""))
    maybe = sum(1 for row in body if len(row) == 1 != width and row[0] and not row[0].strip())
    return range(certain, certain + maybe + 1)


def physical_lines(data: bytes, *, cr: bool = False) -> int:
    """Lines of a file: ended by a line feed (JSON Lines), or also by a lone CR (`cr`: CSV, as pyarrow reads it)."""
    return len(re.split(rb"\r\n|\r|\n", data)) if cr else data.count(b"\n") + 1


# --- ingesting and checking --------------------------------------------------------------------------------

@dataclass
class Ingested:
    accepted: int
    duplicate: int
    rejected: int
    rejects: list[tuple[str, str, int | None, str | None]]  # kind, reason, line, raw
    stored: list[int]  # lines
    duplicates: list[int]

    def within(self, lines: range) -> tuple[int, int, int]:
        """(accepted, duplicate, rejected) of the records at `lines`."""
        return (sum(line in lines for line in self.stored), sum(line in lines for line in self.duplicates),
                sum(line in lines for _, _, line, _ in self.rejects))


def check_ingest(store: Store, path: Path, records: int | range | None, *, derive: bool = False,
                 lines: int | None = None) -> Ingested | None:
    """Ingest `path` and check the invariants of this module; None when the file could not be read at all.
    `records` is the number of records the file holds (a range: between those; None: not known)."""
    if currently_in_test_context():
        note(f"{path.name}: {path.read_bytes()[:3000]!r}")  # shown when an example fails
    try:
        result = service.ingest(store, Config(), [str(path)], derive=derive)
    except IngestError as exc:  # only a whole file that cannot be read, told in one line
        assert exc.message.strip() and not NOT_ONE_LINE.search(exc.message), exc.message
        return None
    counts = result.counts
    source = str(path.resolve())
    if records is not None:
        total = counts.accepted + counts.duplicate + counts.rejected
        assert total in records if isinstance(records, range) else total == records, (counts, records)
    stored = [line for (line,) in store.con.execute("SELECT line FROM events WHERE source = ?", [source]).fetchall()]
    duplicates = [line for (line,) in store.con.execute("SELECT line FROM duplicates WHERE source = ?",
                                                        [source]).fetchall()]
    rejects = store.con.execute("SELECT kind, reason, line, raw FROM rejects WHERE source = ?", [source]).fetchall()
    assert len(stored) == counts.accepted, (stored, counts)  # nothing accepted is lost
    assert len(duplicates) == counts.duplicate, (duplicates, counts)
    assert len(rejects) == counts.rejected, (rejects, counts)
    for kind, reason, line, _ in rejects:
        assert kind in ("rejected", "conflict")
        assert reason.strip() and not NOT_ONE_LINE.search(reason), repr(reason)
        assert line is not None, reason
    every_line = stored + duplicates + [line for _, _, line, _ in rejects]
    assert len(set(every_line)) == len(every_line), sorted(every_line)  # each record once
    assert all(1 <= line <= (lines or line) for line in every_line), (sorted(every_line), lines)
    return Ingested(counts.accepted, counts.duplicate, counts.rejected, rejects, stored, duplicates)


def check_together(store: Store, folder: Path, suffix: str, cases: dict[str, tuple[bytes, tuple[int, int, int]]], *,
                   header: bytes = b"") -> None:
    """Ingest every case's lines in one file (after `header`) and check each case's outcome at its lines:
    one ingestion instead of one per case. Event ids `h1`, `h2`… get a prefix, new in the shared store."""
    prefix = f"{next(SEQUENCE)}-".encode()
    data, spans, line = header, {}, header.count(b"\n") + 1
    for name, (fragment, _) in cases.items():
        fragment = re.sub(rb'(^|[\n\r"])(h\d)', lambda m: m.group(1) + prefix + m.group(2), fragment)
        spans[name] = range(line, line + fragment.count(b"\n") + (not fragment.endswith(b"\n")))
        data += fragment
        line += fragment.count(b"\n")
    if len(cases) == 1:  # the whole file, whatever ends its lines
        spans = dict.fromkeys(cases, range(1, physical_lines(data, cr=True) + 1))
    records = jsonl_records(data) if suffix == ".jsonl" else sum(sum(expected) for _, expected in cases.values())
    result = check_ingest(store, new_file(folder, suffix, data), records, lines=physical_lines(data, cr=suffix == ".csv"))
    assert result is not None
    outcomes = {name: result.within(spans[name]) for name in cases}
    assert outcomes == {name: expected for name, (_, expected) in cases.items()}, result.rejects


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Path]]:
    """One store for all examples (a new store per example would cost more than the ingestion); each
    example's file has its own name, so its own source."""
    folder = tmp_path_factory.mktemp("fuzz")
    with Store(folder / "fuzz.duckdb") as store:
        yield store, folder


def new_file(folder: Path, suffix: str, data: bytes) -> Path:
    path = folder / f"input-{next(SEQUENCE)}{suffix}"
    path.write_bytes(data)
    return path


# --- JSON Lines ----------------------------------------------------------------------------------------------

@fuzz(12)
@given(data=jsonl_files(records()))
def test_generated_records_as_json_lines(fuzz_store: tuple[Store, Path], data: bytes) -> None:
    store, folder = fuzz_store
    check_ingest(store, new_file(folder, ".jsonl", data), jsonl_records(data), lines=physical_lines(data), derive=True)


@fuzz(5)
@given(data=jsonl_files(valid_events(), unique=True))
def test_valid_events_as_json_lines_are_all_accepted(fuzz_store: tuple[Store, Path], data: bytes) -> None:
    store, folder = fuzz_store
    data = data.replace(b'"event_id": "v', f'"event_id": "{next(SEQUENCE)}-v'.encode())  # new in the shared store
    result = check_ingest(store, new_file(folder, ".jsonl", data), jsonl_records(data))
    assert result is not None and result.rejected == 0, result


@fuzz(25)
@given(data=jsonl_files(valid_events()).flatmap(mutations))
def test_mutated_json_lines(fuzz_store: tuple[Store, Path], data: bytes) -> None:
    store, folder = fuzz_store
    check_ingest(store, new_file(folder, ".jsonl", data), jsonl_records(data), lines=physical_lines(data))


GOOD = {"type": "customer_message", "occurred_at": "2026-05-21T10:00:00Z", "customer_id": "c1", "channel": "chat"}


def good(event_id: str, **fields: Any) -> str:
    return json.dumps({"event_id": event_id, **GOOD, **fields})


def nested(depth: int, opener: str = "[", closer: str = "]", leaf: str = "1") -> str:
    if opener == "{":
        return '{"a":' * depth + leaf + "}" * depth
    return opener * depth + leaf + closer * depth


def lines(*texts: str) -> bytes:
    return "".join(text + "\n" for text in texts).encode()


HOSTILE_JSONL: dict[str, tuple[bytes, tuple[int, int, int]]] = {
    # name: (lines, their (accepted, duplicate, rejected)); all in one file, in this order.
    "BOM at the start": (b"\xef\xbb\xbf" + lines(good("h1")), (1, 0, 0)),
    "truncated line": (lines(good("h2")[:40]), (0, 0, 1)),
    "10 MB line": (lines(good("h3", text="x" * 10_000_000)), (0, 0, 1)),
    "10 MB unknown field": (lines(good("h4", notes="x" * 10_000_000)), (1, 0, 0)),
    "10,000 levels nested in text": (lines(good("h5")[:-1] + ', "text": ' + nested(10_000, "{") + "}"), (0, 0, 1)),
    "10,000 levels at the top": (lines(nested(10_000)), (0, 0, 1)),
    "10 MB of open brackets": (lines("[" * 10_000_000), (0, 0, 1)),
    "NUL bytes": (lines("\x00\x00", good("h6")[:10] + "\x00" + good("h6")[10:]), (0, 0, 2)),
    "escaped NUL in text": (lines(good("h7", text="a\x00b")), (1, 0, 0)),
    "escaped NUL in event_id": (lines(good("h\x008")), (0, 0, 1)),
    "invalid UTF-8": (lines(good("h9", text="caf_")).replace(b"caf_", b"caf\xe9"), (0, 0, 1)),
    "UTF-8 of a surrogate": (lines(good("h10", text="_")).replace(b'"_"', b'"\xed\xa0\x80"'), (0, 0, 1)),
    "lone surrogate escape": (lines(good("h11", text="\ud800")), (0, 0, 1)),
    "BOM on a later line": (lines("\ufeff" + good("h12")), (0, 0, 1)),
    "blank lines": (lines("", " ", "\t\r", "\r", "\u2028", "\xa0"), (0, 0, 0)),
    "two objects on one line": (lines(good("h13") + " " + good("h14")), (0, 0, 1)),
    "a 5,000-digit number": (lines(good("h15")[:-1] + ', "n": ' + "9" * 5000 + "}"), (1, 0, 0)),
    "a number for a string": (lines(good("h16", customer_id=12345678901234567890)), (0, 0, 1)),
    "an object for a string": (lines(good("h17", agent={"name": "sam"}, type="agent_message")), (0, 0, 1)),
    "a string for guides": (lines(good("h18", type="ai_message", guides="Refunds")), (0, 0, 1)),
    "a list of lists for guides": (lines(good("h19", type="ai_message", guides=[["Refunds"]])), (0, 0, 1)),
    "NaN, which DuckDB and pyarrow read, not JSON": (lines(good("h20")[:-1] + ', "n": NaN}'), (0, 0, 1)),
    "a trailing comma, which DuckDB reads, not JSON": (lines(good("h25")[:-1] + ', "n": [1, 2,],}'), (0, 0, 1)),
    "keys SQL cannot name": (lines(good("h21", **{"": 1, "\x00": 2, "TEXT": "upper", "Event_ID": "x"})), (1, 0, 0)),
    "the same event twice and a conflict": (lines(good("h22"), good("h22"), good("h22", text="other")), (1, 1, 1)),
    "a terminal escape sequence in type, shown as spaces": (lines(good("h24", type="\x1b[2J\x85\n")), (0, 0, 1)),
    "truncated last line without line break": (good("h23")[:-1].encode(), (0, 0, 1)),
}
# Files of valid lines but one, each alone: they take the fast path (pyarrow) up to that line.
HOSTILE_JSONL_ALONE: dict[str, tuple[bytes, tuple[int, int, int]]] = {
    "10,000 levels nested in an unknown field": (lines(good("h1"), good("h2")[:-1] + ', "x": ' + nested(10_000, "{") + "}"),
                                                 (2, 0, 0)),
    "10,000 levels of lists in an unknown field": (lines(good("h1"), good("h2")[:-1] + ', "x": ' + nested(10_000) + "}"),
                                                   (2, 0, 0)),
    # pyarrow reads `{..}\r{..}` and `{..}{..}` as two rows: with a blank line, rows and lines matched.
    "two objects split by a lone CR, then a blank line": (lines(good("h1") + "\r" + good("h2"), ""), (0, 0, 1)),
    "two objects without space, then a blank line": (lines(good("h1") + good("h2"), "", good("h3")), (1, 0, 1)),
    "keys SQL cannot name": (lines(good("h1", **{"": 1}), good("h2", **{"\x00": 2}), good("h3", TEXT="upper")),
                             (3, 0, 0)),
    "a key that is not UTF-8": (lines(good("h1"), good("h2", k_=1)).replace(b"k_", b"k\x80"), (1, 0, 1)),
}


def test_hostile_json_lines(fuzz_store: tuple[Store, Path]) -> None:
    store, folder = fuzz_store
    check_together(store, folder, ".jsonl", HOSTILE_JSONL)


@pytest.mark.parametrize("name", HOSTILE_JSONL_ALONE)
def test_hostile_json_lines_alone(fuzz_store: tuple[Store, Path], name: str) -> None:
    store, folder = fuzz_store
    check_together(store, folder, ".jsonl", {name: HOSTILE_JSONL_ALONE[name]})


def test_unknown_fields_are_kept_whatever_their_names(fuzz_store: tuple[Store, Path]) -> None:
    """A name differing from a field's only in case, or empty, or holding a NUL, is still an unknown
    field of its own (SPEC 2.2), in every format."""
    store, folder = fuzz_store
    odd = {"TEXT": "upper", "": "empty", "a\x00b": "nul", "Event_ID": "other"}

    def event() -> Record:
        return {"event_id": f"{next(SEQUENCE)}-k", **GOOD, "text": "lower", **odd}

    csv_event, parquet_event = event(), event()
    paths = [new_file(folder, ".jsonl", lines(json.dumps(event()))),
             new_file(folder, ".csv", lines(",".join(csv_event), ",".join(csv_event.values())).replace(b"\x00", b"")),
             folder / f"input-{next(SEQUENCE)}.parquet"]
    pq.write_table(pa.Table.from_arrays([pa.array([v]) for v in parquet_event.values()], names=list(parquet_event)),
                   paths[2])
    for path in paths:
        result = check_ingest(store, path, 1)
        assert result is not None and result.accepted == 1, (path, result)
        text, attributes = store.con.execute("SELECT text, attributes FROM events WHERE source = ?",
                                             [str(path.resolve())]).fetchall()[0]
        expected = {k.replace("\x00", "") if path.suffix == ".csv" else k: v for k, v in odd.items()}
        assert (text, json.loads(attributes)) == ("lower", expected), path


OUT_OF_RANGE = {
    "0000-01-01T00:00:00Z": "outside the years",
    "0001-01-01T00:00:00+00:01": "outside the years",
    "9999-12-31T23:59:59-00:01": "outside the years",
    "99999-01-01T00:00:00Z": "not an RFC 3339 timestamp",
    "-0001-01-01T00:00:00Z": "not an RFC 3339 timestamp",
    "2026-13-01T00:00:00Z": "not a valid date",
    "2026-05-32T00:00:00Z": "not a valid date",
    "2026-05-21T24:00:00Z": "not a valid date",
    "2026-05-21T10:00:00+25:00": "not a valid date",
    "2026-05-21T10:00:00+02:60": "not a valid date",
    "2026-05-21T10:00:00+02": "not an RFC 3339 timestamp",
}
IN_RANGE = {
    "0001-01-01T00:00:00Z": datetime(1, 1, 1),
    "9999-12-31T23:59:59.999999Z": datetime(9999, 12, 31, 23, 59, 59, 999999),
    "0001-01-01T00:00:00-23:59": datetime(1, 1, 1, 23, 59),
    "2026-05-21T10:00:00+23:59": datetime(2026, 5, 20, 10, 1),
    "2024-02-29T12:00:00Z": datetime(2024, 2, 29, 12),
}


def test_timestamps_out_of_range_are_rejected_and_the_extremes_accepted(tmp_path: Path) -> None:
    cases = [*OUT_OF_RANGE, *IN_RANGE]
    data = "".join(good(f"t{i}", occurred_at=at) + "\n" for i, at in enumerate(cases)).encode()
    with Store(tmp_path / "s.duckdb") as store:
        result = check_ingest(store, new_file(tmp_path, ".jsonl", data), len(cases), derive=True)
        assert result is not None
        reasons = {line: reason for _, reason, line, _ in result.rejects}
        for i, (at, why) in enumerate(OUT_OF_RANGE.items(), start=1):
            assert "occurred_at" in reasons.get(i, "") and why in reasons[i], (at, reasons.get(i))
        stored = dict(store.con.execute("SELECT line, occurred_at FROM events").fetchall())
        assert [stored.get(i) for i in range(len(OUT_OF_RANGE) + 1, len(cases) + 1)] == list(IN_RANGE.values())


# --- CSV ----------------------------------------------------------------------------------------------------

@fuzz(10)
@given(file=csv_files(records()))
def test_generated_records_as_csv(fuzz_store: tuple[Store, Path], file: tuple[bytes, int]) -> None:
    store, folder = fuzz_store
    data, records_written = file
    # A value with a lone CR is written unquoted (Python quotes only what its line ending holds): CSV
    # readers end the line there, so the reference reading counts, not the records written.
    assert csv_records(data) == range(records_written, records_written + 1) or b"\r" in data
    check_ingest(store, new_file(folder, ".csv", data), csv_records(data), lines=physical_lines(data, cr=True))


# pyarrow decodes a record of the wrong width before it calls the invalid-row handler: one that is not
# UTF-8 makes it print that exception and stop the file, which the reader reports as an IngestError.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@fuzz(25)
@given(data=csv_files(valid_events()).flatmap(lambda file: mutations(file[0])))
def test_mutated_csv(fuzz_store: tuple[Store, Path], data: bytes) -> None:
    store, folder = fuzz_store
    check_ingest(store, new_file(folder, ".csv", data), csv_records(data), lines=physical_lines(data, cr=True))


CSV_HEADER = "event_id,type,occurred_at,customer_id,channel,text"

def row(event_id: str, text: str = "hello") -> str:
    return f"{event_id},customer_message,2026-05-21T10:00:00Z,c1,chat,{text}"


HOSTILE_CSV: dict[str, tuple[bytes, tuple[int, int, int]]] = {
    # name: (lines after CSV_HEADER, their (accepted, duplicate, rejected)); all in one file, in this order.
    "a good record": (lines(row("h1")), (1, 0, 0)),
    "stray quote in a value": (lines(row("h2", 'he said "hi"')), (1, 0, 0)),
    "quote closed early, text after it": (lines(row("h3", '"a"b')), (1, 0, 0)),
    "too few columns": (lines("h4,customer_message"), (0, 0, 1)),
    "too many columns": (lines(row("h5", "a,b,c")), (0, 0, 1)),
    "a row of commas only": (lines(",,,,,"), (0, 0, 0)),
    "a row of commas, one too many": (lines(",,,,,,"), (0, 0, 1)),
    "a quoted blank cell": (lines('" ",,,,,'), (0, 0, 1)),
    "blank and whitespace lines": (lines("", "   ", "\t"), (0, 0, 0)),
    "NUL bytes": (lines(row("h6", "a\x00b"), row("h7").replace("c1", "c\x001")), (1, 0, 1)),
    "invalid UTF-8": (lines(row("h8", "caf_")).replace(b"caf_", b"caf\xe9"), (0, 0, 1)),
    "10 MB value": (lines(row("h9", "x" * 10_000_000)), (0, 0, 1)),
    "a JSON object where a string belongs": (lines(row("h10", '"{""a"": 1}"')), (1, 0, 0)),
    "a type in other case": (lines(row("h11").replace("customer_message", "Customer_Message")), (0, 0, 1)),
    # As Python's csv and pyarrow read it: the value runs to the end of the file.
    "an unterminated quote, swallowing the rest": (lines(row("h12", '"unterminated'), row("h13")), (1, 0, 0)),
}
HOSTILE_CSV_ALONE: dict[str, tuple[bytes, tuple[int, int, int]]] = {
    # name: (whole file, (accepted, duplicate, rejected))
    "BOM and CRLF": (f"\ufeff{CSV_HEADER}\r\n{row('h1')}\r\n".encode(), (1, 0, 0)),
    "CR line endings only": (f"{CSV_HEADER}\r{row('h1')}\r{row('h2')}\r".encode(), (2, 0, 0)),
    "header only": (lines(CSV_HEADER), (0, 0, 0)),
    "empty file": (b"", (0, 0, 0)),
    "duplicate column in the header: the first counts": (lines(CSV_HEADER + ",text", row("h1") + ",again"), (1, 0, 0)),
    "empty column name in the header": (lines(CSV_HEADER + ",", row("h1") + ",extra"), (1, 0, 0)),
    "guides as broken or deeply nested JSON lists": (
        lines("event_id,type,occurred_at,customer_id,channel,guides", "h1,ai_message,2026-05-21T10:00:00Z,c1,chat,",
              'h2,ai_message,2026-05-21T10:00:00Z,c1,chat,"[""Refunds"", 3"',
              f'h3,ai_message,2026-05-21T10:00:00Z,c1,chat,"{nested(10_000)}"'), (1, 0, 2)),
    "a quoted line break in a header name": (lines('"event\nid",type,occurred_at,customer_id,channel', "h1,x,y,z,w"), (0, 0, 1)),
    "a header name over 128 KiB": (lines(CSV_HEADER + "," + "n" * 200_000, row("h1") + ",note"), (1, 0, 0)),
    "only records of the wrong width": (lines(CSV_HEADER, "h1,customer_message", "", "h2"), (0, 0, 2)),
}


def test_hostile_csv(fuzz_store: tuple[Store, Path]) -> None:
    store, folder = fuzz_store
    check_together(store, folder, ".csv", HOSTILE_CSV, header=lines(CSV_HEADER))


@pytest.mark.parametrize("name", HOSTILE_CSV_ALONE)
def test_hostile_csv_alone(fuzz_store: tuple[Store, Path], name: str) -> None:
    store, folder = fuzz_store
    data, expected = HOSTILE_CSV_ALONE[name]
    check_together(store, folder, ".csv", {name: (data, expected)})


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # see test_mutated_csv
def test_a_csv_record_pyarrow_cannot_report_stops_the_file_with_one_line(tmp_path: Path) -> None:
    """A record of the wrong width that is not UTF-8: pyarrow cannot hand it to the reader."""
    path = new_file(tmp_path, ".csv", lines(CSV_HEADER, row("h1")) + b"h2,caf\xe9\n")
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(IngestError) as error:
        service.ingest(store, Config(), [str(path)])
    assert "Expected 6 columns" in error.value.message and not NOT_ONE_LINE.search(error.value.message)


# --- Parquet ----------------------------------------------------------------------------------------------

text_values = st.text(max_size=10)
PARQUET_TYPES: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "string": (pa.string(), text_values),
    "large_string": (pa.large_string(), text_values),
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "int8": (pa.int8(), st.integers(-128, 127)),
    "uint64": (pa.uint64(), st.integers(0, 2**64 - 1)),
    "float64": (pa.float64(), st.floats(allow_nan=True)),
    "float32": (pa.float32(), st.floats(width=32)),
    "bool": (pa.bool_(), st.booleans()),
    "binary": (pa.binary(), st.binary(max_size=8)),
    "list<string>": (pa.list_(pa.string()), st.lists(st.none() | text_values, max_size=3)),
    "large_list<string>": (pa.large_list(pa.string()), st.lists(text_values, max_size=3)),
    "list<large_string>": (pa.list_(pa.large_string()), st.lists(text_values, max_size=3)),
    "list<int64>": (pa.list_(pa.int64()), st.lists(st.integers(-5, 5), max_size=3)),
    "list<list<string>>": (pa.list_(pa.list_(pa.string())), st.lists(st.lists(text_values, max_size=2), max_size=2)),
    "struct": (pa.struct([("a", pa.int64()), ("b", pa.string())]),
               st.fixed_dictionaries({"a": st.integers(-5, 5), "b": text_values})),
    "map": (pa.map_(pa.string(), pa.int64()), st.dictionaries(text_values, st.integers(-5, 5), max_size=2)
            .map(lambda d: list(d.items()))),
    "timestamp[us]": (pa.timestamp("us"), st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31))),
    "timestamp[ns, UTC]": (pa.timestamp("ns", tz="UTC"),
                           st.datetimes(min_value=datetime(1678, 1, 1), max_value=datetime(2261, 12, 31),
                                        timezones=st.just(UTC))),
    "timestamp[s, Europe/Berlin]": (pa.timestamp("s", tz="Europe/Berlin"),
                                    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1),
                                                 timezones=st.just(timezone(timedelta(hours=2))))),
    "date32": (pa.date32(), st.dates()),
    "time64": (pa.time64("us"), st.times()),
    "duration": (pa.duration("s"), st.timedeltas(min_value=timedelta(days=-9999), max_value=timedelta(days=9999))),
    "decimal": (pa.decimal128(12, 2), st.decimals(min_value=Decimal(-(10**9)), max_value=Decimal(10**9), places=2)),
    "null": (pa.null(), st.none()),
    "dictionary<string>": (pa.dictionary(pa.int32(), pa.string()), text_values),
}
PARQUET_VALID: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.sampled_from(["p1", "p2", "p3"]),
    "type": st.sampled_from(EVENT_TYPES),
    "occurred_at": timestamps(),
    "customer_id": st.sampled_from(["c1", "c2"]),
    "channel": st.sampled_from(["chat", "email"]),
    "category": st.just("handoff_manual"),
}


@st.composite
def parquet_tables(draw: st.DrawFn) -> pa.Table:
    """A table with some of the fields, each a string column of mostly valid values or a column of any
    type, plus unknown columns; 0 to 5 rows, nulls anywhere."""
    rows = draw(st.integers(0, RECORDS))
    names = [f for f in FIELDS if draw(st.integers(0, 3)) > 0]
    names += draw(st.lists(st.sampled_from(["notes", "Event_ID", "a b", "ümlaut", "", "x.y", '"quoted"', "__index_level_0__"]),
                           max_size=2, unique=True))
    columns = []
    for name in names:
        kind = "string" if name in PARQUET_VALID and draw(st.integers(0, 2)) > 0 else draw(st.sampled_from(sorted(PARQUET_TYPES)))
        typ, values = PARQUET_TYPES[kind]
        if kind == "string" and name in PARQUET_VALID:
            values = PARQUET_VALID[name].map(lambda v: v if isinstance(v, str) else json.dumps(v))
        cells = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
        if kind == "dictionary<string>":
            columns.append(pa.array(cells, pa.string()).dictionary_encode())
        else:
            columns.append(pa.array(cells, typ))
    if not names:
        return pa.table({"event_id": pa.array([None] * rows, pa.string())})
    return pa.Table.from_arrays(columns, names=names)


@fuzz(12)
@given(table=parquet_tables())
def test_parquet_columns_of_any_type(fuzz_store: tuple[Store, Path], table: pa.Table) -> None:
    store, folder = fuzz_store
    path = folder / f"input-{next(SEQUENCE)}.parquet"
    pq.write_table(table, path)
    result = check_ingest(store, path, table.num_rows, lines=table.num_rows)
    assert result is not None


def test_parquet_columns_of_unexpected_types_reject_their_rows_naming_the_type(tmp_path: Path) -> None:
    table = pa.table({
        "event_id": ["u1", "u2", "u3"], "type": ["agent_message"] * 3, "occurred_at": ["2026-05-21T10:00:00Z"] * 3,
        "customer_id": ["c1"] * 3, "channel": pa.array([None, 7, None], pa.int64()),
        "agent": pa.array([[("k", 1)], None, None], pa.map_(pa.string(), pa.int64())),  # its type's name holds quotes
        "text": pa.array([None, None, {"a": 1}], pa.struct([("a", pa.int64())])),
    })
    pq.write_table(table, tmp_path / "types.parquet")
    with Store(tmp_path / "s.duckdb") as store:
        result = check_ingest(store, tmp_path / "types.parquet", 3)
    assert result is not None
    reasons = {line: reason for _, reason, line, _ in result.rejects}
    assert reasons.keys() == {1, 2, 3}
    assert "agent must be a string, not map<string, int64" in reasons[1]
    assert "channel must be a string, not int64" in reasons[2]
    assert "text must be a string, not struct<a: int64>" in reasons[3]


def categories(values: list[str]) -> pa.Array:
    return pa.array(values).dictionary_encode()


STRING_KINDS = {
    # pandas writes a `category` column as a dictionary of strings.
    "dictionary": categories,
    # Polars writes large strings and large lists.
    "large": lambda values: pa.array(values, pa.large_list(pa.large_string()) if isinstance(values[0], list)
                                     else pa.large_string()),
}


@pytest.mark.parametrize("kind", STRING_KINDS)
def test_parquet_strings_of_other_arrow_types_are_strings(tmp_path: Path, kind: str) -> None:
    column = STRING_KINDS[kind]
    table = pa.table({
        "event_id": column(["d1", "d2"]), "type": column(["ai_message"] * 2),
        "occurred_at": column(["2026-05-21T10:00:00Z", "2026-05-21T10:01:00Z"]), "customer_id": column(["c1", "c1"]),
        "channel": column(["chat", "email"]), "ai_agent": column(["Care", "Care"]),
        "guides": column([["Refunds", "Order Status"], ["Refunds"]]) if kind == "large"
        else column(["Refunds|Order Status", "Refunds"]),
        "notes": column(["n1", "n2"]),
    })
    pq.write_table(table, tmp_path / "events.parquet")
    with Store(tmp_path / "s.duckdb") as store:
        result = check_ingest(store, tmp_path / "events.parquet", 2)
        assert result is not None and result.accepted == 2, result
        assert store.con.execute("SELECT event_id, channel, guides, attributes::VARCHAR FROM events ORDER BY 1").fetchall() == [
            ("d1", "chat", ["Refunds", "Order Status"], '{"notes":"n1"}'), ("d2", "email", ["Refunds"], '{"notes":"n2"}')]


def valid_parquet() -> bytes:
    buffer = io.BytesIO()
    events = [json.loads(good(f"q{i}", text="hello " * 20)) for i in range(50)]
    pq.write_table(pa.Table.from_pylist(events), buffer, row_group_size=10)
    return buffer.getvalue()


VALID_PARQUET = valid_parquet()


@fuzz(10)
@given(data=mutations(VALID_PARQUET))
def test_corrupted_parquet_is_stored_or_one_line_error(fuzz_store: tuple[Store, Path], data: bytes) -> None:
    """A damaged Parquet file either reads (then every row is accounted for, whatever the rows hold) or
    fails with the one-line error of an unreadable file — never with pyarrow's exception."""
    store, folder = fuzz_store
    check_ingest(store, new_file(folder, ".parquet", data), None)


def parquet_not_utf8() -> bytes:
    """A Parquet file whose string column holds bytes that are not UTF-8 (pyarrow writes and reads them as they are)."""
    text = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(b"\x00\x00\x00\x00\x02\x00\x00\x00"),
                                                  pa.py_buffer(b"\xffx")])
    buffer = io.BytesIO()
    pq.write_table(pa.table({"event_id": text, "type": ["customer_message"]}), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("data", [b"", b"PAR1", b"not parquet at all\n", VALID_PARQUET[: len(VALID_PARQUET) // 2],
                                  VALID_PARQUET[:4] + b"\xff" * 16 + VALID_PARQUET[20:], parquet_not_utf8()],
                         ids=["empty", "magic only", "text", "cut in half", "a damaged page", "a string not UTF-8"])
def test_an_unreadable_parquet_file_is_one_line_error(tmp_path: Path, data: bytes) -> None:
    path = new_file(tmp_path, ".parquet", data)
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(IngestError) as error:
        service.ingest(store, Config(), [str(path)])
    assert "Parquet" in error.value.message and not NOT_ONE_LINE.search(error.value.message)
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "s.duckdb"), "ingest", str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("convoscope: error:") and "Traceback" not in result.output


# --- field-length limits (SPEC 2.2) -------------------------------------------------------------------------

ON_TYPE = {"subcategory": "handoff", "reason": "handoff", "transfer_rationale": "handoff", "category": "handoff",
           "ai_agent": "ai_message", "guides": "ai_message", "agent": "agent_message"}
LIMITS = {**MAX_LENGTH, "guides": 200}
# Characters, not bytes or UTF-16 units: an astral character is one.
FILLERS = {"event_id": "e", "customer_id": "ü", "text": "😀", "guides": "g"}


def limit_cases() -> list[tuple[Record, str, int, bool]]:
    """(event, field, limit, accepted?) for every limited field: exactly at the limit and one over."""
    cases = []
    for field, limit in LIMITS.items():
        for size in (limit, limit + 1):
            type_ = ON_TYPE.get(field, "customer_message")
            value = FILLERS.get(field, "x") * size
            event: Record = {"event_id": f"{field}-{size}", "type": type_, "occurred_at": "2026-05-21T10:00:00Z",
                             "customer_id": "c1"}
            if type_ in MESSAGE_TYPES:
                event["channel"] = "chat"
            if type_ == "handoff":
                event["category"] = "handoff_manual"
            event[field] = [value] if field == "guides" else value
            cases.append((event, field, limit, size == limit))
    return cases


def limit_file(folder: Path, fmt: str, events: list[Record]) -> Path:
    path = folder / f"limits.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    elif fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows({k: json.dumps(v) if k == "guides" else v for k, v in e.items()} for e in events)
    else:
        pq.write_table(pa.table({f: pa.array([e.get(f) for e in events], pa.list_(pa.string()) if f == "guides"
                                             else pa.string()) for f in FIELDS}), path)
    return path


def assert_limits_kept(outcome: dict[int, str | None]) -> None:
    """`outcome`: by case number, None when stored, else the reason it was rejected."""
    for i, (_, field, limit, accepted) in enumerate(limit_cases()):
        reason = outcome[i]
        if accepted:
            assert reason is None, (field, limit, reason)
        else:
            assert reason is not None, (field, limit + 1, "accepted")
            assert field.removesuffix("s") in reason and (f"{limit:,}" in reason or str(limit) in reason), reason


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_field_lengths_at_the_limit_are_accepted_and_one_over_rejected(tmp_path: Path, fmt: str) -> None:
    cases = limit_cases()
    path = limit_file(tmp_path, fmt, [event for event, *_ in cases])
    first_line = 2 if fmt == "csv" else 1
    with Store(tmp_path / "s.duckdb") as store:
        result = check_ingest(store, path, len(cases))
        assert result is not None
        reasons = {line: reason for _, reason, line, _ in result.rejects}
    assert_limits_kept({i: reasons.get(i + first_line) for i in range(len(cases))})


# --- the command line -------------------------------------------------------------------------------------

@fuzz(3)
@given(data=jsonl_files(records()).flatmap(mutations))
def test_cli_ingest_of_mutated_files_prints_counts_or_one_line(fuzz_store: tuple[Store, Path], data: bytes) -> None:
    """`convoscope ingest` on damaged input: exit 0 or 3 with the three counts, never a traceback."""
    _, folder = fuzz_store
    path = new_file(folder, ".jsonl", data)
    (folder / "none.toml").touch()
    result = CliRunner().invoke(cli, ["--db", str(folder / "cli.duckdb"), "--config", str(folder / "none.toml"),
                                      "ingest", "--no-derive", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 3), (result.exit_code, result.output)
    counts = re.fullmatch(r"accepted ([\d,]+), duplicate ([\d,]+), rejected ([\d,]+)\n", result.stdout)
    assert counts, result.stdout
    assert sum(int(c.replace(",", "")) for c in counts.groups()) == jsonl_records(data)


# --- the HTTP API -------------------------------------------------------------------------------------------

@dataclass
class Api:
    store: Convoscope
    server: LiveServer
    client: httpx.Client
    token: str
    acme_token: str  # a sender limited to brand acme

    def post(self, body: bytes, *, token: str | None = None, content_type: str = "application/json",
             **kwargs: Any) -> httpx.Response:
        return self.client.post("/api/v1/events", content=body, headers={
            **bearer(token or self.token), "Content-Type": content_type}, **kwargs)

    def stored_from_api(self) -> int:
        return int(self.query("SELECT count(*) FROM events WHERE source LIKE 'api:%'")[0][0])

    def foreign_stored(self) -> list[tuple[Any, ...]]:
        """Events the sender limited to acme managed to store in another brand (SPEC 6.4: none)."""
        return self.query("SELECT brand, event_id FROM events WHERE source LIKE 'api:%:acme-sender:%' AND brand <> 'acme'")

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with Store(self.store.db) as store:  # the server opens the store per request: between two, it is free
            return store.con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    store = Convoscope(tmp_path_factory.mktemp("api-fuzz"))
    token = add_user(store, "sender", "administrator")
    acme_token = add_user(store, "acme-sender", "administrator", brands="acme")
    with serving(store) as server, server.client() as client:
        yield Api(store, server, client, token, acme_token)


def batch_records(body: bytes) -> int | None:
    """Events in a batch as SPEC 6.2 reads it: a JSON array's elements, else NDJSON's non-blank lines
    (None: the body is not a JSON array although it starts like one)."""
    text = body.decode("utf-8", "surrogateescape").lstrip("\ufeff")
    if text.lstrip().startswith("["):
        try:
            return len(json.loads(text))
        except (ValueError, RecursionError):
            return None
    return sum(1 for line in text.split("\n") if line.strip())


def check_answer(response: httpx.Response, records: int | None) -> dict[str, Any]:
    """A 200 accounts for every event; anything else is a 4xx with a one-line `errors` detail."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    answer = response.json()
    if response.status_code != 200:
        assert response.status_code in (400, 413), response.text[:500]
        detail = answer["errors"][0]["detail"]
        assert detail and not NOT_ONE_LINE.search(detail), detail
        return answer
    assert records is not None
    assert answer["accepted"] + answer["duplicate"] + answer["rejected"] == records, (answer, records)
    indexes = [e["index"] for e in answer["errors"]]
    assert len(indexes) == answer["rejected"] and len(set(indexes)) == len(indexes), answer
    for error in answer["errors"]:
        assert error["reason"].strip() and not NOT_ONE_LINE.search(error["reason"]), error
    return answer


@st.composite
def batches(draw: st.DrawFn) -> bytes:
    """A JSON array or NDJSON of generated records, sometimes mutated byte by byte."""
    items = draw(st.lists(records() | valid_events(), max_size=RECORDS))
    if draw(st.booleans()):
        body = json.dumps(items, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    else:
        body = draw(jsonl_files(st.sampled_from(items) if items else valid_events()))
    return draw(mutations(body)) if draw(st.booleans()) else body


@fuzz(10)
@given(body=batches(), restricted=st.booleans(), ndjson=st.booleans())
def test_api_fuzzed_batches(api: Api, body: bytes, restricted: bool, ndjson: bool) -> None:
    before = api.stored_from_api()
    response = api.post(body, token=api.acme_token if restricted else None,
                        content_type="application/x-ndjson" if ndjson else "application/json")
    answer = check_answer(response, batch_records(body))
    if response.status_code == 200:
        assert api.stored_from_api() - before == answer["accepted"]
    assert api.foreign_stored() == []


def event_json(event_id: str, **fields: Any) -> str:
    return json.dumps({"event_id": f"{event_id}-{next(SEQUENCE)}", **GOOD, **fields}, ensure_ascii=False)


NUL_TEXT = "a\x00b"
HOSTILE_BATCHES: dict[str, tuple[bytes, int, tuple[int, int, int] | None]] = {
    # name: (body, status, counts when 200)
    "10,000 levels in an array element": (f"[{event_json('a')}, {nested(10_000)}]".encode(), 400, None),
    "10,000 levels in an NDJSON line": (f"{event_json('a')}\n{event_json('b')[:-1]}, \"x\": {nested(10_000, '{')}}}\n"
                                        .encode(), 200, (2, 0, 0)),
    "a 5,000-digit number in an array": (f"[{event_json('a')[:-1]}, \"n\": {'9' * 5000}}}]".encode(), 400, None),
    "a 5,000-digit number in NDJSON": (f"{event_json('a')[:-1]}, \"n\": {'9' * 5000}}}\n".encode(), 200, (1, 0, 0)),
    "a lone surrogate escape in an array": (f"[{event_json('a')}, {event_json('b', text='x')}]".encode()
                                            .replace(b'"x"', b'"\\ud800"'), 200, (1, 0, 1)),
    "invalid UTF-8 in an array": (f"[{event_json('a')}, {event_json('b', text='caf_')}]".encode()
                                  .replace(b"caf_", b"caf\xe9"), 200, (1, 0, 1)),
    "invalid UTF-8 in NDJSON": (f"{event_json('a')}\n{event_json('b', text='caf_')}\n".encode()
                                .replace(b"caf_", b"caf\xe9"), 200, (1, 0, 1)),
    "NUL bytes in NDJSON": (f"{event_json('a')}\n\x00\n{event_json('b', text=NUL_TEXT)}\n".encode(), 200, (2, 0, 1)),
    "raw NUL in an array": (f"[{event_json('a')},\x00]".encode(), 400, None),
    "a BOM": (f"\ufeff[{event_json('a')}]".encode(), 200, (1, 0, 0)),
    "a 10 MB line": (f"{event_json('a')}\n{event_json('b', text='x' * 10_000_000)}\n".encode(), 200, (1, 0, 1)),
    "truncated NDJSON": (f"{event_json('a')}\n{event_json('b')[:30]}".encode(), 200, (1, 0, 1)),
    "elements of every JSON type": (f"[{event_json('a')}, 1, \"s\", null, true, [], {{}}]".encode(), 200, (1, 0, 6)),
    "a timestamp in year 0": (f"[{event_json('a', occurred_at='0000-01-01T00:00:00Z')}]".encode(), 200, (0, 0, 1)),
    "10,001 NDJSON lines": (((event_json("m") + "\n") * 10_001).encode(), 413, None),
}


@pytest.mark.parametrize("name", HOSTILE_BATCHES)
def test_api_hostile_batches(api: Api, name: str) -> None:
    body, status, counts = HOSTILE_BATCHES[name]
    response = api.post(body)
    assert response.status_code == status, response.text[:500]
    answer = check_answer(response, batch_records(body))
    if counts:
        assert (answer["accepted"], answer["duplicate"], answer["rejected"]) == counts, answer
    if status == 413:
        assert "10,000" in answer["errors"][0]["detail"]


ACME_ONLY = {
    # name: (body, counts) — every event here is of brand default, or of a brand Python and DuckDB read apart.
    "a trailing comma, which DuckDB reads": (f"{event_json('t', brand='default')[:-1]},}}\n", (0, 0, 1)),
    "brand twice, DuckDB reading the first": (f"{event_json('d')[:-1]}, \"brand\": \"default\", \"brand\": \"acme\"}}\n",
                                              (0, 0, 1)),
    "brand twice, Python reading the first": (f"{event_json('d')[:-1]}, \"brand\": \"acme\", \"brand\": \"default\"}}\n",
                                              (0, 0, 1)),
    "brand twice, once escaped": (f"{event_json('d')[:-1]}, \"br\\u0061nd\": \"default\", \"brand\": \"acme\"}}\n",
                                  (0, 0, 1)),
    "10,000 levels beside brand default": (f"{event_json('n', brand='default')[:-1]}, \"x\": {nested(10_000)}}}\n",
                                           (0, 0, 1)),
    "a 5,000-digit number beside brand default": (f"{event_json('n', brand='default')[:-1]}, \"x\": {'9' * 5000}}}\n",
                                                  (0, 0, 1)),
    "no brand": (f"{event_json('b')}\n\n", (0, 0, 1)),
    "brand acme, blank lines around": (f"\n{event_json('a', brand='acme')}\n\n", (1, 0, 0)),
}


@pytest.mark.parametrize("name", ACME_ONLY)
def test_a_sender_limited_to_a_brand_stores_no_other_brand(api: Api, name: str) -> None:
    body, counts = ACME_ONLY[name]
    answer = check_answer(api.post(body.encode(), token=api.acme_token), batch_records(body.encode()))
    assert (answer["accepted"], answer["duplicate"], answer["rejected"]) == counts, answer
    assert api.foreign_stored() == []


def test_api_field_lengths_at_the_limit_are_accepted_and_one_over_rejected(api: Api) -> None:
    cases = limit_cases()
    events = [event for event, *_ in cases]  # the API's store has none of them yet
    response = api.post(json.dumps(events).encode())
    answer = check_answer(response, len(events))
    reasons = {e["index"]: e["reason"] for e in answer["errors"]}
    assert_limits_kept({i: reasons.get(i) for i in range(len(cases))})


MAX_BODY = 50_000_000  # SPEC 6.2: at most 50 MB


def test_a_body_declared_over_50_mb_is_413_naming_the_limit(api: Api) -> None:
    response = api.post(b"[" + b" " * MAX_BODY + b"]")
    assert response.status_code == 413, response.text[:300]
    assert "50,000,000" in response.json()["errors"][0]["detail"]


def test_a_body_of_exactly_50_mb_is_taken(api: Api) -> None:
    """50 MB as SPEC 6.2 writes it: 50,000,000 bytes, the last one included."""
    event = f"[{event_json('at-the-limit')}".encode()
    body = event + b" " * (MAX_BODY - len(event) - 1) + b"]"
    assert len(body) == MAX_BODY
    response = api.post(body)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["accepted"] == 1


def test_the_server_keeps_serving_while_a_client_streams_an_oversized_body(api: Api) -> None:
    """One client streams more than 50 MB, slowly and without a Content-Length; meanwhile another logs
    in, reads and sends events; the streaming client then gets 413 naming the limit (SPEC 6.2)."""
    piece = b" " * (1024 * 1024)
    streaming = threading.Event()
    answer: dict[str, Any] = {}

    def slowly() -> Iterator[bytes]:
        yield b"["
        for i in range(MAX_BODY // len(piece) + 2):
            if i == 2:
                streaming.set()
            time.sleep(0.04)
            yield piece

    def send() -> None:
        with api.server.client() as client:
            try:
                response = client.post("/api/v1/events", content=slowly(), headers=bearer(api.token))
                answer["status"], answer["body"] = response.status_code, response.json()
            except httpx.HTTPError as exc:  # the server may close the connection as it answers
                answer["error"] = exc
        streaming.set()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert streaming.wait(30)
        served_during = 0
        with api.server.client() as other:
            while sender.is_alive() and served_during < 5:
                started = time.monotonic()
                assert other.get("/login").status_code == 200
                response = other.post("/api/v1/events", content=f"[{event_json('during')}]".encode(),
                                      headers=bearer(api.token))
                assert response.status_code == 200 and response.json()["accepted"] == 1, response.text
                assert time.monotonic() - started < 5
                served_during += 1
        assert served_during >= 1, "the oversized upload finished before anything else was asked"
    finally:
        sender.join(120)
    assert not sender.is_alive()
    assert answer.get("status") == 413, answer
    assert "50,000,000" in answer["body"]["errors"][0]["detail"]
    assert api.client.get("/login").status_code == 200


def test_the_fuzzing_left_no_trace_of_a_server_error(api: Api) -> None:
    """Nothing the tests above sent made the server log an exception."""
    log = api.server.output()
    assert "Traceback" not in log and "Exception" not in log, log[-3000:]
    assert api.server.process.poll() is None, "the server died"
