"""Incremental derivation (SPEC 7): an ingest derives again only the customers whose events changed,
and a brand ingested in pieces, in any order, late events included, ends with the tables of one
full derive, ids included."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from convoscope import service
from convoscope.config import Config
from convoscope.store import DERIVED_TABLES, Store, stored

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chunks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A generated brand cut into ten files by time; one event in twenty arrives in a later file than
    its time says (late, for a customer already derived), and the files are shuffled."""
    folder = tmp_path_factory.mktemp("chunks")
    log = folder / "brand.jsonl"
    subprocess.run([sys.executable, "-m", "convoscope.cli", "generate", "--customers", "1500", "--days", "30",
                    "--seed", "11", "--out", str(log)], check=True, capture_output=True)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    events.sort(key=lambda e: e["occurred_at"])
    rnd = random.Random(11)
    pieces: list[list[dict]] = [events[i * len(events) // 10:(i + 1) * len(events) // 10] for i in range(10)]
    for i in range(9):
        late = [e for e in pieces[i] if rnd.random() < 0.05]
        pieces[i] = [e for e in pieces[i] if e not in late] if late else pieces[i]
        pieces[rnd.randrange(i + 1, 10)].extend(late)
    rnd.shuffle(pieces)
    paths = []
    for i, piece in enumerate(pieces):
        path = folder / f"chunk-{i}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in piece))
        paths.append(path)
    return paths


def test_ten_shuffled_chunks_with_late_events_give_the_tables_of_one_full_derive(
    chunks: list[Path], tmp_path: Path
) -> None:
    config = Config()
    whole = tmp_path / "whole.duckdb"
    with Store(whole) as store:
        service.ingest(store, config, [str(p) for p in chunks], derive=False)
        service.derive(store, config)

    pieces = tmp_path / "pieces.duckdb"
    with Store(pieces) as store:
        for path in chunks:
            customers = {json.loads(line)["customer_id"] for line in path.read_text().splitlines()}
            result = service.ingest(store, config, [str(path)])
            assert result.derived is not None and not result.derived.full
            assert result.derived.customers == len(customers)  # only the customers this chunk touched
        store.con.execute(f"ATTACH '{whole}' AS whole (READ_ONLY)")
        for table in map(stored, DERIVED_TABLES):  # as stored: the keys (ids) are compared too
            rows = store.count(table)
            only_here = store.con.execute(
                f"SELECT count(*) FROM (FROM {table} EXCEPT ALL FROM whole.{table})").fetchall()[0][0]
            only_there = store.con.execute(
                f"SELECT count(*) FROM (FROM whole.{table} EXCEPT ALL FROM {table})").fetchall()[0][0]
            assert rows > 0 or table == stored("anomalies")
            assert (only_here, only_there) == (0, 0), f"{table}: {only_here} rows only incremental, {only_there} only full"


def _tables_equal(store: Store, other: Path) -> None:
    store.con.execute(f"ATTACH '{other}' AS other (READ_ONLY)")
    for table in (*map(stored, DERIVED_TABLES), "derived_settings", "pending"):
        only_here, only_there = (store.con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchall()[0][0]
                                 for a, b in ((table, f"other.{table}"), (f"other.{table}", table)))
        assert (only_here, only_there) == (0, 0), f"{table}: {only_here} rows only here, {only_there} only there"
    store.con.execute("DETACH other")


def test_hash_partitions_give_the_tables_of_one_partition(
    chunks: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store too large for one partition is derived a hash partition at a time (memory stays
    bounded): full, and after an ingest of more customers than an incremental derive finds in one scan."""
    from convoscope.derive import duckdb_engine

    config = Config()
    whole = tmp_path / "whole.duckdb"
    with Store(whole) as store:
        service.ingest(store, config, [str(p) for p in chunks], derive=False)
        one = service.derive(store, config)
    assert one.full and one.events > 20_000

    monkeypatch.setattr(duckdb_engine, "PARTITION_EVENTS", 4_000)
    monkeypatch.setattr(duckdb_engine, "FEW_CUSTOMERS", 10)
    done: list[tuple[int, int]] = []
    parted = tmp_path / "parted.duckdb"
    with Store(parted) as store:
        service.ingest(store, config, [str(p) for p in chunks[:5]], derive=False)
        result = duckdb_engine.derive(store, config, full=True, progress=lambda d, t: done.append((d, t)))
        assert len(done) >= 3 and done[-1][0] == result.events  # several partitions, each committed
        service.ingest(store, config, [str(p) for p in chunks[5:]])  # incremental: pending, partitioned
        assert store.count("pending") == 0
        _tables_equal(store, whole)


def test_slices_of_a_partition_give_the_tables_of_one_slice(
    chunks: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition's sorted events are derived a slice of whole customers at a time, and the slices'
    tables are inserted together: cut into slices of a few customers each (and one customer alone where
    it has more events than a slice), full and incremental derives give the tables of one slice."""
    from convoscope.derive import assemble, duckdb_engine

    config = Config()
    whole = tmp_path / "whole.duckdb"
    with Store(whole) as store:
        service.ingest(store, config, [str(p) for p in chunks], derive=False)
        service.derive(store, config)

    sliced: list[int] = []
    slices = assemble.SortedEvents.slices

    def counted(events: assemble.SortedEvents, size: int) -> Iterator[assemble.SortedEvents]:
        for part in slices(events, size):
            sliced.append(part.ts.shape[0])
            yield part

    monkeypatch.setattr(assemble.SortedEvents, "slices", counted)
    monkeypatch.setattr(duckdb_engine, "SLICE_EVENTS", 40)
    monkeypatch.setattr(duckdb_engine, "INSERT_ROWS", 25)
    monkeypatch.setattr(duckdb_engine, "INSERTS_AHEAD", 1)
    cut = tmp_path / "cut.duckdb"
    with Store(cut) as store:
        service.ingest(store, config, [str(p) for p in chunks[:5]], derive=False)
        duckdb_engine.derive(store, config, full=True)
        full_slices = len(sliced)
        assert full_slices > 100 and max(sliced) > 40  # many slices; a customer of more events is one
        service.ingest(store, config, [str(p) for p in chunks[5:]])  # a few customers' events, sliced too
        assert len(sliced) > full_slices + 1
        _tables_equal(store, whole)


@pytest.mark.parametrize("failure", ["assembling", "writing", "a later slice"])
def test_a_derive_that_fails_part_way_leaves_the_tables_as_they_were(
    chunks: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """Derived tables are written while the next one is being assembled; when either side fails after
    some tables were written (or some slices of customers), nothing of that derive stays and its
    customers are still pending."""
    from convoscope.derive import assemble, duckdb_engine

    config = Config()
    before = tmp_path / "before.duckdb"
    with Store(before) as store:
        service.ingest(store, config, [str(chunks[0])])
        service.ingest(store, config, [str(chunks[1])], derive=False)
        assert store.count("pending") > 0

    real = assemble.assemble
    slices: list[object] = []

    def broken(*args: object) -> object:
        tables = real(*args)
        slices.append(args[0])
        if failure == "a later slice" and len(slices) < 3:
            yield from tables  # two slices assembled whole, and inserted
            return
        yield next(tables)
        yield next(tables)
        if failure != "writing":
            raise RuntimeError("assembly failed")
        name, table = next(tables)
        yield name, table.drop_columns([table.column_names[-1]])  # one column short: the insert fails

    failed = tmp_path / "failed.duckdb"
    with Store(failed) as store:
        service.ingest(store, config, [str(chunks[0])])
        service.ingest(store, config, [str(chunks[1])], derive=False)
        monkeypatch.setattr(assemble, "assemble", broken)
        if failure == "a later slice":
            monkeypatch.setattr(duckdb_engine, "SLICE_EVENTS", 200)
            monkeypatch.setattr(duckdb_engine, "INSERT_ROWS", 1)
        with pytest.raises((RuntimeError, duckdb.Error)):
            service.ensure_derived(store, config)
        assert len(slices) == (3 if failure == "a later slice" else 1)
        _tables_equal(store, before)
