"""Readers: JSON Lines, CSV and Parquet files (or standard input) into staged chunks (SPEC 2.1).

A reader never builds Python objects per event: JSON Lines are cut into an Arrow string array with
numpy and parsed by DuckDB's JSON functions; CSV goes through pyarrow's streaming reader; Parquet
through pyarrow's batch reader. Each chunk becomes the temporary table `_stage` (STAGE_COLUMNS), with
the problems a reader can see (bad JSON, invalid UTF-8, a value of the wrong type) already noted.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar, cast

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from convoscope.errors import IngestError
from convoscope.events.schema import BREAKS_LINE, FIELDS, NUMBER_FIELDS, STRING_FIELDS
from convoscope.store import sql_string

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
CHUNK_BYTES = 256 * 1024 * 1024
FIRST_BUFFER = 1024 * 1024  # for JSON Lines of unknown size; doubled as they keep coming
# Internal columns of a staged batch, named so that no input field can collide with them.
LINE, BAD = "__convoscope_line", "__convoscope_bad"
PARQUET_BATCH = 1_000_000
# pyarrow's JSON reader recurses once per level while it infers an unknown field's type: thousands of
# levels crash the process. A line that may nest deeper than this takes the exact path (DuckDB's).
MAX_FAST_NESTING = 100


@dataclass
class Chunk:
    """One staged chunk: `rows` records, now readable as `_stage` (STAGE_COLUMNS), from `source`.

    `raw_of` gives the raw text of records by line: raw text is only needed for the few records that
    are rejected, so fast paths leave it out of `_stage` and produce it on demand."""

    source: str
    rows: int
    raw_of: Callable[[list[int]], dict[int, str]]


def _raw_from_stage(con: duckdb.DuckDBPyConnection) -> Callable[[list[int]], dict[int, str]]:
    def raw_of(lines: list[int]) -> dict[int, str]:
        if not lines:
            return {}
        found = con.execute("SELECT line, raw FROM _stage WHERE line IN (SELECT unnest(?::BIGINT[]))", [lines])
        return dict(found.fetchall())

    return raw_of


T = TypeVar("T")


def _ahead(items: Iterator[T]) -> Iterator[T]:
    """`items`, the next one made on a thread while the caller works on this one: reading and parsing a
    chunk overlaps with storing the one before (DuckDB, pyarrow and the compiled line scan all let go
    of the GIL). One item ahead at most. An error making an item is raised where that item is asked for,
    so everything before it is stored first."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="convoscope-read") as reader:
        following = reader.submit(next, items, None)
        try:
            while (item := following.result()) is not None:
                following = reader.submit(next, items, None)
                yield item
        finally:
            following.cancel()  # or, already running, waited for as the reader shuts down


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        found = suffix or "no extension"
        raise IngestError(lambda n: f"{path}: cannot tell the format from '{found}'; pass {n('format')} jsonl|csv|parquet",
                          param="format")
    return FORMATS[suffix]


def expand(paths: list[str], fmt: str | None) -> list[tuple[str, Path | None, str]]:
    """(source name, path or None for stdin, format) for every file named or found in a directory."""
    found: list[tuple[str, Path | None, str]] = []
    for name in paths:
        if name == "-":
            found.append(("stdin", None, fmt or "jsonl"))
            continue
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS
                           and not any(_hidden(part) for part in p.relative_to(path).parts))
            if not files:
                raise IngestError(f"{path}: no .jsonl, .csv or .parquet files in this directory")
            found.extend((str(p.resolve()), p, detect_format(p, fmt)) for p in files)
        elif path.is_file():
            found.append((str(path.resolve()), path, detect_format(path, fmt)))
        else:
            raise IngestError(f"{path}: no such file or directory; check the path")
    return found


def _hidden(name: str) -> bool:
    """A name Hadoop's file listing skips in a folder, and so Spark's (decision 44): `.x`, `_x` (but
    `_x=y`, a partition), `x._COPYING_`. Both engines read the same files of a folder."""
    return name.startswith(".") or (name.startswith("_") and "=" not in name) or name.endswith("._COPYING_")


def read_chunks(con: duckdb.DuckDBPyConnection, source: str, path: Path | None, fmt: str) -> Iterator[Chunk]:
    """Stage `path` (or standard input) chunk by chunk into `_stage`; yield after each chunk."""
    if fmt == "jsonl":
        stream = cast(io.BufferedIOBase, sys.stdin.buffer) if path is None else path.open("rb")
        try:
            yield from _jsonl(con, source, stream)
        finally:
            if path is not None:
                stream.close()
    elif fmt == "csv":
        data: BinaryIO | Path = io.BytesIO(sys.stdin.buffer.read()) if path is None else path
        yield from _csv(con, source, data)
    elif fmt == "parquet":
        data = io.BytesIO(sys.stdin.buffer.read()) if path is None else path
        yield from _parquet(con, source, data)
    else:
        raise IngestError(f"unknown format {fmt!r}; use jsonl, csv or parquet")


# --- JSON Lines -------------------------------------------------------------------------------------

def _split_lines(data: memoryview, first_line: int, starts: np.ndarray) -> pa.Table:
    """Non-blank lines of `data`, which start at `starts` (from `_line_bounds`), as (line, raw,
    bad_utf8, lax), without a Python object per line. `lax` marks a line that only a lenient reader
    takes for JSON (`_lax_json`)."""
    count = starts.shape[0]
    offsets = np.append(starts, len(data)).astype(np.int64)  # each line with its line break, trimmed below
    numbers = np.arange(first_line, first_line + count, dtype=np.int64)
    binary = pa.LargeBinaryArray.from_buffers(pa.large_binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    bad = np.zeros(count, dtype=bool)
    try:
        text = binary.cast(pa.large_string())
    except pa.ArrowInvalid:  # rare: find the offending lines one by one, keep them with a visible repair
        values = []
        for i in range(count):
            piece = bytes(data[offsets[i]:offsets[i + 1]])
            try:
                values.append(piece.decode("utf-8"))
            except UnicodeDecodeError:
                bad[i] = True
                values.append(piece.decode("utf-8", errors="backslashreplace"))
        text = pa.array(values, pa.large_string())
    text = pc.utf8_rtrim(text, characters="\r\n")
    keep = np.asarray(pc.utf8_length(pc.utf8_trim_whitespace(text)).to_numpy(zero_copy_only=False)) > 0
    text = text.filter(pa.array(keep))
    # DuckDB's JSON reader takes NaN, Infinity and trailing commas, which JSON (RFC 8259) does not have:
    # the lines that might hold one (where a value would be; a text rarely looks so) are read again by
    # Python's, told to refuse NaN and Infinity.
    lax = np.zeros(len(text), dtype=bool)
    maybe = pc.match_substring_regex(text, r"([:,\[]\s*[-+]?(nan|inf|infinity)|,)\s*[,}\]]", ignore_case=True)
    for at in np.flatnonzero(maybe.to_numpy(zero_copy_only=False)):
        lax[at] = _lax_json(text[at].as_py())
    return pa.table({"line": numbers[keep], "raw": text, "bad": bad[keep], "lax": lax})


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _lax_json(line: str) -> bool:
    """Whether `line` is not JSON to Python's reader, which refuses trailing commas and, told so, NaN
    and Infinity. Numbers are not converted (Python limits an integer to 4,300 digits, JSON does not)."""
    try:
        json.loads(line, parse_constant=_no_constant, parse_int=len, parse_float=len)
    except RecursionError:  # deeper than Python reads: DuckDB's reading stands
        return False
    except ValueError:
        return True
    return False


# A number field is read as a float64: a JSON number of either form (4, 4.0) passes, a string does not (the
# exact path then names its type).
_FAST_SCHEMA = pa.schema([(f, pa.list_(pa.string()) if f == "guides" else pa.float64() if f in NUMBER_FIELDS
                           else pa.string()) for f in FIELDS])


def _line_chunks(stream: _ReadsInto) -> Iterator[memoryview]:
    """Chunks of about CHUNK_BYTES cut at line ends (their lines are counted by `_line_bounds`).

    Chunks are views of two buffers in turn: each chunk is read into the buffer of the chunk before
    the one before. So a chunk must be done with before the chunk after next is asked for, which lets
    the reader run one chunk ahead of the ingester (`_ahead`) and no further. Memory a process touches
    for the first time costs this machine 0.5 s per GB or more, and building each chunk as new bytes
    (the carried part of a line joined to a new block, then cut at the last line end) touched three
    chunks' worth of it per chunk: 6.1 s to cut the 2.5 GB of 10M events, against 1.8 s into one buffer.
    A buffer is no larger than the input needs: a file's size when known, else it grows from
    FIRST_BUFFER (a chunk-sized buffer costs 0.15 s to make, which a small file would pay in full), and
    the second is made only for a second chunk."""
    buffer, other = bytearray(_first_size(stream)), bytearray()
    carried = 0  # bytes at the start of the buffer: the unfinished last line of the chunk before
    start = -1  # where the first chunk starts, once known (after a byte order mark)
    while True:
        view = memoryview(buffer)
        filled, ended = _fill(stream, view, carried)
        if start < 0:
            start = 3 if view[:3] == b"\xef\xbb\xbf" else 0
        cut = filled if ended else buffer.rfind(b"\n", start, filled) + 1
        if not ended and (cut == 0 or len(buffer) < CHUNK_BYTES):
            # Input that outgrows the buffer, or one line longer than a chunk: a larger buffer (a new
            # one: the chunk before may still be viewed in this one).
            view.release()
            buffer, carried = buffer + bytes(len(buffer)), filled
            continue
        if cut > start:
            yield view[start:cut]
        if ended:
            return
        if len(other) < len(buffer):
            other = bytearray(len(buffer))
        other[: filled - cut] = view[cut:filled]
        buffer, other = other, buffer
        carried, start = filled - cut, 0


def _first_size(stream: _ReadsInto) -> int:
    """A buffer for the whole of a file smaller than a chunk (one byte more, to see where it ends),
    a chunk for a larger one, and FIRST_BUFFER for input of unknown size (a pipe)."""
    unknown = min(FIRST_BUFFER, CHUNK_BYTES)
    try:
        status = os.fstat(stream.fileno())
        rest = status.st_size - stream.tell()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return unknown
    return max(1, min(rest + 1, CHUNK_BYTES)) if stat.S_ISREG(status.st_mode) else unknown


class _ReadsInto(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...
    def fileno(self) -> int: ...
    def tell(self) -> int: ...


def _fill(stream: _ReadsInto, view: memoryview, filled: int) -> tuple[int, bool]:
    """Read into `view` after its first `filled` bytes until it is full or the input ends; returns
    how much it holds and whether the input ended (a pipe may hand over less than asked at a time)."""
    while filled < len(view):
        read = stream.readinto(view[filled:])
        if not read:
            return filled, True
        filled += read
    return filled, False


def _line_bounds(data: memoryview) -> tuple[np.ndarray, np.ndarray, bool]:
    """Start and end (exclusive, without the line break) of every line of `data`, and whether a line
    opens more than MAX_FAST_NESTING objects or lists."""
    from convoscope.events.lines import scan_lines  # numba: loaded only when JSON Lines are read

    breaks, deep = scan_lines(np.frombuffer(data, dtype=np.uint8), MAX_FAST_NESTING)
    ends = breaks if breaks.shape[0] and breaks[-1] == len(data) - 1 else np.append(breaks, len(data))
    starts = np.concatenate(([0], breaks + 1))[: ends.shape[0]]
    return starts, ends, deep


def _first_bytes(data: memoryview, starts: np.ndarray) -> np.ndarray:
    """The first byte of every line (of an empty line: the line break, or the last byte)."""
    return np.frombuffer(data, np.uint8)[np.minimum(starts, len(data) - 1)]


def _not_all_objects(data: memoryview, starts: np.ndarray, ends: np.ndarray, first: np.ndarray) -> bool:
    """Whether a non-blank line holds something other than an object. pyarrow's JSON reader crashes
    the process on a block that starts with `null` (pyarrow 26), so such lines take the exact path."""
    for i in np.flatnonzero((first != ord("{")) & (starts != ends)):
        line = bytes(data[starts[i]:ends[i]]).lstrip()
        if line and not line.startswith(b"{"):
            return True
    return False


def _fast_json(data: memoryview, first_line: int, bounds: tuple[np.ndarray, np.ndarray, bool]
               ) -> tuple[pa.Table, Callable[[list[int]], dict[int, str]]] | None:
    """The chunk parsed by pyarrow's multithreaded JSON reader, when every non-blank line is one JSON
    object whose known fields have the right types; None otherwise (the exact path then finds each problem).
    `bounds` are the chunk's `_line_bounds`."""
    starts, ends, deep = bounds
    first = _first_bytes(data, starts)
    if deep or _not_all_objects(data, starts, ends, first):
        return None
    try:
        table = pajson.read_json(
            pa.BufferReader(data),
            read_options=pajson.ReadOptions(block_size=8 * 1024 * 1024),
            parse_options=pajson.ParseOptions(explicit_schema=_FAST_SCHEMA, unexpected_field_behavior="infer"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    try:
        table.validate(full=True)  # the JSON reader does not check that strings are valid UTF-8
    except (pa.ArrowInvalid, UnicodeDecodeError):  # the latter: a field name that is not UTF-8
        return None
    # pyarrow's reader takes NaN and Infinity for numbers, which JSON does not have. Known fields are
    # strings but for the number fields, so only those and an unknown field can hold one; the exact path
    # then rejects its line.
    if any(_non_finite(column) for name, column in zip(table.column_names, table.columns, strict=True)
           if name not in STRING_FIELDS):
        return None
    # Blank lines give no row. pyarrow also reads two objects on one line (`{..} {..}`, `{..}\r{..}`) as two
    # rows: one row per non-blank line is what shows that every line held exactly one object.
    maybe_blank = np.flatnonzero(np.isin(first, (9, 10, 11, 12, 13, 32)) | (starts == ends))
    blank = [i for i in maybe_blank if not bytes(data[starts[i]:ends[i]]).strip()]
    numbers = np.delete(np.arange(first_line, first_line + starts.shape[0], dtype=np.int64), blank)
    if numbers.shape[0] != table.num_rows:
        return None

    def raw_of(lines: list[int]) -> dict[int, str]:
        return {n: bytes(data[starts[n - first_line]:ends[n - first_line]]).rstrip(b"\r").decode("utf-8", "replace")
                for n in lines}

    return table.append_column(LINE, pa.array(numbers)), raw_of


def _non_finite(values: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a number of `values`, at any depth of lists and objects, is NaN or infinite."""
    typ = values.type
    if pa.types.is_floating(typ):
        return bool(pc.any(pc.invert(pc.is_finite(values))).as_py())
    if not (pa.types.is_struct(typ) or pa.types.is_list(typ) or pa.types.is_large_list(typ)):
        return False
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    if pa.types.is_struct(typ):
        return any(_non_finite(field) for chunk in chunks for field in chunk.flatten())
    return any(_non_finite(chunk.flatten()) for chunk in chunks)


def _jsonl(con: duckdb.DuckDBPyConnection, source: str, stream: _ReadsInto) -> Iterator[Chunk]:
    for table, raw_of in _ahead(_parsed_chunks(stream)):
        con.register("_batch", table)
        if raw_of is not None:
            con.execute(f"CREATE OR REPLACE TEMP VIEW _stage AS "
                        f"{_typed_stage_sql(source, table.schema.remove(table.num_columns - 1), 'NULL::VARCHAR', 'NULL', 'true')}")
            yield Chunk(source, table.num_rows, raw_of)
        else:
            con.execute(f"CREATE OR REPLACE TEMP VIEW _stage AS {_jsonl_stage_sql(source)}")
            yield Chunk(source, table.num_rows, _raw_from_stage(con))
        con.execute("DROP VIEW _stage")
        con.unregister("_batch")


def stage_mapped(con: duckdb.DuckDBPyConnection, events: pa.Table, unmapped: pa.Table) -> None:
    """Stage events a helpdesk's records were mapped to (`sources/`) as `_stage`, read exactly as JSON
    Lines are on the exact path, with the staged column `rec` telling records apart (one record may give
    several events). `events`: rec, source, line and the event's JSON text; `unmapped`: rec, source,
    line, brand, event id, customer and time (where the record names them) and the one-line reason of each
    record that could not be mapped, staged unparsed. Undo with `unstage_mapped`."""
    stage_texts(con, mapped_texts(events), unmapped)


TEXTS = pa.schema([("rec", pa.int64()), ("source", pa.string()), ("line", pa.int64()), ("raw", pa.large_string()),
                   ("bad", pa.bool_()), ("lax", pa.bool_())])


def line_texts(batches: Sequence[tuple[str, Sequence[bytes]]], first: int = 0) -> pa.Table:
    """Several batches of JSON texts, each under its own source name and numbered from line 1, as texts to stage
    (`stage_texts`), numbered (`rec`) from `first` across batches in the order given, so that the first record of an id
    is the earliest sent. Blank lines are skipped, as in a file; a line that is not UTF-8 or only a lenient reader's
    JSON is marked so, as `_split_lines` marks a file's."""
    parts = []
    for source, lines in batches:
        if not lines:
            continue
        data = memoryview(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
        part = _split_lines(data, 1, _line_bounds(data)[0])
        recs = pa.array(np.arange(first, first + part.num_rows, dtype=np.int64))
        first += part.num_rows
        parts.append(pa.table([recs, pa.array([source] * part.num_rows, pa.string()), part.column("line"),
                               part.column("raw"), part.column("bad"), part.column("lax")], schema=TEXTS))
    return pa.concat_tables(parts) if parts else TEXTS.empty_table()


def stage_texts(con: duckdb.DuckDBPyConnection, texts: pa.Table, unmapped: pa.Table | None = None) -> None:
    """Stage JSON texts (`TEXTS`: a batch's lines, a helpdesk's mapped events, or both) as `_stage`, read exactly
    as JSON Lines are on the exact path, with the staged column `rec` telling records apart, and the records a
    helpdesk's mapping could not make events of (`stage_mapped`'s `unmapped`) staged unparsed. Undo with
    `unstage_mapped`."""
    con.register("_batch", pa.table({"line": texts.column("rec"), "raw": texts.column("raw"),
                                     "bad": texts.column("bad"), "lax": texts.column("lax")}))
    con.register("_mapped", texts.select(["rec", "source", "line"]))
    con.register("_unmapped", unmapped if unmapped is not None else pa.table({
        "rec": pa.array([], pa.int64()), "source": pa.array([], pa.string()), "line": pa.array([], pa.int64()),
        "brand": pa.array([], pa.string()), "event_id": pa.array([], pa.string()),
        "customer_id": pa.array([], pa.string()), "occurred_at": pa.array([], pa.string()),
        "message": pa.array([], pa.string())}))
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _stage AS
        SELECT s.* REPLACE (m.source AS source, m.line AS line), m.rec
        FROM ({_jsonl_stage_sql("")}) s JOIN _mapped m ON m.rec = s.line
        UNION ALL BY NAME
        SELECT source, line, rec, NULL::VARCHAR AS raw, false AS parsed, message AS problem, brand, event_id,
               customer_id, occurred_at
        FROM _unmapped
    """)


def mapped_texts(events: pa.Table) -> pa.Table:
    """A helpdesk's mapped events (rec, source, line, json) as texts to stage."""
    none = pa.array([False] * events.num_rows)
    return pa.table([events.column("rec"), events.column("source"), events.column("line"),
                     events.column("json").cast(pa.large_string()), none, none], schema=TEXTS)


def unstage_mapped(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP VIEW _stage")
    for name in ("_batch", "_mapped", "_unmapped"):
        con.unregister(name)


def _parsed_chunks(stream: _ReadsInto) -> Iterator[tuple[pa.Table, Callable[[list[int]], dict[int, str]] | None]]:
    """Each chunk parsed by pyarrow's reader with its raw text by line (`_fast_json`), or, when that
    cannot tell every problem, as lines for DuckDB's exact path (`_split_lines`) without it."""
    line = 1  # the number of the next chunk's first line
    for data in _line_chunks(stream):
        bounds = _line_bounds(data)  # data is never empty: _line_chunks yields none such
        first_line, line = line, line + bounds[0].shape[0]
        fast = _fast_json(data, first_line, bounds)
        if fast is not None:
            yield fast
        elif (lines := _split_lines(data, first_line, bounds[0])).num_rows:
            yield lines, None


def _json_kind(expr: str, *, number: bool = True) -> str:
    """What a JSON value of the wrong type is, for a message: one that is no string (`number`), or no number."""
    other = "'a number'" if number else "'a string'"
    return (f"CASE json_type({expr}) WHEN 'OBJECT' THEN 'an object' WHEN 'ARRAY' THEN 'a list' "
            f"WHEN 'BOOLEAN' THEN 'true/false' ELSE {other} END")


def _jsonl_stage_sql(source: str) -> str:
    shape = "{" + ", ".join(f'"{f}": "JSON"' for f in FIELDS) + "}"
    removal = "{" + ", ".join(f'"{f}": null' for f in FIELDS) + "}"
    fields = []
    problems = []
    for f in STRING_FIELDS:
        # A value of the wrong type is kept as text, so the reason names its type rather than "missing".
        fields.append(f"CASE WHEN json_type(j.{f}) <> 'NULL' THEN j.{f} ->> '$' END AS {f}")
        problems.append(f"CASE WHEN json_type(j.{f}) NOT IN ('VARCHAR', 'NULL') "
                        f"THEN '{f} must be a string, not ' || {_json_kind(f'j.{f}')} END")
    for f in NUMBER_FIELDS:
        # The text of the number, as written. A value of another type is named, and not staged: no field
        # requires one, so the type alone is the problem (not also its value).
        number = f"json_type(j.{f}) IN ('UBIGINT', 'BIGINT', 'DOUBLE')"
        fields.append(f"CASE WHEN {number} THEN j.{f} ->> '$' END AS {f}")
        problems.append(f"CASE WHEN json_type(j.{f}) <> 'NULL' AND NOT {number} "
                        f"THEN '{f} must be a number, not ' || {_json_kind(f'j.{f}', number=False)} END")
    guides_ok = ("json_type(j.guides) = 'ARRAY' AND coalesce(list_bool_and(list_transform("
                 "from_json(j.guides, '[\"JSON\"]'), lambda x: json_type(x) = 'VARCHAR')), true)")
    fields.append(f"CASE WHEN {guides_ok} THEN from_json(j.guides, '[\"VARCHAR\"]') END AS guides")
    problems.append(f"CASE WHEN json_type(j.guides) <> 'NULL' AND NOT ({guides_ok}) "
                    "THEN 'guides must be a list of strings' END")
    return f"""
        SELECT {sql_string(source)} AS source, line, raw, coalesce(jt = 'OBJECT', false) AS parsed,
               CASE WHEN bad THEN 'line is not valid UTF-8 text; re-export the file as UTF-8'
                    WHEN lax THEN 'line is not valid JSON: NaN, Infinity and trailing commas are not JSON; '
                                  'write null, a number or a string instead, and no comma before a closing brace or bracket'
                    WHEN jt IS NULL THEN 'line is not valid JSON; check for truncation or stray characters'
                    WHEN jt <> 'OBJECT' THEN 'line is ' || CASE jt WHEN 'ARRAY' THEN 'a JSON list' WHEN 'VARCHAR' THEN 'a JSON string'
                                                   WHEN 'BOOLEAN' THEN 'JSON true/false' WHEN 'NULL' THEN 'JSON null'
                                                   ELSE 'a JSON number' END || ', not an object'
                    ELSE nullif(concat_ws('; ', {", ".join(problems)}), '') END AS problem,
               {", ".join(fields)},
               CASE WHEN jt = 'OBJECT' THEN nullif(json_merge_patch(raw, '{removal}'), '{{}}') END AS attributes
        FROM (
            SELECT line, raw, bad, lax, jt, CASE WHEN jt = 'OBJECT' THEN json_transform(raw, '{shape}') END AS j
            FROM (SELECT line, raw, bad, lax, CASE WHEN NOT bad AND NOT lax AND json_valid(raw) THEN json_type(raw) END AS jt
                  FROM _batch)
        )
    """


# --- CSV and Parquet: typed columns ------------------------------------------------------------------

def _guides_from_text(col: str) -> tuple[str, str]:
    """SPEC 2.1: guides as a JSON array or a `|`-separated string. Returns (value SQL, problem SQL).

    JSON is a value that starts with `[` and parses, or looks like a broken array of strings (`["a"`);
    anything else is split on `|`, so that guide names such as `[Beta] Refunds` stay names."""
    is_json = (f"(starts_with(ltrim({col}), '[') AND (json_valid({col}) "
               f"OR regexp_matches(trim({col}), '^\\[\\s*[\\]\"]|\"\\s*\\]$')))")
    # Nested CASEs, not AND: DuckDB may evaluate both sides of an AND, and from_json fails on broken JSON.
    ok = (f"CASE WHEN json_valid({col}) THEN CASE WHEN json_type({col}) = 'ARRAY' THEN coalesce(list_bool_and("
          f"list_transform(from_json({col}, '[\"JSON\"]'), lambda x: json_type(x) = 'VARCHAR')), true) END END")
    value = (f"CASE WHEN {col} IS NULL OR trim({col}) = '' THEN NULL "
             f"WHEN {is_json} THEN CASE WHEN {ok} THEN from_json({col}, '[\"VARCHAR\"]') END "
             f"ELSE list_transform(string_split({col}, '|'), lambda g: trim(g)) END")
    problem = (f"CASE WHEN {is_json} AND NOT coalesce({ok}, false) "
               "THEN 'guides is not a JSON list of strings nor a |-separated list' END")
    return value, problem


def _is_text(typ: pa.DataType) -> bool:
    """A string column, also dictionary-encoded (a pandas `category`) or a view (which is how pyarrow may
    write a Parquet file's UTF-8 column: the file's column is the same)."""
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    return bool(pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ))


def _typed_stage_sql(source: str, schema: pa.Schema, raw_sql: str, problem_sql: str, parsed_sql: str) -> str:
    """Staging SQL over `_batch`, whose columns are those of `schema` (CSV: all strings), then LINE.

    Columns are referred to by position (`#3`): an input's names may be empty, hold a NUL or differ from
    another only in case, and DuckDB's names tell none of these apart. Of two equal names the first counts."""
    position: dict[str, int] = {}
    for i, name in enumerate(schema.names):
        position.setdefault(name, i)
    def absent(f: str) -> str:
        return f"NULL::{'VARCHAR[]' if f == 'guides' else 'VARCHAR'} AS {f}"

    fields: list[str] = []
    problems: list[str] = [problem_sql]
    for f in FIELDS:
        if f not in position:
            fields.append(absent(f))
            continue
        col = f"#{position[f] + 1}"
        typ = schema.types[position[f]]
        if f == "guides" and (pa.types.is_list(typ) or pa.types.is_large_list(typ)) and _is_text(typ.value_type):
            fields.append(f"{col}::VARCHAR[] AS guides")
        elif f == "guides" and _is_text(typ):
            value, problem = _guides_from_text(f"{col}::VARCHAR")
            fields.append(f"{value} AS guides")
            problems.append(problem)
        elif f in NUMBER_FIELDS and (pa.types.is_integer(typ) or pa.types.is_floating(typ)
                                     or pa.types.is_decimal(typ)):
            fields.append(f"{col}::VARCHAR AS {f}")  # the number's text, read as a CSV cell's is
        elif f == "occurred_at" and pa.types.is_timestamp(typ):
            fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if typ.tz else "%Y-%m-%dT%H:%M:%S.%f"
            fields.append(f"strftime({col}, '{fmt}') AS occurred_at")
        elif _is_text(typ):
            fields.append(f"{col}::VARCHAR AS {f}")
        elif pa.types.is_null(typ):
            fields.append(absent(f))
        else:
            # Kept as text, as JSON Lines keep a value of the wrong type: so the reason names the type, and
            # does not also call a required field missing.
            fields.append(absent(f) if f == "guides" or f in NUMBER_FIELDS else f"TRY_CAST({col} AS VARCHAR) AS {f}")
            wanted = "a number" if f in NUMBER_FIELDS else "a string"
            problems.append(f"CASE WHEN {col} IS NOT NULL THEN {sql_string(f'{f} must be {wanted}, not {typ}')} END")
    extra = [i for i, n in enumerate(schema.names) if n not in FIELDS]
    if extra:
        def extra_value(i: int) -> str:
            return f"nullif(#{i + 1}::VARCHAR, '')" if _is_text(schema.types[i]) else f"#{i + 1}"

        pairs = ", ".join(f"{sql_string(schema.names[i])}, {extra_value(i)}" for i in extra)
        present = " OR ".join(f"{extra_value(i)} IS NOT NULL" for i in extra)
        attributes = f"CASE WHEN {present} THEN nullif(json_merge_patch('{{}}', json_object({pairs})), '{{}}') END"
    else:
        attributes = "NULL"
    return f"""
        SELECT {sql_string(source)} AS source, #{len(schema) + 1} AS line, {raw_sql} AS raw, {parsed_sql} AS parsed,
               nullif(concat_ws('; ', {", ".join(problems)}), '') AS problem,
               {", ".join(fields)}, {attributes} AS attributes
        FROM _batch
    """


def _csv_header(source: str, data: BinaryIO | Path) -> list[str]:
    """The names of the first line, blank or not, as pyarrow reads them (after a BOM, with quoted line
    breaks, a lone CR ending the line), so that the header and the records agree; [] for an empty file."""
    try:
        probe = pacsv.open_csv(str(data) if isinstance(data, Path) else data,
                               read_options=pacsv.ReadOptions(block_size=1024 * 1024, use_threads=False),
                               parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False,
                                                                invalid_row_handler=lambda row: "skip"))
        return list(probe.schema.names)
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            return []
        problem = _one_line(exc)
        raise IngestError(lambda n: f"{source}: {problem}; check the file or {n('format')}", param="format") from None
    except UnicodeDecodeError:
        raise IngestError(f"{source}: the header is not valid UTF-8 text; re-export the file as UTF-8") from None
    finally:
        if not isinstance(data, Path):
            data.seek(0)


def csv_header_line(path: Path) -> str | None:
    """The header of a CSV file as one CSV line, quoted as its records are (`rejects --raw`); None when
    the file can no longer be read."""
    try:
        names = _csv_header(str(path), path)
    except (IngestError, OSError):
        return None
    line = io.StringIO()
    csv.writer(line, lineterminator="\r\n").writerow(names)  # quotes a name holding , " CR or LF, as records are
    return line.getvalue().removesuffix("\r\n")


def _one_line(exc: Exception) -> str:
    """pyarrow's message, which may quote a record, on one short line."""
    text = re.sub(BREAKS_LINE, " ", str(exc)).strip()
    return text if len(text) <= 200 else text[:200] + "…"


def _csv_batches(source: str, open_reader: Callable[[], pacsv.CSVStreamingReader]) -> Iterator[pa.RecordBatch]:
    """pyarrow's batches. It cannot hand a record of the wrong width that is not UTF-8 to the invalid-row
    handler, and stops there: so does the file, with what was read before it stored."""
    try:
        reader = open_reader()
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            yield batch
    except pa.ArrowInvalid as exc:
        raise IngestError(f"{source}: {_one_line(exc)}; fix that record (UTF-8, the header's columns) and "
                          "ingest the file again") from None


def _csv(con: duckdb.DuckDBPyConnection, source: str, data: BinaryIO | Path) -> Iterator[Chunk]:
    # pyarrow streams the file block by block.
    header = _csv_header(source, data)
    if not header:
        return
    invalid: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append((row.number or 0, row.text))
        return "skip"

    def open_reader() -> pacsv.CSVStreamingReader:
        return pacsv.open_csv(
            str(data) if isinstance(data, Path) else data,
            read_options=pacsv.ReadOptions(block_size=16 * 1024 * 1024, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid,
                                             ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.binary() for name in header}, strings_can_be_null=False
            ),
        )

    schema = pa.schema([pa.field(n, pa.string()) for n in header])
    raw_sql = "concat_ws(',', " + ", ".join(
        f"CASE WHEN regexp_matches(#{i}, '[\",\\r\\n]') THEN '\"' || replace(#{i}, '\"', '\"\"') || '\"' "
        f"ELSE #{i} END" for i in range(1, len(header) + 1)) + ")"
    # Physical line and record ordinal (pyarrow's InvalidRow.number) after the header.
    next_line, next_record = 2 + sum(name.count("\n") for name in header), 2
    pending: list[tuple[int, str]] = []
    for batch in _csv_batches(source, open_reader):
        columns, bad = _decode_columns(batch)
        # Records in file order: this batch's rows and the rows pyarrow skipped as invalid. A record's
        # line is the line after the previous record's last one (values may hold quoted line breaks).
        skipped = sorted(pending + invalid)
        invalid.clear()
        total = batch.num_rows + len(skipped)
        ordinals = np.arange(next_record, next_record + total)
        skipped_at = np.array([o - next_record for o, _ in skipped if o < next_record + total], dtype=np.int64)
        pending = [(o, t) for o, t in skipped if o >= next_record + total]
        total = batch.num_rows + skipped_at.shape[0]
        ordinals = ordinals[:total]
        is_row = np.ones(total, dtype=bool)
        is_row[skipped_at] = False
        breaks = np.zeros(total, dtype=np.int64)
        row_breaks = np.zeros(batch.num_rows, dtype=np.int64)
        for col in columns:
            row_breaks += np.asarray(pc.count_substring(col, "\n").fill_null(0).to_numpy(zero_copy_only=False))
        breaks[is_row] = row_breaks
        breaks[~is_row] = [skipped[i][1].count("\n") for i in range(skipped_at.shape[0])]
        lines = next_line + np.concatenate(([0], np.cumsum(breaks + 1)[:-1])).astype(np.int64)
        if total:
            next_line = int(lines[-1] + breaks[-1] + 1)
            next_record = int(ordinals[-1] + 1)
        unparsed = [(int(line), skipped[i][1]) for i, line in enumerate(lines[~is_row])
                    if skipped[i][1].strip()]  # a blank line is no record
        table = pa.Table.from_arrays([*columns, pa.array(lines[is_row]), pa.array(bad)], names=[*header, LINE, BAD])
        blank = np.ones(batch.num_rows, dtype=bool)  # a blank line reads as a record of empty values
        for col in batch.columns:
            blank &= np.asarray(pc.binary_length(col).to_numpy(zero_copy_only=False)) == 0
        table = table.filter(pa.array(~blank))
        yield from _csv_chunk(con, source, schema, table, raw_sql, unparsed, len(header))
    pending = sorted(pending + invalid)  # rows reported after the last batch, or in a file of no valid row
    if pending:
        empty = pa.Table.from_arrays([*(pa.array([], pa.string()) for _ in header), pa.array([], pa.int64()),
                                      pa.array([], pa.bool_())], names=[*header, LINE, BAD])
        yield from _csv_chunk(con, source, schema, empty, raw_sql,
                              [(next_line + i, t) for i, (_, t) in enumerate(pending) if t.strip()], len(header))


def _csv_chunk(con: duckdb.DuckDBPyConnection, source: str, schema: pa.Schema, table: pa.Table, raw_sql: str,
               invalid: list[tuple[int, str]], width: int) -> Iterator[Chunk]:
    bad = f"#{len(schema) + 2}"  # BAD, after the header's columns and LINE
    problem = f"CASE WHEN {bad} THEN 'record is not valid UTF-8 text; re-export the file as UTF-8' END"
    unparsed = pa.table({
        "line": pa.array([number or None for number, _ in invalid], pa.int64()),
        "raw": pa.array([text for _, text in invalid], pa.string()),
    })
    con.register("_batch", table)
    con.register("_unparsed", unparsed)
    reason = f"record does not have the {width} columns of the header; check quoting and commas"
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _stage AS
        {_typed_stage_sql(source, schema, raw_sql, problem, f'NOT {bad}')}
        UNION ALL BY NAME
        SELECT {sql_string(source)} AS source, line, raw, false AS parsed, {sql_string(reason)} AS problem FROM _unparsed
    """)
    yield Chunk(source, table.num_rows + unparsed.num_rows, _raw_from_stage(con))
    con.execute("DROP VIEW _stage")
    con.unregister("_batch")
    con.unregister("_unparsed")


def _decode_columns(batch: pa.RecordBatch) -> tuple[list[pa.Array], np.ndarray]:
    """Binary CSV columns as strings; records with invalid UTF-8 are flagged and shown repaired."""
    bad = np.zeros(batch.num_rows, dtype=bool)
    columns = []
    for col in batch.columns:
        try:
            columns.append(col.cast(pa.string()))
        except pa.ArrowInvalid:
            values = []
            for i, value in enumerate(col.to_pylist()):
                try:
                    values.append(value.decode("utf-8"))
                except UnicodeDecodeError:
                    bad[i] = True
                    values.append(value.decode("utf-8", errors="backslashreplace"))
            columns.append(pa.array(values, pa.string()))
    return columns, bad


def _parquet_batches(source: str, data: BinaryIO | Path) -> Iterator[pa.RecordBatch]:
    """The file's batches; a damaged file, found at its footer or at a page of some batch, stops there
    (what was read before it is stored)."""
    try:
        for batch in pq.ParquetFile(data).iter_batches(batch_size=PARQUET_BATCH):
            batch.validate(full=True)  # pyarrow does not check that a Parquet string is UTF-8
            yield batch
    except (pa.ArrowException, OSError) as exc:
        problem = _one_line(exc)
        raise IngestError(lambda n: f"{source}: not a readable Parquet file ({problem}); check the file or {n('format')}",
                          param="format") from None


def _parquet(con: duckdb.DuckDBPyConnection, source: str, data: BinaryIO | Path) -> Iterator[Chunk]:
    line = 1
    for batch in _parquet_batches(source, data):
        stage_arrow(con, source, pa.Table.from_batches([batch]), np.arange(line, line + batch.num_rows))
        line += batch.num_rows
        yield Chunk(source, batch.num_rows, _raw_from_stage(con))
        unstage_arrow(con)


def stage_arrow(con: duckdb.DuckDBPyConnection, source: str, table: pa.Table, lines: np.ndarray) -> None:
    """Stage typed records (a Parquet batch, or one a Spark task reads) as `_stage`; raw text is their JSON."""
    raw = "json_object(" + ", ".join(f"{sql_string(n)}, #{i + 1}" for i, n in enumerate(table.schema.names)) + ")"
    con.register("_batch", table.append_column(LINE, pa.array(lines, pa.int64())))
    con.execute(f"CREATE OR REPLACE TEMP VIEW _stage AS {_typed_stage_sql(source, table.schema, raw, 'NULL', 'true')}")


def unstage_arrow(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP VIEW _stage")
    con.unregister("_batch")
