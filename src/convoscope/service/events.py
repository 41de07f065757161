"""Events in and derived: store a file's (or standard input's) events, one transaction per chunk, then
derive the customers that changed (SPEC 2, 3, 6.1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from convoscope.config import Config, check_zone
from convoscope.events.ingest import IngestCounts, merge_stage
from convoscope.events.readers import expand, read_chunks
from convoscope.store import Store

if TYPE_CHECKING:  # the engine imports numba: load it only when something is derived
    from convoscope.derive.duckdb_engine import DeriveResult

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
