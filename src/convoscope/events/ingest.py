"""Store a staged chunk (SPEC 2.4): validate, drop duplicates, reject conflicts, keep every reject.

`merge_stage` runs inside the caller's transaction, so a chunk is stored whole or not at all. An
event equal to a stored one (same brand and event_id, same normalised content) is a duplicate and
dropped; a different one is a conflict and rejected, the stored event staying. Within one chunk the
first record of an id is the one compared with the store, later ones are compared with it.
Customers whose events were accepted are marked `pending` for derivation.

The common case — new events, each id once — is one filtered insert: the store is consulted only for
the ids it already holds, and ids repeated within the chunk are found by one aggregate.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from convoscope.events.known import KnownIds
from convoscope.events.schema import validation_sql

# Normalised content compared between a new event and a stored one (SPEC 2.4).
COMPARED = ("type", "occurred_at", "customer_id", "channel", "text", "route", "ai_agent", "guides", "category",
             "subcategory", "reason", "transfer_rationale", "agent", "inbox", "rating", "score")
# Why a conflicting record is rejected; plain SQL that DuckDB and Spark both run (SPEC 2.4).
# An event_id holds no control characters, but may hold a line separator: shown as a space, so that the
# reason stays one line.
CONFLICT_REASON_SQL = (
    "'event_id ' || chr(39) || translate(event_id, '\u2028\u2029', '  ') || chr(39) || ' of brand ' || brand "
    "|| ' was stored before from ' || ref_source || coalesce(' line ' || CAST(ref_line AS STRING), '') "
    "|| ' with different content; give this event its own event_id or drop it'"
)
_VALID = "c.reject_reason IS NULL"


def _new(record: str) -> str:
    return f"""{_VALID}
    AND NOT EXISTS (SELECT 1 FROM _stored s WHERE s.brand = c.brand AND s.event_id = c.event_id)
    AND NOT EXISTS (SELECT 1 FROM _repeat r WHERE r.brand = c.brand AND r.event_id = c.event_id
                    AND c.{record} <> r.first)"""


@dataclass
class IngestCounts:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0

    def add(self, other: IngestCounts) -> None:
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.rejected += other.rejected


def _same(a: str, b: str) -> str:
    def col(alias: str, name: str) -> str:
        return f"{alias}.{name}::VARCHAR" if name in ("type", "route", "attributes") else f"{alias}.{name}"

    return " AND ".join(f"{col(a, c)} IS NOT DISTINCT FROM {col(b, c)}" for c in COMPARED)


def merge_stage(
    con: duckdb.DuckDBPyConnection, *, assume_tz: str | None, raw_of: Callable[[list[int]], dict[int, str]],
    record: str = "line", told_brand: bool = False, known: KnownIds | None = None,
) -> IngestCounts:
    """Validate `_stage` and store its outcome; returns this chunk's counts.

    `record` names the staged column that tells records apart: a file's line, or for events mapped from
    a helpdesk's records, where a line may give several events, a number of their own (`rec`). `raw_of`
    gives the raw text of records by that column. The temporary table `_checked` (every staged record,
    checked) and `_compared` (those compared with an earlier event) stay for `outcomes` to read.
    `told_brand`: the records' brand was given, not read (`schema.validation_sql`). `known`: the ids a server's
    writer knows are stored (`events/known.py`), which spares the scan of the stored ids when none of the chunk's
    may be among them."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _checked AS "
                f"{validation_sql(assume_tz, record=record, told_brand=told_brand)}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _repeat AS
        SELECT brand, event_id, min({record}) AS first FROM _checked c WHERE {_VALID}
        GROUP BY brand, event_id HAVING count(*) > 1
    """)
    # The stored events of the chunk's ids: found by scanning the two key columns, then read by row id
    # (a join that returned every column would read all of them for every stored event).
    keys = f"SELECT brand, event_id FROM _checked c WHERE {_VALID}"
    scan = known is None or known.may_hold(con, keys)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _stored AS
        SELECT * FROM events WHERE {'' if scan else 'false AND '}rowid IN (
            SELECT e.rowid FROM events e SEMI JOIN ({keys}) k ON e.brand = k.brand AND e.event_id = k.event_id)
    """)
    # The usual chunk holds new events only, each id once: with nothing to compare, the anti-joins of
    # _NEW find nothing yet cost 0.3 s of the insert's 1 s per million records.
    compared = con.execute("SELECT EXISTS (FROM _stored) OR EXISTS (FROM _repeat)").fetchall()[0][0]
    new = _new(record) if compared else _VALID
    # By name: a store upgraded from an older version has the columns it gained last (`Store._upgrade`).
    accepted = con.execute(f"""
        INSERT INTO events BY NAME
        SELECT brand, event_id, type, occurred_at, customer_id, channel, text, route, ai_agent, guides,
               category, subcategory, reason, transfer_rationale, agent, inbox, rating, score, attributes, source, line,
               now()::TIMESTAMP AS ingested_at, event_key
        FROM _checked c WHERE {new}
    """).fetchall()[0][0]
    # Records compared with an earlier one: the stored event, else the chunk's first record of the id.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _compared AS
        SELECT c.*, CASE WHEN s.event_id IS NOT NULL THEN {_same("c", "s")} ELSE {_same("c", "f")} END AS same,
               CASE WHEN s.event_id IS NOT NULL THEN s.attributes ELSE f.attributes END::VARCHAR AS ref_attributes,
               coalesce(s.source, f.source) AS ref_source, CASE WHEN s.event_id IS NOT NULL THEN s.line ELSE f.line END AS ref_line
        FROM _checked c
        LEFT JOIN _stored s ON s.brand = c.brand AND s.event_id = c.event_id
        LEFT JOIN (SELECT c2.* FROM _checked c2 JOIN _repeat r
                   ON c2.brand = r.brand AND c2.event_id = r.event_id AND c2.{record} = r.first) f
               ON s.event_id IS NULL AND f.brand = c.brand AND f.event_id = c.event_id
        WHERE {_VALID} AND (s.event_id IS NOT NULL OR (f.event_id IS NOT NULL AND c.{record} <> f.{record}))
    """)
    _same_attributes(con, record)
    # Re-reading the same source line is not a duplicate worth reporting; another source is.
    con.execute("""
        INSERT INTO duplicates
        SELECT o.brand, o.event_id, o.customer_id, o.occurred_at, o.source, o.line, now()::TIMESTAMP
        FROM _compared o
        WHERE o.same AND NOT (o.ref_source = o.source AND o.ref_line IS NOT DISTINCT FROM o.line)
          AND NOT EXISTS (SELECT 1 FROM duplicates d WHERE d.brand = o.brand AND d.event_id = o.event_id
                          AND d.source = o.source AND d.line IS NOT DISTINCT FROM o.line)
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _rejected AS
        SELECT 'rejected' AS kind, reject_reason AS reason, source, line, raw, brand, event_id, customer_id,
               occurred_at, {record} AS record
        FROM _checked c WHERE NOT ({_VALID})
        UNION ALL
        SELECT 'conflict', {CONFLICT_REASON_SQL},
               source, line, NULL, brand, event_id, customer_id, occurred_at, {record}
        FROM _compared WHERE NOT same
    """)
    _fill_raw(con, raw_of)
    con.execute("""
        INSERT INTO rejects
        SELECT r.* EXCLUDE (record), now()::TIMESTAMP, false FROM _rejected r
        WHERE NOT EXISTS (SELECT 1 FROM rejects x WHERE x.source = r.source AND x.line IS NOT DISTINCT FROM r.line
                          AND x.raw IS NOT DISTINCT FROM r.raw)
    """)
    con.execute(f"""
        INSERT INTO pending
        SELECT DISTINCT brand, customer_id FROM _checked c WHERE {new}
        EXCEPT SELECT brand, customer_id FROM pending
    """)
    # A reject is resolved once its event is stored: same id, or the same source line fixed in place
    # (where a line is one record: one line of a helpdesk's capture may give events and rejects).
    if con.execute("SELECT count(*) FROM rejects WHERE NOT resolved AND kind = 'rejected'").fetchall()[0][0]:
        in_place = "OR (source, line) IN (SELECT (source, line) FROM _checked c WHERE {new})" if record == "line" else ""
        con.execute(f"""
            UPDATE rejects SET resolved = true
            WHERE NOT resolved AND kind = 'rejected'
              AND ((brand, event_id) IN (SELECT (brand, event_id) FROM _checked c WHERE {new})
                   {in_place.format(new=new)})
        """)
    duplicate, conflicts = con.execute("SELECT count(*) FILTER (WHERE same), count(*) FILTER (WHERE NOT same) "
                                       "FROM _compared").fetchall()[0]
    rejected = con.execute("SELECT count(*) FROM _rejected").fetchall()[0][0]
    assert rejected >= conflicts
    return IngestCounts(accepted=int(accepted), duplicate=int(duplicate), rejected=int(rejected))


def _same_attributes(con: duckdb.DuckDBPyConnection, record: str) -> None:
    """Unknown fields are equal as JSON values, whatever their key order or spacing (SPEC 2.4)."""
    differing = con.execute(f"""
        SELECT {record}, attributes::VARCHAR, ref_attributes FROM _compared
        WHERE same AND attributes::VARCHAR IS DISTINCT FROM ref_attributes
    """).fetchall()
    unequal = [key for key, a, b in differing if (a and json.loads(a)) != (b and json.loads(b))]
    if unequal:
        con.execute(f"UPDATE _compared SET same = false WHERE {record} IN (SELECT unnest(?::BIGINT[]))", [unequal])


def _fill_raw(con: duckdb.DuckDBPyConnection, raw_of: Callable[[list[int]], dict[int, str]]) -> None:
    """Rejected records keep their raw text; fast readers provide it only for them."""
    missing = [key for (key,) in con.execute("SELECT record FROM _rejected WHERE raw IS NULL AND record IS NOT NULL")
               .fetchall()]
    if not missing:
        return
    found = raw_of(missing)
    con.register("_raw", pa.table({"record": list(found), "raw": list(found.values())},
                                  schema=pa.schema([("record", pa.int64()), ("raw", pa.string())])))
    con.execute("UPDATE _rejected r SET raw = x.raw FROM _raw x WHERE r.record = x.record AND r.raw IS NULL")
    con.unregister("_raw")


def outcomes(record: str = "line") -> str:
    """SQL giving, after `merge_stage` and in its transaction, what became of each staged record: its
    `record` value, `outcome` (accepted, duplicate or rejected), the reject's `reason`, and `reread`:
    a duplicate of the event this very source line stored before (SPEC 2.4: the same ingestion run
    again), which is no news about the data."""
    return f"""
        SELECT c.{record} AS record, c.source, c.event_id, c.occurred_at, c.text,
               CASE WHEN c.reject_reason IS NOT NULL OR NOT o.same THEN 'rejected'
                    WHEN o.same THEN 'duplicate' ELSE 'accepted' END AS outcome,
               CASE WHEN c.reject_reason IS NOT NULL THEN c.reject_reason
                    WHEN NOT o.same THEN 'conflict' END AS reason,
               coalesce(o.same AND o.ref_source = o.source AND o.ref_line IS NOT DISTINCT FROM o.line, false) AS reread
        FROM _checked c LEFT JOIN _compared o ON o.{record} = c.{record}
    """
