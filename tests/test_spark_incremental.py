"""`spark-derive` again on the same lake (issue 31 point 3): the new files alone are read, only the buckets of
the customers whose events changed are rewritten, and the lake is the one a full derive would write.

A generated brand arrives in two files in one folder: a month, then corrections — repeated events
(duplicates), changed ones (conflicts), late events of a few customers, a new customer, and the event of a
record the month had rejected. The lake derived from the month and brought up to date with the corrections
gives every report byte for byte as the embedded engine given the same files (as a full derive does); its untouched buckets'
files are the very files written before. Anything the increment cannot follow is a full derive, said in one
line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from convoscope import reports, service
from convoscope.config import Config, load_config
from convoscope.derive import spark_engine, spark_lake
from convoscope.store import DERIVED_TABLES, LAKE_TABLES, Store
from test_spark import AS_OF, CLI, CONFIG, _differences

pytestmark = pytest.mark.slow

LATE = 6  # customers with late events in the corrections
BUCKETS = 16  # the lakes' number: not the default, which a lake keeps once written; fewer tasks than 64


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = tmp_path_factory.mktemp("config") / "convoscope.toml"
    path.write_text(CONFIG)
    return load_config(path)


def _generate(path: Path, customers: int, days: int, seed: int) -> pa.Table:
    subprocess.run([*CLI, "generate", "--customers", str(customers), "--days", str(days), "--seed", str(seed),
                    "--bad-rate", "0.002", "--out", str(path)], check=True, capture_output=True)
    return pq.read_table(path)


def _with_column(table: pa.Table, name: str, values: list[str | None]) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, pa.array(values, table.schema.field(name).type))


@pytest.fixture(scope="module")
def brand(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The month (`a-month.parquet`, which a record without its channel is rejected from) and its
    corrections (`b-corrections.parquet`), in one folder."""
    folder = tmp_path_factory.mktemp("incremental-brand")
    month = _generate(folder / "a-month.parquet", 500, 14, 11)
    valid = month.filter(pc.and_(pc.is_valid(month.column("event_id")), pc.equal(month.column("type"),
                                                                                  "customer_message")))
    rng = np.random.default_rng(11)
    picked = valid.take(rng.choice(valid.num_rows, 40, replace=False))
    fixed = _with_column(picked.slice(0, 1), "event_id", ["rr-fixed"])
    pq.write_table(pa.concat_tables([month, _with_column(fixed, "channel", [None])]), folder / "a-month.parquet")
    repeated, changed = picked.slice(1, 20), _with_column(picked.slice(21, 10), "text", ["changed"] * 10)
    customers = valid.column("customer_id").unique().to_pylist()[:LATE]
    late = pa.concat_tables([valid.filter(pc.equal(valid.column("customer_id"), c)).slice(0, 1) for c in customers])
    late = _with_column(late, "event_id", [f"late-{i}" for i in range(LATE)])
    late = _with_column(late, "occurred_at", ["2026-07-20T10:00:00Z"] * LATE)
    newcomer = _with_column(_with_column(late.slice(0, 1), "customer_id", ["newcomer"]), "event_id", ["new-1"])
    corrections = pa.concat_tables([repeated, changed, late, newcomer, fixed])
    events = folder / "events"
    events.mkdir()
    shutil.move(folder / "a-month.parquet", events / "a-month.parquet")
    pq.write_table(corrections, folder / "b-corrections.parquet")
    return events, folder / "b-corrections.parquet"


def _files(lake: Path) -> dict[str, tuple[int, int]]:
    """Every file of the lake with its inode and modification time."""
    return {str(f.relative_to(lake)): (f.stat().st_ino, f.stat().st_mtime_ns) for f in lake.rglob("*") if f.is_file()}


def _buckets(spark: object, customers: list[str]) -> set[int]:
    frame = spark.createDataFrame([("default", c) for c in customers], "brand string, customer_id string")  # type: ignore[attr-defined]
    return {row[0] for row in frame.select(spark_engine.bucket_column(BUCKETS)).collect()}


@pytest.fixture(scope="module")
def lakes(spark: object, brand: tuple[Path, Path], config: Config, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, object]:
    """The lake derived from the month, brought up to date once the corrections arrived (as `spark-derive`
    does; the command line's own run is test_spark.py's); the files of the lake before and after; the embedded store of both. (A full derive of both gives
    the store's tables and reports too: test_spark.py.)"""
    events, corrections = brand
    root = tmp_path_factory.mktemp("incremental")
    incremental = root / "incremental"
    first = spark_lake.derive(spark, [str(events)], str(incremental), config, buckets=BUCKETS)  # type: ignore[arg-type]
    before = _files(incremental)
    shutil.copy(corrections, events / corrections.name)
    increment = spark_lake.derive(spark, [str(events)], str(incremental), config)  # type: ignore[arg-type]
    store_path = root / "store.duckdb"
    with Store(store_path) as store:  # as a store would take them: the month, then the corrections
        service.ingest(store, config, [str(events / "a-month.parquet")])
        service.ingest(store, config, [str(events / corrections.name)])
    return {"first": first.how, "increment": increment, "before": before, "after": _files(incremental),
            "incremental": incremental, "store": store_path}


def test_the_increment_says_what_it_did_in_one_line(lakes: dict[str, object]) -> None:
    assert lakes["first"] == f"full derive: {lakes['incremental']} holds no lake with a manifest yet"
    increment = lakes["increment"]
    assert isinstance(increment, spark_lake.Outcome)
    assert increment.how.startswith("incremental: 1 new file; ") and increment.how.endswith(
        f" of {BUCKETS} buckets derived again"), increment.how
    assert increment.result.rejected > 0  # the month's bad records remain rejected: the command exits 3


@pytest.mark.parametrize("table", LAKE_TABLES)
def test_the_incremental_lake_holds_the_embedded_engines_tables(lakes: dict[str, object], table: str) -> None:
    _count, only_store, only_lake = _differences(lakes["incremental"], lakes["store"], table)  # type: ignore[arg-type]
    assert (only_store, only_lake) == (0, 0), f"{table}: {only_store} rows only in the store, {only_lake} only in the lake"


def test_the_increment_kept_what_the_corrections_bring(lakes: dict[str, object]) -> None:
    with Store.lake(lakes["incremental"]) as lake:  # type: ignore[arg-type]
        kinds = dict(lake.con.execute("SELECT kind, count(*) FROM rejects GROUP BY 1").fetchall())
        fixed = lake.con.execute("SELECT resolved FROM rejects WHERE event_id = 'rr-fixed'").fetchall()
        duplicates = lake.con.execute("SELECT count(*) FROM duplicates").fetchall()[0][0]
        late = lake.con.execute("SELECT count(*) FROM sessions WHERE created_at >= '2026-07-20'").fetchall()[0][0]
    assert kinds["conflict"] == 10 and fixed == [(True,)] and duplicates == 20 and late >= LATE


@pytest.mark.parametrize("name", [name for name, report in reports.REPORTS.items() if report.in_lakes])
def test_every_report_of_the_incremental_lake_is_byte_identical(
    lakes: dict[str, object], config: Config, name: str, tmp_path: Path
) -> None:
    definition = reports.get_report(name)
    written = []
    for label, store in (("incremental", Store.lake(lakes["incremental"])),  # type: ignore[arg-type]
                         ("store", Store(lakes["store"]))):  # type: ignore[arg-type]
        with store:
            params = reports.build_params(definition, config, store.brands(), as_of=AS_OF, tz="Europe/Berlin",
                                          extra=bool(definition.extra_columns))
            service.write_report(store, config, definition, params, tmp_path / f"{label}.csv")
        written.append((tmp_path / f"{label}.csv").read_bytes())
    assert written[0].count(b"\n") > 1
    assert written[0] == written[1]


def test_report_lake_on_the_command_line_reads_the_bucketed_lake(lakes: dict[str, object], tmp_path: Path) -> None:
    (tmp_path / "convoscope.toml").write_text(CONFIG)
    run = lambda *args: subprocess.run([*CLI, *args], cwd=tmp_path, capture_output=True)  # noqa: E731
    from_lake = run("report", "sessions-detail", "--as-of", AS_OF, "--lake", str(lakes["incremental"]))
    from_store = run("--db", str(lakes["store"]), "report", "sessions-detail", "--as-of", AS_OF)
    assert from_lake.returncode == 0, from_lake.stderr
    assert from_lake.stdout == from_store.stdout and from_lake.stdout.count(b"\n") > 200


def test_only_the_changed_customers_buckets_are_rewritten(spark: object, brand: tuple[Path, Path],
                                                          lakes: dict[str, object]) -> None:
    corrections = pq.read_table(brand[1])
    stored = [c for c, e in zip(corrections.column("customer_id").to_pylist(), corrections.column("event_id").to_pylist(),
                                strict=True) if e.startswith(("late-", "new-", "rr-"))]
    expected = {f"bucket={b}" for b in _buckets(spark, stored)}
    before, after = lakes["before"], lakes["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    for table in ("events", *DERIVED_TABLES):
        rewritten = {name.split("/")[1] for name, status in after.items()
                     if name.startswith(f"{table}/bucket=") and before.get(name) != status}
        kept = {name.split("/")[1] for name, status in after.items()
                if name.startswith(f"{table}/bucket=") and before.get(name) == status}
        assert rewritten <= expected, table
        assert not kept & expected, f"{table}: a changed customer's bucket kept its old files"
        if table in ("events", "sessions"):
            assert rewritten == expected and len(kept) >= BUCKETS - len(expected) - 1, table
    assert 2 <= len(expected) <= LATE + 2  # a few of the buckets
    gone = [name for name in before if name.split("/")[0] in ("events", *DERIVED_TABLES) and len(name.split("/")) > 2
            and name.split("/")[1] in expected and name in after]
    assert gone == []  # the touched buckets' old files are gone, not kept beside the new ones


# --- fallbacks and crashes, on a small brand of their own -------------------------------------------

def _store_of(paths: list[Path], config: Config, where: Path) -> Path:
    with Store(where) as store:
        service.ingest(store, config, [str(p) for p in paths])
    return where


def _same_as_store(lake: Path, store: Path) -> None:
    for table in LAKE_TABLES:
        _count, only_store, only_lake = _differences(lake, store, table)
        assert (only_store, only_lake) == (0, 0), table


def test_crashes_and_what_an_increment_cannot_follow(spark: object, config: Config, tmp_path: Path) -> None:
    """A run stopped while staging leaves `_staging`, dropped; one stopped after committing leaves `_commit`,
    finished by the next run. A file removed, an earlier new file, other settings, another --assume-tz or
    another number of buckets mean a full derive, each said in one line; a lake keeps its number of buckets."""
    small, lake = tmp_path / "events", tmp_path / "lake"
    small.mkdir()
    _generate(small / "a.parquet", 200, 5, 3)
    spark_lake.derive(spark, [str(small)], str(lake), config, buckets=BUCKETS)  # type: ignore[arg-type]
    _generate(small / "b.parquet", 50, 5, 4)  # the same customer and event ids as some of a's: repeats
    junk = lake / spark_lake.STAGING / "events" / "bucket=0"
    junk.mkdir(parents=True)
    shutil.copy(small / "b.parquet", junk / "part-0.parquet")
    files = spark_lake.Files(spark, str(lake))  # type: ignore[arg-type]
    listing = spark_engine.list_inputs(spark, [str(small)])  # type: ignore[arg-type]
    spark_lake.recover(files)
    assert not (lake / spark_lake.STAGING).exists()
    spark_lake._increment(spark, files, listing, [listing.files[-1].uri], config,  # type: ignore[arg-type]
                          BUCKETS, None)  # and no more: stopped before moving it into place
    assert (lake / spark_lake.COMMIT).is_dir()
    junk.mkdir(parents=True)
    shutil.copy(small / "b.parquet", junk / "part-0.parquet")
    outcome = spark_lake.derive(spark, [str(small)], str(lake), config)  # type: ignore[arg-type]
    assert outcome.how == f"nothing new: {lake} holds every file of --events"
    assert [p.name for p in lake.iterdir() if p.name.startswith("_")] == []
    _same_as_store(lake, _store_of([small / "a.parquet", small / "b.parquet"], config, tmp_path / "ab.duckdb"))

    shutil.copy(small / "a.parquet", small / "0-earlier.parquet")
    why = lambda cfg, tz=None, buckets=BUCKETS: spark_lake._why_full(  # noqa: E731
        spark, files, spark_engine.list_inputs(spark, [str(small)]), cfg, buckets, tz,  # type: ignore[arg-type]
        spark_lake.recorded(files))
    assert why(config).startswith(f"file://{small}/0-earlier.parquet is new and comes before file://{small}/a.parquet")
    (small / "0-earlier.parquet").unlink()
    other = tmp_path / "other.toml"
    other.write_text('session_inactivity = "45m"\n')
    assert why(load_config(other)) == f"the derivation settings of brand default changed since {lake} was derived"
    assert why(config, "Europe/Paris") == f"--assume-tz differs from {lake}'s (none)"
    assert why(config, buckets=64) == f"{lake} was written with {BUCKETS} buckets, not 64"
    assert why(config) is None

    (small / "b.parquet").unlink()
    outcome = spark_lake.derive(spark, [str(small)], str(lake), config)  # type: ignore[arg-type]
    assert outcome.how == f"full derive: file://{small}/b.parquet was derived into {lake} and is no longer among --events"
    assert len(list((lake / "events").glob("bucket=*"))) == BUCKETS  # the lake's own number, not the default
    _same_as_store(lake, _store_of([small / "a.parquet"], config, tmp_path / "a.duckdb"))


def test_the_lake_layout_is_one_folder_per_bucket(lakes: dict[str, object]) -> None:
    """As the month's full derive wrote it: a folder per bucket, one file each (one task wrote each bucket)."""
    before = lakes["before"]
    assert isinstance(before, dict)
    for table in ("events", "sessions"):
        files: dict[str, int] = {}
        for name in before:
            parts = name.split("/")
            if parts[0] == table and parts[1].startswith("bucket=") and name.endswith(".parquet"):
                files[parts[1]] = files.get(parts[1], 0) + 1
        assert len(files) == BUCKETS and set(files.values()) == {1}, table
    assert any(name.startswith("rejects/") and name.endswith(".parquet") for name in before)
    assert os.path.isdir(lakes["incremental"] / "manifest")  # type: ignore[operator]
