"""Benchmark: `convoscope spark-derive` (Spark local mode) over the generated brands of bench/run.py.

Each size runs as its own process, reading the Parquet file bench/run.py generated (generated here
when missing) and writing a lake to bench/out/lake-<size>. Prints events per second, the peak
resident memory of the whole process tree (the command, the Spark JVM that runs driver and executor
in local mode, and its Python workers; sampled twice a second), and the lake's bytes per event. Results go to bench/out/spark.json.

    .venv/bin/python bench/spark.py --events 1000000 10000000 100000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from convoscope.synth import EVENTS_PER_CUSTOMER_PER_30_DAYS

OUT = Path(__file__).resolve().parent / "out"
CLI = [sys.executable, "-m", "convoscope.cli"]


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


def tag(events: int) -> str:
    return f"{events // 1_000_000}m" if events >= 1_000_000 else f"{events // 1000}k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--partitions", type=int, default=64)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    print(f"{'events':>12}  {'time':>9}  {'throughput':>13}  {'peak RSS':>12}  {'lake bytes/event':>16}")
    results = []
    for target in args.events:
        parquet = OUT / f"events-{tag(target)}.parquet"
        if not parquet.exists():
            customers = round(target / EVENTS_PER_CUSTOMER_PER_30_DAYS)
            subprocess.run([*CLI, "generate", "--customers", str(customers), "--days", "30", "--seed", "1",
                            "--out", str(parquet)], check=True)
        lake = OUT / f"lake-{tag(target)}"
        shutil.rmtree(lake, ignore_errors=True)
        began = time.perf_counter()
        proc = subprocess.Popen([*CLI, "spark-derive", "--events", str(parquet), "--out", str(lake), "--master",
                                 args.master, "--partitions", str(args.partitions)],
                                stdout=subprocess.PIPE, stderr=(OUT / f"spark-{tag(target)}.log").open("w"), text=True)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, tree_rss_mib(proc.pid))
            time.sleep(0.5)
        seconds = time.perf_counter() - began
        output = proc.stdout.read() if proc.stdout else ""
        if proc.returncode not in (0, 3):
            raise SystemExit(f"spark-derive failed on {parquet}; see {OUT / f'spark-{tag(target)}.log'}")
        accepted = int(output.split()[1].rstrip(",").replace(",", ""))
        lake_bytes = sum(f.stat().st_size for f in lake.rglob("*.parquet"))
        row = {"events": accepted, "seconds": round(seconds, 1), "events_per_s": round(accepted / seconds),
               "peak_tree_rss_mib": round(peak), "lake_bytes_per_event": round(lake_bytes / accepted),
               "master": args.master}
        results.append(row)
        print(f"{accepted:>12,}  {seconds:>7.1f} s  {accepted / seconds:>9,.0f} ev/s  {peak:>8,.0f} MiB"
              f"  {lake_bytes / accepted:>16.0f}", flush=True)
    (OUT / "spark.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
