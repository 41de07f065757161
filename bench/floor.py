"""Benchmark: ingest and derive against the floor of the engine underneath (issue 30 points 3 and 4).

For each size, in one run on the same files:

- ingest: `convoscope ingest --no-derive` of the JSON Lines file and of the Parquet file into a new store,
  each against DuckDB's own reader of the same file into a table of a new database (`CREATE TABLE AS
  SELECT * FROM read_json(...)`, `read_parquet(...)`), every one its own process;
- derive: `convoscope derive` (every customer) against its floor: a bare DuckDB sort of the same events
  by (brand, customer_id, occurred_at) into a table, plus inserting the derived tables, already built as
  Arrow, into an empty store in one transaction;
- where a derive's time goes: the same derive once more in this process, its engine's steps timed, and
  the rows and bytes of each table it writes.

    .venv/bin/python bench/floor.py --events 3000000 10000000
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow.parquet as pq

from convoscope.config import Config
from convoscope.derive import assemble as A
from convoscope.derive import duckdb_engine as engine
from convoscope.events import readers, schema
from convoscope.service import events as events_service
from convoscope.store import DERIVED_TABLES, Store, stored
from run import OUT, event_files, fresh, run, tag

T = TypeVar("T")

READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("SET enable_progress_bar = false")
con.execute("SET preserve_insertion_order = false")
con.execute(f"CREATE TABLE events AS SELECT * FROM {sys.argv[2]}(?)", [sys.argv[3]])
"""

# The events sorted, every column (sys.argv[2] "*"), or only the order found (the row ids in it: "rowid").
SORT = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SET enable_progress_bar = false")
con.execute(f"CREATE TEMP TABLE sorted AS SELECT {sys.argv[2]} FROM events ORDER BY brand, customer_id, occurred_at")
"""


def apart(work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` in a new Python process: this one stays small, and a child's peak memory as the kernel
    reports it counts the parent's peak before the child's program starts (`exec` keeps the larger)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(work, *args).result()


def timed_process(args: list[str]) -> tuple[float, float]:
    """Run a Python process; returns (seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{args} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return seconds, usage.ru_maxrss / 1024


class Stages:
    """Wall time of the derive's steps on the thread that runs it, by wrapping the engine's functions:
    the steps run one after the other there, so their times and the rest add up to the whole."""

    def __init__(self) -> None:
        self.seconds: collections.Counter[str] = collections.Counter()

    def wrap(self, owner: Any, name: str, stage: str) -> Callable[[], None]:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, original)

    def wrap_generator(self, owner: Any, name: str, stage: str) -> Callable[[], None]:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            produced = original(*args, **kwargs)
            while True:
                start = time.perf_counter()
                try:
                    item = next(produced)
                except StopIteration:
                    return
                finally:
                    self.seconds[stage] += time.perf_counter() - start
                yield item

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, original)


def time_commits(store: Store, seconds: collections.Counter[str]) -> None:
    """Add the time each of `store`'s transactions takes to commit to `seconds["commit"]`."""
    transaction = store.transaction

    @contextlib.contextmanager
    def committed() -> Iterator[Any]:
        with transaction() as con:
            yield con
            before = time.perf_counter()
        seconds["commit"] += time.perf_counter() - before

    store.transaction = committed  # type: ignore[method-assign]


def derive_stages(db: Path) -> tuple[float, dict[str, float]]:
    """Derive every customer of `db` in this process, timing the engine's steps."""
    stages = Stages()
    undo = [
        stages.wrap(engine, "_sorted_events", "sort the events, read their strings"),
        stages.wrap(A, "kernel_input", "kernel input"),
        stages.wrap(engine, "run_kernel", "kernel (sessions, contacts, conversations)"),
        stages.wrap_generator(A, "assemble", "assemble the tables (Arrow)"),
        stages.wrap_generator(engine, "_gathered", "_gathered"),
        stages.wrap(engine, "_insert_while_assembling", "_inserting"),
    ]
    try:
        with Store(db) as store:
            time_commits(store, stages.seconds)
            start = time.perf_counter()
            engine.derive(store, Config(), full=True)
            total = time.perf_counter() - start
    finally:
        for restore in undo:
            restore()
    s = stages.seconds
    inner = ("kernel input", "kernel (sessions, contacts, conversations)", "assemble the tables (Arrow)")
    s["slice and gather (Arrow)"] = s.pop("_gathered") - sum(s[k] for k in inner)
    s["wait for the inserts (writer thread)"] = s.pop("_inserting") - sum(s[k] for k in (*inner, "slice and gather (Arrow)"))
    s["the rest (clear old rows, settings, counts)"] = total - sum(s.values())
    return total, dict(s)


class TimedConnection:
    """A connection whose statements are timed by what they make: `merge_stage` given this instead of its
    own connection shows where an ingest's storing goes. Everything else passes through."""

    def __init__(self, con: Any, seconds: collections.Counter[str]) -> None:
        self._con, self._seconds = con, seconds

    def execute(self, sql: str, *args: Any) -> Any:
        if re.search(r"TEMP TABLE _checked\b", sql):
            what = "validate by SPEC 2's rules (_checked)"
        elif re.search(r"INSERT INTO events\b", sql):
            what = "insert into events"
        else:
            what = "the other statements (repeats, stored ids, rejects, pending)"
        start = time.perf_counter()
        try:
            return self._con.execute(sql, *args)
        finally:
            self._seconds[what] += time.perf_counter() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def ingest_stages(path: Path, db: Path) -> tuple[float, dict[str, float]]:
    """Ingest `path` into the new store `db` in this process (storing only), timing `merge_stage`'s statements,
    the commits, and the rest: reading and staging the chunks, as long as the storing waits for them."""
    seconds: collections.Counter[str] = collections.Counter()
    merge = events_service.merge_stage

    def timed_merge(con: Any, **kwargs: Any) -> Any:
        return merge(TimedConnection(con, seconds), **kwargs)

    events_service.merge_stage = timed_merge  # type: ignore[assignment]
    try:
        with Store(fresh(db)) as store:
            time_commits(store, seconds)
            start = time.perf_counter()
            events_service.ingest(store, Config(), [str(path)], derive=False)
            total = time.perf_counter() - start
    finally:
        events_service.merge_stage = merge  # type: ignore[assignment]
    seconds["read and stage the chunks (waited for)"] = total - sum(seconds.values())
    return total, dict(seconds)


def rules_cost(parquet: Path) -> dict[str, float]:
    """What SPEC 2's rules cost within the validating query: the Parquet file staged whole in memory, the
    query materialised as ingest does (`_checked`), with every rule and with none but the reader's own
    problems; best of two each."""
    con = Store.scratch().con
    events = pq.read_table(parquet)
    readers.stage_arrow(con, str(parquet), events, np.arange(1, events.num_rows + 1))
    every = schema.checks
    seconds = {}
    try:
        for label, kept in (("with every rule", every), ("with none", lambda made: every(made)[:1])):
            schema.checks = kept  # type: ignore[assignment]
            sql = f"CREATE OR REPLACE TEMP TABLE _checked AS {schema.validation_sql(None)}"
            best = float("inf")
            for _ in range(2):
                start = time.perf_counter()
                con.execute(sql)
                best = min(best, time.perf_counter() - start)
            seconds[label] = best
    finally:
        schema.checks = every  # type: ignore[assignment]
        con.close()
    return seconds


def insert_floor(db: Path, empty: Path) -> tuple[float, list[dict[str, Any]]]:
    """Insert the derived tables of `db`, read into Arrow first, into the empty store `empty` in one
    transaction; returns the seconds and each table's rows and Arrow bytes."""
    with Store(db, read_only=True) as store:
        tables = {t: store.con.sql(f"SELECT * FROM {stored(t)}").to_arrow_table() for t in DERIVED_TABLES}
    sizes = [{"table": t, "rows": a.num_rows, "arrow_bytes": a.nbytes} for t, a in tables.items()]
    with Store(fresh(empty)) as target:
        start = time.perf_counter()
        with target.transaction() as con:
            for t, arrow in tables.items():
                con.register("_derived", arrow)
                con.execute(f"INSERT INTO {stored(t)} SELECT * FROM _derived")
                con.unregister("_derived")
        seconds = time.perf_counter() - start
    del tables
    return seconds, sizes


def bench(target: int) -> list[dict[str, Any]]:
    files = event_files(target)
    jsonl, parquet = files["jsonl"], files["parquet"]
    name = tag(target)
    rows: list[dict[str, Any]] = []

    def row(stage: str, seconds: float, rss: float | None = None) -> None:
        rows.append({"events": target, "stage": stage, "seconds": round(seconds, 2),
                     **({"peak_rss_mib": round(rss)} if rss is not None else {})})
        shown = f"{rss:>8,.0f} MiB" if rss is not None else ""
        print(f"{name:>5}  {stage:<66} {seconds:>8.2f} s  {shown}", flush=True)

    def ratio(stage: str, value: float) -> None:
        rows.append({"events": target, "stage": stage, "ratio": round(value, 2)})
        print(f"{name:>5}    {stage:<64} {value:>8.2f} ×", flush=True)

    store, scratch = OUT / f"floor-{name}.duckdb", OUT / f"floor-{name}-scratch.duckdb"
    for label, source, reader in (("JSON Lines", jsonl, "read_json"), ("Parquet", parquet, "read_parquet")):
        ours, ours_rss = run(["--db", str(fresh(store)), "ingest", "--no-derive", str(source)])
        theirs, theirs_rss = timed_process(["-c", READER, str(fresh(scratch)), reader, str(source)])
        row(f"ingest {label}", ours, ours_rss)
        row(f"DuckDB {reader} into a table", theirs, theirs_rss)
        ratio(f"ingest {label} / reader (goal <= 2)", ours / theirs)
    for label, source in (("JSON Lines", jsonl), ("Parquet", parquet)):
        total, stages = apart(ingest_stages, source, scratch)
        row(f"ingest {label} in this process, its steps timed", total)
        for stage, seconds in sorted(stages.items(), key=lambda item: -item[1]):
            print(f"{name:>5}    {stage:<64} {seconds:>8.2f} s {100 * seconds / total:>5.1f} %", flush=True)
        rows.append({"events": target, "stage": f"ingest {label} steps", "total": round(total, 2),
                     "steps": {k: round(v, 2) for k, v in stages.items()}})
    rules = apart(rules_cost, parquet)
    for label, seconds in rules.items():
        row(f"validating query over the Parquet file in memory, {label}", seconds)
    events = Store(store, read_only=True)
    count = events.count("events")
    events.close()
    print(f"{name:>5}  {count:,} events stored", flush=True)

    derive, derive_rss = run(["--db", str(store), "derive"])
    row("derive (every customer)", derive, derive_rss)
    sort, sort_rss = timed_process(["-c", SORT, str(store), "*"])
    row("bare DuckDB sort by (brand, customer, time), every column", sort, sort_rss)
    order, order_rss = timed_process(["-c", SORT, str(store), "rowid"])
    row("the same sort, keeping only the order (row ids)", order, order_rss)
    insert, sizes = apart(insert_floor, store, scratch)
    row("insert the derived tables, as Arrow, into an empty store", insert)
    ratio("derive / (sort + insert) (goal <= 1.5)", derive / (sort + insert))
    ratio("derive / sort (goal <= 2)", derive / sort)
    ratio("derive / (order only + insert)", derive / (order + insert))
    ratio("derive / order only", derive / order)
    for size in sizes:
        print(f"{name:>5}    {size['table']:<22} {size['rows']:>12,} rows {size['arrow_bytes'] / 2**20:>10,.0f} MiB as Arrow",
              flush=True)
    rows.append({"events": target, "stage": "derived tables", "tables": sizes})

    total, stages = apart(derive_stages, store)
    row("derive in this process, its steps timed", total)
    for stage, seconds in sorted(stages.items(), key=lambda item: -item[1]):
        print(f"{name:>5}    {stage:<64} {seconds:>8.2f} s {100 * seconds / total:>5.1f} %", flush=True)
    rows.append({"events": target, "stage": "derive steps", "total": round(total, 2),
                 "steps": {k: round(v, 2) for k, v in stages.items()}})
    fresh(scratch)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    results = []
    for target in args.events:
        results += bench(target)
    (OUT / "floor.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
