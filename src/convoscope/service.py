"""The use cases shared by the command line and (later) the server; the only place that strings
stages together: read → store (one transaction per chunk) → derive what changed → report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from convoscope.config import Config, is_zone
from convoscope.errors import ConvoscopeError, UsageError
from convoscope.events.ingest import IngestCounts, merge_stage
from convoscope.events.readers import expand, read_chunks
from convoscope.store import Store

if TYPE_CHECKING:  # the engine imports numba: load it only when something is derived
    from convoscope.derive.duckdb_engine import DeriveResult
    from convoscope.reports.base import Params, Report
    from convoscope.sources import Outcome, SourceCounts

Progress = Callable[[str, int, int | None], None]  # (what, done, total or None)


@dataclass
class IngestResult:
    counts: IngestCounts = field(default_factory=IngestCounts)
    per_source: dict[str, IngestCounts] = field(default_factory=dict)
    derived: DeriveResult | None = None


def check_zone(name: str, *, option: str) -> str:
    if not is_zone(name):
        raise UsageError(f"{option} {name!r} is not an IANA time zone; use a name such as UTC or Europe/Berlin")
    return name


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
        check_zone(assume_tz, option="--assume-tz")
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


@dataclass
class SourceResult:
    counts: SourceCounts
    derived: DeriveResult | None = None


SOURCE_BATCH = 20_000  # records stored per transaction


def source_brand(config: Config, name: str, brand: str | None) -> str:
    """The brand of a source's events (SOURCES.md): `--brand`, else `[sources.NAME] brand`, else default."""
    return brand or config.for_source(name).brand or "default"


def ingest_source(store: Store, config: Config, name: str, paths: list[str], *, brand: str | None = None,
                  derive: bool = True, progress: Progress | None = None) -> SourceResult:
    """Map every record of a helpdesk's files (`sources/`, SOURCES.md), store their events as any
    others (SPEC 2.4), then derive the customers that changed."""
    from convoscope import sources

    brand = source_brand(config, name, brand)
    settings = config.for_source(name)
    counts = sources.SourceCounts()
    read = 0
    mapping = sources.module(name)
    for path in mapping.inputs(paths):
        batch: list[Outcome] = []
        for record in mapping.read(path, settings):
            batch.append(record)
            if len(batch) >= SOURCE_BATCH:
                counts.add(store_records(store, batch, system=name, via="file", brand=brand))
                read += len(batch)
                batch = []
                if progress:
                    progress("read", read, None)
        if batch:
            counts.add(store_records(store, batch, system=name, via="file", brand=brand))
            read += len(batch)
            if progress:
                progress("read", read, None)
    result = SourceResult(counts)
    if derive:
        result.derived = ensure_derived(store, config, progress=progress)
    return result


def store_records(store: Store, records: list[Outcome], *, system: str, via: str, brand: str) -> SourceCounts:
    """Store what a batch of a source's records became, in one transaction."""
    from convoscope.events.mapped import merge_outcomes

    with store.transaction() as con:
        return merge_outcomes(con, records, system=system, via=via, brand=brand)


SPOOL_BATCH = 5_000  # deliveries merged per transaction


def merge_spool(store: Store, *, batch: int = SPOOL_BATCH,
                warn: Callable[[str], None] = lambda message: None) -> SourceCounts:
    """Move every spooled webhook delivery (`spool.py`) into the store, `batch` at a time, each batch in
    one transaction and removed from the spool once it committed. Derivation is left to whoever reads
    next (the customers stay `pending`). A delivery that cannot be read is set aside, and `warn` told."""
    from convoscope import sources
    from convoscope.events.mapped import merge_outcomes
    from convoscope.spool import Spool, spool_folder

    spool = Spool(spool_folder(store.path))
    counts = sources.SourceCounts()
    while paths := spool.waiting()[:batch]:
        groups: dict[tuple[str, str], list[Outcome]] = {}
        for path in list(paths):
            try:
                delivery = spool.read(path)
                record = sources.map_delivery(delivery.system, delivery.body, source=delivery.source)
            except (OSError, ValueError, KeyError, ConvoscopeError) as exc:
                paths.remove(path)
                aside = spool.set_aside(path)
                warn(f"{path.name} in the webhook spool cannot be read ({exc}); it was moved to {aside}")
                continue
            groups.setdefault((delivery.system, delivery.brand), []).append(record)
        with store.transaction() as con:
            for (system, brand), records in groups.items():
                counts.add(merge_outcomes(con, records, system=system, via="webhook", brand=brand))
        spool.remove(paths)
    spool.clear_partial()
    return counts


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


def write_report(store: Store, config: Config, report: Report, params: Params, path: Path, *,
                 progress: Progress | None = None) -> int:
    """Bring the derived tables up to date, then write the report's CSV to `path`, whole or not at all.
    Returns the number of data rows."""
    from convoscope.reports import render_csv

    ensure_derived(store, config, progress=progress)
    if not path.parent.is_dir():
        raise ConvoscopeError(f"cannot write {path}: no folder {path.parent}; choose another place for it")
    partial = path.with_name(path.name + ".part")
    try:
        count = render_csv(store, config, report, params, partial)
        partial.replace(path)
    except (duckdb.IOException, OSError) as exc:  # OSError: `path` is a folder, say
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise ConvoscopeError(f"cannot write {path}: {reason}; choose another place for it") from None
    return count
