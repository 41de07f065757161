"""The Spark engine: the same validation, duplicate rule and derivation kernel, over Parquet, on a cluster.

Nothing here restates a rule of SPEC 2 or 3. Each Spark task validates its records with the embedded
ingester's own query (`validation_sql`, run by an in-process DuckDB over the task's Arrow batch); the
duplicate rule of SPEC 2.4 is one window over (brand, event_id) with arrival order read as (file, row);
and derivation is the shared kernel and `assemble`, applied per Arrow batch of a partition that holds
whole customers sorted by SPEC 2.4's order. A customer whose events continue in the next batch is
carried over to it, so no customer is ever cut in two however small the batches are.

The output is a lake: one Parquet table per store table (`LAKE_TABLES`), written with Spark's writers
so that any Hadoop-compatible URL works. Every table whose rows belong to a customer is partitioned by the
customer's bucket (`bucket=N` folders, `bucket_column`), so that `spark_lake` can re-derive a few buckets
and replace just their folders. `derived_settings` is written last and removed first: a lake without it
is incomplete, and `Store.lake` refuses it.

PySpark is an optional extra (`pip install "convoscope[spark]"`), imported only here.
"""

from __future__ import annotations

import os
import re
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from convoscope.config import Config
from convoscope.derive import assemble as A
from convoscope.errors import ConvoscopeError
from convoscope.events.ingest import COMPARED, CONFLICT_REASON_SQL
from convoscope.events.schema import FIELDS, validation_sql
from convoscope.store import DERIVED_TABLES, EVENT_TYPES, arrow_schema, stored

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SOURCE, LINE = "__convoscope_source", "__convoscope_line"
_TABLE = "__convoscope_table"  # which derived table a row of the combined derivation output belongs to
_RANK = "__convoscope_rank"
# An input file's address as Spark names it, and its place in arrival order: argument, then path.
_URI, _ARG, _ORDER = "__convoscope_uri", "__convoscope_argument", "__convoscope_order"
_FILE_SCHEME = "^file:(//)?"
# The folder a customer's rows live in, in every table but rejects and derived_settings (decision 165).
BUCKET, BUCKETS = "bucket", 64
BUCKETED = ("events", "duplicates", *DERIVED_TABLES)

# What validation hands on per record: where it came from, why it was rejected (or null), the event.
_CHECKED = pa.schema([
    pa.field("source", pa.string()), pa.field("line", pa.int64()), pa.field("raw", pa.string()),
    pa.field("reject_reason", pa.string()),
    *(f for f in arrow_schema("events") if f.name in (*FIELDS, "attributes", "event_key")),
])


@dataclass
class SparkResult:
    accepted: int
    duplicate: int
    rejected: int
    sessions: int
    contacts: int
    conversations: int


@dataclass(frozen=True)
class InputFile:
    """An input file as Spark names it, with what tells a later run whether it changed."""
    uri: str
    size: int
    modified: int  # milliseconds since the epoch, as the file system reports it


@dataclass(frozen=True)
class Listing:
    """The input files under `--events` PATHs, in arrival order (decision 44), each with its status: read
    once, so that the files derived are the files a lake's manifest records."""
    paths: list[str]
    files: list[InputFile]
    rows: list[tuple[str, str, int, str]]  # per file: address without file:, source, argument, order in it


def bucket_column(buckets: int) -> Any:
    """A customer's bucket: Spark's xxhash64 of (brand, customer_id), which no version of Spark changes,
    modulo the number of buckets the lake was written with."""
    F = _pyspark().functions
    return F.pmod(F.xxhash64("brand", "customer_id"), F.lit(buckets)).cast("int").alias(BUCKET)


def _pyspark() -> Any:
    try:
        import pyspark.sql
    except ImportError:
        raise ConvoscopeError('the Spark engine needs PySpark; install it with: pip install "convoscope[spark]"') from None
    return pyspark.sql


def session(master: str | None = None, *, partitions: int | None = None, batch_rows: int | None = None,
            memory: str | None = None) -> SparkSession:
    """A Spark session in UTC (SPEC 7). `master` None keeps what spark-submit set, else local[*]."""
    sql = _pyspark()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers run this very environment
    builder = sql.SparkSession.builder.appName("convoscope")
    if master or "PYSPARK_GATEWAY_PORT" not in os.environ:  # under spark-submit its --master holds
        builder = builder.master(master or "local[*]")
        if (master or "local").startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # one machine: stay on loopback
    options = {
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": memory or os.environ.get("CONVOSCOPE_SPARK_MEMORY", "4g"),
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(batch_rows or 200_000),
    }
    if partitions:
        options["spark.sql.shuffle.partitions"] = str(partitions)
    for key, value in options.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    for key, value in options.items():  # a session that already existed takes the SQL options too
        if key.startswith("spark.sql."):
            spark.conf.set(key, value)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _spilling() -> Any:
    """The storage level of what Spark reads more than once: memory, spilling to disk."""
    from pyspark import StorageLevel

    return StorageLevel.MEMORY_AND_DISK


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


# --- validation -------------------------------------------------------------------------------------

def _staged_query(batches: Iterator[pa.RecordBatch], query: str, schema: pa.Schema,
                  columns_of: dict[str, list[str]]) -> Iterator[pa.RecordBatch]:
    """Stage each source file's records of every batch as the ingester stages a Parquet batch, and run
    `query` over them (the ingester's validation, or its raw text) in an in-process DuckDB. A file is
    staged with its own columns (`columns_of`, when known), not every column of the files read
    together, so that a record's raw text names the fields its file has, as the ingester's does."""
    import duckdb

    from convoscope.events.readers import stage_arrow, unstage_arrow

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for batch in batches:
        table = pa.Table.from_batches([batch])
        sources = table.column(SOURCE)
        for source in pc.unique(sources).to_pylist():
            part = table.filter(pc.equal(sources, source))
            own = columns_of.get(source)
            fields = part.drop_columns([SOURCE, LINE])
            stage_arrow(con, source, fields.select([c for c in fields.column_names if c in own]) if own else fields,
                        part.column(LINE).to_numpy())
            result = con.sql(query).to_arrow_table()
            unstage_arrow(con)
            yield from result.select(schema.names).cast(schema).to_batches()


# The raw text of records, as the ingester keeps it for the ones it rejects.
_RAW = pa.schema([pa.field("source", pa.string()), pa.field("line", pa.int64()), pa.field("raw", pa.string())])


def _scan(spark: SparkSession, paths: list[str]) -> DataFrame:
    """The Parquet files under `paths` as Spark finds them: hidden names skipped, any case of the extension."""
    return (spark.read.option("recursiveFileLookup", "true").option("mergeSchema", "true")
            .option("pathGlobFilter", "*.[pP][aA][rR][qQ][uU][eE][tT]").parquet(*paths))


def _hadoop_path(spark: SparkSession, uri: str) -> Any:
    jvm: Any = spark.sparkContext._jvm
    return jvm.org.apache.hadoop.fs.Path(jvm.java.net.URI(uri))


def list_inputs(spark: SparkSession, paths: list[str]) -> Listing:
    """The Parquet files under `paths`, in arrival order, with their size and modification time."""
    listed = _scan(spark, paths).inputFiles()
    rows = sorted(_arrival_rows(listed, paths), key=lambda row: (row[2], row[3]))
    by_address = {re.sub(_FILE_SCHEME, "", uri): uri for uri in listed}
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    files = []
    for address, *_ in rows:
        path = _hadoop_path(spark, by_address[address])
        status = path.getFileSystem(conf).getFileStatus(path)
        files.append(InputFile(by_address[address], int(status.getLen()), int(status.getModificationTime())))
    return Listing(list(paths), files, rows)


def _records(spark: SparkSession, listing: Listing, *, only: list[str] | None = None
             ) -> tuple[DataFrame, DataFrame]:
    """Every record of the listed files (or of those in `only`), with its source and line, and every
    listed file in arrival order. A file that appeared after the listing is not read. Files may differ in
    their columns: a column one lacks is an absent field there, as in the embedded ingester."""
    F = _pyspark().functions
    if only is None:
        raw = _scan(spark, listing.paths)
    else:  # each file by its own path, which Spark reads as a pattern: its pattern characters escaped
        named = [re.sub(r"([\\{}\[\]*?])", r"\\\1", str(_hadoop_path(spark, uri).toString())) for uri in only]
        raw = spark.read.option("mergeSchema", "true").parquet(*named)
    files = spark.createDataFrame(listing.rows, f"{_URI} string, {SOURCE} string, {_ARG} int, {_ORDER} string")
    records = raw.select(
        "*",
        F.regexp_replace(F.col("_metadata.file_path"), _FILE_SCHEME, "").alias(_URI),
        (F.col("_metadata.row_index") + 1).alias(LINE),  # a Parquet record's line is its row from one
    ).join(F.broadcast(files.select(_URI, SOURCE)), _URI).drop(_URI)
    return records, files.drop(_URI).withColumnRenamed(SOURCE, "source")


def _columns_of(sources: list[str]) -> dict[str, list[str]]:
    """The columns of each local input file, read from its footer here on the driver (a file of another
    file system is staged with every column read)."""
    import pyarrow.parquet as pq

    found = {}
    for source in sources:
        if os.path.isfile(source):
            found[source] = pq.read_schema(source).names
    return found


def _arrival_rows(uris: list[str], paths: list[str]) -> list[tuple[str, str, int, str]]:
    """Each input file: its address as Spark names it, its source as the embedded ingester names it (the
    resolved local path, or the URL), and its place in arrival order (SPEC 2.4, decision 44) as the
    ingester reads the same arguments: by argument, then within a folder by path, part by part."""
    def local(address: str) -> str | None:
        return urllib.parse.unquote(re.sub(_FILE_SCHEME, "", address)) if address.startswith("file:") else None

    given = [os.path.abspath(re.sub(_FILE_SCHEME, "", p)) if ":" not in p or p.startswith("file:") else p
             for p in paths]
    rows = []
    for uri in uris:
        path = local(uri)
        name = path if path is not None else uri
        argument = next((i for i, g in enumerate(given) if name == g or name.startswith(g.rstrip("/") + "/")),
                        len(given))
        rows.append((re.sub(_FILE_SCHEME, "", uri), os.path.realpath(path) if path is not None else uri,
                     argument, name.replace("/", "\x01")))  # a separator sorts before any other character
    return rows


def _merge(records: DataFrame, checked: DataFrame, files: DataFrame, columns_of: dict[str, list[str]], *,
           stored: DataFrame | None = None) -> tuple[DataFrame, DataFrame, DataFrame]:
    """SPEC 2.4 over everything read at once: (events, duplicates, rejects). Of records sharing
    (brand, event_id) the first in arrival order (file, row) is stored, as the embedded ingester stores
    the first it reads; one with the same content is a duplicate, any other a conflict, kept with its
    raw text (read again for those few records only). Rejects keep their file's place in arrival
    order for `_resolve`. `stored` are events a lake already holds (those the records repeat): they
    come first, as a store's events come before an ingest's, and are not returned again."""
    sql = _pyspark()
    F, Window = sql.functions, sql.Window
    checked = checked.join(F.broadcast(files), "source")
    valid = checked.where(F.col("reject_reason").isNull())
    if stored is not None:
        valid = valid.unionByName(stored.select(
            *(F.lit(None).cast("string").alias(c) if c in ("raw", "reject_reason") else F.col(c) for c in _CHECKED.names),
            F.lit(-1).alias(_ARG), F.lit("").alias(_ORDER)))
    # Most ids come once: only records of repeated ids (found by a narrow aggregate) go through the
    # window, so the wide records are not shuffled for it.
    repeated = (valid.groupBy("brand", "event_id").count().where("count > 1").select("brand", "event_id")
                .persist(_spilling()))
    few = repeated.count() <= 1_000_000
    repeated_ids = F.broadcast(repeated) if few else repeated
    first = Window.partitionBy("brand", "event_id").orderBy(_ARG, _ORDER, "line")
    ranked = valid.join(repeated_ids, ["brand", "event_id"], "left_semi").select(
        "*", F.row_number().over(first).alias("_n"),
        *(F.first(c).over(first).alias(f"_ref_{c}") for c in (*COMPARED, "attributes", "source", "line")),
    )
    once = valid.join(repeated_ids, ["brand", "event_id"], "left_anti")
    columns = [c for c in arrow_schema("events").names if c != "ingested_at"]
    events = once.select(*columns).unionByName(ranked.where(f"_n = 1 AND {_ARG} >= 0").select(*columns)).select(
        "*", F.localtimestamp().alias("ingested_at"))
    later = ranked.where("_n > 1").withColumn("same", F.lit(True))
    for c in (*COMPARED, "attributes"):
        later = later.withColumn("same", F.col("same") & F.col(c).eqNullSafe(F.col(f"_ref_{c}")))
    later = later.withColumnsRenamed({"_ref_source": "ref_source", "_ref_line": "ref_line"})
    duplicates = later.where("same").select(
        "brand", "event_id", "customer_id", "occurred_at", "source", "line", F.localtimestamp().alias("seen_at"))
    rejected = checked.where(F.col("reject_reason").isNotNull()).select(
        F.lit("rejected").alias("kind"), F.col("reject_reason").alias("reason"), "source", "line", "raw",
        "brand", "event_id", "customer_id", "occurred_at", _ARG, _ORDER)
    conflicts = later.where("NOT same").select(
        F.lit("conflict").alias("kind"), F.expr(CONFLICT_REASON_SQL).alias("reason"), "source", "line",
        "brand", "event_id", "customer_id", "occurred_at")
    where = conflicts.select(F.col("source").alias(SOURCE), F.col("line").alias(LINE))
    raw_batches = partial(_staged_query, query="SELECT source, line, raw FROM _stage", schema=_RAW,
                          columns_of=columns_of)
    raw = records.join(F.broadcast(where), [SOURCE, LINE], "left_semi").mapInArrow(raw_batches, _spark_schema(_RAW))
    conflicts = conflicts.join(raw, ["source", "line"], "left").select(
        "kind", "reason", "source", "line", "raw", "brand", "event_id", "customer_id", "occurred_at",
        F.lit(None).cast("int").alias(_ARG), F.lit(None).cast("string").alias(_ORDER))  # never resolved
    rejects = rejected.unionByName(conflicts).select("*", F.localtimestamp().alias("rejected_at"))
    return events, duplicates, rejects


def _resolve(rejects: DataFrame, events: DataFrame, files: DataFrame) -> DataFrame:
    """`rejects` with `resolved`: a rejected record counts as resolved when its event was stored from its
    own file or a later one, as the ingester, reading the files in turn, resolves a reject when a later
    chunk stores its event (decision 44). `events` are those written, so none is derived twice; only
    the ids of rejects are looked up among them."""
    F = _pyspark().functions
    ids = rejects.where(F.col(_ARG).isNotNull()).select("brand", "event_id").distinct()
    fixed = (events.select("brand", "event_id", "source").join(ids, ["brand", "event_id"], "left_semi")
             .join(F.broadcast(files.select("source", F.col(_ARG).alias("_fixed_argument"),
                                            F.col(_ORDER).alias("_fixed_order"))), "source")
             .drop("source"))
    later = (F.col("_fixed_argument") > F.col(_ARG)) | (
        (F.col("_fixed_argument") == F.col(_ARG)) & (F.col("_fixed_order") >= F.col(_ORDER)))
    return rejects.join(fixed, ["brand", "event_id"], "left").select(
        *(c for c in rejects.columns if c not in (_ARG, _ORDER)), F.coalesce(later, F.lit(False)).alias("resolved"))


# --- derivation -------------------------------------------------------------------------------------

def _derived_schema() -> pa.Schema:
    """Every derived table's columns side by side, the name of the table a row belongs to, and its
    customer's bucket."""
    fields: dict[str, pa.Field] = {}
    for table in DERIVED_TABLES:
        for f in arrow_schema(stored(table)):
            if fields.setdefault(f.name, f).type != f.type:
                raise AssertionError(f"column {f.name} has two types among the derived tables")
    return pa.schema([pa.field(_TABLE, pa.string()), *fields.values(), pa.field(BUCKET, pa.int32())])


def _group_starts(table: pa.Table) -> np.ndarray:
    """Where each customer's events begin in a table sorted by (brand, customer_id, ...), then n."""
    n = table.num_rows
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    brand, customer = table.column("brand"), table.column("customer_id")
    changed = pc.or_(pc.not_equal(brand.slice(1), brand.slice(0, n - 1)),
                     pc.not_equal(customer.slice(1), customer.slice(0, n - 1)))
    inner = np.flatnonzero(changed.to_numpy(zero_copy_only=False)) + 1
    return np.concatenate(([0], inner, [n])).astype(np.int64)


def _derive_table(table: pa.Table, config: Config, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Derive the whole customers of `table`, sorted by bucket first, one run of a bucket at a time, so
    that every derived row carries the bucket of its customer."""
    table = table.combine_chunks()
    buckets = table.column(BUCKET).to_numpy(zero_copy_only=False)
    cuts = [0, *(np.flatnonzero(buckets[1:] != buckets[:-1]) + 1).tolist(), table.num_rows]
    for start, stop in zip(cuts[:-1], cuts[1:], strict=True):
        if stop > start:
            yield from _derive_run(table.slice(start, stop - start), int(buckets[start]), config, schema)


def _derive_run(table: pa.Table, bucket: int, config: Config, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Derive the whole customers of one bucket and hand every derived row on in the combined schema."""
    from convoscope.derive.kernel import run_kernel

    table = table.combine_chunks()
    kind = pc.index_in(table.column("type"), pa.array(EVENT_TYPES)).to_numpy(zero_copy_only=False)
    route = pc.index_in(table.column("route"), pa.array(["ai", "team"])).fill_null(-1).to_numpy(zero_copy_only=False)
    starts = _group_starts(table)
    events = A.SortedEvents(
        group_starts=starts,
        ts=table.column("occurred_at").cast(pa.int64()).to_numpy(),
        kind=kind.astype(np.int8), route=(route + 1).astype(np.int8),
        has_channel=pc.is_valid(table.column("channel")).to_numpy(zero_copy_only=False),
        has_ai_agent=pc.is_valid(table.column("ai_agent")).to_numpy(zero_copy_only=False),
        has_inbox=pc.is_valid(table.column("inbox")).to_numpy(zero_copy_only=False),
        keys=table.column("event_key").to_numpy(),
        customers=table.select(["brand", "customer_id"]).take(starts[:-1]),
        columns=A.EventColumns(table),
    )
    out = run_kernel(A.kernel_input(events, config.for_brand))
    for name, derived in A.assemble(events, out):
        n = derived.num_rows
        if n == 0:
            continue
        columns = [pa.array([name] * n, pa.string())]
        for f in schema:
            if f.name == _TABLE:
                continue
            if f.name == BUCKET:
                columns.append(pa.array(np.full(n, bucket, np.int32)))
                continue
            present = f.name in derived.column_names
            columns.append(derived.column(f.name).cast(f.type) if present else pa.nulls(n, f.type))
        yield from pa.Table.from_arrays(columns, schema=schema).to_batches()


def _derived_batches(batches: Iterator[pa.RecordBatch], config: Config, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Derive a partition batch by batch; the last customer of a batch may go on in the next one, so
    its events are carried over and derived with the rest of them."""
    carried: pa.Table | None = None
    for batch in batches:
        table = pa.Table.from_batches([batch])
        if carried is not None:
            table = pa.concat_tables([carried, table])
        last = int(_group_starts(table)[-2]) if table.num_rows else 0
        if last > 0:
            yield from _derive_table(table.slice(0, last), config, schema)
        carried = table.slice(last)
    if carried is not None and carried.num_rows:
        yield from _derive_table(carried, config, schema)


def _derive(events: DataFrame, config: Config) -> DataFrame:
    F = _pyspark().functions
    schema = _derived_schema()
    ranked = events.select(
        "brand", "customer_id", *A.STRING_COLUMNS[2:], "type", "occurred_at", "route", "event_key", BUCKET,
        (F.array_position(F.array(*(F.lit(t) for t in EVENT_TYPES)), F.col("type"))).alias(_RANK),
    )
    # Whole buckets per task, so that each task writes one file per bucket of each table.
    whole_customers = ranked.repartition(BUCKET).sortWithinPartitions(
        BUCKET, "brand", "customer_id", "occurred_at", _RANK, "event_id")  # SPEC 2.4; strings by code point
    return whole_customers.mapInArrow(partial(_derived_batches, config=config, schema=schema), _spark_schema(schema))


# --- the job ----------------------------------------------------------------------------------------

def derive(spark: SparkSession, paths: list[str], out: str, config: Config, *, assume_tz: str | None = None,
           buckets: int = BUCKETS, listing: Listing | None = None) -> SparkResult:
    """Read, validate and derive the events under `paths` (the files of `listing`, when given); write the
    lake to `out`, replacing it."""
    sql = _pyspark()
    F, disk = sql.functions, _spilling()
    base = out.rstrip("/")
    settings = f"{base}/derived_settings"
    _remove(spark, settings)
    listing = listing or list_inputs(spark, paths)
    records, files = _records(spark, listing)
    columns_of = _columns_of([source for _, source, *_ in listing.rows])
    checked = validated(records, columns_of, assume_tz).persist(disk)
    events, duplicates, rejects = _merge(records, checked, files, columns_of)
    counts = {}
    for name, frame in (("events", events), ("duplicates", duplicates), ("rejects", rejects)):
        if name == "rejects":
            frame = _resolve(frame, read_table(spark, f"{base}/events", "events"), files)
            write_table(frame, f"{base}/{name}", name)
        else:
            write_table(frame.select("*", bucket_column(buckets)), f"{base}/{name}", name)
        counts[name] = read_table(spark, f"{base}/{name}", name).count()
    checked.unpersist()
    # Derived from the events as written: reading back the columns it needs from Parquet costs less
    # than keeping every accepted event, text included, in Spark's cache (spilled to local disk).
    derived = _derive(read_table(spark, f"{base}/events", "events"), config).persist(disk)
    for table in DERIVED_TABLES:
        write_table(derived.where(F.col(_TABLE) == table), f"{base}/{table}", table)
        counts[table] = read_table(spark, f"{base}/{table}", table).count()
    derived.unpersist()
    # From what was written: `rejects` would validate every record again.
    written = [read_table(spark, f"{base}/{name}", name).select("brand") for name in ("events", "duplicates", "rejects")]
    brands = [r[0] for r in written[0].union(written[1]).union(written[2]).where("brand IS NOT NULL")
              .distinct().collect()]
    write_settings(spark, brands, config, settings)
    return SparkResult(accepted=counts["events"], duplicate=counts["duplicates"], rejected=counts["rejects"],
                       sessions=counts["sessions"], contacts=counts["contacts"], conversations=counts["conversations"])


def validated(records: DataFrame, columns_of: dict[str, list[str]], assume_tz: str | None) -> DataFrame:
    """Every record checked by the ingester's own query (decision 45)."""
    validate = partial(_staged_query, query=validation_sql(assume_tz, raw=True), schema=_CHECKED, columns_of=columns_of)
    return records.mapInArrow(validate, _spark_schema(_CHECKED))


def write_table(frame: DataFrame, url: str, table: str) -> None:
    """Write a lake table to `url`, replacing it: a customer's table one folder per bucket, each written
    by one task (one file per bucket), the others as they are. Derived rows come from tasks that hold
    whole buckets already (`_derive`); events and duplicates are gathered by bucket first."""
    columns = arrow_schema(stored(table)).names
    if table not in BUCKETED:
        frame.select(*columns).write.mode("overwrite").parquet(url)
        return
    frame = frame.select(*columns, BUCKET)
    if table not in DERIVED_TABLES:
        frame = frame.repartition(BUCKET)
    frame.write.partitionBy(BUCKET).mode("overwrite").parquet(url)


def read_table(spark: SparkSession, url: str, table: str) -> DataFrame:
    """A lake table as written, with its bucket; typed here, since a bucketed table without rows has no
    file to read its columns from."""
    schema = arrow_schema(stored(table))
    if table in BUCKETED:
        schema = schema.append(pa.field(BUCKET, pa.int32()))
    return spark.read.schema(_spark_schema(schema)).parquet(url)


def write_settings(spark: SparkSession, brands: list[str], config: Config, url: str) -> None:
    """`derived_settings`: each brand's derivation settings, which `Store.lake` checks (decision 47)."""
    rows = [(b, config.for_brand(b).derivation_fingerprint()) for b in sorted(set(brands))]
    spark.createDataFrame(rows, "brand string, fingerprint string").coalesce(1).write.mode("overwrite").parquet(url)


def _remove(spark: SparkSession, url: str) -> None:
    """Delete `url` through Hadoop's file system API, so that any file system Spark can write works."""
    jvm: Any = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(url)
    path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(path, True)
