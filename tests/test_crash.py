"""Crash safety of ingestion (SPEC 2.4): `convoscope ingest`, killed with SIGKILL at random moments,
never leaves half a chunk or a store that does not open, and running it again finishes the job with
the stored events, derived tables and rejects of an uninterrupted run.

The brand is a generated one of about 105,000 events with malformed records (rejects), dealt line by
line into ten files of one folder, so that every file touches most customers and one ingest commits
ten times (each file is one chunk) before it derives; the last file repeats some events of the first
(duplicates) and changes others (conflicts). The kills hit one store in sequence: a run is killed
after a random delay within the uninterrupted run's duration, a copy of what the kill left is
checked, and every other run starts on the store as the kill left it (the others, and any after a
kill that left every file stored, start empty). A run that finishes before its kill must equal the
uninterrupted run, and so must the run after the last kill.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from convoscope import service
from convoscope.config import Config
from convoscope.store import DERIVED_TABLES, Store, sql_string, stored

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "convoscope.cli"]
FILES = 10
KILLS = 20
CUSTOMERS = 5000  # about 105,000 events: the test stays near two minutes on two idle cores
# Columns that say when something happened to run, not what it found.
WHEN = ("ingested_at", "rejected_at", "seen_at")
RECORD_TABLES = ("events", "rejects", "duplicates")


@dataclass
class Brand:
    folder: Path
    config: Path
    reference: Path  # the store of one uninterrupted ingest
    seconds: float  # how long that ingest took, start of the interpreter to exit
    sources: list[str]  # in the order the ingest reads them
    per_source: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> source -> rows


def _ingest(db: Path, brand_folder: Path, config: Path, out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as log:
        return subprocess.Popen([*CLI, "--db", str(db), "--config", str(config), "ingest", str(brand_folder)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def _deal(log: Path, folder: Path) -> None:
    """The generated lines dealt round-robin into FILES files; the last adds duplicates and conflicts
    of events of the first."""
    lines = log.read_bytes().splitlines(keepends=True)
    parts = [lines[i::FILES] for i in range(FILES)]
    valid = []
    for line in parts[0]:
        try:
            valid.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    valid = [event for event in valid if isinstance(event, dict) and event.get("text")]
    repeated, changed = valid[:300], valid[300:400]
    parts[-1] += [(json.dumps(event) + "\n").encode() for event in repeated]
    parts[-1] += [(json.dumps(event | {"text": "changed after the fact"}) + "\n").encode() for event in changed]
    for i, part in enumerate(parts):
        (folder / f"part-{i:02}.jsonl").write_bytes(b"".join(part))


@pytest.fixture(scope="module")
def brand(tmp_path_factory: pytest.TempPathFactory) -> Brand:
    root = tmp_path_factory.mktemp("crash")
    log = root / "brand.jsonl"
    subprocess.run([*CLI, "generate", "--customers", str(CUSTOMERS), "--days", "30", "--seed", "23", "--bad-rate", "0.001",
                    "--out", str(log)], check=True, capture_output=True)
    folder = root / "events"
    folder.mkdir()
    _deal(log, folder)
    config = root / "empty.toml"
    config.write_text("")
    reference = root / "reference.duckdb"
    started = time.monotonic()
    done = _ingest(reference, folder, config, root / "reference.log")
    assert done.wait(timeout=1800) == 3, (root / "reference.log").read_text()  # 3: some records were rejected
    seconds = time.monotonic() - started
    sources = sorted(str(p.resolve()) for p in folder.iterdir())
    result = Brand(folder, config, reference, seconds, sources)
    con = duckdb.connect(str(reference), read_only=True)
    for table in RECORD_TABLES:
        result.per_source[table] = dict(con.execute(f"SELECT source, count(*) FROM {table} GROUP BY source").fetchall())
    con.close()
    assert all(result.per_source["events"].get(s) for s in sources)
    assert result.per_source["rejects"] and result.per_source["duplicates"]
    return result


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> str:
    return ", ".join(name for name, *_ in con.execute(f"DESCRIBE {table}").fetchall() if name not in WHEN)


def _differences(con: duckdb.DuckDBPyConnection, mine: str, theirs: str) -> tuple[int, int]:
    """Rows only in `mine`, rows only in `theirs` (two queries of the same columns), as multisets.
    Rows are compared by a 64-bit hash of the whole row, ten times faster than by their values."""
    mine, theirs = (f"SELECT hash(t) FROM ({query}) t" for query in (mine, theirs))
    only_mine = con.execute(f"SELECT count(*) FROM ({mine} EXCEPT ALL {theirs})").fetchall()[0][0]
    only_theirs = con.execute(f"SELECT count(*) FROM ({theirs} EXCEPT ALL {mine})").fetchall()[0][0]
    return int(only_mine), int(only_theirs)


def _assert_derived_equal(a: Path, b: Path, what: str) -> None:
    con = duckdb.connect()
    con.execute(f"ATTACH {sql_string(str(a))} AS a (READ_ONLY)")
    con.execute(f"ATTACH {sql_string(str(b))} AS b (READ_ONLY)")
    for table in (*map(stored, DERIVED_TABLES), "derived_settings"):  # as stored: keys compared too
        columns = _columns(con, f"a.{table}")
        found = _differences(con, f"SELECT {columns} FROM a.{table}", f"SELECT {columns} FROM b.{table}")
        assert found == (0, 0), f"{what}: {table} has {found[0]} rows only in {a.name}, {found[1]} only in {b.name}"
    con.close()


def _assert_equals_reference(db: Path, brand: Brand, what: str) -> None:
    """The store holds what the uninterrupted ingest stored, derived, rejected and counted as duplicate."""
    con = duckdb.connect()
    con.execute(f"ATTACH {sql_string(str(db))} AS s (READ_ONLY)")
    con.execute(f"ATTACH {sql_string(str(brand.reference))} AS r (READ_ONLY)")
    for table in RECORD_TABLES:
        columns = _columns(con, f"s.{table}")
        found = _differences(con, f"SELECT {columns} FROM s.{table}", f"SELECT {columns} FROM r.{table}")
        assert found == (0, 0), f"{what}: {table} has {found[0]} rows only here, {found[1]} only in the reference"
    assert con.execute("SELECT count(*) FROM s.pending").fetchall()[0][0] == 0, what
    con.close()
    _assert_derived_equal(db, brand.reference, what)


class Checker:
    """What a kill may leave: checked on a copy, so that the next run meets the store as the kill left it."""

    def __init__(self, brand: Brand, folder: Path) -> None:
        self.brand = brand
        self.folder = folder
        # Derived tables of a full derive of the events of the first k files, by k.
        self.full: dict[int, Path] = {len(brand.sources): brand.reference}

    def __call__(self, db: Path, what: str) -> int:
        """Check the store at `db`; returns how many files it holds."""
        copy = self.folder / "copy.duckdb"
        for path in (copy, copy.with_name(copy.name + ".wal")):
            path.unlink(missing_ok=True)
        if db.exists():
            shutil.copy(db, copy)
            wal = db.with_name(db.name + ".wal")
            if wal.exists():
                shutil.copy(wal, copy.with_name(copy.name + ".wal"))
        Store(copy).close()  # it opens, replaying what the write-ahead log holds
        files = self._whole_files(copy, what)
        config = Config()
        with Store(copy) as store:
            service.ensure_derived(store, config)  # what the next command would do first
            assert store.count("pending") == 0
        known = self.full.get(files)
        if known is None:  # a full derive of the same events is the expected result
            known = self.folder / f"full-{files}.duckdb"
            shutil.copy(copy, known)
            with Store(known) as store:
                service.derive(store, config)
            self.full[files] = known
        _assert_derived_equal(copy, known, f"{what}, {files} files stored, pending derived vs a full derive")
        return files

    def _whole_files(self, copy: Path, what: str) -> int:
        """Every file is stored whole or not at all, in the order the ingest reads them; `pending` holds
        only customers that have events."""
        brand = self.brand
        con = duckdb.connect()
        con.execute(f"ATTACH {sql_string(str(copy))} AS s (READ_ONLY)")
        con.execute(f"ATTACH {sql_string(str(brand.reference))} AS r (READ_ONLY)")
        found = {table: dict(con.execute(f"SELECT source, count(*) FROM s.{table} GROUP BY source").fetchall())
                 for table in RECORD_TABLES}
        assert set(found["events"]) <= set(brand.sources), f"{what}: events of unknown sources"
        whole: list[bool] = []
        for source in brand.sources:
            counts = {}
            for table in RECORD_TABLES:
                n, expected = found[table].get(source, 0), brand.per_source[table].get(source, 0)
                assert n in (0, expected), f"{what}: {n} of {expected} {table} rows of {Path(source).name}"
                counts[table] = n == expected
            stored = counts["events"]
            assert all(v == stored for t, v in counts.items() if brand.per_source[t].get(source)), \
                f"{what}: {Path(source).name} stored in part: {counts}"
            whole.append(stored)
        files = sum(whole)
        assert whole == [True] * files + [False] * (len(whole) - files), f"{what}: files stored out of order: {whole}"
        listed = ", ".join(sql_string(s) for s in brand.sources[:files]) or "NULL"
        for table in RECORD_TABLES:
            columns = _columns(con, f"s.{table}")
            differ = _differences(con, f"SELECT {columns} FROM s.{table}",
                                  f"SELECT {columns} FROM r.{table} WHERE source IN ({listed})")
            assert differ == (0, 0), f"{what}: {table} differs from the first {files} files: {differ}"
        strays = con.execute("""
            SELECT count(*) FROM (SELECT brand, customer_id FROM s.pending
                                  EXCEPT ALL SELECT DISTINCT brand, customer_id FROM s.events)
        """).fetchall()[0][0]
        assert strays == 0, f"{what}: pending names customers without events (or twice)"
        con.close()
        return files


def _forget(db: Path) -> None:
    for path in (db, db.with_name(db.name + ".wal")):
        path.unlink(missing_ok=True)


def test_kill_at_random_moments_then_ingest_again(brand: Brand, tmp_path: Path) -> None:
    rng = random.Random(20260521)
    check = Checker(brand, tmp_path)
    db = tmp_path / "store.duckdb"
    kills: list[int] = []  # how many files each kill left stored
    finished = 0
    run = 0
    checking = 0.0
    while len(kills) < KILLS:
        # Every other run starts empty, so that kills fall all over an ingest; the others meet the
        # store as the last kill left it, unless that kill left nothing to store.
        if len(kills) % 2 == 0 or kills[-1] == len(brand.sources):
            _forget(db)
        run += 1
        delay = rng.uniform(0, brand.seconds)
        log = tmp_path / f"run-{run}.log"
        process = _ingest(db, brand.folder, brand.config, log)
        try:
            code = process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            t1 = time.monotonic()
            kills.append(check(db, f"run {run} killed after {delay:.2f} s"))
            checking += time.monotonic() - t1
            continue
        finally:
            if process.poll() is None:  # the test itself failed: leave no ingest behind
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        # It finished before its kill: the job is done, exactly as the uninterrupted run did it.
        assert code == 3, log.read_text()
        _assert_equals_reference(db, brand, f"run {run}, finished before its kill")
        finished += 1
        _forget(db)
    final = _ingest(db, brand.folder, brand.config, tmp_path / "final.log")
    try:
        assert final.wait(timeout=max(600, 30 * brand.seconds)) == 3, (tmp_path / "final.log").read_text()
    finally:
        if final.poll() is None:
            os.kill(final.pid, signal.SIGKILL)
            final.wait()
    _assert_equals_reference(db, brand, "the run after the last kill")
    # The kills landed between commits too, not only before the first or after the last.
    between = sum(0 < files < len(brand.sources) for files in kills)
    assert between >= 3, f"only {between} of the kills fell between two commits: {kills}"
    print(f"uninterrupted ingest {brand.seconds:.1f} s; files stored at each kill {kills}; "
          f"{finished} runs finished before their kill; checks took {checking:.0f} s")


def test_a_killed_full_derive_leaves_the_old_tables_or_the_new(brand: Brand, tmp_path: Path) -> None:
    """`convoscope derive` after a settings change, killed at random moments: a rebuild that fits in
    one partition is one transaction, so the store holds the tables and settings of before or of
    after, never a mix, and no customer is left pending."""
    changed = tmp_path / "changed.toml"
    changed.write_text('session_inactivity = "30m"\n')

    def rebuild(db: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*CLI, "--db", str(db), "--config", str(changed), "derive"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    after = tmp_path / "after.duckdb"
    shutil.copyfile(brand.reference, after)
    started = time.monotonic()
    assert rebuild(after).wait(timeout=600) == 0
    seconds = time.monotonic() - started
    settings = {}
    for name, db in (("before", brand.reference), ("after", after)):
        with duckdb.connect(str(db), read_only=True) as con:
            settings[name] = con.execute("SELECT * FROM derived_settings ORDER BY brand").fetchall()
    assert settings["before"] != settings["after"]

    rng = random.Random(20261122)
    seen = set()
    for run in range(6):
        db = tmp_path / f"killed-{run}.duckdb"
        shutil.copyfile(brand.reference, db)
        process = rebuild(db)
        try:
            process.wait(timeout=rng.uniform(0.3, 1.0) * seconds)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        with duckdb.connect(str(db), read_only=True) as con:
            found = con.execute("SELECT * FROM derived_settings ORDER BY brand").fetchall()
            assert con.execute("SELECT count(*) FROM pending").fetchall()[0][0] == 0
        state = "after" if found == settings["after"] else "before"
        assert found == settings[state], f"run {run}: settings of neither before nor after: {found}"
        _assert_derived_equal(db, after if state == "after" else brand.reference, f"run {run}, {state}")
        seen.add(state)
        _forget(db)
    assert "before" in seen, "no kill landed before the rebuild committed"
