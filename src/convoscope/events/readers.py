"""Readers: JSON Lines, CSV and Parquet files (or standard input) into staged chunks (SPEC 2.1).

A reader never builds Python objects per event: JSON Lines are cut into an Arrow string array with
numpy and parsed by DuckDB's JSON functions; CSV goes through pyarrow's streaming reader; Parquet
through pyarrow's batch reader. Each chunk becomes the temporary table `_stage` (STAGE_COLUMNS), with
the problems a reader can see (bad JSON, invalid UTF-8, a value of the wrong type) already noted.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from convoscope.errors import IngestError
from convoscope.events.schema import FIELDS, STRING_FIELDS

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
CHUNK_BYTES = 64 * 1024 * 1024
PARQUET_BATCH = 1_000_000


@dataclass
class Chunk:
    """One staged chunk: `rows` records now in `_stage`, from `source`."""

    source: str
    rows: int


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise IngestError(f"{path}: cannot tell the format from '{suffix or 'no extension'}'; pass --format jsonl|csv|parquet")
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
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS)
            if not files:
                raise IngestError(f"{path}: no .jsonl, .csv or .parquet files in this directory")
            found.extend((str(p.resolve()), p, detect_format(p, fmt)) for p in files)
        elif path.is_file():
            found.append((str(path.resolve()), path, detect_format(path, fmt)))
        else:
            raise IngestError(f"{path}: no such file or directory; check the path")
    return found


def read_chunks(con: duckdb.DuckDBPyConnection, source: str, path: Path | None, fmt: str) -> Iterator[Chunk]:
    """Stage `path` (or standard input) chunk by chunk into `_stage`; yield after each chunk."""
    if fmt == "jsonl":
        stream: BinaryIO = sys.stdin.buffer if path is None else path.open("rb")
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

def _split_lines(data: bytes, first_line: int) -> pa.Table:
    """Non-blank lines of `data` as (line, raw, bad_utf8), without a Python object per line."""
    arr = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10) + 1
    if ends.shape[0] == 0 or ends[-1] != len(data):
        ends = np.append(ends, len(data))
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    numbers = np.arange(first_line, first_line + ends.shape[0], dtype=np.int64)
    binary = pa.LargeBinaryArray.from_buffers(pa.large_binary(), ends.shape[0], [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    bad = np.zeros(ends.shape[0], dtype=bool)
    try:
        text = binary.cast(pa.large_string())
    except pa.ArrowInvalid:  # rare: find the offending lines one by one, keep them with a visible repair
        values = []
        for i in range(ends.shape[0]):
            piece = data[offsets[i]:offsets[i + 1]]
            try:
                values.append(piece.decode("utf-8"))
            except UnicodeDecodeError:
                bad[i] = True
                values.append(piece.decode("utf-8", errors="backslashreplace"))
        text = pa.array(values, pa.large_string())
    text = pc.utf8_rtrim(text, characters="\r\n")
    keep = np.asarray(pc.utf8_length(pc.utf8_trim_whitespace(text)).to_numpy(zero_copy_only=False)) > 0
    return pa.table({"line": numbers[keep], "raw": text.filter(pa.array(keep)), "bad": bad[keep]})


def _jsonl(con: duckdb.DuckDBPyConnection, source: str, stream: BinaryIO) -> Iterator[Chunk]:
    carry = b""
    line = 1
    first = True
    while True:
        block = stream.read(CHUNK_BYTES)
        data = carry + block
        if first and data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        first = False
        if block:
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            data, carry = data[:cut], data[cut:]
        else:
            carry = b""
        if data:
            lines = _split_lines(data, line)
            line += data.count(b"\n")
            if lines.num_rows:
                con.register("_lines", lines)
                con.execute(f"CREATE OR REPLACE TEMP TABLE _stage AS {_jsonl_stage_sql(source)}")
                con.unregister("_lines")
                yield Chunk(source, lines.num_rows)
        if not block:
            return


def _json_kind(expr: str) -> str:
    return (f"CASE json_type({expr}) WHEN 'OBJECT' THEN 'an object' WHEN 'ARRAY' THEN 'a list' "
            f"WHEN 'BOOLEAN' THEN 'true/false' ELSE 'a number' END")


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
    guides_ok = ("json_type(j.guides) = 'ARRAY' AND coalesce(list_bool_and(list_transform("
                 "from_json(j.guides, '[\"JSON\"]'), lambda x: json_type(x) = 'VARCHAR')), true)")
    fields.append(f"CASE WHEN {guides_ok} THEN from_json(j.guides, '[\"VARCHAR\"]') END AS guides")
    problems.append(f"CASE WHEN json_type(j.guides) <> 'NULL' AND NOT ({guides_ok}) "
                    "THEN 'guides must be a list of strings' END")
    return f"""
        SELECT {_q(source)} AS source, line, raw, coalesce(jt = 'OBJECT', false) AS parsed,
               CASE WHEN bad THEN 'line is not valid UTF-8 text; re-export the file as UTF-8'
                    WHEN jt IS NULL THEN 'line is not valid JSON; check for truncation or stray characters'
                    WHEN jt <> 'OBJECT' THEN 'line is a JSON ' || lower(jt) || ', not an object'
                    ELSE nullif(concat_ws('; ', {", ".join(problems)}), '') END AS problem,
               {", ".join(fields)},
               CASE WHEN jt = 'OBJECT' THEN nullif(json_merge_patch(raw, '{removal}'), '{{}}') END AS attributes
        FROM (
            SELECT line, raw, bad, jt, CASE WHEN jt = 'OBJECT' THEN json_transform(raw, '{shape}') END AS j
            FROM (SELECT line, raw, bad, CASE WHEN NOT bad AND json_valid(raw) THEN json_type(raw) END AS jt FROM _lines)
        )
    """


# --- CSV and Parquet: typed columns ------------------------------------------------------------------

def _guides_from_text(col: str) -> tuple[str, str]:
    """SPEC 2.1: guides as a JSON array or a `|`-separated string. Returns (value SQL, problem SQL)."""
    is_json = f"starts_with(ltrim({col}), '[')"
    ok = (f"json_valid({col}) AND json_type({col}) = 'ARRAY' AND coalesce(list_bool_and(list_transform("
          f"from_json({col}, '[\"JSON\"]'), lambda x: json_type(x) = 'VARCHAR')), true)")
    value = (f"CASE WHEN {col} IS NULL OR trim({col}) = '' THEN NULL "
             f"WHEN {is_json} THEN CASE WHEN {ok} THEN from_json({col}, '[\"VARCHAR\"]') END "
             f"ELSE list_transform(string_split({col}, '|'), lambda g: trim(g)) END")
    problem = f"CASE WHEN {is_json} AND NOT ({ok}) THEN 'guides is not a JSON list of strings nor a |-separated list' END"
    return value, problem


def _typed_stage_sql(source: str, schema: pa.Schema, raw_sql: str, problem_sql: str, parsed_sql: str) -> str:
    """Staging SQL over `_batch`, whose columns have the types in `schema` (CSV: all strings)."""
    names = set(schema.names)
    fields: list[str] = []
    problems: list[str] = [problem_sql]
    for f in FIELDS:
        col = _ident(f)
        if f not in names:
            fields.append(f"NULL::{'VARCHAR[]' if f == 'guides' else 'VARCHAR'} AS {f}")
            continue
        typ = schema.field(f).type
        if f == "guides" and (pa.types.is_list(typ) or pa.types.is_large_list(typ)) and pa.types.is_string(typ.value_type):
            fields.append(f"{col} AS guides")
        elif f == "guides" and (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            value, problem = _guides_from_text(col)
            fields.append(f"{value} AS guides")
            problems.append(problem)
        elif f == "occurred_at" and pa.types.is_timestamp(typ):
            fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if typ.tz else "%Y-%m-%dT%H:%M:%S.%f"
            fields.append(f"strftime({col}, '{fmt}') AS occurred_at")
        elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
            fields.append(f"{col} AS {f}")
        elif pa.types.is_null(typ):
            fields.append(f"NULL AS {f}")
        else:
            fields.append(f"NULL AS {f}")
            problems.append(f"CASE WHEN {col} IS NOT NULL THEN '{f} must be a string, not {typ}' END")
    extra = [n for n in schema.names if n not in FIELDS]
    if extra:
        pairs = ", ".join(f"{_q(n)}, {_ident(n)}" for n in extra)
        attributes = f"nullif(json_merge_patch('{{}}', json_object({pairs})), '{{}}')"
    else:
        attributes = "NULL"
    return f"""
        SELECT {_q(source)} AS source, line, {raw_sql} AS raw, {parsed_sql} AS parsed,
               nullif(concat_ws('; ', {", ".join(problems)}), '') AS problem,
               {", ".join(fields)}, {attributes} AS attributes
        FROM _batch
    """


def _csv(con: duckdb.DuckDBPyConnection, source: str, data: BinaryIO | Path) -> Iterator[Chunk]:
    raw_bytes = data.read_bytes() if isinstance(data, Path) else data.read()
    if raw_bytes.startswith(b"\xef\xbb\xbf"):
        raw_bytes = raw_bytes[3:]
    header_text = raw_bytes.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    header = next(csv.reader([header_text.rstrip("\r")]), [])
    if not header:
        return
    invalid: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append((row.number or 0, row.text))
        return "skip"

    reader = pacsv.open_csv(
        io.BytesIO(raw_bytes),
        read_options=pacsv.ReadOptions(block_size=16 * 1024 * 1024, use_threads=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.binary() for name in header}, strings_can_be_null=False
        ),
    )
    schema = pa.schema([pa.field(n, pa.string()) for n in header])
    raw_sql = "concat_ws(',', " + ", ".join(
        f"CASE WHEN regexp_matches({_ident(n)}, '[\",\\r\\n]') THEN '\"' || replace({_ident(n)}, '\"', '\"\"') || '\"' "
        f"ELSE {_ident(n)} END" for n in header) + ")"
    next_line = 2
    for batch in reader:
        columns, bad = _decode_columns(batch)
        # A record's line: after the header, each record takes 1 + the line breaks inside its values.
        breaks = np.zeros(batch.num_rows, dtype=np.int64)
        for col in columns:
            breaks += np.asarray(pc.count_substring(col, "\n").fill_null(0).to_numpy(zero_copy_only=False))
        lines = next_line + np.concatenate(([0], np.cumsum(breaks + 1)[:-1])).astype(np.int64)
        next_line = int(lines[-1] + breaks[-1] + 1) if batch.num_rows else next_line
        for bad_line, text in sorted(invalid):  # skipped rows shift the records after them
            lines[lines >= bad_line] += text.count("\n") + 1
            next_line += text.count("\n") + 1
        table = pa.table(dict(zip(header, columns, strict=True)) | {"line": lines, "_bad": bad})
        con.register("_batch", table)
        problem = "CASE WHEN _bad THEN 'record is not valid UTF-8 text; re-export the file as UTF-8' END"
        con.execute(f"CREATE OR REPLACE TEMP TABLE _stage AS {_typed_stage_sql(source, schema, raw_sql, problem, 'NOT _bad')}")
        con.unregister("_batch")
        if invalid:
            _append_unparsed(con, source, invalid, len(header))
        rows = batch.num_rows + len(invalid)
        invalid.clear()
        yield Chunk(source, rows)
    if invalid:  # rows reported after the last batch
        con.execute("CREATE OR REPLACE TEMP TABLE _stage AS SELECT * FROM _stage WHERE false")
        _append_unparsed(con, source, invalid, len(header))
        yield Chunk(source, len(invalid))


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


def _append_unparsed(con: duckdb.DuckDBPyConnection, source: str, rows: list[tuple[int, str]], width: int) -> None:
    con.executemany(
        "INSERT INTO _stage (source, line, raw, parsed, problem) VALUES (?, ?, ?, false, ?)",
        [(source, number or None, text,
          f"record does not have the {width} columns of the header; check quoting and commas") for number, text in rows],
    )


def _parquet(con: duckdb.DuckDBPyConnection, source: str, data: BinaryIO | Path) -> Iterator[Chunk]:
    try:
        parquet = pq.ParquetFile(data)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(f"{source}: not a readable Parquet file ({exc}); check the file or --format") from None
    line = 1
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH):
        table = pa.Table.from_batches([batch]).append_column("line", pa.array(np.arange(line, line + batch.num_rows)))
        con.register("_batch", table)
        raw = "to_json(struct_pack(" + ", ".join(f"{_ident(n)} := {_ident(n)}" for n in batch.schema.names) + "))"
        con.execute(f"CREATE OR REPLACE TEMP TABLE _stage AS {_typed_stage_sql(source, batch.schema, raw, 'NULL', 'true')}")
        con.unregister("_batch")
        line += batch.num_rows
        yield Chunk(source, batch.num_rows)
