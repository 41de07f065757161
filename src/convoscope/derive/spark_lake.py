"""A lake kept up to date: `spark-derive` again on the same `--out` rewrites only the buckets of the
customers whose events changed (issue 31 point 3, decisions 165-166).

A lake records what produced it in `manifest` (a JSON line: its input files in arrival order with their
size and modification time, the number of buckets, `--assume-tz`, the tables' columns); its
`derived_settings` hold each brand's derivation settings. When the inputs are the recorded files, unchanged
and in the same order, followed by new ones, and nothing else changed, the new files alone are read and
merged as an ingest merges them after a store's events (SPEC 2.4): the lake's events they repeat come first.
The buckets of the new events' customers are derived again from all their events, and replace their
folders. Anything else is a full derive (`spark_engine.derive`), and says why in one line.

An increment is written beside the lake, in `_staging`, which is renamed `_commit` once complete. Only
then are the lake's folders replaced, `derived_settings` last (a lake without it is incomplete, and
`Store.lake` refuses it). A run that finds `_commit` finishes it first; a `_staging` left behind is an
interrupted run's, and is removed. So a crash leaves each bucket's old folder or its new one, never a mix.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from convoscope.config import Config
from convoscope.derive import spark_engine as E
from convoscope.store import DERIVED_TABLES, arrow_schema, stored

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

LAYOUT = 1
MANIFEST, STAGING, COMMIT = "manifest", "_staging", "_commit"


@dataclass(frozen=True)
class Outcome:
    result: E.SparkResult
    how: str  # one line: what was derived, and why


@dataclass(frozen=True)
class Manifest:
    layout: int
    buckets: int
    assume_tz: str | None
    columns: str
    files: list[list[Any]]  # [uri, size, modified] in arrival order

    def text(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def _columns() -> str:
    """The lake tables' columns as this convoscope writes them: another set means a full derive."""
    tables = ("events", "duplicates", "rejects", *DERIVED_TABLES)
    return ";".join(f"{t}:" + ",".join(f"{f.name} {f.type}" for f in arrow_schema(stored(t))) for t in tables)


def _manifest(listing: E.Listing, buckets: int, assume_tz: str | None) -> Manifest:
    return Manifest(LAYOUT, buckets, assume_tz, _columns(), [[f.uri, f.size, f.modified] for f in listing.files])


# --- the file system, through Hadoop's API so that any URL Spark writes works ----------------------

class Files:
    def __init__(self, spark: SparkSession, base: str):
        self.spark, self.base = spark, base
        self.jvm: Any = spark.sparkContext._jvm
        self.fs: Any = self.path(base).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def path(self, url: str) -> Any:
        return self.jvm.org.apache.hadoop.fs.Path(url)

    def exists(self, url: str) -> bool:
        return bool(self.fs.exists(self.path(url)))

    def remove(self, url: str) -> None:
        self.fs.delete(self.path(url), True)

    def folders(self, url: str) -> list[str]:
        """The names of the folders in `url` (none when it does not exist), hidden ones left out."""
        if not self.exists(url):
            return []
        names = [status.getPath().getName() for status in self.fs.listStatus(self.path(url)) if status.isDirectory()]
        return sorted(n for n in names if not n.startswith(("_", ".")))

    def replace(self, source: str, target: str) -> None:
        """Put the folder `source` where `target` is: the old one removed, the new one renamed into place."""
        self.remove(target)
        self.fs.mkdirs(self.path(target).getParent())
        if not self.fs.rename(self.path(source), self.path(target)):
            raise OSError(f"could not rename {source} to {target}")

    def read_text(self, url: str) -> str | None:
        if not self.exists(url):
            return None
        lines = [row[0] for row in self.spark.read.text(url).collect()]
        return lines[0] if lines else None

    def write_text(self, url: str, text: str) -> None:
        self.spark.createDataFrame([(text,)], "value string").coalesce(1).write.mode("overwrite").text(url)


def recover(files: Files) -> None:
    """Finish an increment that was committed (`_commit` complete), drop one that was not (`_staging`)."""
    if files.exists(f"{files.base}/{COMMIT}"):
        _apply(files)
    files.remove(f"{files.base}/{STAGING}")


def _apply(files: Files) -> None:
    """Move a committed increment's folders into the lake. Each move empties its source, so running this
    again after a crash finishes what is left; `derived_settings` goes last, and its absence in `_commit`
    means everything else is in place already."""
    base, commit = files.base, f"{files.base}/{COMMIT}"
    if files.exists(f"{commit}/derived_settings"):
        files.remove(f"{base}/derived_settings")
        for table in (*DERIVED_TABLES, "duplicates", "events"):
            for bucket in files.folders(f"{commit}/{table}"):
                files.replace(f"{commit}/{table}/{bucket}", f"{base}/{table}/{bucket}")
        for name in ("rejects", MANIFEST, "derived_settings"):
            if files.exists(f"{commit}/{name}"):
                files.replace(f"{commit}/{name}", f"{base}/{name}")
    files.remove(commit)


# --- deciding ----------------------------------------------------------------------------------------

def recorded(files: Files) -> dict[str, Any] | None:
    """The manifest of the complete lake at `files.base` as recorded (read once a run), None without one."""
    text = files.read_text(f"{files.base}/{MANIFEST}") if files.exists(f"{files.base}/derived_settings") else None
    try:
        found = json.loads(text) if text else None
    except ValueError:  # unreadable: no manifest this version can follow, so a full derive writes a new one
        return None
    return found if isinstance(found, dict) else None


def _why_full(spark: SparkSession, files: Files, listing: E.Listing, config: Config, buckets: int,
              assume_tz: str | None, manifest: dict[str, Any] | None) -> str | None:
    """Why the lake at `files.base`, whose `manifest` is `recorded`'s, cannot be brought up to date by reading
    the new files alone, or None."""
    out = files.base
    if manifest is None:
        return f"{out} holds no lake with a manifest yet"
    recorded = Manifest(**manifest)
    if recorded.layout != LAYOUT or recorded.columns != _columns():
        return f"{out} was written by another version of convoscope"
    if recorded.buckets != buckets:
        return f"{out} was written with {recorded.buckets} buckets, not {buckets}"
    if recorded.assume_tz != assume_tz:
        return f"--assume-tz differs from {out}'s ({recorded.assume_tz or 'none'})"
    for brand, fingerprint in spark.read.parquet(f"{out}/derived_settings").collect():
        if config.for_brand(brand).derivation_fingerprint() != fingerprint:
            return f"the derivation settings of brand {brand} changed since {out} was derived"
    now = {f.uri: f for f in listing.files}
    for position, (uri, size, modified) in enumerate(recorded.files):
        found = now.get(uri)
        if found is None:
            return f"{uri} was derived into {out} and is no longer among --events"
        if (found.size, found.modified) != (size, modified):
            return f"{uri} changed since {out} was derived"
        if listing.files[position].uri != uri:
            return (f"{listing.files[position].uri} is new and comes before {uri} in arrival order; name new "
                    "files to sort after the others, or give them as later --events")
    return None


def derive(spark: SparkSession, paths: list[str], out: str, config: Config, *, assume_tz: str | None = None,
           buckets: int | None = None, full: bool = False) -> Outcome:
    """Bring the lake at `out` up to date with the events under `paths`: incrementally when it can,
    else in full; either way the lake is the one a full derive of `paths` would write. `buckets`: how many
    bucket folders (None: as many as the lake has, E.BUCKETS for a new one; another number is a full derive)."""
    files = Files(spark, out.rstrip("/"))
    listing = E.list_inputs(spark, paths)
    if not full:
        recover(files)
    manifest = recorded(files)
    kept = manifest.get("buckets") if manifest else None
    buckets = buckets or (kept if isinstance(kept, int) and kept > 0 else E.BUCKETS)
    why = "--full" if full else _why_full(spark, files, listing, config, buckets, assume_tz, manifest)
    if why is not None:
        for leftover in (COMMIT, STAGING, MANIFEST):
            files.remove(f"{files.base}/{leftover}")
        result = E.derive(spark, paths, files.base, config, assume_tz=assume_tz, buckets=buckets, listing=listing)
        files.write_text(f"{files.base}/{MANIFEST}", _manifest(listing, buckets, assume_tz).text())
        return Outcome(result, f"full derive: {why}")
    new = listing.files[len(Manifest(**manifest or {}).files):]
    if not new:
        return Outcome(_counts(spark, files.base), f"nothing new: {files.base} holds every file of --events")
    touched = _increment(spark, files, listing, [f.uri for f in new], config, buckets, assume_tz)
    _apply(files)
    return Outcome(_counts(spark, files.base),
                   f"incremental: {len(new):,} new file{'s' if len(new) != 1 else ''}; {touched} of {buckets} "
                   "buckets derived again")


def _counts(spark: SparkSession, base: str) -> E.SparkResult:
    count = {name: E.read_table(spark, f"{base}/{name}", name).count()
             for name in ("events", "duplicates", "rejects", "sessions", "contacts", "conversations")}
    return E.SparkResult(accepted=count["events"], duplicate=count["duplicates"], rejected=count["rejects"],
                         sessions=count["sessions"], contacts=count["contacts"], conversations=count["conversations"])


# --- the increment -----------------------------------------------------------------------------------

def _increment(spark: SparkSession, files: Files, listing: E.Listing, new: list[str], config: Config,
               buckets: int, assume_tz: str | None) -> int:
    """Write the increment of the `new` files to `_staging` and commit it; the number of buckets derived."""
    F, disk = E._pyspark().functions, E._spilling()
    base, staging = files.base, f"{files.base}/{STAGING}"
    files.remove(staging)
    records, inputs = E._records(spark, listing, only=new)
    addresses = {_address(uri) for uri in new}
    columns_of = E._columns_of(sorted(source for address, source, *_ in listing.rows if address in addresses))
    checked = E.validated(records, columns_of, assume_tz).persist(disk)
    lake_events = E.read_table(spark, f"{base}/events", "events")
    ids = checked.where(F.col("reject_reason").isNull()).select("brand", "event_id").distinct()
    repeated = lake_events.join(F.broadcast(ids) if ids.count() <= 1_000_000 else ids, ["brand", "event_id"],
                                "left_semi")
    events, duplicates, rejects = E._merge(records, checked, inputs, columns_of, stored=repeated)
    events = events.select("*", E.bucket_column(buckets)).persist(disk)
    duplicates = duplicates.select("*", E.bucket_column(buckets)).persist(disk)
    touched = sorted(r[0] for r in events.select(E.BUCKET).distinct().collect())
    in_touched = F.col(E.BUCKET).isin(touched)

    if touched:  # the touched buckets' events whole, the lake's and the new; derived from what was written
        names = [*arrow_schema("events").names, E.BUCKET]
        E.write_table(lake_events.where(in_touched).select(*names).unionByName(events.select(*names)),
                      f"{staging}/events", "events")
        derived = E._derive(E.read_table(spark, f"{staging}/events", "events"), config).persist(disk)
        for table in DERIVED_TABLES:
            E.write_table(derived.where(F.col(E._TABLE) == table), f"{staging}/{table}", table)
            for bucket in touched:  # a bucket that lost all its rows of a table is emptied, not left as it was
                files.fs.mkdirs(files.path(f"{staging}/{table}/{E.BUCKET}={bucket}"))
        derived.unpersist()

    grown = sorted(r[0] for r in duplicates.select(E.BUCKET).distinct().collect())
    if grown:
        names = [*arrow_schema("duplicates").names, E.BUCKET]
        old = E.read_table(spark, f"{base}/duplicates", "duplicates").where(F.col(E.BUCKET).isin(grown))
        both = old.select(*names).unionByName(duplicates.select(*names))
        E.write_table(both, f"{staging}/duplicates", "duplicates")
    _stage_rejects(spark, base, staging, rejects, events, lake_events, inputs)

    brands = [r[0] for r in spark.read.parquet(f"{base}/derived_settings").select("brand").collect()]
    brands += [r[0] for r in events.select("brand").union(duplicates.select("brand"))
               .union(rejects.select("brand")).where("brand IS NOT NULL").distinct().collect()]
    files.write_text(f"{staging}/{MANIFEST}", _manifest(listing, buckets, assume_tz).text())
    E.write_settings(spark, brands, config, f"{staging}/derived_settings")  # the increment is complete
    checked.unpersist()
    events.unpersist()
    duplicates.unpersist()
    if not files.fs.rename(files.path(staging), files.path(f"{base}/{COMMIT}")):
        raise OSError(f"could not rename {staging} to {base}/{COMMIT}")
    return len(touched)


def _address(uri: str) -> str:
    return re.sub(E._FILE_SCHEME, "", uri)


def _stage_rejects(spark: SparkSession, base: str, staging: str, rejects: DataFrame, events: DataFrame,
                   lake_events: DataFrame, inputs: DataFrame) -> None:
    """`rejects` again, whole, when the new files bring rejects or store an event a rejected record lacked
    (it is resolved now: its event came from a later file, decision 44). Rejects hold bad records only, so
    this table is small beside the others."""
    F = E._pyspark().functions
    stored_now = events.select("brand", "event_id", F.lit(True).alias("_now"))
    old = E.read_table(spark, f"{base}/rejects", "rejects")
    resolving = old.where("kind = 'rejected' AND NOT resolved").join(stored_now, ["brand", "event_id"], "left_semi")
    added = rejects.count()
    if not added and not resolving.count():
        return
    names = arrow_schema("rejects").names
    known = lake_events.select("brand", "event_id", "source").unionByName(events.select("brand", "event_id", "source"))
    fresh = E._resolve(rejects, known, inputs).select(*names)
    kept = old.join(stored_now, ["brand", "event_id"], "left").select(
        *(F.col(c) for c in names if c != "resolved"),
        (F.col("resolved") | ((F.col("kind") == "rejected") & F.col("_now").isNotNull())).alias("resolved"))
    E.write_table(kept.select(*names).unionByName(fresh), f"{staging}/rejects", "rejects")
