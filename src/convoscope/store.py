"""The ground floor: one embedded DuckDB file holding the events, their rejects and the derived tables.

Every other room reads and writes through `Store`. All times are stored as UTC `TIMESTAMP`s
(microseconds) and the connection runs in UTC (SPEC 7); conversion to a report's zone happens only
when rendering. Writes happen in transactions, so a crash leaves either a whole chunk or nothing.
Customers whose events changed since the last derivation are listed in `pending`, written in the
same transaction as their events: derived tables are brought up to date before anything reads them.

DuckDB lets one process at a time open the file. The server opens it per request and the command line
per command, and whoever finds it taken waits its turn (SPEC 6.1: nobody sees a lock error).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from convoscope.errors import ConvoscopeError

DEFAULT_DB = "convoscope.duckdb"
SCHEMA_VERSION = "2"  # of the derived tables: a store of another version rebuilds them

BRAND_PATTERN = "^[a-z0-9][a-z0-9_-]{0,63}$"  # SPEC 2.2
EVENT_TYPES = (  # SPEC 2.4 type rank: an ENUM in this order sorts by rank
    "conversation_reopen",
    "customer_message",
    "ai_message",
    "handoff",
    "agent_message",
    "contact_end",
    "conversation_close",
)

_SCHEMA = f"""
CREATE TYPE IF NOT EXISTS event_type AS ENUM ({", ".join(repr(t) for t in EVENT_TYPES)});
CREATE TYPE IF NOT EXISTS route_type AS ENUM ('ai', 'team');
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS events (
    brand VARCHAR NOT NULL, event_id VARCHAR NOT NULL, type event_type NOT NULL,
    occurred_at TIMESTAMP NOT NULL, customer_id VARCHAR NOT NULL, channel VARCHAR, text VARCHAR,
    route route_type, ai_agent VARCHAR, guides VARCHAR[], category VARCHAR, subcategory VARCHAR,
    reason VARCHAR, transfer_rationale VARCHAR, agent VARCHAR, attributes JSON,
    source VARCHAR, line BIGINT, ingested_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS rejects (
    kind VARCHAR NOT NULL, reason VARCHAR NOT NULL, source VARCHAR NOT NULL, line BIGINT,
    raw VARCHAR, brand VARCHAR, event_id VARCHAR, customer_id VARCHAR, occurred_at TIMESTAMP,
    rejected_at TIMESTAMP, resolved BOOLEAN DEFAULT false
);
CREATE TABLE IF NOT EXISTS duplicates (
    brand VARCHAR, event_id VARCHAR, customer_id VARCHAR, occurred_at TIMESTAMP,
    source VARCHAR, line BIGINT, seen_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS pending (brand VARCHAR NOT NULL, customer_id VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS derived_settings (brand VARCHAR PRIMARY KEY, fingerprint VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    brand VARCHAR, customer_id VARCHAR, session_id VARCHAR, conversation_id VARCHAR,
    created_at TIMESTAMP, last_activity_at TIMESTAMP, ended_at TIMESTAMP, end_reason VARCHAR,
    channel VARCHAR, ai_agent VARCHAR, guides_used VARCHAR, guides VARCHAR[],
    responded BOOLEAN, first_response_at TIMESTAMP, handed_off BOOLEAN,
    handoff_category VARCHAR, handoff_subcategory VARCHAR, handoff_reason VARCHAR, transfer_rationale VARCHAR,
    recontacted BOOLEAN, recontact_known_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS contacts (
    brand VARCHAR, customer_id VARCHAR, contact_id VARCHAR, conversation_id VARCHAR, session_id VARCHAR,
    source VARCHAR, channel VARCHAR, created_at TIMESTAMP, first_response_at TIMESTAMP,
    last_activity_at TIMESTAMP, ended_at TIMESTAMP, end_reason VARCHAR, agents VARCHAR, agent_names VARCHAR[],
    customer_messages INTEGER, agent_messages INTEGER
);
CREATE TABLE IF NOT EXISTS conversations (
    brand VARCHAR, customer_id VARCHAR, conversation_id VARCHAR, created_at TIMESTAMP, ended_at TIMESTAMP,
    times_reopened INTEGER, first_channel VARCHAR, last_channel VARCHAR, channel_count INTEGER, channels VARCHAR[],
    session_count INTEGER, contact_count INTEGER, handled_by VARCHAR
);
CREATE TABLE IF NOT EXISTS conversation_closes (
    brand VARCHAR, customer_id VARCHAR, conversation_id VARCHAR, closed_at TIMESTAMP, counted BOOLEAN
);
CREATE TABLE IF NOT EXISTS conversation_reopens (
    brand VARCHAR, customer_id VARCHAR, conversation_id VARCHAR, reopened_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS anomalies (
    brand VARCHAR, customer_id VARCHAR, event_id VARCHAR, kind VARCHAR, occurred_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS users (
    name VARCHAR PRIMARY KEY, role VARCHAR NOT NULL, brands VARCHAR[], password_hash VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash VARCHAR PRIMARY KEY, user_name VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP, revoked_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS web_sessions (
    id_hash VARCHAR PRIMARY KEY, user_name VARCHAR NOT NULL, csrf_token VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL, expires_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    logged_at TIMESTAMP NOT NULL, user_name VARCHAR, action VARCHAR NOT NULL, target VARCHAR, parameters JSON
);
-- The brands an entry concerns (NULL: none in particular, or every brand); stores made before it get it here.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS brands VARCHAR[];
CREATE TABLE IF NOT EXISTS session_messages (
    brand VARCHAR, customer_id VARCHAR, session_id VARCHAR, seq INTEGER, event_id VARCHAR,
    occurred_at TIMESTAMP, speaker VARCHAR
);
"""

# Tables rebuilt by derivation, each keyed by (brand, customer_id) so one customer can be replaced.
DERIVED_TABLES = (
    "sessions",
    "contacts",
    "conversations",
    "conversation_closes",
    "conversation_reopens",
    "anomalies",
    "session_messages",
)


# What a lake (a folder of Parquet tables, as `spark-derive` writes) holds: the events as accepted, the
# records not accepted, the derived tables, and the derivation settings they were made with.
LAKE_TABLES = ("events", "rejects", "duplicates", *DERIVED_TABLES, "derived_settings")


@functools.cache  # a schema is asked for per table written; building it opens a database
def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of one of the store's tables, enumerations as plain strings."""
    con = duckdb.connect()
    con.execute(_SCHEMA)
    schema = con.sql(f"SELECT * FROM {table} LIMIT 0").to_arrow_table().schema
    con.close()
    return pa.schema([pa.field(f.name, pa.string() if pa.types.is_dictionary(f.type) else f.type) for f in schema])


def sql_string(text: str) -> str:
    """`text` as a SQL string literal, for values built into queries (names, zones, patterns)."""
    return "'" + text.replace("'", "''") + "'"


def default_db_path() -> Path:
    return Path(os.environ.get("CONVOSCOPE_DB", DEFAULT_DB))


def lock_timeout() -> float:
    """Seconds to wait for a store another process holds (`CONVOSCOPE_LOCK_TIMEOUT`, default 10 minutes)."""
    return float(os.environ.get("CONVOSCOPE_LOCK_TIMEOUT", "600"))


def memory_limit() -> str:
    """DuckDB's memory limit (`CONVOSCOPE_MEMORY_LIMIT`, default 40% of this machine's memory).

    DuckDB's own default, 80%, leaves too little for the arrays derivation holds beside it: a derive
    of 100M events ran out of memory on a 24 GiB machine with it."""
    configured = os.environ.get("CONVOSCOPE_MEMORY_LIMIT")
    if configured:
        return configured
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{int(physical * 0.4) // 2**20}MiB"


def _connect(path: Path, read_only: bool, on_wait: Callable[[str], None] | None) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting while another process holds it."""
    deadline = time.monotonic() + lock_timeout()
    pause = 0.01
    told = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            message = str(exc).splitlines()[0]
            if "lock" not in message.lower():
                raise ConvoscopeError(f"cannot open store {path}: {message}; check the path or --db") from None
            if time.monotonic() >= deadline:
                raise ConvoscopeError(f"store {path} stayed in use by another process for {lock_timeout():.0f} s; "
                                      "try again when it has finished") from None
            if on_wait and not told:
                on_wait(f"waiting for store {path}: another convoscope process is using it")
                told = True
            time.sleep(pause)
            pause = min(pause * 2, 0.25)


class Store:
    """An open convoscope store. Use as a context manager, or call `close()`."""

    def __init__(self, path: Path | str | None = None, *, read_only: bool = False,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.con = _connect(self.path, read_only, on_wait)
        self.con.execute("SET GLOBAL TimeZone = 'UTC'")  # cursors are new connections: set it for all
        self.con.execute("SET preserve_insertion_order = false")
        self.con.execute(f"SET memory_limit = '{memory_limit()}'")
        if not read_only:
            self.con.execute(_SCHEMA)
            self._upgrade()

    @classmethod
    def over(cls, con: duckdb.DuckDBPyConnection, path: Path) -> Store:
        """A store on a connection already opened (a cursor of a shared database)."""
        store = cls.__new__(cls)
        store.path, store.con = path, con
        return store

    @classmethod
    def lake(cls, folder: Path) -> Store:
        """A read-only store over a lake: each table a view of its Parquet files, typed as the store's
        own, so that every report runs over it unchanged. Tables the lake lacks stay empty."""
        if not (folder / "derived_settings").is_dir():
            raise ConvoscopeError(f"{folder} is not a complete convoscope lake (no derived_settings table); "
                                  "write one with 'convoscope spark-derive --out DIR'")
        con = duckdb.connect()
        con.execute("SET GLOBAL TimeZone = 'UTC'")  # reports run on cursors, new connections: set it for all
        con.execute(_SCHEMA)
        for table in LAKE_TABLES:
            files = sorted((folder / table).glob("*.parquet"))
            if not files:
                continue
            columns = ", ".join(f"{name}::{kind} AS {name}" for name, kind, *_ in con.sql(f"DESCRIBE {table}").fetchall())
            listed = ", ".join(sql_string(str(f)) for f in files)
            con.execute(f"DROP TABLE {table}")
            con.execute(f"CREATE VIEW {table} AS SELECT {columns} FROM read_parquet([{listed}])")
        return cls.over(con, folder)

    def _upgrade(self) -> None:
        """Derived tables are a cache of the events: a store whose derived tables have another shape
        drops them and marks every customer for derivation, in one transaction."""
        found = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        if found and found[0][0] == SCHEMA_VERSION:
            return
        with self.transaction() as con:
            if found:
                for table in (*DERIVED_TABLES, "derived_settings"):
                    con.execute(f"DROP TABLE {table}")
                con.execute(_SCHEMA)
                con.execute("DELETE FROM pending")
                con.execute("INSERT INTO pending SELECT DISTINCT brand, customer_id FROM events")
            con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All writes inside commit together or not at all."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def count(self, table: str) -> int:
        row = self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0]
        return int(row[0])

    def brands(self) -> list[str]:
        """Every brand the store knows: of its events, and of rejected or duplicate records. A record
        rejected for its brand ('B2', 'acme corp') names no brand: it would otherwise add one, and with
        it change every report's default time zone (SPEC 4) and the brands users may choose."""
        return [r[0] for r in self.con.execute(f"""
            SELECT brand FROM events
            UNION SELECT brand FROM rejects WHERE regexp_full_match(brand, '{BRAND_PATTERN}')
            UNION SELECT brand FROM duplicates WHERE brand IS NOT NULL ORDER BY brand
        """).fetchall()]
