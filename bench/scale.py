"""Benchmark summary: the cost model's measured tables and their extrapolation (issue 31 point 4; docs/scale.md).

Reads what bench/run.py (the embedded engine: `results.json`) and bench/spark.py (`spark-derive`:
`spark.json`) last wrote and prints, as markdown, one table per engine and stage: wall time, events per
second, per core, peak memory and bytes stored per event. Then `spark-derive`'s per-core throughput at the
largest measured size scaled to clusters of N nodes for 1B and 10B events, with its assumptions, and the
size at which the embedded engine stops being the right choice. It runs nothing unless asked to:

    .venv/bin/python bench/scale.py                                   # the benches' last results in bench/out
    .venv/bin/python bench/scale.py --run 1000000 10000000            # run both benches first (they write bench/out)
    .venv/bin/python bench/scale.py --out /tmp/figures --nodes 4 16 64 --cores-per-node 16 --efficiency 0.6
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "out"
HOUR = 3600.0
GIB = 1024.0  # MiB
TARGETS = (1_000_000_000, 10_000_000_000)


@dataclass(frozen=True)
class Measure:
    """One stage of one engine at one size, as its bench wrote it."""

    engine: str
    stage: str
    events: int
    seconds: float
    cores: int
    cores_from: str  # how the cores were counted: os.cpu_count() or the Spark master
    peak_mib: float | None
    bytes_per_event: float | None  # the store file's or the lake's size, per event

    @property
    def per_second(self) -> float:
        return self.events / self.seconds

    @property
    def per_core(self) -> float:
        return self.per_second / self.cores


def embedded(path: Path) -> list[Measure]:
    """bench/run.py's rows: a stage's seconds and peak RSS per size, and one "store size" row per size."""
    rows = json.loads(path.read_text())
    stored = {row["events"]: row["bytes_per_event"] for row in rows if row["stage"] == "store size"}
    cores = os.cpu_count() or 1
    return [Measure("embedded", row["stage"], row["events"], row["seconds"], cores, "os.cpu_count()",
                    row.get("peak_rss_mib"), stored.get(row["events"]))
            for row in rows if "seconds" in row]


def local_cores(master: str) -> int:
    """The cores of a local master (`local`, `local[N]`, `local[*]`); a cluster's are not known here."""
    found = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", master)
    if not found:
        raise SystemExit(f"spark.json was measured on {master}: per-core figures need a local[N] master")
    if found[1] is None:
        return 1
    return (os.cpu_count() or 1) if found[1] == "*" else int(found[1])


def spark(path: Path, master: str) -> list[Measure]:
    """bench/spark.py's full derives, one per size; files written before it recorded its master take `master`.
    Its increments and comparisons are read by nobody here (bench/spark.py prints them)."""
    measures = []
    for row in json.loads(path.read_text()):
        if row.get("run", "full derive") != "full derive" or "seconds" not in row:
            continue
        used = row.get("master", master)
        measures.append(Measure("spark", "spark-derive", row["events"], row["seconds"], local_cores(used),
                                f"--master {used}", row.get("peak_tree_rss_mib"), row.get("lake_bytes_per_event")))
    return measures


def markdown(header: list[str], rows: Iterable[list[str]]) -> str:
    """A markdown table, the first column left-aligned and the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def number(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def count(events: float) -> str:
    """Events in words a reader compares at a glance: 340M, 2.8B."""
    return f"{events / 1e9:.1f}B" if events >= 1e9 else f"{events / 1e6:.0f}M"


def clock(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 2 * HOUR else f"{seconds / HOUR:.1f} h"


def measured(measures: list[Measure]) -> str:
    """One table per engine and stage, a row per size."""
    out = []
    stages = dict.fromkeys((m.engine, m.stage) for m in measures)  # in the benches' order
    for engine, stage in stages:
        rows = sorted((m for m in measures if (m.engine, m.stage) == (engine, stage)), key=lambda m: m.events)
        cores = {(m.cores, m.cores_from) for m in rows}
        said = ", ".join(f"{n} ({how})" for n, how in sorted(cores))
        storage = "store" if engine == "embedded" else "lake"
        out.append(f"### {engine}: {stage} — cores {said}\n")
        out.append(markdown(
            ["events", "wall s", "events/s", "events/s per core", "peak MiB", f"{storage} bytes/event"],
            ([f"{m.events:,}", number(m.seconds, 2), number(m.per_second), number(m.per_core),
              number(m.peak_mib), number(m.bytes_per_event)] for m in rows)))
        out.append("")
    return "\n".join(out)


def cluster(largest: Measure, *, nodes: list[int], cores_per_node: int, efficiency: float) -> str:
    """spark-derive at 1B and 10B events on N nodes, from its per-core throughput at `largest`."""
    per_core_mib = largest.peak_mib / largest.cores if largest.peak_mib is not None else None
    rows = []
    for events in TARGETS:
        for n in nodes:
            cores = n * cores_per_node
            rate = largest.per_core * cores * efficiency
            lake = (f"{largest.bytes_per_event * events / 1e9:,.0f}" if largest.bytes_per_event is not None
                    else "—")
            node_gib = per_core_mib * cores_per_node / GIB if per_core_mib is not None else None
            rows.append([count(events), str(n), f"{cores:,}", number(rate), clock(events / rate), lake,
                         number(node_gib)])
    table = markdown(["events", "nodes", "cores", "events/s", "wall", "lake GB", "executor memory per node GiB"],
                     rows)
    memory = (f"{per_core_mib / GIB:.1f} GiB per executor core: the measured peak of the whole local process"
              f" tree ({largest.peak_mib:,.0f} MiB: driver, executor JVM and Python workers) over its"
              f" {largest.cores} cores; the driver's share is in it, so it is an upper bound"
              if per_core_mib is not None else "memory per executor core: not measured (no peak in spark.json)")
    return "\n".join([
        f"### spark-derive on a cluster: extrapolated from {largest.events:,} events, {largest.cores_from}\n",
        table,
        "",
        "Assumptions (an extrapolation, not a measurement):",
        f"- {largest.per_core:,.0f} events/s per core, spark-derive's at {largest.events:,} events on"
        f" {largest.cores} cores, scaled linearly with cores (the shuffle-bound derivation keeps its per-core"
        f" rate) and multiplied by an efficiency of {efficiency} for what a cluster adds: the shuffle over"
        " the network, stragglers, scheduling.",
        "- Spark's start-up and the driver's planning are inside the measured time and do not shrink with"
        " nodes: a wall time of a few minutes or less is a floor, not a prediction; measured at a small size,"
        " they also lower the per-core rate, so the largest size measured is the one to scale from.",
        f"- Storage proportional to events: {number(largest.bytes_per_event)} lake bytes per event, as measured"
        " (GB = 10^9 bytes).",
        f"- {memory}.",
        "- Not modelled: local spill disk, reading the input from object storage, skew (a customer's events"
        " are derived on one core).",
        "",
    ])


def ram_mib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20


def embedded_limits(measures: list[Measure]) -> str:
    """Where the embedded engine stops being the right choice: for each stage that builds a store
    (ingest, derive), the size at which it would take an hour or its peak memory would reach this
    machine's RAM, extrapolated from its two largest measured sizes; and which bound comes first."""
    ram = ram_mib()
    rows, bounds = [], []
    for stage in dict.fromkeys(m.stage for m in measures if m.stage.startswith(("ingest", "derive"))):
        points = sorted((m for m in measures if m.stage == stage), key=lambda m: m.events)
        big = points[-1]
        linear = big.events * HOUR / big.seconds
        bounds.append((linear, f"{stage}: would take an hour (linear from {count(big.events)})"))
        grown, at_ram = "—", "—"
        if len(points) > 1 and points[-2].events < big.events:
            small = points[-2]
            exponent = math.log(big.seconds / small.seconds) / math.log(big.events / small.events)
            if exponent > 0:
                hour = big.events * (HOUR / big.seconds) ** (1 / exponent)
                grown = f"{count(hour)} (time ∝ events^{exponent:.2f})"
                bounds.append((hour, f"{stage}: would take an hour (time growing as from {count(small.events)}"
                                     f" to {count(big.events)}: events^{exponent:.2f})"))
            if big.peak_mib is not None and small.peak_mib is not None and big.peak_mib > small.peak_mib:
                slope = (big.peak_mib - small.peak_mib) / (big.events - small.events)
                reach = big.events + (ram - big.peak_mib) / slope
                at_ram = count(reach)
                bounds.append((reach, f"{stage}: peak memory would reach the {ram / GIB:.1f} GiB of RAM"
                                      f" (linear through {count(small.events)} and {count(big.events)})"))
        peak = f", {number(big.peak_mib)} MiB" if big.peak_mib is not None else ""
        rows.append([stage, f"{count(big.events)}: {clock(big.seconds)}{peak}", count(linear), grown, at_ram])
    if not rows:
        return ""
    first = min(bounds)
    return "\n".join([
        "### Where the embedded engine stops being the right choice\n",
        markdown(["stage", "largest measured", "an hour, linear", "an hour, growth as measured",
                  f"RAM ({ram / GIB:.1f} GiB), linear"], rows),
        "",
        f"First bound: about {count(first[0])} events — {first[1]}.",
        "DuckDB's memory is capped at 40% of RAM (CONVOSCOPE_MEMORY_LIMIT) and derive holds one 12M-event"
        " partition at a time, so a memory bound extrapolated linearly is the worst case, not what the design"
        " expects; the time bounds are a full rebuild of one stage, not the daily increment.",
        "",
    ])


def run_benches(sizes: list[int], *, master: str) -> None:
    """Both benches at `sizes`, each as its own process with this interpreter; they write bench/out."""
    for script, extra in (("run.py", []), ("spark.py", ["--master", master])):
        subprocess.run([sys.executable, str(ROOT / script), "--events", *map(str, sizes), *extra], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="Where results.json and spark.json are (bench/out).")
    parser.add_argument("--run", type=int, nargs="+", metavar="SIZES",
                        help="Run bench/run.py and bench/spark.py at these sizes first (they write bench/out).")
    parser.add_argument("--master", default="local[2]",
                        help="The Spark master of --run, and of a spark.json that does not record its own.")
    parser.add_argument("--nodes", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--cores-per-node", type=int, default=16)
    parser.add_argument("--efficiency", type=float, default=0.6,
                        help="The share of linear scaling a cluster keeps (shuffle over the network, stragglers).")
    args = parser.parse_args()
    if args.run:
        if args.out.resolve() != OUT:
            parser.error("--run writes bench/out; leave --out out")
        run_benches(args.run, master=args.master)
    measures: list[Measure] = []
    for name, read in (("results.json", embedded), ("spark.json", lambda p: spark(p, args.master))):
        path = args.out / name
        if path.exists():
            measures += read(path)
        else:
            print(f"(no {path}: run {'bench/run.py' if name == 'results.json' else 'bench/spark.py'} or --run)\n")
    if not measures:
        raise SystemExit("nothing measured to print")
    print(measured(measures))
    runs = [m for m in measures if m.engine == "spark"]
    if runs:
        largest = max(runs, key=lambda m: m.events)
        print(cluster(largest, nodes=args.nodes, cores_per_node=args.cores_per_node, efficiency=args.efficiency))
    limits = embedded_limits([m for m in measures if m.engine == "embedded"])
    if limits:
        print(limits)


if __name__ == "__main__":
    main()
