"""Events in and derived: store a file's (or standard input's) events, one transaction per chunk, then
derive the customers that changed (SPEC 2, 3, 6.1)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from convoscope.config import Config, check_zone
from convoscope.events.ingest import IngestCounts, merge_stage
from convoscope.events.readers import expand, read_chunks
from convoscope.store import Store

if TYPE_CHECKING:  # the engine imports numba: load it only when something is derived
    from convoscope.derive.duckdb_engine import DeriveResult
    from convoscope.events.known import KnownIds
    from convoscope.sources import Outcome, SourceCounts

Progress = Callable[[str, int, int | None], None]  # (what, done, total or None)


@dataclass
class IngestResult:
    counts: IngestCounts = field(default_factory=IngestCounts)
    per_source: dict[str, IngestCounts] = field(default_factory=dict)
    derived: DeriveResult | None = None


def check_paths(paths: list[str], fmt: str | None = None) -> None:
    """Fail, in one line, on a path that names no input, before a store is opened (and created) for it."""
    expand(paths, fmt)


def ingest(
    store: Store,
    config: Config,
    paths: list[str],
    *,
    fmt: str | None = None,
    assume_tz: str | None = None,
    derive: bool = True,
    progress: Progress | None = None,
    source_name: str | None = None,
) -> IngestResult:
    """Store every event of `paths` (SPEC 2), then derive the customers that changed (SPEC 6.1).
    `source_name` names the source in rejects and duplicates instead of the file's path."""
    if assume_tz:
        check_zone(assume_tz, param="assume_tz")
    result = IngestResult()
    for source, path, file_format in expand(paths, fmt):
        source = source_name or source
        per = result.per_source.setdefault(source, IngestCounts())
        for chunk in read_chunks(store.con, source, path, file_format):
            with store.transaction() as con:
                counts = merge_stage(con, assume_tz=assume_tz, raw_of=chunk.raw_of)
            per.add(counts)
            result.counts.add(counts)
            if progress:
                progress("ingest", result.counts.accepted + result.counts.duplicate + result.counts.rejected, None)
    if derive:
        result.derived = ensure_derived(store, config, progress=progress)
    return result


def ensure_derived(store: Store, config: Config, *, progress: Progress | None = None) -> DeriveResult | None:
    """Derive pending customers, and rebuild brands whose derivation settings changed (SPEC 5)."""
    from convoscope.derive import duckdb_engine

    if not duckdb_engine.needs_derive(store, config):
        return None
    return duckdb_engine.derive(store, config, progress=_derive_progress(progress))


def derive(store: Store, config: Config, *, progress: Progress | None = None) -> DeriveResult:
    """Rebuild every derived table from the stored events."""
    from convoscope.derive import duckdb_engine

    return duckdb_engine.derive(store, config, full=True, progress=_derive_progress(progress))


def _derive_progress(progress: Progress | None) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress("derive", done, total)


@dataclass
class Batch:
    """Events sent to a server in one request (`POST /api/v1/events`, an upload): one JSON text a line as they
    came (bytes that are not UTF-8 kept, so that their event is rejected), the source name they are kept under,
    and the lines `refused` (by index from 0, with the reason: a brand the sender may not send)."""

    lines: Sequence[bytes]
    source: str
    refused: dict[int, str] = field(default_factory=dict)


@dataclass
class BatchOutcome:
    """What became of a batch: its counts (the refused lines among the rejected) and the reason of every rejected
    line, by index."""

    counts: IngestCounts
    errors: dict[int, str]


def store_batches(store: Store, batches: Sequence[Batch], *, known: KnownIds | None = None) -> list[BatchOutcome]:
    """Store `batches` in one transaction (`store_together`); derivation is left to the caller."""
    return store_together(store, batches, (), known=known)[0]


def store_together(store: Store, batches: Sequence[Batch], records: Sequence[tuple[str, str, Sequence[Outcome]]], *,
                   via: str = "webhook", known: KnownIds | None = None) -> tuple[list[BatchOutcome], list[SourceCounts]]:
    """Store `batches` and a helpdesk's mapped `records` (system, brand, records: `events/mapped.py`, arrived `via`)
    in one transaction, staged as one chunk (`readers.line_texts`, `readers.stage_texts`), then keep the batches'
    refused lines as rejects; derivation is left to the caller. A chunk costs the store the planning of its
    validation (0.1 s, whatever its size) and, unless `known` (`merge_stage`'s) tells otherwise, a scan of the
    stored ids: a server storing what came in the last moment together pays them once (issue 30). Events of one
    id in two batches are compared as two lines of one file would be: the later is a duplicate, or a conflict, of
    the earlier. Returns each batch's outcome and each group of records' counts."""
    from convoscope.events.ingest import outcomes
    from convoscope.events.mapped import map_group, tally
    from convoscope.events.readers import line_texts, mapped_texts, stage_texts, unstage_mapped
    from convoscope.sources import SourceCounts  # noqa: F811 (the annotation's name, at run time)

    sources = [batch.source for batch in batches]
    found: dict[str, IngestCounts] = {source: IngestCounts() for source in sources}
    texts = line_texts([(batch.source, [b"" if i in batch.refused else line for i, line in enumerate(batch.lines)])
                        for batch in batches])
    groups, first = [], texts.num_rows
    for system, brand, outcomes_of in records:
        groups.append(map_group(outcomes_of, system=system, brand=brand, first=first))
        first += groups[-1].meta.num_rows
    raw = dict(zip(texts.column("rec").to_pylist(), texts.column("raw").to_pylist(), strict=True))
    for group in groups:
        raw.update(group.raw)
    tallied = [SourceCounts() for _ in groups]
    with store.transaction() as con:
        if first:
            stage_texts(con, pa.concat_tables([texts, *(mapped_texts(g.events) for g in groups)]),
                        pa.concat_tables([g.unmapped for g in groups]) if groups else None)
            try:
                merge_stage(con, assume_tz=None, raw_of=lambda recs: {r: raw[r] for r in recs}, record="rec",
                            told_brand=True, known=known)
            finally:
                unstage_mapped(con)
            if batches:
                for source, outcome, number in con.execute(
                        f"SELECT source, outcome, count(*) FROM ({outcomes('rec')}) WHERE record < ? GROUP BY ALL",
                        [texts.num_rows]).fetchall():
                    setattr(found[source], outcome, getattr(found[source], outcome) + number)
            tallied = [tally(con, group, via=via) for group in groups]
        for batch in batches:
            _keep_refused(store, batch.source, batch.lines, batch.refused)
    reasons: dict[str, dict[int, str]] = {source: {} for source in sources}
    if sources:
        for source, line, reason in store.con.execute(
                "SELECT source, line, reason FROM rejects WHERE source IN (SELECT unnest(?::VARCHAR[])) "
                "ORDER BY source, line, kind", [sources]).fetchall():
            if line is not None:
                reasons[source][int(line) - 1] = reason
    answers = []
    for batch in batches:
        counts = found[batch.source]
        counts.rejected += len(batch.refused)
        answers.append(BatchOutcome(counts, reasons[batch.source] | batch.refused))
    return answers, tallied


def ingest_lines(store: Store, config: Config, lines: list[bytes], *, source: str,
                 refused: dict[int, str] | None = None,
                 writing: AbstractContextManager[Any] | None = None) -> tuple[IngestResult, dict[int, str]]:
    """Store a batch of events (`Batch`) and derive the customers that changed. The refused lines are not
    stored but rejected and kept like any reject (SPEC 2.4: nothing is lost), with no brand: they stay out of
    the brand they name, and an administrator of every brand can list them (`convoscope rejects`) and ingest
    them for the right brand. `writing` is the lock a server holds around writes. Returns the counts and the
    reason of every rejected line, by index."""
    lock = writing if writing is not None else nullcontext()
    with lock:
        outcome, = store_batches(store, [Batch(lines, source, refused or {})])
        result = IngestResult(counts=outcome.counts, per_source={source: outcome.counts})
        result.derived = ensure_derived(store, config)
    return result, outcome.errors


def _keep_refused(store: Store, source: str, lines: Sequence[bytes], refused: dict[int, str]) -> None:
    if not refused:
        return
    indexes = sorted(refused)
    store.con.register("_refused", pa.table({
        "reason": [refused[i] for i in indexes], "line": [i + 1 for i in indexes],
        "raw": [lines[i].decode("utf-8", errors="replace") for i in indexes],
    }))
    try:
        store.con.execute("INSERT INTO rejects (kind, reason, source, line, raw, rejected_at, resolved) "
                          "SELECT 'rejected', reason, ?, line, raw, now()::TIMESTAMP, false FROM _refused", [source])
    finally:
        store.con.unregister("_refused")


@dataclass
class SourceHistory:
    """What came in under one source name (a file's path, an API batch's or an upload's name: SPEC 2.4), as
    the store keeps it: the events stored, the duplicates dropped and the records rejected (conflicts
    included, and those resolved since), with the first and last time one of them was written."""

    source: str
    first: datetime
    last: datetime
    accepted: int
    duplicate: int
    rejected: int


def ingest_history(store: Store, *, brands: Sequence[str] | None = None, limit: int = 500) -> list[SourceHistory]:
    """The sources events came from, the one written to last first, at most `limit` of them, read from the
    events, duplicates and rejects tables. With `brands`, only what belongs to them counts: a record whose
    brand could not be read (or that was refused for its brand) belongs to none."""
    scope = "true" if brands is None else "list_contains(?::VARCHAR[], brand)"
    tables = (("events", "ingested_at"), ("duplicates", "seen_at"), ("rejects", "rejected_at"))
    parts = [f"""SELECT source, count(*) AS n, min({at}) AS first, max({at}) AS last FROM {table}
                 WHERE source IS NOT NULL AND {scope} GROUP BY source""" for table, at in tables]
    rows = store.con.execute(f"""
        WITH accepted AS ({parts[0]}), duplicate AS ({parts[1]}), rejected AS ({parts[2]})
        SELECT source, least(a.first, d.first, r.first), greatest(a.last, d.last, r.last),
               coalesce(a.n, 0), coalesce(d.n, 0), coalesce(r.n, 0)
        FROM accepted a FULL JOIN duplicate d USING (source) FULL JOIN rejected r USING (source)
        ORDER BY 3 DESC, source LIMIT ?
    """, ([list(brands)] * 3 if brands is not None else []) + [limit]).fetchall()
    return [SourceHistory(*row) for row in rows]
