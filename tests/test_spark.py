"""The Spark engine (SPEC 7): the same events give the same tables, ids included, and the same reports.

One local Spark session serves the module, with few shuffle partitions and small Arrow batches so
that customers keep running across batch boundaries. The brand is a generated one of over 200,000
events in two Parquet files: the second repeats some events (duplicates), changes others (conflicts)
and adds late events for old customers; the generator mixes in malformed records (rejects) and makes the
customers' feedback (docs/outcomes.md). Most events carry an inbox (Appendix B), some a blank or a too long
one, and 4,000 more feedbacks come at the edges the generator does not aim at — at the very instant of
another event, beyond the feedback window, some of them invalid: both are added here, so that what the
generator makes by default stays as other tests pin it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from convoscope import reports, service
from convoscope.config import Config, load_config
from convoscope.derive import spark_engine
from convoscope.errors import ConvoscopeError
from convoscope.store import DERIVED_TABLES, LAKE_TABLES, Store, lake_folder, stored

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "convoscope.cli"]
WHEN = ("arrival", "ingested_at", "rejected_at", "seen_at")  # when it happened to run, not what it found
AS_OF = "2026-07-01T00:00:00Z"
CONFIG = 'session_inactivity = "90m"\n'  # not the default, so a lake remembers what it was made with


@pytest.fixture(scope="module")
def brand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of two Parquet files of one generated brand (see the module's docstring)."""
    folder = tmp_path_factory.mktemp("brand") / "events"
    folder.mkdir()
    first = folder / "a-month.parquet"
    subprocess.run([*CLI, "generate", "--customers", "10000", "--days", "30", "--seed", "7", "--bad-rate", "0.001",
                    "--out", str(first)], check=True, capture_output=True)
    month = with_feedback(with_inboxes(pq.read_table(first)))
    pq.write_table(month, first)
    valid = month.filter(pc.is_valid(month.column("event_id")))
    rng = np.random.default_rng(7)
    picked = valid.take(rng.choice(valid.num_rows, 750, replace=False))
    repeated, changed, late = picked.slice(0, 400), picked.slice(400, 100), picked.slice(500, 200)
    changed = changed.set_column(changed.schema.get_field_index("text"), "text",
                                 pa.array(["changed after the fact"] * changed.num_rows))
    moved = picked.slice(700, 50)  # conflicts in the inbox alone
    moved = moved.set_column(moved.schema.get_field_index("inbox"), "inbox", pa.array(["moved"] * moved.num_rows))
    late = late.set_column(late.schema.get_field_index("event_id"), "event_id",
                           pc.binary_join_element_wise(late.column("event_id"), "-late", ""))
    occurred = late.schema.get_field_index("occurred_at")
    late_times = pc.add(late.column(occurred).cast(pa.timestamp("us", "UTC")), pa.scalar(3 * 86_400_000_000,
                                                                                          pa.duration("us")))
    late = late.set_column(occurred, "occurred_at", late_times.cast(late.schema.field(occurred).type))
    pq.write_table(pa.concat_tables([repeated, changed, moved, late]), folder / "b-corrections.parquet")
    assert month.num_rows + 750 >= 200_000
    return folder


INBOXES = ["1", "2", "3", "42", "Sales EU", "=support"]


def with_inboxes(events: pa.Table) -> pa.Table:
    """`events` with an inbox on about two thirds of them, whatever their type; a few blank (absent) or
    too long (rejected)."""
    rng = np.random.default_rng(23)
    n = events.num_rows
    values = np.array(INBOXES, dtype=object)[rng.integers(0, len(INBOXES), n)]
    values[rng.random(n) < 0.3] = None
    odd = rng.choice(n, 40, replace=False)
    values[odd[:20]] = " "
    values[odd[20:]] = "i" * 201
    return events.append_column("inbox", pa.array(values.tolist(), pa.string()))


def with_feedback(events: pa.Table) -> pa.Table:
    """`events` with 4,000 more feedback events after events of their customers: at the same instant,
    minutes, hours or days later (so open, ended within F, beyond F), a third with a score, some with text
    or a channel; 40 invalid (no rating, a score of 7, a rating on a message). Scores are written as the
    generated file has them: text, since its malformed records made every column text."""
    from datetime import datetime, timedelta

    rng = np.random.default_rng(29)
    valid = events.filter(pc.is_valid(events.column("customer_id")))
    picked = valid.take(rng.choice(valid.num_rows, 4000, replace=False)).to_pylist()
    after = [0, 60, 1800, 3 * 3600, 20 * 3600, 30 * 3600, 4 * 86400]  # seconds after the picked event
    rows = []
    for i, event in enumerate(picked):
        try:
            when = datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))
        except ValueError:
            continue
        row: dict[str, object] = {name: None for name in events.column_names}
        row |= {"event_id": f"fb-{i}", "type": "feedback", "customer_id": event["customer_id"],
                "brand": event["brand"], "occurred_at": (when + timedelta(seconds=int(rng.choice(after))))
                .strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "rating": "positive" if rng.random() < 0.7 else "negative",
                "score": str(rng.integers(1, 6)) if rng.random() < 0.35 else None}
        if rng.random() < 0.2:
            row["text"] = "=thanks, that helped" if i % 2 else "not what I asked"
        if rng.random() < 0.2:
            row["channel"] = event["channel"]
        if i < 40:  # rejected, each for its own reason
            row |= [{"rating": None}, {"score": "7"}, {"type": "customer_message", "channel": "chat"}][i % 3]
        rows.append(row)
    assert events.schema.field("score").type == pa.string()
    return pa.concat_tables([events, pa.Table.from_pylist(rows, schema=events.schema)])


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = tmp_path_factory.mktemp("config") / "convoscope.toml"
    path.write_text(CONFIG)
    return load_config(path)


@pytest.fixture(scope="module")
def store_path(brand: Path, config: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("embedded") / "store.duckdb"
    with Store(path) as store:
        result = service.ingest(store, config, [str(brand)])
    assert result.counts.duplicate > 350 and result.counts.rejected > 100
    return path


@pytest.fixture(scope="module")
def lake(spark: object, brand: Path, config: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spark") / "lake"
    spark_engine.derive(spark, [str(brand)], str(out), config)
    return out


def _differences(lake: Path, store_path: Path, table: str) -> tuple[int, int, int]:
    """(rows in the store, rows only in the store, rows only in the lake), arrival times left out. Derived
    tables are compared as stored, so their keys (the ids) are compared too."""
    table = stored(table)
    with Store.lake(lake) as over:
        over.con.execute(f"ATTACH '{store_path}' AS embedded (READ_ONLY)")
        columns = ", ".join(name for name, *_ in over.con.execute(f"DESCRIBE {table}").fetchall() if name not in WHEN)
        mine, theirs = f"SELECT {columns} FROM embedded.{table}", f"SELECT {columns} FROM {table}"
        count = over.con.execute(f"SELECT count(*) FROM embedded.{table}").fetchall()[0][0]
        only_store = over.con.execute(f"SELECT count(*) FROM ({mine} EXCEPT ALL {theirs})").fetchall()[0][0]
        only_lake = over.con.execute(f"SELECT count(*) FROM ({theirs} EXCEPT ALL {mine})").fetchall()[0][0]
    return count, only_store, only_lake


@pytest.mark.parametrize("table", LAKE_TABLES)
def test_spark_writes_every_table_exactly_as_the_embedded_engine(lake: Path, store_path: Path, table: str) -> None:
    count, only_store, only_lake = _differences(lake, store_path, table)
    assert count > 0 or table == "anomalies"
    assert (only_store, only_lake) == (0, 0), f"{table}: {only_store} rows only in the store, {only_lake} only in the lake"


def test_the_brand_is_large_and_varied_enough_to_prove_parity(store_path: Path) -> None:
    with duckdb.connect(str(store_path), read_only=True) as con:
        events, customers = con.execute("SELECT count(*), count(DISTINCT customer_id) FROM events").fetchall()[0]
        kinds = dict(con.execute("SELECT kind, count(*) FROM rejects GROUP BY kind").fetchall())
        inboxes = dict(con.execute("SELECT inbox, count(*) FROM events GROUP BY inbox").fetchall())
        types = con.execute("SELECT count(DISTINCT type) FROM events WHERE inbox IS NOT NULL").fetchall()[0][0]
        too_long = con.execute("SELECT count(*) FROM rejects WHERE reason LIKE '%inbox is longer%'").fetchall()[0][0]
        sessions = dict(con.execute("SELECT inbox IS NULL, count(*) FROM sessions GROUP BY 1").fetchall())
    assert events >= 200_000 and customers > 8_000
    assert kinds["conflict"] >= 140 and kinds["rejected"] > 100  # changed records that were valid
    assert set(inboxes) == {None, *INBOXES} and types == 8 and too_long > 0  # the blank ones are absent
    assert sessions[True] > 1000 and sessions[False] > 10_000  # sessions with and without an inbox
    with duckdb.connect(str(store_path), read_only=True) as con:
        feedback = dict(con.execute("SELECT feedback, count(*) FROM sessions GROUP BY 1").fetchall())
        scored = con.execute("SELECT count(*) FROM contacts WHERE feedback_score IS NOT NULL").fetchall()[0][0]
        anomalies = con.execute("SELECT count(*) FROM anomalies WHERE kind = 'feedback_without_interaction'"
                                ).fetchall()[0][0]
        refused = con.execute("SELECT count(*) FROM rejects WHERE reason LIKE '%rating%' OR reason LIKE '%score%'"
                              ).fetchall()[0][0]
    assert feedback["positive"] > 500 and feedback["negative"] > 200 and scored > 20
    assert anomalies > 100 and refused >= 40


def _both_csv(lake: Path, store_path: Path, config: Config, name: str, folder: Path, **options: Any) -> list[bytes]:
    """The report's CSV from the store and from the lake, with --extra where it takes it."""
    definition = reports.get_report(name)
    written = []
    for label, store in (("store", Store(store_path)), ("lake", Store.lake(lake))):
        with store:
            params = reports.build_params(definition, config, store.brands(), date_from="2026-05-01",
                                          date_to="2026-05-31", as_of=AS_OF, extra=bool(definition.extra_columns),
                                          **options)
            service.write_report(store, config, definition, params, folder / f"{label}.csv")
        written.append((folder / f"{label}.csv").read_bytes())
    assert written[0].count(b"\n") > 1
    return written


@pytest.mark.parametrize("name", [name for name, report in reports.REPORTS.items() if report.in_lakes])
def test_every_report_over_the_lake_is_byte_identical_to_the_store(
    lake: Path, store_path: Path, config: Config, name: str, tmp_path: Path
) -> None:
    from_store, from_lake = _both_csv(lake, store_path, config, name, tmp_path, tz="Europe/Berlin")
    assert from_store == from_lake


@pytest.mark.parametrize("name", [name for name, report in reports.REPORTS.items() if "inbox" in report.where])
@pytest.mark.parametrize("inbox", ["3", "=support", ""])  # "=support": guarded in cells, not in the filter
def test_reports_filtered_by_inbox_over_the_lake_are_byte_identical_to_the_store(
    lake: Path, store_path: Path, config: Config, name: str, inbox: str, tmp_path: Path
) -> None:
    from_store, from_lake = _both_csv(lake, store_path, config, name, tmp_path, where=[f"inbox={inbox}"])
    assert from_store == from_lake


def test_report_lake_on_the_command_line(lake: Path, store_path: Path, tmp_path: Path) -> None:
    (tmp_path / "convoscope.toml").write_text(CONFIG)
    window = ["--from", "2026-05-01", "--to", "2026-05-31", "--as-of", AS_OF]
    run = lambda *args: subprocess.run([*CLI, *args], cwd=tmp_path, capture_output=True)  # noqa: E731
    from_lake = run("report", "sessions-detail-with-messages", *window, "--lake", str(lake))
    from_store = run("--db", str(store_path), "report", "sessions-detail-with-messages", *window)
    assert from_lake.returncode == 0, from_lake.stderr
    assert from_lake.stdout == from_store.stdout and from_lake.stdout.count(b"\n") > 10_000


def _event(event_id: str, minute: int, **fields: str) -> dict[str, str]:
    return {"event_id": event_id, "type": "customer_message", "occurred_at": f"2026-05-21T10:{minute:02}:00Z",
            "customer_id": "k1", "channel": "chat", **fields}


def test_awkward_folders_give_the_embedded_engines_tables_and_reports(
    spark: object, config: Config, tmp_path: Path
) -> None:
    """Files that differ in their columns, names that sort differently as paths and as strings, a space
    in a name, names Hadoop hides, an upper-case extension, a file given before the folder, a reject
    fixed by a later file: both engines read the same events in the same arrival order."""
    given = tmp_path / "given"
    (given / "sub").mkdir(parents=True)
    (tmp_path / "first").mkdir()

    def write(path: Path, *events: dict[str, str]) -> None:
        pq.write_table(pa.Table.from_pylist(list(events)), path)

    write(given / "a.parquet", _event("a1", 0), _event("po1", 1, text="from a"))
    write(given / "b.parquet", _event("b1", 2, route="team", text="to the team", order_no="=123"),
          {**_event("b2", 3, agent="ann"), "type": "agent_message"})
    write(given / "sub" / "x.parquet", _event("po2", 4, text="from sub/x"))  # `sub/` sorts before `sub-y` as parts
    write(given / "sub-y.parquet", _event("po2", 4, text="from sub-y"))
    write(given / "sp ace.parquet", _event("s1", 5))
    write(given / "UP.PARQUET", _event("u1", 6))
    write(given / "_hidden.parquet", _event("h1", 7))
    write(given / ".hidden.parquet", _event("h2", 8))
    write(given / "c1.parquet", {k: v for k, v in _event("rr", 9).items() if k != "channel"})  # rejected: no channel ...
    write(given / "c2.parquet", _event("rr", 10))  # ... and fixed by a later file
    write(tmp_path / "first" / "first.parquet", _event("po1", 1, text="from the first argument"))
    arguments = [str(tmp_path / "first" / "first.parquet"), str(given)]

    store_path = tmp_path / "store.duckdb"
    with Store(store_path) as store:
        service.ingest(store, config, arguments)
    lake = tmp_path / "lake"
    spark_engine.derive(spark, arguments, str(lake), config)

    for table in LAKE_TABLES:
        _count, only_store, only_lake = _differences(lake, store_path, table)
        assert (only_store, only_lake) == (0, 0), f"{table}: {only_store} rows only in the store, {only_lake} only in the lake"
    with duckdb.connect(str(store_path), read_only=True) as con:
        texts = dict(con.execute("SELECT event_id, text FROM events WHERE event_id LIKE 'po%'").fetchall())
        ids = {row[0] for row in con.execute("SELECT event_id FROM events").fetchall()}
        resolved = con.execute("SELECT resolved FROM rejects WHERE kind = 'rejected'").fetchall()
    assert texts == {"po1": "from the first argument", "po2": "from sub/x"}
    assert {"s1", "u1", "b1", "b2", "rr"} <= ids and not {"h1", "h2"} & ids
    assert resolved == [(True,)]
    # Reports over the lake in a process whose local time zone is not UTC.
    (tmp_path / "convoscope.toml").write_text(CONFIG)
    run = lambda *args: subprocess.run([*CLI, *args], cwd=tmp_path, capture_output=True,  # noqa: E731
                                       env={**os.environ, "TZ": "America/New_York"})
    for name in ("data-quality", "contact-export", "sessions-detail"):
        from_lake = run("report", name, "--tz", "UTC", "--as-of", AS_OF, "--lake", str(lake))
        from_store = run("--db", str(store_path), "report", name, "--tz", "UTC", "--as-of", AS_OF)
        assert from_lake.returncode == 0, from_lake.stderr
        assert from_lake.stdout == from_store.stdout, name


def test_a_lake_made_with_other_settings_is_refused_with_what_to_do(lake: Path, tmp_path: Path) -> None:
    result = subprocess.run([*CLI, "report", "sessions-detail", "--lake", str(lake)], cwd=tmp_path,
                            capture_output=True, text=True)  # default settings: session_inactivity 2h
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"convoscope: error: lake {lake} was derived with other settings for brand default; "
        f"derive it again with this configuration: convoscope spark-derive --events PATH --out {lake}"]


def test_a_folder_that_is_no_lake_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConvoscopeError, match="is not a complete convoscope lake .* spark-derive --events PATH --out"):
        Store.lake(tmp_path)


def test_a_lake_of_an_earlier_layout_is_refused_with_what_to_do(lake: Path, tmp_path: Path) -> None:
    """A lake written before ids became keys (decision 70) names its sessions by `session_id`."""
    old = tmp_path / "old-lake"
    shutil.copytree(lake, old)
    for part in (old / "sessions").rglob("*.parquet"):  # in its bucket folders
        table = pq.read_table(part)
        pq.write_table(table.rename_columns(["session_id" if c == "session_key" else c for c in table.column_names]),
                       part)
    (tmp_path / "convoscope.toml").write_text(CONFIG)
    result = subprocess.run([*CLI, "report", "sessions-detail", "--lake", str(old)], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"convoscope: error: lake {old} was written by another version of convoscope (its sessions has no "
        f"session_key); write it again with: convoscope spark-derive --events PATH --out {old}"]


def _sorted_like_spark(store_path: Path) -> pa.Table:
    """The stored events of a few hundred customers, as a Spark partition hands them to the kernel."""
    with duckdb.connect(str(store_path), read_only=True) as con:
        return con.sql("""
            SELECT brand, customer_id, event_id, channel, ai_agent, guides, category, subcategory, reason,
                   transfer_rationale, agent, inbox, rating, score, type::VARCHAR AS type, occurred_at, route::VARCHAR AS route,
                   event_key, 0 AS bucket
            FROM events WHERE customer_id IN (SELECT DISTINCT customer_id FROM events ORDER BY 1 LIMIT 80)
            ORDER BY brand, customer_id, occurred_at, type, event_id
        """).to_arrow_table()


def _derived_rows(batches: Iterator[pa.RecordBatch]) -> dict[str, list[tuple]]:
    table = pa.Table.from_batches(list(batches), schema=spark_engine._derived_schema())
    rows: dict[str, list[tuple]] = {}
    for row in table.to_pylist():
        rows.setdefault(row.pop("__convoscope_table"), []).append(tuple(str(v) for v in row.values()))
    return {name: sorted(found) for name, found in rows.items()}


@pytest.mark.parametrize("size", [1, 7, 300])
def test_customers_cut_by_batch_boundaries_are_derived_whole(store_path: Path, config: Config, size: int) -> None:
    events = _sorted_like_spark(store_path)
    schema = spark_engine._derived_schema()
    whole = _derived_rows(spark_engine._derived_batches(iter(events.to_batches()), config, schema))
    cut = _derived_rows(spark_engine._derived_batches(iter(events.to_batches(max_chunksize=size)), config, schema))
    assert set(whole) == set(DERIVED_TABLES) - {"anomalies"} or set(whole) == set(DERIVED_TABLES)
    assert cut == whole


def test_spark_submit_runs_the_same_job(tmp_path: Path) -> None:
    import convoscope.spark_submit

    (tmp_path / "convoscope.toml").write_text(CONFIG)
    events = tmp_path / "events.parquet"
    subprocess.run([*CLI, "generate", "--customers", "300", "--days", "7", "--seed", "5", "--out", str(events)],
                   check=True, capture_output=True)
    store = tmp_path / "store.duckdb"
    subprocess.run([*CLI, "--db", str(store), "ingest", str(events)], cwd=tmp_path, check=True, capture_output=True)
    submit = Path(sys.executable).with_name("spark-submit")
    out = tmp_path / "lake"
    result = subprocess.run(
        [str(submit), "--master", "local[2]", convoscope.spark_submit.__file__, "--events", str(events),
         "--out", str(out), "--partitions", "3"],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr[-2000:]
    # spark-submit hands the driver's standard error to its standard output: the run's own line comes first
    said = result.stdout.splitlines()
    assert said[0].startswith("convoscope: full derive: ") and said[1].startswith("accepted "), result.stdout
    for table in LAKE_TABLES:
        count, only_store, only_lake = _differences(out, store, table)
        assert (only_store, only_lake) == (0, 0), table


def test_without_pyspark_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['pyspark'] = None; from convoscope.cli import main; "
            "main(['spark-derive', '--events', 'x', '--out', 'y'])")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == ('convoscope: error: the Spark engine needs PySpark; '
                                     'install it with: pip install "convoscope[spark]"')


def test_a_lake_at_file_urls_is_read_and_written_as_at_paths(spark: object, config: Config, tmp_path: Path) -> None:
    """Issue 31: events read from and a lake written to `file://` URLs, and reports read from one, give what
    paths give."""
    (tmp_path / "convoscope.toml").write_text(CONFIG)
    events = tmp_path / "input" / "events.parquet"
    events.parent.mkdir()
    subprocess.run([*CLI, "generate", "--customers", "200", "--days", "7", "--seed", "3", "--out", str(events)],
                   check=True, capture_output=True)
    store_path = tmp_path / "store.duckdb"
    with Store(store_path) as store:
        service.ingest(store, config, [str(events)])
    lake = tmp_path / "lake"
    spark_engine.derive(spark, [events.parent.as_uri()], lake.as_uri() + "/", config)
    for table in LAKE_TABLES:
        _count, only_store, only_lake = _differences(lake, store_path, table)
        assert (only_store, only_lake) == (0, 0), table
    run = lambda *args: subprocess.run([*CLI, *args], cwd=tmp_path, capture_output=True)  # noqa: E731
    from_store = run("--db", str(store_path), "report", "sessions-detail", "--as-of", AS_OF)
    for given in (lake.as_uri(), f"file:{lake}", f"file://localhost{lake}/"):
        from_lake = run("report", "sessions-detail", "--as-of", AS_OF, "--lake", given)
        assert from_lake.returncode == 0, from_lake.stderr
        assert from_lake.stdout == from_store.stdout and from_lake.stdout.count(b"\n") > 50


@pytest.mark.parametrize(("given", "found"), [
    ("lake", "lake"), ("/srv/lake", "/srv/lake"), ("file:///srv/my lake/", "/srv/my lake"),
    ("file:/srv/lake", "/srv/lake"), ("FILE://localhost/srv/lake", "/srv/lake")])
def test_a_lake_location_names_a_local_folder(given: str, found: str) -> None:
    assert lake_folder(given) == Path(found)


@pytest.mark.parametrize("given", ["s3a://bucket/lake", "gs://bucket/lake", "abfs://c@account.dfs.core.windows.net/l",
                                   "file://otherhost/srv/lake"])
def test_a_lake_elsewhere_is_refused_with_what_to_do(given: str) -> None:
    with pytest.raises(ConvoscopeError, match="file:"):
        lake_folder(given)
