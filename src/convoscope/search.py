"""Finding conversations (issue 29): by the ids they hold — customer, conversation, session or contact id,
exactly or by their start — and by the words of their messages, newest first.

Words are found in a SQLite FTS5 index (Python's own `sqlite3`: decision 151), a file beside the store
(`<store>.search`). It is contentless: it holds each message's words and brand, never its text, which the
store keeps; a hit is read back from the events by its key, so a message the store no longer has is never
shown. Its row ids order the messages by time (`_rowid`: the second it occurred in, then a counter), so
the newest hits of any query are read first, without ranking every match.

The index follows the store by itself: it remembers the latest `ingested_at` it holds, and each search first
indexes the messages stored since (`catch_up`), whatever brought them in (the command line, the API, a
webhook, an upload). Each step is one SQLite transaction, so a crash leaves it as it was before the step. A
missing or foreign index file (another store's) is built again from the events. `forget` takes a
customer's words out before the store erases their events, and marks it until the erasure is done, so
that a crash in between puts them back (their events still being there) rather than losing or keeping them.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from convoscope.store import Store, id_sql, key_of, stored

INDEX_VERSION = "1"
MESSAGES = ("customer_message", "ai_message", "agent_message")  # the events whose text is searched (SPEC 2.3)
PER_PAGE = 20
IDS_AT_MOST = 200  # conversations an id search lists, as the conversations page's `find`
COUNTER_BITS = 24  # messages of one second a row id tells apart
BATCH = 50_000  # messages indexed a transaction
Progress = Callable[[int, int], None]  # (messages indexed, messages to index)


def index_path(db_path: Path) -> Path:
    """The index of the store at `db_path`: `<store file>.search` beside it."""
    return db_path.with_name(db_path.name + ".search")


def anchor(event_key: int) -> str:
    """The id of an event's element on its conversation page (`#event-…`): its key as 16 hex digits."""
    return f"event-{event_key & (2**64 - 1):016x}"


def _brand_token(brand: str) -> str:
    """A brand as one token of the index: its name in hex, which no tokenizer cuts at `-` or `_` (as
    `_messages_sql` writes it)."""
    return "b" + brand.encode().hex()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
-- `row`: where the store held the event when it was indexed (DuckDB's rowid), read first; a key that does not
-- match there (rows move when events are erased) is looked for by key.
CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY, event_key INTEGER NOT NULL, row INTEGER);
CREATE VIRTUAL TABLE IF NOT EXISTS words USING fts5(body, brand, content='',
                                                    tokenize='unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS forgetting (brand TEXT NOT NULL, customer_id TEXT NOT NULL);
"""


@contextmanager
def _open(path: Path) -> Iterator[sqlite3.Connection]:
    """The index, made when missing; a file that is not one (damaged, or something else by that name) is
    replaced: it is a cache of the events."""
    for attempt in range(2):
        con = sqlite3.connect(path, timeout=600, isolation_level=None)  # transactions are begun explicitly
        try:
            con.execute("PRAGMA journal_mode = WAL")
            con.executescript(_SCHEMA)
            break
        except sqlite3.DatabaseError:
            con.close()
            if attempt:
                raise
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def _transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _meta(con: sqlite3.Connection, key: str) -> str | None:
    row = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return None if row is None else str(row[0])


def _identity(store: Store) -> str:
    """What tells this store's events from another's that once had the same file name: the instant of its
    first ingest (a store made again starts later)."""
    first = store.con.execute("SELECT min(ingested_at) FROM events").fetchall()[0][0]
    return f"{INDEX_VERSION}:{first}"


def _messages_sql(where: str) -> str:
    return f"""
        SELECT event_key, 'b' || lower(hex(brand)) AS token, text, epoch(occurred_at)::BIGINT AS second, ingested_at,
               rowid AS row
        FROM events WHERE type IN ({", ".join(repr(t) for t in MESSAGES)}) AND text IS NOT NULL AND {where}
    """


def pending(store: Store) -> int:
    """How many messages the index lacks (all of them when it is missing or another store's)."""
    path = index_path(store.path)
    mark: str | None = None
    if path.exists():
        with closing(sqlite3.connect(path, timeout=600)) as con:
            try:
                if _meta(con, "identity") == _identity(store):
                    mark = _meta(con, "indexed_to")
            except sqlite3.DatabaseError:  # not an index yet, or not one at all: `catch_up` builds it
                mark = None
    where = "true" if mark is None else "ingested_at > ?::TIMESTAMP"
    return int(store.con.execute(f"SELECT count(*) FROM ({_messages_sql(where)})",
                                 [] if mark is None else [mark]).fetchall()[0][0])


def catch_up(store: Store, *, progress: Progress | None = None) -> int:
    """Index the messages stored since the index last looked, building it whole when it is missing, was
    another store's or a first build was cut short; returns how many messages it indexed. A customer whose
    erasure did not finish has their messages indexed again if the store still holds them."""
    path = index_path(store.path)
    identity = _identity(store)
    with _open(path) as con:
        mark = _meta(con, "indexed_to") if _meta(con, "identity") == identity else None
        if mark is None:
            with _transaction(con):
                con.execute("DELETE FROM entries")
                con.execute("DELETE FROM forgetting")
                con.execute("INSERT INTO words(words) VALUES ('delete-all')")
                con.execute("DELETE FROM meta")
                con.execute("INSERT INTO meta VALUES ('identity', ?)", [identity])
            return _build(store, con, progress)
        done = _redo_forgetting(store, con)
        where = "ingested_at > ?::TIMESTAMP"
        total = None
        if progress is not None:
            total = int(store.con.execute(f"SELECT count(*) FROM ({_messages_sql(where)})", [mark]).fetchall()[0][0])
        # The mark moves once all are in: a catch-up cut short starts again from the old one, skipping what it
        # indexed (one ingest's events share their `ingested_at`, so no mark in between would be safe).
        reader = store.con.sql(f"SELECT *, NULL AS rowid FROM ({_messages_sql(where)})", params=[mark]).to_arrow_reader(BATCH)
        latest = None
        for batch in reader:
            if batch.num_rows:
                done += _index_batch(con, batch)
                newest = max(batch.column("ingested_at").to_pylist())
                latest = newest if latest is None else max(latest, newest)
                if progress is not None and total is not None:
                    progress(done, total)
        if latest is not None:
            with _transaction(con):
                con.execute("INSERT OR REPLACE INTO meta VALUES ('indexed_to', ?)", [str(latest)])
    return done


def _build(store: Store, con: sqlite3.Connection, progress: Progress | None) -> int:
    """Index every message, in time order, so that each second's counter is numbered in SQL. The mark is
    written last, and taken before the messages are read: what is stored meanwhile is looked at again by
    the next catch-up, and skipped if it was indexed."""
    latest = store.con.execute("SELECT max(ingested_at) FROM events").fetchall()[0][0]
    total = None
    if progress is not None:
        total = int(store.con.execute(f"SELECT count(*) FROM ({_messages_sql('true')})").fetchall()[0][0])
    reader = store.con.sql(f"""
        SELECT *, (second << {COUNTER_BITS}) + row_number() OVER (PARTITION BY second ORDER BY event_key) - 1 AS rowid
        FROM ({_messages_sql('true')}) ORDER BY rowid
    """).to_arrow_reader(BATCH)
    done = 0
    for batch in reader:
        if batch.num_rows:
            done += _index_batch(con, batch)
            if progress is not None and total is not None:
                progress(done, total)
    with _transaction(con):
        con.execute("INSERT INTO words(words) VALUES ('optimize')")  # one segment: smaller, and read faster
        con.execute("INSERT OR REPLACE INTO meta VALUES ('indexed_to', ?)",
                    [str(latest) if latest is not None else "-infinity"])
    return done


def _index_batch(con: sqlite3.Connection, batch: pa.RecordBatch) -> int:
    """One transaction: the batch's messages, each under a row id of its second (numbered already, or the
    next free one, a message indexed already being skipped)."""
    rows = batch.to_pydict()
    with _transaction(con):
        if rows["rowid"][0] is not None:  # a first build's, numbered in SQL
            con.executemany("INSERT INTO entries VALUES (?, ?, ?)",
                            zip(rows["rowid"], rows["event_key"], rows["row"], strict=True))
            con.executemany("INSERT INTO words(rowid, body, brand) VALUES (?, ?, ?)",
                            zip(rows["rowid"], rows["text"], rows["token"], strict=True))
            done = batch.num_rows
        else:
            done = 0
            for key, token, text, second, row in zip(rows["event_key"], rows["token"], rows["text"], rows["second"],
                                                     rows["row"], strict=True):
                low, high = second << COUNTER_BITS, ((second + 1) << COUNTER_BITS) - 1
                held = con.execute("SELECT id, event_key FROM entries WHERE id BETWEEN ? AND ?", [low, high]).fetchall()
                if any(k == key for _, k in held):
                    continue
                rowid = max((i for i, _ in held), default=low - 1) + 1
                con.execute("INSERT INTO entries VALUES (?, ?, ?)", [rowid, key, row])
                con.execute("INSERT INTO words(rowid, body, brand) VALUES (?, ?, ?)", [rowid, text, token])
                done += 1
    return done


def _customer_entries(store: Store, con: sqlite3.Connection, brand: str, customer: str) -> list[tuple[int, str, str]]:
    """(row id, text, brand token) of the customer's indexed messages, as the store still holds them."""
    found = []
    for key, text, second in store.con.execute(
            f"SELECT event_key, text, second FROM ({_messages_sql('brand = ? AND customer_id = ?')})",
            [brand, customer]).fetchall():
        low, high = second << COUNTER_BITS, ((second + 1) << COUNTER_BITS) - 1
        for rowid, held in con.execute("SELECT id, event_key FROM entries WHERE id BETWEEN ? AND ?", [low, high]):
            if held == key:
                found.append((rowid, text, _brand_token(brand)))
    return found


def forget(store: Store, brand: str, customer: str) -> None:
    """Before the store erases a customer (SPEC 6.5): take their messages out of the index, marking the
    customer as being forgotten until `forgotten`. Nothing to do without an index."""
    path = index_path(store.path)
    if not path.exists():
        return
    with _open(path) as con, _transaction(con):
        con.execute("INSERT INTO forgetting VALUES (?, ?)", [brand, customer])
        for rowid, text, token in _customer_entries(store, con, brand, customer):
            con.execute("INSERT INTO words(words, rowid, body, brand) VALUES ('delete', ?, ?, ?)", [rowid, text, token])
            con.execute("DELETE FROM entries WHERE id = ?", [rowid])


def forgotten(store: Store, brand: str, customer: str) -> None:
    """After the store erased the customer: the erasure is whole, nothing to put back."""
    path = index_path(store.path)
    if not path.exists():
        return
    with _open(path) as con, _transaction(con):
        con.execute("DELETE FROM forgetting WHERE brand = ? AND customer_id = ?", [brand, customer])


def _redo_forgetting(store: Store, con: sqlite3.Connection) -> int:
    """Customers whose erasure was started but not recorded as done: those the store still holds had it
    fail, and get their messages back in the index."""
    done = 0
    for brand, customer in con.execute("SELECT DISTINCT brand, customer_id FROM forgetting").fetchall():
        with _transaction(con):
            reader = store.con.sql(
                f"SELECT *, NULL AS rowid FROM ({_messages_sql('brand = ? AND customer_id = ?')})", params=[brand, customer])
            table = reader.to_arrow_table()
            con.execute("DELETE FROM forgetting WHERE brand = ? AND customer_id = ?", [brand, customer])
        for batch in table.to_batches():
            done += _index_batch(con, batch)
    return done


# --- searching -------------------------------------------------------------------------------------------

_PHRASE = re.compile(r'"([^"]*)"|(\w+)(\*?)')


def fts_query(text: str) -> str | None:
    """The FTS5 query of what a user typed: its words, all of them (a `word*` by its start), and its
    "quoted phrases" as phrases; None when it holds no word."""
    parts = []
    for phrase, word, star in _PHRASE.findall(text):
        if phrase:
            inner = " ".join(re.findall(r"\w+", phrase))
            if inner:
                parts.append('"' + inner + '"')
        elif word:
            parts.append(f'"{word}"' + (" *" if star else ""))
    return " ".join(parts) if parts else None


_WORD = r"[^\W_]"  # a letter or digit: what the index's words are made of


def fold(text: str) -> tuple[str, list[int]]:
    """`text` as the index compares it (`unicode61 remove_diacritics 2`): lower case, each character
    decomposed (NFD) without its combining marks (`Café` is `cafe`), with, for each character of the
    result, the position in `text` of the character it came from. NFD, not NFKD: the index keeps `ﬁ`,
    `²` and full-width letters as they are, as NFD does (it also keeps Greek accents, which this takes off:
    a mark too many at worst, never one missing)."""
    folded: list[str] = []
    origins: list[int] = []
    for position, char in enumerate(text):
        for part in unicodedata.normalize("NFD", char.lower()):
            if not unicodedata.combining(part):
                folded.append(part)
                origins.append(position)
    return "".join(folded), origins


def marks(text: str, query: str) -> list[tuple[int, int]]:
    """Where a hit's `text` holds the words of `query` as the index matched them — whole words, or by their
    start for a `word*`, without regard to case or accents, anything but letters and digits separating
    words (`_` too: `cus_0004` is `cus` and `0004`) — as (start, end) positions in `text`, in order."""
    wanted: dict[str, bool] = {}  # folded word: matched by its start
    for phrase, word, star in _PHRASE.findall(query):
        pieces = re.findall(_WORD + "+", fold(phrase or word)[0])
        for number, piece in enumerate(pieces):  # a `word*` is a prefix in its last piece only
            prefix = bool(star) and not phrase and number == len(pieces) - 1
            wanted[piece] = wanted.get(piece, False) or prefix
    if not wanted:
        return []
    pattern = "|".join(rf"(?<!{_WORD}){re.escape(w)}" + (_WORD + "*" if start else rf"(?!{_WORD})")
                       for w, start in sorted(wanted.items(), key=lambda item: -len(item[0])))
    folded, origins = fold(text)
    spans: list[tuple[int, int]] = []
    for found in re.finditer(pattern, folded):
        if found.end() == found.start():
            continue
        start, end = origins[found.start()], origins[found.end() - 1] + 1
        while end < len(text) and not fold(text[end])[0]:  # combining marks after the word's last letter
            end += 1
        if spans and start < spans[-1][1]:  # one character folded into several, matched twice
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return spans


@dataclass
class Found:
    """A page of what a search found: conversations named by an id, then messages holding the words."""

    ids: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    more: bool = False
    id_count: int = 0


def _id_matches(store: Store, text: str, brands: list[str]) -> list[dict[str, Any]]:
    """Conversations of `brands` that `text` names: their customer's id, their own id, or the id of one
    of their sessions or contacts — exactly, or by its start (at least 4 characters: ids share their
    prefixes `cnv_`…). Exact matches first, then newest first."""
    if not brands or not text or any(c.isspace() for c in text):
        return []
    named = ["CASE WHEN v.customer_id = $text THEN 'customer_id' END"]
    if len(text) >= 4:
        named.append("CASE WHEN starts_with(v.customer_id, $text) THEN 'customer_id' END")
    args: dict[str, Any] = {"text": text}
    for prefix, kind, table, key in (("cnv_", "conversation_id", None, "conversation_key"),
                                     ("ses_", "session_id", "sessions", "session_key"),
                                     ("ctc_", "contact_id", "contacts", "contact_key")):
        span = _key_span(text, prefix)
        if span is None:
            continue
        args[f"{kind}_lo"], args[f"{kind}_hi"] = span
        within = f"BETWEEN ${kind}_lo AND ${kind}_hi"
        if table is None:
            named.append(f"CASE WHEN v.conversation_key {within} THEN '{kind}' END")
        else:
            named.append(f"CASE WHEN v.conversation_key IN (SELECT conversation_key FROM {stored(table)} "
                         f"WHERE {key} {within}) THEN '{kind}' END")
    visible = ", ".join("'" + b.replace("'", "''") + "'" for b in brands)
    rows = store.con.cursor().execute(f"""
        SELECT * FROM (
            SELECT {id_sql("cnv_", "v.conversation_key")} AS conversation_id, v.brand, v.customer_id, v.created_at,
                   v.session_count, v.contact_count, coalesce({", ".join(named)}) AS matched,
                   v.customer_id = $text AS exact
            FROM {stored("conversations")} v WHERE v.brand IN ({visible})
        ) WHERE matched IS NOT NULL
        ORDER BY exact DESC, created_at DESC, conversation_id LIMIT {IDS_AT_MOST}
    """, args)
    names = [d[0] for d in rows.description or []]
    return [dict(zip(names, row, strict=True)) for row in rows.fetchall()]


def _key_span(text: str, prefix: str) -> tuple[int, int] | None:
    """The keys whose ids start with `text` (`cnv_` and 1 to 16 hex digits), as a range of signed keys:
    the first digit sets the sign, so the range never wraps."""
    digits = text[len(prefix):]
    if not text.startswith(prefix) or not 0 < len(digits) <= 16 or digits.strip("0123456789abcdef"):
        return None
    if len(digits) == 16:
        key = key_of(text, prefix)
        return (key, key) if key is not None else None
    shift = 4 * (16 - len(digits))
    low, high = int(digits, 16) << shift, ((int(digits, 16) + 1) << shift) - 1

    def signed(value: int) -> int:
        return value - 2**64 if value >= 2**63 else value

    return signed(low), signed(high)


def _message_keys(store: Store, query: str, brands: list[str] | None, offset: int,
                  limit: int) -> list[tuple[int, int | None]]:
    """The keys (and rows where the store held them) of the newest messages matching `query` (an FTS5
    query) in `brands` (None: every brand), from `offset` on."""
    path = index_path(store.path)
    scope = f'brand : ({" OR ".join(_brand_token(b) for b in brands)})' if brands is not None else None
    if brands is not None and not brands:
        return []
    match = f"body : ({query})" + (f" AND {scope}" if scope else "")
    with closing(sqlite3.connect(path, timeout=600)) as con:
        rows = con.execute("""
            SELECT e.event_key, e.row FROM (SELECT rowid FROM words WHERE words MATCH ? ORDER BY rowid DESC LIMIT ? OFFSET ?) w
            JOIN entries e ON e.id = w.rowid ORDER BY w.rowid DESC
        """, [match, limit, offset]).fetchall()
    return [(int(key), row) for key, row in rows]


def _messages(store: Store, keys: list[tuple[int, int | None]], brands: list[str]) -> list[dict[str, Any]]:
    """The events of `keys` that the store holds in `brands`, in the order of `keys`, each with the
    conversation it belongs to: its customer's latest conversation created by then (as the timeline groups
    them), else their first. Each is read at its row (a lookup), and only those no longer there by key (a
    scan of the keys)."""
    if not keys or not brands:
        return []
    cursor = store.con.cursor()
    cursor.register("_keys", pa.table({"event_key": pa.array([k for k, _ in keys], pa.int64()),
                                       "position": range(len(keys))}))
    rows = ", ".join(str(int(row)) for _, row in keys if row is not None)
    cursor.execute(f"""
        CREATE OR REPLACE TEMP TABLE _hits AS
        SELECT k.position, e.* FROM (SELECT * FROM events WHERE rowid IN ({rows or 'NULL'})) e JOIN _keys k USING (event_key)
    """)
    if cursor.execute("SELECT count(*) FROM _hits").fetchall()[0][0] < len(keys):
        cursor.execute("""
            INSERT INTO _hits SELECT k.position, e.* FROM events e JOIN _keys k USING (event_key)
            WHERE k.position NOT IN (SELECT position FROM _hits)
        """)
    visible = ", ".join("'" + b.replace("'", "''") + "'" for b in brands)
    result = cursor.execute(f"""
        SELECT h.position, h.event_key, h.event_id, h.brand, h.customer_id, h.type::VARCHAR AS type, h.occurred_at,
               h.text, h.agent, h.ai_agent, h.channel,
               (SELECT {id_sql("cnv_", "v.conversation_key")} FROM {stored("conversations")} v
                WHERE v.brand = h.brand AND v.customer_id = h.customer_id
                ORDER BY v.created_at <= h.occurred_at DESC,
                         CASE WHEN v.created_at <= h.occurred_at THEN v.created_at END DESC, v.created_at
                LIMIT 1) AS conversation_id
        FROM _hits h WHERE h.brand IN ({visible}) ORDER BY h.position
    """)
    names = [d[0] for d in result.description or []]
    found = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    cursor.execute("DROP TABLE _hits")
    cursor.close()
    return found


def search(store: Store, text: str, brands: list[str], *, every_brand: bool, words: bool, page: int = 1,
           per_page: int = PER_PAGE) -> Found:
    """Page `page` of what `text` finds among `brands`: conversations named by an id it is (or starts),
    then, with `words`, the messages holding its words, newest first. `every_brand`: `brands` are all the
    store has, so the index need not be narrowed to them. The caller brings the index up to date first
    (`catch_up`), and decides whether a long build waits."""
    text = text.strip()
    found = Found()
    start = (page - 1) * per_page
    ids = _id_matches(store, text, brands)
    found.id_count = len(ids)
    found.ids = ids[start:start + per_page]
    query = fts_query(text) if words else None
    if query is None:
        found.more = start + per_page < len(ids)
        return found
    wanted = per_page - len(found.ids)
    offset = max(0, start - len(ids))
    keys = _message_keys(store, query, None if every_brand else brands, offset, wanted + 1)
    # The conversations and then the messages are one list: more of either is a next page.
    found.more = start + per_page < len(ids) or len(keys) > wanted
    found.messages = _messages(store, keys[:wanted], brands)
    return found
