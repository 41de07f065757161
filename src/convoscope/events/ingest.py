"""Store a staged chunk (SPEC 2.4): validate, drop duplicates, reject conflicts, keep every reject.

`merge_stage` runs inside the caller's transaction, so a chunk is stored whole or not at all. An
event equal to a stored one (same brand and event_id, same normalised content) is a duplicate and
dropped; a different one is a conflict and rejected, the stored event staying. Within one chunk the
first record of an id is the one compared with the store, later ones are compared with it.
Customers whose events were accepted are marked `pending` for derivation.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from convoscope.events.schema import validation_sql

# Normalised content compared between a new event and a stored one (SPEC 2.4).
_COMPARED = ("type", "occurred_at", "customer_id", "channel", "text", "route", "ai_agent", "guides", "category",
             "subcategory", "reason", "transfer_rationale", "agent", "attributes")


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

    return " AND ".join(f"{col(a, c)} IS NOT DISTINCT FROM {col(b, c)}" for c in _COMPARED)


def merge_stage(con: duckdb.DuckDBPyConnection, *, assume_tz: str | None) -> IngestCounts:
    """Validate `_stage` and store its outcome; returns this chunk's counts."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _checked AS {validation_sql(assume_tz)}")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _valid AS
        SELECT *, row_number() OVER (PARTITION BY brand, event_id ORDER BY line) AS rn
        FROM _checked WHERE reject_reason IS NULL
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _outcome AS
        SELECT v.*,
               CASE WHEN e.event_id IS NOT NULL THEN {_same("v", "e")}
                    WHEN v.rn > 1 THEN {_same("v", "f")} END AS same,
               coalesce(e.source, f.source) AS ref_source, coalesce(e.line, f.line) AS ref_line
        FROM _valid v
        LEFT JOIN events e ON e.brand = v.brand AND e.event_id = v.event_id
        LEFT JOIN (SELECT * FROM _valid WHERE rn = 1) f
               ON v.rn > 1 AND e.event_id IS NULL AND f.brand = v.brand AND f.event_id = v.event_id
    """)
    con.execute("""
        INSERT INTO events
        SELECT brand, event_id, type, occurred_at, customer_id, channel, text, route, ai_agent, guides,
               category, subcategory, reason, transfer_rationale, agent, attributes, source, line, now()::TIMESTAMP
        FROM _outcome WHERE same IS NULL
    """)
    # Re-reading the same source line is not a duplicate worth reporting; another source is.
    con.execute("""
        INSERT INTO duplicates
        SELECT o.brand, o.event_id, o.customer_id, o.occurred_at, o.source, o.line, now()::TIMESTAMP
        FROM _outcome o
        WHERE o.same AND NOT (o.ref_source = o.source AND o.ref_line IS NOT DISTINCT FROM o.line)
          AND NOT EXISTS (SELECT 1 FROM duplicates d WHERE d.brand = o.brand AND d.event_id = o.event_id
                          AND d.source = o.source AND d.line IS NOT DISTINCT FROM o.line)
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _rejected AS
        SELECT 'rejected' AS kind, reject_reason AS reason, source, line, raw, brand, event_id, customer_id,
               NULL::TIMESTAMP AS occurred_at
        FROM _checked WHERE reject_reason IS NOT NULL
        UNION ALL
        SELECT 'conflict', 'event_id ''' || event_id || ''' of brand ' || brand || ' was stored before from '
               || ref_source || coalesce(' line ' || ref_line, '') || ' with different content; '
               || 'give this event its own event_id or drop it',
               source, line, raw, brand, event_id, customer_id, occurred_at
        FROM _outcome WHERE NOT same
    """)
    con.execute("""
        INSERT INTO rejects
        SELECT r.*, now()::TIMESTAMP, false FROM _rejected r
        WHERE NOT EXISTS (SELECT 1 FROM rejects x WHERE x.source = r.source AND x.line IS NOT DISTINCT FROM r.line
                          AND x.raw IS NOT DISTINCT FROM r.raw)
    """)
    con.execute("""
        INSERT INTO pending
        SELECT DISTINCT brand, customer_id FROM _outcome WHERE same IS NULL
        EXCEPT SELECT brand, customer_id FROM pending
    """)
    con.execute("""
        UPDATE rejects SET resolved = true
        WHERE NOT resolved AND kind = 'rejected'
          AND (brand, event_id) IN (SELECT (brand, event_id) FROM _outcome WHERE same IS NULL)
    """)
    row = con.execute("""
        SELECT count(*) FILTER (WHERE same IS NULL), count(*) FILTER (WHERE same),
               (SELECT count(*) FROM _rejected)
        FROM _outcome
    """).fetchall()[0]
    assert row is not None
    return IngestCounts(accepted=int(row[0]), duplicate=int(row[1]), rejected=int(row[2]))
