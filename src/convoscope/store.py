"""The ground floor: one embedded DuckDB file holding the events, their rejects and the derived tables.

Every other room reads and writes through `Store`. All times are stored as UTC `TIMESTAMP`s
(microseconds) and the connection runs in UTC (SPEC 7); conversion to a report's zone happens only
when rendering. Writes happen in transactions, so a crash leaves either a whole chunk or nothing.
Customers whose events changed since the last derivation are listed in `pending`, written in the
same transaction as their events: derived tables are brought up to date before anything reads them.

DuckDB lets one process at a time open the file. The server keeps it open while requests come (and a few
seconds after), the command line per command, and whoever finds it taken waits its turn (SPEC 6.1: nobody
sees a lock error), saying so beside the store (`wanted`) so that a server lets go of it at once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, TypeVar, cast

import duckdb
import numpy as np
import pyarrow as pa

from convoscope.errors import ConvoscopeError
from convoscope.events.fields import promote_sql

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

DEFAULT_DB = "convoscope.duckdb"
SCHEMA_VERSION = "6"  # of the derived tables (and the events' columns): a store of another version rebuilds them

BRAND_PATTERN = "^[a-z0-9][a-z0-9_-]{0,63}$"  # SPEC 2.2
EVENT_TYPES = (  # SPEC 2.4 type rank: an ENUM in this order sorts by rank
    "conversation_reopen",
    "customer_message",
    "ai_message",
    "handoff",
    "agent_message",
    "contact_end",
    "conversation_close",
    "feedback",  # Appendix B: after every other type at one instant (docs/outcomes.md)
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
    source VARCHAR, line BIGINT, ingested_at TIMESTAMP, event_key BIGINT,
    inbox VARCHAR,  -- last, where a store of version 3 gets it (`Store._upgrade`)
    rating VARCHAR, score INTEGER  -- a feedback's (docs/outcomes.md), where a store of version 4 gets them
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
-- What became of each record a helpdesk sent (SOURCES.md): a row per event (accepted, duplicate or
-- rejected) and per record that gave none (ignored or rejected), keyed by (brand, source, line, seq, event_id).
CREATE TABLE IF NOT EXISTS source_records (
    system VARCHAR NOT NULL, via VARCHAR NOT NULL, brand VARCHAR, source VARCHAR NOT NULL, line BIGINT,
    seq INTEGER NOT NULL, occurred_at TIMESTAMP, outcome VARCHAR NOT NULL, reason VARCHAR,
    truncated BOOLEAN NOT NULL, recorded_at TIMESTAMP NOT NULL, event_id VARCHAR
);
-- The Chatwoot conversations `pull chatwoot` stored, per installation (`site`) and account, with the
-- `last_activity_at` Chatwoot listed then: one listed again with the same is not fetched again. A row is
-- written in the transaction that stores its conversation's events, so a pull interrupted and run again
-- goes on where it stopped.
CREATE TABLE IF NOT EXISTS chatwoot_pulls (
    site VARCHAR NOT NULL, account BIGINT NOT NULL, conversation BIGINT NOT NULL, last_activity_at BIGINT,
    pulled_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS derived_settings (brand VARCHAR PRIMARY KEY, fingerprint VARCHAR NOT NULL);
CREATE SCHEMA IF NOT EXISTS derived;
CREATE TABLE IF NOT EXISTS derived.sessions (
    brand VARCHAR, customer_id VARCHAR, session_key BIGINT, conversation_key BIGINT,
    created_at TIMESTAMP, last_activity_at TIMESTAMP, ended_at TIMESTAMP, end_reason VARCHAR,
    channel VARCHAR, ai_agent VARCHAR, guides_used VARCHAR, guides VARCHAR[],
    responded BOOLEAN, first_response_at TIMESTAMP, handed_off BOOLEAN,
    handoff_category VARCHAR, handoff_subcategory VARCHAR, handoff_reason VARCHAR, transfer_rationale VARCHAR,
    recontacted BOOLEAN, recontact_known_at TIMESTAMP, inbox VARCHAR, feedback VARCHAR, feedback_score INTEGER,
    next_interaction_at TIMESTAMP  -- the customer's next session or contact at or after the end (decision 176)
);
CREATE TABLE IF NOT EXISTS derived.contacts (
    brand VARCHAR, customer_id VARCHAR, contact_key BIGINT, conversation_key BIGINT, session_key BIGINT,
    source VARCHAR, channel VARCHAR, created_at TIMESTAMP, first_response_at TIMESTAMP,
    last_activity_at TIMESTAMP, ended_at TIMESTAMP, end_reason VARCHAR, agents VARCHAR, agent_names VARCHAR[],
    customer_messages INTEGER, agent_messages INTEGER, inbox VARCHAR, feedback VARCHAR, feedback_score INTEGER,
    next_contact_at TIMESTAMP  -- the customer's next other contact created at or after this one (decision 176)
);
CREATE TABLE IF NOT EXISTS derived.conversations (
    brand VARCHAR, customer_id VARCHAR, conversation_key BIGINT, created_at TIMESTAMP, ended_at TIMESTAMP,
    times_reopened INTEGER, first_channel VARCHAR, last_channel VARCHAR, channel_count INTEGER, channels VARCHAR[],
    session_count INTEGER, contact_count INTEGER, handled_by VARCHAR, inbox_at_created VARCHAR
);
-- `inbox`: that of the conversation's last interaction to start by the close (decision 88).
CREATE TABLE IF NOT EXISTS derived.conversation_closes (
    conversation_key BIGINT, closed_at TIMESTAMP, counted BOOLEAN, inbox VARCHAR,
    next_interaction_at TIMESTAMP  -- the customer's next session or contact at or after the close (decision 176)
);
CREATE TABLE IF NOT EXISTS derived.conversation_reopens (conversation_key BIGINT, reopened_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS derived.anomalies (
    brand VARCHAR, customer_id VARCHAR, event_id VARCHAR, kind VARCHAR, occurred_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS derived.session_messages (session_key BIGINT, seq INTEGER, event_key BIGINT);
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
-- A user's e-mail address, for scheduled reports (issue 29); stores made before it get it here (decision 155).
ALTER TABLE users ADD COLUMN IF NOT EXISTS email VARCHAR;
-- Scheduled reports (docs/schedules.md): a report's parameters as a saved view, a relative range, a zone, a
-- crontab line and the recipients; `created_at` is where the first fire time is counted from.
CREATE TABLE IF NOT EXISTS schedules (
    id BIGINT PRIMARY KEY, owner VARCHAR NOT NULL, report VARCHAR NOT NULL, params JSON NOT NULL,
    range VARCHAR NOT NULL, timezone VARCHAR NOT NULL, cron VARCHAR NOT NULL, recipients VARCHAR[] NOT NULL,
    created_at TIMESTAMP NOT NULL
);
-- One row per fire time a process claimed (the key: no two processes send the same run), with its attempts.
CREATE TABLE IF NOT EXISTS schedule_runs (
    schedule_id BIGINT NOT NULL, due_at TIMESTAMP NOT NULL, status VARCHAR NOT NULL, attempt INTEGER NOT NULL,
    started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP, next_attempt_at TIMESTAMP, date_from DATE, date_to DATE,
    rows BIGINT, bytes BIGINT, recipients VARCHAR[], delivered VARCHAR, link_hash VARCHAR, error VARCHAR,
    PRIMARY KEY (schedule_id, due_at)
);
"""

# Tables rebuilt by derivation. They live in schema `derived` and hold numbers where the reports show
# text: an entity's id is kept as its 64-bit key (`event_key` of its first event, SPEC 3.5) and a session
# message refers to its event by key, so that derivation writes no long strings it can avoid (decision 70).
# The views of the same names in the main schema show them as the reports read them, ids as text.
DERIVED_TABLES = (
    "sessions",
    "contacts",
    "conversations",
    "conversation_closes",
    "conversation_reopens",
    "anomalies",
    "session_messages",
)
DERIVED = "derived"

# What a lake (a folder of Parquet tables, as `spark-derive` writes) holds: the events as accepted, the
# records not accepted, the derived tables (as stored), and the derivation settings they were made with.
LAKE_TABLES = ("events", "rejects", "duplicates", *DERIVED_TABLES, "derived_settings")


def stored(table: str) -> str:
    """Where a table of the store (or a lake) keeps its rows: derived tables in their own schema."""
    return f"{DERIVED}.{table}" if table in DERIVED_TABLES else table


def event_key_sql(brand: str, customer: str, event_id: str) -> str:
    """SQL for an event's key: the first 16 hex digits of SHA-256(brand \\n customer_id \\n event_id)
    (SPEC 3.5) read as a signed 64-bit number, the same bits as the id an entity starting at this event
    has. Computed once, as the event is stored; `id_sql` turns it back into text."""
    digits = f"('0x' || left(sha256({brand} || chr(10) || {customer} || chr(10) || {event_id}), 16))::UBIGINT"
    half = "9223372036854775808"  # 2^63: flipping the top bit and taking it off reads the bits as signed
    return f"(xor({digits}, {half}::UBIGINT)::HUGEINT - {half}::HUGEINT)::BIGINT"


def id_sql(prefix: str, key: str) -> str:
    """SQL for the SPEC 3.5 id (`ses_`, `ctc_`, `cnv_` and 16 lower-case hex digits) of an entity's key."""
    return f"('{prefix}' || printf('%016x', {key}))"


def id_order(key: str) -> str:
    """SQL ordering keys as their ids' text orders: with its sign bit flipped, a signed key compares as
    the unsigned number its hex digits spell."""
    return f"xor({key}, (-9223372036854775807 - 1)::BIGINT)"


def key_of(entity_id: str, prefix: str) -> int | None:
    """The key of a SPEC 3.5 id, or None when `entity_id` is not one with this prefix."""
    digits = entity_id[len(prefix):]
    if not entity_id.startswith(prefix) or len(digits) != 16 or digits.strip("0123456789abcdef"):
        return None
    value = int(digits, 16)
    return value - 2**64 if value >= 2**63 else value


# The derived tables as the reports read them (SPEC 3): the columns of the derived tables with ids as
# text, and each table's keys too, for joins that need not compare text.
_VIEWS = f"""
CREATE OR REPLACE VIEW sessions AS
SELECT brand, customer_id, {id_sql("ses_", "session_key")} AS session_id,
       {id_sql("cnv_", "conversation_key")} AS conversation_id, created_at, last_activity_at, ended_at, end_reason,
       channel, ai_agent, guides_used, guides, responded, first_response_at, handed_off, handoff_category,
       handoff_subcategory, handoff_reason, transfer_rationale, recontacted, recontact_known_at, inbox,
       feedback, feedback_score, next_interaction_at, session_key, conversation_key
FROM {DERIVED}.sessions;
CREATE OR REPLACE VIEW contacts AS
SELECT brand, customer_id, {id_sql("ctc_", "contact_key")} AS contact_id,
       {id_sql("cnv_", "conversation_key")} AS conversation_id, {id_sql("ses_", "session_key")} AS session_id,
       source, channel, created_at, first_response_at, last_activity_at, ended_at, end_reason, agents, agent_names,
       customer_messages, agent_messages, inbox, feedback, feedback_score, next_contact_at, contact_key,
       conversation_key, session_key
FROM {DERIVED}.contacts;
CREATE OR REPLACE VIEW conversations AS
SELECT brand, customer_id, {id_sql("cnv_", "conversation_key")} AS conversation_id, created_at, ended_at,
       times_reopened, first_channel, last_channel, channel_count, channels, session_count, contact_count,
       handled_by, inbox_at_created, conversation_key
FROM {DERIVED}.conversations;
CREATE OR REPLACE VIEW conversation_closes AS
SELECT v.brand, v.customer_id, {id_sql("cnv_", "k.conversation_key")} AS conversation_id, k.closed_at, k.counted,
       k.inbox, k.conversation_key
FROM {DERIVED}.conversation_closes k JOIN {DERIVED}.conversations v USING (conversation_key);
CREATE OR REPLACE VIEW conversation_reopens AS
SELECT v.brand, v.customer_id, {id_sql("cnv_", "r.conversation_key")} AS conversation_id, r.reopened_at,
       r.conversation_key
FROM {DERIVED}.conversation_reopens r JOIN {DERIVED}.conversations v USING (conversation_key);
CREATE OR REPLACE VIEW anomalies AS SELECT * FROM {DERIVED}.anomalies;
CREATE OR REPLACE VIEW session_messages AS
SELECT s.brand, s.customer_id, {id_sql("ses_", "m.session_key")} AS session_id, m.seq, e.event_id, e.occurred_at,
       CASE e.type WHEN 'customer_message' THEN 'customer' ELSE 'ai' END AS speaker, m.session_key, m.event_key
FROM {DERIVED}.session_messages m JOIN {DERIVED}.sessions s USING (session_key)
JOIN events e ON e.event_key = m.event_key AND e.brand = s.brand AND e.customer_id = s.customer_id;
"""


# The key of each derived table's rows: an entity's is the key of its first event (SPEC 3.5); the rows
# of session messages, closes and reopens carry the key of the entity they belong to.
_ROW_KEYS = {"sessions": "session_key", "contacts": "contact_key", "conversations": "conversation_key",
             "conversation_closes": "conversation_key", "conversation_reopens": "conversation_key",
             "session_messages": "session_key"}


def delete_derived(con: duckdb.DuckDBPyConnection, customers: str, *, event_keys: np.ndarray | None = None) -> None:
    """Delete the derived rows of the customers that `customers` (SQL giving (brand, customer_id))
    names. With `event_keys`, the keys of every event of those customers, the rows are found by key:
    every row kept by key belongs to an entity whose key is one of its customer's event keys. For a few
    customers that scans numbers where the names would scan strings (1.9 s of a 1,000-event batch into
    100M events); for many, hashing all their events' keys costs more than the names (1.1-1.3 s against
    0.6 s for a brand of 10M events). Without, rows kept by key go first, while the entities that own
    them can still be found."""
    if event_keys is not None:
        con.register("_event_keys", pa.table({"k": event_keys}))
        try:
            for table, key in _ROW_KEYS.items():
                con.execute(f"DELETE FROM {stored(table)} WHERE {key} IN (SELECT k FROM _event_keys)")
        finally:
            con.unregister("_event_keys")
        named: tuple[str, ...] = ("anomalies",)
    else:
        of = f"SEMI JOIN ({customers}) c ON t.brand = c.brand AND t.customer_id = c.customer_id"
        for table, owner in (("session_messages", "sessions"), ("conversation_closes", "conversations"),
                             ("conversation_reopens", "conversations")):
            key = _ROW_KEYS[table]
            con.execute(f"DELETE FROM {stored(table)} WHERE {key} IN (SELECT t.{key} FROM {stored(owner)} t {of})")
        named = ("sessions", "contacts", "conversations", "anomalies")
    for table in named:
        con.execute(f"DELETE FROM {stored(table)} t USING ({customers}) c "
                    "WHERE t.brand = c.brand AND t.customer_id = c.customer_id")


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


def lake_folder(location: Path | str) -> Path:
    """The local folder a lake's location names: a path, or a `file:` URL as Spark and Hadoop write them
    (`file:///srv/lake`, `file:/srv/lake`, `file://localhost/srv/lake`). Its path is taken as written, as
    Spark takes `--out`: `%20` is not decoded, so the same string names the same folder in both commands.
    A lake in object storage is refused with what to do: reports read a lake on a local or mounted file
    system (decision 163)."""
    text = str(location)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", text)
    if not scheme or len(scheme.group(1)) == 1:  # no scheme, or a Windows drive letter
        return Path(text)
    if scheme.group(1).lower() != "file":
        raise ConvoscopeError(f"{text}: reports read a lake from a local or mounted folder (a path or a file:// "
                              "URL); copy the lake down first (aws s3 sync, gcloud storage rsync, azcopy sync) "
                              "or mount its bucket")
    parts = urllib.parse.urlsplit(text)
    if parts.netloc not in ("", "localhost"):
        raise ConvoscopeError(f"{text}: a file URL names a folder of this machine (file:///PATH)")
    return Path(parts.path)


def _lake_files(folder: Path) -> list[Path]:
    """A lake table's Parquet files: in the folder, or in its `bucket=N` folders (decision 165); what Spark
    or an increment is still writing (names starting with `_` or `.`) left out."""
    return sorted(f for f in folder.rglob("*.parquet")
                  if not any(part.startswith(("_", ".")) for part in f.relative_to(folder).parts))


def log_of(path: Path) -> Path:
    """The write-ahead log DuckDB keeps beside the store at `path` until a checkpoint writes it into the file."""
    return path.with_name(path.name + ".wal")


def file_stamp(path: Path) -> tuple[object, ...]:
    """The state of a store's files: the database's and its write-ahead log's status. Every committed write
    changes one of them — a commit is written to the log, a checkpoint into the file — whichever process made
    it."""
    parts: list[object] = []
    for file in (path, log_of(path)):
        try:
            status = file.stat()
        except FileNotFoundError:
            parts.append(None)
        else:
            parts.append((status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns))
    return tuple(parts)


class Kept(Generic[K, V]):
    """Answers kept per process under their keys, the least recently used let go past `at_most`; for threads."""

    def __init__(self, at_most: int) -> None:
        self.at_most = at_most
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.at_most:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def store_stamp(store: Store) -> tuple[object, ...] | None:
    """The state of the store's files: the database's and its write-ahead log's status. Every committed write
    changes one of them — a commit is written to the log, a checkpoint into the file — whichever process made it
    (another process writes only while the server's store gate has the file closed). None for a store that is no
    file (in memory, a lake's folder of Parquet files): nothing read from it is kept (a detail report's keys, decision
    160; `while_unchanged`)."""
    path = Path(store.path)
    if str(path) == ":memory:" or not path.is_file():
        return None
    found = file_stamp(path)
    return _SAME_DATA.get((str(path.resolve()), found), found)


# A stamp of the store's files after writes that changed no data a page keeps (`same_data`) → the stamp it stands for.
_SAME_DATA: Kept[tuple[str, tuple[object, ...]], tuple[object, ...]] = Kept(256)


@contextmanager
def same_data(store: Store, alone: Callable[[], bool] = lambda: True) -> Iterator[None]:
    """Around a write that changes no data a page keeps (an audit entry, the checkpoint of closing the file): what
    was kept for the store before it (`while_unchanged`, a detail report's keys) stays kept after it, as the files'
    new state stands for the old one in `store_stamp`. Without it each audited page (a conversation, a report with
    messages) made the next page list its keys again (0.6 s at 10M events). Only if nothing else committed
    meanwhile: `alone`, asked once the files' new state is read, says whether any other writer of data could have
    (no other process writes while the server has the file)."""
    before = store_stamp(store)
    yield
    if before is None:
        return
    path = Path(store.path)
    after = file_stamp(path)
    if after != before and alone():
        _SAME_DATA.put((str(path.resolve()), after), before)


_KEPT: Kept[tuple[object, ...], object] = Kept(512)  # a few lists of names and two instants each
_ABSENT = object()


def while_unchanged(store: Store, key: tuple[object, ...], compute: Callable[[], T]) -> T:
    """What `compute` reads from `store`, kept per process under `key` while the store's files are as they were
    (`file_stamp`: every commit changes them), as a detail report's page keeps its key lists (decision 160): small
    answers that read a whole table (the brands, the span of their events, a form's suggestions), which pages ask
    at every request and only a commit changes. Kept only when the files did not change while it was computed; a
    store that is no file (in memory, a lake) computes every time. Not for a connection inside its own write
    transaction: what it reads there is not in the files yet."""
    stamp = store_stamp(store)
    if stamp is None:
        return compute()
    full = (str(Path(store.path).resolve()), stamp, *key)
    found = _KEPT.get(full, _ABSENT)
    if found is not _ABSENT:
        return cast(T, found)
    value = compute()
    if store_stamp(store) == stamp:
        _KEPT.put(full, value)
    return value


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


def _unopenable(path: Path, reason: str) -> ConvoscopeError:
    """A store file that cannot be opened (not a lock: a folder, a file that is not a store): names the
    parameter that chose it, `db`."""
    return ConvoscopeError(lambda n: f"cannot open store {path}: {reason}; check the path or {n('db')}", param="db")


# How long a waiter's mark (`wanted`) counts after it was last touched; a waiter touches it at every try (`_connect`,
# at least every quarter of a second), so a mark left by a waiter that was stopped soon stops counting.
WANTED_FRESH = 1.0


def wanted_mark(path: Path) -> Path:
    """The file a process waiting for the store at `path` touches while it waits (`_connect`)."""
    return path.with_name(path.name + ".wanted")


def wanted(path: Path) -> bool:
    """Whether another process waits for the store at `path` now: a server keeping it open between requests
    (`web.gate.StoreGate`) then lets go of it as soon as no request uses it."""
    try:
        return time.time() - wanted_mark(path).stat().st_mtime < WANTED_FRESH
    except OSError:
        return False


def _connect(path: Path, read_only: bool, on_wait: Callable[[str], None] | None) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting while another process holds it, and marking meanwhile that it waits (`wanted`)."""
    deadline = time.monotonic() + lock_timeout()
    pause = 0.01
    told = marked = False
    try:
        while True:
            try:
                return duckdb.connect(str(path), read_only=read_only)
            except duckdb.IOException as exc:
                message = str(exc).splitlines()[0]
                if "lock" not in message.lower():
                    raise _unopenable(path, message) from None
                if time.monotonic() >= deadline:
                    raise ConvoscopeError(f"store {path} stayed in use by another process for {lock_timeout():.0f} s; "
                                          "try again when it has finished") from None
                if on_wait and not told:
                    on_wait(f"waiting for store {path}: another convoscope process is using it")
                    told = True
                marked = _mark(wanted_mark(path)) or marked
                time.sleep(pause)
                pause = min(pause * 2, 0.25)
    finally:
        if marked:
            with contextlib.suppress(OSError):  # left: it stops counting within WANTED_FRESH
                wanted_mark(path).unlink(missing_ok=True)


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """The store's file opened as every command opens it (`Store` does, and sets it up): waiting while another
    process holds it, and marking meanwhile that it waits (`wanted`). For tools reading the file as it is."""
    return _connect(Path(path), read_only, None)


def _mark(mark: Path) -> bool:
    """Touch `mark`; False where the store's folder cannot be written (the wait goes on unmarked)."""
    try:
        mark.touch()
    except OSError:
        return False
    return True


def _add_feedback(con: duckdb.DuckDBPyConnection) -> None:
    """Bring the events of a store of before version 5 up to date (decision 111): the type `feedback` joins
    the enumeration of types, last, so that it sorts after every other type (SPEC 2.4 as Appendix B extends
    it), and the events gain `rating` and `score`. DuckDB cannot add a value to an enumeration, so the
    column goes through text and back to the enumeration made again; the other codes stay as they were.
    Nothing moves out of `attributes`, as `inbox` did (decision 87): a `rating` or `score` an older store
    kept there is on an event of another type, where ingesting the same record now rejects it, and a
    stored event is never taken back."""
    types = con.execute("SELECT enum_range(NULL::event_type)").fetchall()[0][0]
    if "feedback" not in types:
        con.execute("ALTER TABLE events ALTER COLUMN type TYPE VARCHAR")
        con.execute("DROP TYPE event_type")
        con.execute(f"CREATE TYPE event_type AS ENUM ({', '.join(repr(t) for t in EVENT_TYPES)})")
        con.execute("ALTER TABLE events ALTER COLUMN type TYPE event_type")
    con.execute("ALTER TABLE events ADD COLUMN IF NOT EXISTS rating VARCHAR")
    con.execute("ALTER TABLE events ADD COLUMN IF NOT EXISTS score INTEGER")


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
    def scratch(cls) -> Store:
        """An empty store in memory, with the tables and views of a file's: what-if derivations (issue 27)
        write their tables here, never into the file, and every report runs over it unchanged."""
        con = duckdb.connect()
        con.execute("SET GLOBAL TimeZone = 'UTC'")  # reports run on cursors, new connections: set it for all
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"SET memory_limit = '{memory_limit()}'")
        con.execute(_SCHEMA)
        con.execute(_VIEWS)
        return cls.over(con, Path(":memory:"))

    @classmethod
    def lake(cls, location: Path | str) -> Store:
        """A read-only store over a lake: each table a view of its Parquet files, typed as the store's
        own, so that every report runs over it unchanged. Tables the lake lacks stay empty. `location` is
        a folder or a `file:` URL (`lake_folder`)."""
        folder = lake_folder(location)
        if not (folder / "derived_settings").is_dir():
            raise ConvoscopeError(f"{folder} is not a complete convoscope lake (no derived_settings table); "
                                  "write one with", command=("spark-derive", "--events", "PATH", "--out", str(folder)))
        con = duckdb.connect()
        con.execute("SET GLOBAL TimeZone = 'UTC'")  # reports run on cursors, new connections: set it for all
        con.execute(_SCHEMA)
        for table in LAKE_TABLES:
            files = _lake_files(folder / table)
            if not files:
                continue
            target = stored(table)
            wanted = con.sql(f"DESCRIBE {target}").fetchall()
            listed = ", ".join(sql_string(str(f)) for f in files)
            found = {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM read_parquet([{listed}])").fetchall()}
            missing = [name for name, *_ in wanted if name not in found]
            if missing:
                raise ConvoscopeError(f"lake {folder} was written by another version of convoscope (its {table} "
                                      f"has no {missing[0]}); write it again with",
                                      command=("spark-derive", "--events", "PATH", "--out", str(folder)))
            columns = ", ".join(f"{name}::{kind} AS {name}" for name, kind, *_ in wanted)
            con.execute(f"DROP TABLE {target}")
            con.execute(f"CREATE VIEW {target} AS SELECT {columns} FROM read_parquet([{listed}])")
        con.execute(_VIEWS)
        return cls.over(con, folder)

    def _upgrade(self) -> None:
        """Derived tables are a cache of the events: a store whose derived tables have another shape
        drops them and marks every customer for derivation, in one transaction. A store of before
        version 3 kept them as tables of the main schema, and its events have no key yet: they get it.
        Before version 4 events had no `inbox`: it was an unknown field, and moves to its column. Before
        version 5 there was no type `feedback` and no `rating` or `score` (`_add_feedback`). Before version 6
        sessions and closes had no `next_interaction_at`, contacts no `next_contact_at` (decision 176): derived again, as every change of their shape."""
        found = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        if found and found[0][0] == SCHEMA_VERSION:
            return
        with self.transaction() as con:
            if found:
                old = [r[0] for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                    "AND schema_name = 'main' AND table_name IN (SELECT unnest(?::VARCHAR[]))",
                    [list(DERIVED_TABLES)]).fetchall()]
                for table in old:
                    con.execute(f"DROP TABLE main.{table}")
                for table in DERIVED_TABLES:
                    con.execute(f"DROP TABLE {stored(table)}")
                con.execute("DROP TABLE derived_settings")
                con.execute(_SCHEMA)
                con.execute("ALTER TABLE events ADD COLUMN IF NOT EXISTS event_key BIGINT")
                con.execute(f"UPDATE events SET event_key = {event_key_sql('brand', 'customer_id', 'event_id')} "
                            "WHERE event_key IS NULL")
                if not con.execute("SELECT 1 FROM duckdb_columns() WHERE database_name = current_database() "
                                   "AND schema_name = 'main' AND table_name = 'events' AND column_name = 'inbox'"
                                   ).fetchall():
                    con.execute("ALTER TABLE events ADD COLUMN inbox VARCHAR")
                    con.execute(promote_sql("inbox"))  # decision 87
                _add_feedback(con)
                con.execute("DELETE FROM pending")
                con.execute("INSERT INTO pending SELECT DISTINCT brand, customer_id FROM events")
            con.execute(_VIEWS)  # once per version: replacing them at every open would write the catalog
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

    def brands(self, *, kept: bool = False) -> list[str]:
        """Every brand the store knows: of its events, and of rejected or duplicate records. A record
        rejected for its brand ('B2', 'acme corp') names no brand: it would otherwise add one, and with
        it change every report's default time zone (SPEC 4) and the brands users may choose. With `kept`, the
        answer `kept` since the last commit (a page's; not inside a write transaction)."""
        if kept:
            return list(while_unchanged(self, ("brands",), self.brands))  # the kept answer stays as it was read
        return [r[0] for r in self.con.execute(f"""
            SELECT brand FROM events
            UNION SELECT brand FROM rejects WHERE regexp_full_match(brand, '{BRAND_PATTERN}')
            UNION SELECT brand FROM duplicates WHERE brand IS NOT NULL ORDER BY brand
        """).fetchall()]
