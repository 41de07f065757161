"""Events mapped from a helpdesk's records (`sources/`) into the store: staged as JSON and read exactly as
JSON Lines are (`readers.stage_mapped`), merged as any chunk (`ingest.merge_stage`: validation, duplicates,
conflicts, rejects), and what became of every record written to `source_records` in the same
transaction, for the `sources` report.

A record's rows in `source_records` are keyed by (brand, source, line, seq) and the event they are about:
reading the same line again (an ingest run again, a spool merged again after a crash) changes nothing
where it repeats what it stored before; otherwise its rows about the same event, and those that stored
nothing, are replaced (a record fixed in place), and its rows about other stored events are kept (a file
written anew under the same name).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from convoscope.events.ingest import merge_stage, outcomes
from convoscope.events.readers import stage_mapped, unstage_mapped

if TYPE_CHECKING:
    from convoscope.events.known import KnownIds
    from convoscope.sources import Outcome, SourceCounts

_META = pa.schema([
    ("rec", pa.int64()), ("source", pa.string()), ("line", pa.int64()), ("seq", pa.int32()),
    ("outcome", pa.string()), ("reason", pa.string()), ("occurred_at", pa.string()), ("truncated", pa.bool_()),
])


@dataclass
class MappedGroup:
    """A helpdesk's records of one system and brand, mapped and numbered for staging (`map_group`): their events as
    JSON texts, the records that gave no event, and each record's row of what became of it."""

    system: str
    brand: str
    events: pa.Table  # rec, source, line, json
    unmapped: pa.Table  # rec, source, line, brand, event_id, customer_id, occurred_at, message
    meta: pa.Table  # _META
    raw: dict[int, str]


EVENTS = pa.schema([("rec", pa.int64()), ("source", pa.string()), ("line", pa.int64()), ("json", pa.string())])
UNMAPPED = pa.schema([("rec", pa.int64()), ("source", pa.string()), ("line", pa.int64()), ("brand", pa.string()),
                      ("event_id", pa.string()), ("customer_id", pa.string()), ("occurred_at", pa.string()),
                      ("message", pa.string())])


def merge_outcomes(con: duckdb.DuckDBPyConnection, records: Sequence[Outcome], *, system: str, via: str,
                   brand: str, known: KnownIds | None = None) -> SourceCounts:
    """Store what `records` became, inside the caller's transaction; returns their counts. Every event
    gets `brand`; a record that gave no event is kept as a reject of `brand` or counted as ignored. `known`:
    `merge_stage`'s."""
    from convoscope.sources import SourceCounts

    group = map_group(records, system=system, brand=brand)
    if not group.meta.num_rows:
        return SourceCounts()
    stage_mapped(con, group.events, group.unmapped)
    try:
        merge_stage(con, assume_tz=None, raw_of=lambda recs: {r: group.raw[r] for r in recs}, record="rec",
                    told_brand=True, known=known)
    finally:
        unstage_mapped(con)
    return tally(con, group, via=via)


def map_group(records: Sequence[Outcome], *, system: str, brand: str, first: int = 0) -> MappedGroup:
    """`records` as `merge_outcomes` stages them, numbered from `first` (`rec`), so that several groups and other
    texts can share one stage."""
    from convoscope.sources import MAX_TEXT

    events: dict[str, list] = {"rec": [], "source": [], "line": [], "json": []}
    unmapped: dict[str, list] = {"rec": [], "source": [], "line": [], "brand": [], "event_id": [], "customer_id": [],
                                 "occurred_at": [], "message": []}
    meta: dict[str, list] = {name: [] for name in _META.names}
    raw: dict[int, str] = {}
    seq: dict[tuple[str, int | None], int] = {}

    def row(record: Outcome, outcome: str | None, reason: str | None, truncated: bool = False) -> int:
        rec = first + len(meta["rec"])
        key = (record.source, record.line)
        seq[key] = seq.get(key, -1) + 1
        for name, value in (("rec", rec), ("source", record.source), ("line", record.line), ("seq", seq[key]),
                            ("outcome", outcome), ("reason", reason), ("occurred_at", record.occurred_at),
                            ("truncated", truncated)):
            meta[name].append(value)
        raw[rec] = record.raw
        return rec

    for record in records:
        if record.ignored is not None:
            row(record, "ignored", record.ignored)
        elif record.rejected is not None:
            rec = row(record, "rejected", record.rejected)
            for name, value in (("rec", rec), ("source", record.source), ("line", record.line), ("brand", brand),
                                ("event_id", record.event_id), ("customer_id", record.customer_id),
                                ("occurred_at", record.occurred_at),
                                ("message", record.message or f"{system} record rejected: {record.rejected}")):
                unmapped[name].append(value)
        for event in record.events:
            text = event.get("text")
            cut = record.truncated > 0 and isinstance(text, str) and len(text) == MAX_TEXT
            rec = row(record, None, None, cut)
            for name, value in (("rec", rec), ("source", record.source), ("line", record.line),
                                ("json", json.dumps({**event, "brand": brand}, ensure_ascii=False))):
                events[name].append(value)
    return MappedGroup(system, brand, pa.table(events, schema=EVENTS), pa.table(unmapped, schema=UNMAPPED),
                       pa.table(meta, schema=_META), raw)


def tally(con: duckdb.DuckDBPyConnection, group: MappedGroup, *, via: str) -> SourceCounts:
    """After `merge_stage` staged `group` (alone or with other texts), in its transaction: what became of each of its
    records, written to `source_records`, and their counts."""
    from convoscope.sources import SourceCounts

    counts = SourceCounts()
    system, brand = group.system, group.brand
    con.register("_meta", group.meta)
    try:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _tally AS
            SELECT m.source, m.line, m.seq, o.event_id,
                   coalesce(o.occurred_at, TRY_CAST(m.occurred_at AS TIMESTAMPTZ)::TIMESTAMP) AS occurred_at,
                   coalesce(m.outcome, o.outcome) AS outcome,
                   CASE WHEN m.outcome IS NOT NULL THEN m.reason WHEN o.outcome = 'rejected'
                        THEN CASE WHEN o.reason = 'conflict' THEN 'conflict' ELSE 'invalid_event' END END AS reason,
                   m.truncated AND coalesce(o.outcome, '') <> 'rejected' AS truncated,
                   coalesce(o.reread, false) AS reread
            FROM _meta m LEFT JOIN ({outcomes("rec")}) o ON o.record = m.rec
        """)
    finally:
        con.unregister("_meta")
    # A line read again that only repeats what it stored before changes nothing. Else its rows of the same
    # event, and those that stored nothing (a record fixed in place), are replaced; its rows of other events
    # stay (a file written anew under the same name: its earlier events are still in the store).
    same = ("r.brand = ? AND r.source = t.source AND r.line IS NOT DISTINCT FROM t.line AND r.seq = t.seq "
            "AND r.event_id IS NOT DISTINCT FROM t.event_id")
    con.execute("""
        DELETE FROM source_records r USING _tally t
        WHERE r.brand = ? AND r.source = t.source AND r.line IS NOT DISTINCT FROM t.line AND r.seq = t.seq
          AND NOT t.reread
          AND (r.event_id IS NOT DISTINCT FROM t.event_id OR r.outcome NOT IN ('accepted', 'duplicate'))
    """, [brand])
    con.execute(f"""
        INSERT INTO source_records
        SELECT ?, ?, ?, t.source, t.line, t.seq, t.occurred_at, t.outcome, t.reason, t.truncated, now()::TIMESTAMP,
               t.event_id
        FROM _tally t
        WHERE NOT (t.reread AND EXISTS (SELECT 1 FROM source_records r WHERE {same}))
    """, [system, via, brand, brand])
    for outcome, reason, number, truncated in con.execute("""
        SELECT outcome, reason, count(*), count(*) FILTER (WHERE truncated) FROM _tally GROUP BY ALL
    """).fetchall():
        setattr(counts, outcome, getattr(counts, outcome) + number)
        counts.truncated += truncated
        if reason is not None:
            counts.reasons[(outcome, reason)] += number
    return counts
