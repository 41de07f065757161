"""Benchmark: `convoscope spark-derive` over the generated brands of bench/run.py, in local mode or on a standalone
cluster, in full and brought up to date.

Each size runs as its own process, reading the Parquet file bench/run.py generated (generated here when missing)
and writing a lake to bench/out/lake-<size>. Prints the wall time, events per second, the peak resident memory of
every process involved (sampled twice a second: the command, the Spark JVM and its Python workers; on a cluster the
submitting command's tree plus the master's and each worker's, executors included) and the lake's bytes per event.

`--cluster N` starts a standalone cluster on this machine (convoscope.derive.standalone: a master and N workers of
one core each, `--worker-memory` for executors) and submits with `spark-submit` and the package's entry file, as
a user would (issue 31 point 1). `--increments C...` then brings the lake up to date once per C (issue 31 point 3):
each a new file of the next day (`generate --customers C --days 1 --start` the day after the brand's, a new
seed), added to the events' folder, and `spark-derive` run again; the row says how many buckets it derived again.
`--compare` ingests the same files into an embedded store (bench/out/store-<size>.duckdb) and compares every
report a lake answers, byte for byte, lake against store. Results go to bench/out/spark.json (local) or
spark-cluster.json.

    .venv/bin/python bench/spark.py --events 1000000 10000000 100000000
    CONVOSCOPE_SPARK_MEMORY=8g .venv/bin/python bench/spark.py --events 100000000 --partitions 400   # adds to spark.json
    .venv/bin/python bench/spark.py --events 10000000 --cluster 2 --increments 1500 500000 --compare
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from convoscope.derive.standalone import Cluster, standalone
from convoscope.synth import EVENTS_PER_CUSTOMER_PER_30_DAYS
from run import keep_other_sizes, tag

OUT = Path(__file__).resolve().parent / "out"
CLI = [sys.executable, "-m", "convoscope.cli"]
DAYS, START = 30, date(2026, 5, 1)  # bench/run.py's brand
AS_OF = "2026-06-15T00:00:00Z"  # after the brand and its increments


def tree_rss_mib(root: int) -> float:
    """Resident memory of `root` and every process below it, from /proc."""
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            pages = int((entry / "statm").read_text().split()[1])
        except OSError:
            continue
        pid = int(entry.name)
        parent[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        rss[pid] = pages * os.sysconf("SC_PAGE_SIZE")
    tree, grown = {root}, True
    while grown:
        below = {pid for pid, ppid in parent.items() if ppid in tree} - tree
        grown = bool(below)
        tree |= below
    return sum(rss.get(pid, 0) for pid in tree) / 2**20


def generate(path: Path, customers: int, *, days: int = DAYS, seed: int = 1, start: date = START) -> None:
    subprocess.run([*CLI, "generate", "--customers", str(customers), "--days", str(days), "--seed", str(seed),
                    "--start", start.isoformat(), "--out", str(path)], check=True, stdout=subprocess.DEVNULL)


def watched(process: subprocess.Popen[str], roots: list[int]) -> tuple[float, float]:
    """Wait for `process`, sampling the resident memory of its tree and of `roots`' trees; (seconds, peak MiB)."""
    began, peak = time.perf_counter(), 0.0
    while process.poll() is None:
        peak = max(peak, sum(tree_rss_mib(pid) for pid in [process.pid, *roots]))
        time.sleep(0.5)
    return time.perf_counter() - began, peak


def said(text: str) -> str:
    """What spark-derive said of its run (`convoscope: full derive: …`, `incremental: …`): on its standard error,
    which spark-submit hands to its standard output."""
    lines = [line for line in text.splitlines() if line.startswith("convoscope:") and "rejected" not in line]
    return lines[-1].removeprefix("convoscope: ") if lines else ""


class Runner:
    """spark-derive in local mode, or submitted to a standalone cluster."""

    def __init__(self, args: argparse.Namespace, cluster: Cluster | None) -> None:
        self.args, self.cluster = args, cluster

    @property
    def master(self) -> str:
        if self.cluster is None:
            return str(self.args.master)
        return f"standalone, {self.cluster.workers} workers of 1 core"

    def derive(self, events: Path, lake: Path, log: Path) -> dict[str, object]:
        options = ["--events", str(events), "--out", str(lake), "--partitions", str(self.args.partitions)]
        options += ["--buckets", str(self.args.buckets)] if self.args.buckets else []
        with log.open("w") as err:
            if self.cluster is None:
                process = subprocess.Popen([*CLI, "spark-derive", *options, "--master", self.args.master],
                                           stdout=subprocess.PIPE, stderr=err, text=True)
                seconds, peak = watched(process, [])
            else:
                process = self.cluster.submit(options, executor_memory=self.args.executor_memory,
                                              driver_memory=self.args.driver_memory, cwd=OUT, stderr=err)
                seconds, peak = watched(process, [p.pid for p in self.cluster.processes])
        output = process.stdout.read() if process.stdout else ""
        if process.returncode not in (0, 3):
            raise SystemExit(f"spark-derive failed on {events}; see {log}")
        counts = next(line for line in output.splitlines() if line.startswith("accepted "))
        accepted = int(counts.split()[1].rstrip(",").replace(",", ""))
        lake_bytes = sum(f.stat().st_size for f in lake.rglob("*.parquet"))
        return {"events": accepted, "seconds": round(seconds, 1), "events_per_s": round(accepted / seconds),
                "peak_tree_rss_mib": round(peak), "lake_bytes_per_event": round(lake_bytes / accepted),
                "master": self.master, "how": said(output + log.read_text(errors="replace"))}


def compare(files: list[Path], lake: Path, store: Path) -> list[tuple[str, int, bool]]:
    """Every report a lake answers, from the lake and from a store of the same files: (report, bytes, equal)."""
    from convoscope import reports

    store.unlink(missing_ok=True)
    subprocess.run([*CLI, "--db", str(store), "ingest", *map(str, files)], check=True, stdout=subprocess.DEVNULL)
    found = []
    for name in (name for name, report in reports.REPORTS.items() if report.in_lakes):
        common = ["report", name, "--as-of", AS_OF, "--tz", "UTC"]
        from_lake = subprocess.run([*CLI, *common, "--lake", str(lake)], capture_output=True, check=True).stdout
        from_store = subprocess.run([*CLI, "--db", str(store), *common], capture_output=True, check=True).stdout
        found.append((name, len(from_lake), from_lake == from_store))
        print(f"  {name}: {len(from_lake):,} bytes, {'the same' if from_lake == from_store else 'DIFFERENT'}",
              flush=True)
    return found


def run(args: argparse.Namespace, runner: Runner) -> list[dict[str, object]]:
    results = []
    print(f"{'events':>12}  {'run':>22}  {'time':>9}  {'throughput':>13}  {'peak RSS':>12}  {'lake bytes/event':>16}")
    for target in args.events:
        parquet = OUT / f"events-{tag(target)}.parquet"
        if not parquet.exists():
            generate(parquet, round(target / EVENTS_PER_CUSTOMER_PER_30_DAYS))
        folder = OUT / f"events-{tag(target)}-files"  # the brand, then a file per increment, in arrival order
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        os.link(parquet, folder / "0-brand.parquet")
        lake = OUT / f"lake-{tag(target)}"
        shutil.rmtree(lake, ignore_errors=True)
        steps = [("full derive", None), *((f"increment of {c:,} customers", c) for c in args.increments)]
        for day, (label, customers) in enumerate(steps):
            if customers is not None:
                generate(folder / f"{day}-day.parquet", customers, days=1, seed=100 + day,
                         start=START + timedelta(days=DAYS + day - 1))
            row = runner.derive(folder, lake, OUT / f"spark-{tag(target)}-{day}.log")
            row |= {"run": label, "input_events": target}
            results.append(row)
            print(f"{row['events']:>12,}  {label:>22}  {row['seconds']:>7} s  {row['events_per_s']:>9,} ev/s  "
                  f"{row['peak_tree_rss_mib']:>8,} MiB  {row['lake_bytes_per_event']:>16}   {row['how']}", flush=True)
        if args.compare:
            files = sorted(folder.glob("*.parquet"), key=lambda f: int(f.name.split("-")[0]))
            results.append({"compare": [list(r) for r in compare(files, lake, OUT / f"store-{tag(target)}.duckdb")],
                            "events": results[-1]["events"], "input_events": target})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--master", default="local[2]", help="The local master (without --cluster).")
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--buckets", type=int, help="spark-derive's --buckets (default its own).")
    parser.add_argument("--cluster", type=int, metavar="WORKERS", help="Start a standalone cluster of this many "
                        "one-core workers and submit to it.")
    parser.add_argument("--worker-memory", default="6g")
    parser.add_argument("--executor-memory", default="5g")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--increments", type=int, nargs="*", default=[], metavar="CUSTOMERS",
                        help="After the full derive, a day of this many customers each, brought up to date.")
    parser.add_argument("--compare", action="store_true", help="Compare every lake report with a store's.")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    if args.cluster:
        with standalone(OUT / "cluster", workers=args.cluster, memory=args.worker_memory) as cluster:
            cluster.wait()
            results = run(args, Runner(args, cluster))
    else:
        results = run(args, Runner(args, None))
    keep_other_sizes(OUT / ("spark-cluster.json" if args.cluster else "spark.json"), results, "input_events")


if __name__ == "__main__":
    main()
