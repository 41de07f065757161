"""Benchmark: ingest (JSON Lines and Parquet), derive, every report and compare over the brand's 30 days.

Each stage runs as its own `convoscope` process, so its wall time and peak resident memory (from the
kernel's accounting of that child) are its own. Prints a table and writes bench/out/results.json.

    .venv/bin/python bench/run.py --events 1000000 10000000
    .venv/bin/python bench/run.py --events 10000000 --reports-only   # reuse the stores of a full run
    .venv/bin/python bench/run.py --events 100000000 --formats parquet --no-reports   # ingest and derive only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from convoscope.synth import EVENTS_PER_CUSTOMER_PER_30_DAYS

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "out"
CLI = [sys.executable, "-m", "convoscope.cli"]


def run(args: list[str]) -> tuple[float, float]:
    """Run one convoscope command; returns (seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode not in (0, 3):
        raise SystemExit(f"convoscope {' '.join(args)} failed ({proc.returncode}): {err}")
    return seconds, usage.ru_maxrss / 1024


# The reference points for 10M events on this machine: a DuckDB sort by (customer, time) and a
# compiled state-machine pass over the sorted arrays. Derive time is compared with their sum, scaled.
REFERENCE_SORT_S, REFERENCE_KERNEL_S = 0.9, 0.2

REPORTS = [  # (stage name, the command and its options); each over the generated brand's 30 days
    ("sessions-detail", ["report", "sessions-detail"]),
    ("sessions-detail-with-messages", ["report", "sessions-detail-with-messages"]),
    ("sessions-summary", ["report", "sessions-summary"]),
    ("sessions-summary --by guide", ["report", "sessions-summary", "--by", "guide"]),
    ("outcomes-summary", ["report", "outcomes-summary"]),
    ("guide-effectiveness", ["report", "guide-effectiveness"]),
    ("handoff-themes", ["report", "handoff-themes"]),
    ("contact-export", ["report", "contact-export"]),
    ("contact-summary", ["report", "contact-summary"]),
    ("handoff-funnel", ["report", "handoff-funnel"]),
    ("conversation-export", ["report", "conversation-export"]),
    ("conversation-summary", ["report", "conversation-summary"]),
    ("automation-summary", ["report", "automation-summary"]),
    ("data-quality", ["report", "data-quality"]),
    # What-if (issue 27): the stored column, then one and three sets derived again in memory.
    ("compare (stored only)", ["compare"]),
    ("compare 1 set", ["compare", "--set", "session_inactivity=30m"]),
    ("compare 3 sets", ["compare", "--set", "session_inactivity=30m", "--set", "session_inactivity=4h",
                        "--set", "recontact_window=72h,conversation_window=48h"]),
]


def tag(target: int) -> str:
    return f"{target // 1_000_000}m" if target >= 1_000_000 else f"{target // 1000}k"


def fresh(path: Path) -> Path:
    """`path`, a store file, removed with its write-ahead log, to be made anew."""
    for suffix in ("", ".wal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def keep_other_sizes(path: Path, results: list[dict], size: str) -> None:
    """Write `results` to the JSON file `path`, keeping its rows of the sizes (their field `size`) not in them: a size
    run on its own (100M: no JSON Lines, no reports, partitions of its own) adds to the others."""
    measured = {row[size] for row in results if size in row}
    kept = [row for row in json.loads(path.read_text()) if row.get(size) not in measured] if path.exists() else []
    path.write_text(json.dumps(kept + results, indent=2))


def event_files(target: int, *, days: int = 30, formats: tuple[str, ...] = ("jsonl", "parquet")) -> dict[str, Path]:
    """The generated brand of about `target` events over `days`, in each of `formats` (the same events: the
    generator is seeded), written once into bench/out and used again by every bench."""
    customers = max(1, round(target / EVENTS_PER_CUSTOMER_PER_30_DAYS * 30 / days))
    files = {fmt: OUT / f"events-{tag(target)}.{fmt}" for fmt in formats}
    for path in files.values():
        if not path.exists():
            run(["generate", "--customers", str(customers), "--days", str(days), "--seed", "1", "--out", str(path)])
    return files


def bench(target: int, *, days: int, formats: tuple[str, ...], reports: bool, reports_only: bool) -> list[dict]:
    """Ingest each of `formats` into a store of its own, derive the first one's and run the reports on it."""
    files = event_files(target, days=days, formats=formats)
    events = pq.ParquetFile(files["parquet"]).metadata.num_rows if "parquet" in files else \
        sum(1 for _ in files["jsonl"].open("rb"))
    rows = []

    def stage(name: str, args: list[str], db: Path) -> None:
        seconds, rss = run(["--db", str(db), *args])
        rows.append({"events": events, "stage": name, "seconds": round(seconds, 2),
                     "events_per_s": round(events / seconds), "peak_rss_mib": round(rss)})
        print(f"{events:>12,}  {name:<34} {seconds:>8.2f} s  {events / seconds:>12,.0f} ev/s  {rss:>8,.0f} MiB",
              flush=True)

    stores = {fmt: OUT / f"bench-{tag(target)}{'' if fmt == 'jsonl' else '-pq'}.duckdb" for fmt in formats}
    db = stores[formats[0]]
    if not reports_only:
        for path in stores.values():
            fresh(path)
        stage(f"ingest {formats[0]} (store only)", ["ingest", "--no-derive", str(files[formats[0]])], db)
        stage("derive (all customers)", ["derive"], db)
        ratio = rows[-1]["seconds"] / ((REFERENCE_SORT_S + REFERENCE_KERNEL_S) * events / 10_000_000)
        rows[-1]["ratio_to_reference"] = round(ratio, 1)
        print(f"{'':>12}  {'derive vs sort + kernel reference':<34} {ratio:>8.1f} ×  (issue 5 asks for at most 3 ×)",
              flush=True)
    window = ["--from", "2026-05-01", "--to", "2026-05-30", "--tz", "UTC", "--as-of", "2026-07-01T00:00:00Z"]
    for name, command in REPORTS if reports or reports_only else []:
        shown = name if command[0] != "report" else f"report {name}"
        stage(shown, [*command, *window, "--out", str(OUT / f"{name.split()[0]}.csv")], db)
    if not reports_only:
        for fmt in formats[1:]:
            stage(f"ingest {fmt} (store only)", ["ingest", "--no-derive", str(files[fmt])], stores[fmt])
    store_bytes = db.stat().st_size
    rows.append({"events": events, "stage": "store size", "bytes_per_event": round(store_bytes / events)})
    print(f"{events:>12,}  {'store bytes per event':<34} {store_bytes / events:>8.0f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--reports-only", action="store_true", help="Time the reports on the stores of a full run.")
    parser.add_argument("--formats", nargs="+", choices=["jsonl", "parquet"], default=["jsonl", "parquet"],
                        help="The inputs to ingest, each into a store of its own; the first is derived and reported on.")
    parser.add_argument("--no-reports", action="store_true", help="Ingest and derive only.")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    print(f"{'events':>12}  {'stage':<34} {'time':>10}  {'throughput':>15}  {'peak RSS':>12}")
    results = []
    for target in args.events:
        results += bench(target, days=args.days, formats=tuple(args.formats), reports=not args.no_reports,
                         reports_only=args.reports_only)
    keep_other_sizes(OUT / "results.json", results, "events")


if __name__ == "__main__":
    main()
