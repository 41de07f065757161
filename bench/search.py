"""Benchmark: the search index (issue 29, decision 151) — its build, its size, a search's time, and what
keeping up with the store costs a search.

For each size, a store of the generated brand's 30 days (made, ingested and derived by the command line
when missing, in bench/out/search-<size>.duckdb); the index file is deleted and built again. Then every
query of a mix — a rare word, a common word, two words, a phrase, a word by its start, a customer's id —
runs `search.search` as the server does (every brand, and narrowed to one brand), pages 1 and 2, ROUNDS times;
p50 and p95 are over all of them. Last, what a search pays to keep up: with nothing new, and after an
ingest of 1,000 events. Prints a table and writes bench/out/search.json.

    .venv/bin/python bench/search.py --events 1000000 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from convoscope import search
from convoscope.store import Store
from convoscope.synth import EVENTS_PER_CUSTOMER_PER_30_DAYS

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "out"
CLI = [sys.executable, "-m", "convoscope.cli"]
ROUNDS = 10


def cli(*args: str) -> None:
    subprocess.run([*CLI, *args], check=True, stdout=subprocess.DEVNULL)


def store_of(target: int) -> Path:
    tag = f"{target // 1_000_000}m" if target >= 1_000_000 else f"{target // 1000}k"
    events, db = OUT / f"events-{tag}.jsonl", OUT / f"search-{tag}.duckdb"
    if not events.exists():
        customers = max(1, round(target / EVENTS_PER_CUSTOMER_PER_30_DAYS))
        cli("generate", "--customers", str(customers), "--days", "30", "--seed", "1", "--out", str(events))
    if not db.exists():
        cli("--db", str(db), "ingest", str(events))
    return db


def words_by_count(db: Path) -> tuple[str, str]:
    """The messages' most common word (of more than 3 letters), and their rarest (the generator's vocabulary is small:
    at 10M events that is in some 180 messages)."""
    with sqlite3.connect(search.index_path(db)) as con:
        con.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, words, col)")
        common = con.execute("SELECT term FROM temp.vocab WHERE col = 'body' AND length(term) > 3 "
                             "ORDER BY doc DESC LIMIT 1").fetchone()
        rare = con.execute("SELECT term FROM temp.vocab WHERE col = 'body' AND term GLOB '[a-z]*' "
                           "ORDER BY doc, term LIMIT 1").fetchone()
    return str(common[0]), str(rare[0])


def index_bytes(db: Path) -> int:
    base = search.index_path(db)
    return sum(Path(str(base) + s).stat().st_size for s in ("", "-wal") if Path(str(base) + s).exists())


def bench(target: int) -> list[dict]:
    db = store_of(target)
    for suffix in ("", "-wal", "-shm"):
        Path(str(search.index_path(db)) + suffix).unlink(missing_ok=True)
    rows: list[dict] = []
    with Store(db) as store:
        events = store.count("events")
        start = time.perf_counter()
        indexed = search.catch_up(store)
        built = time.perf_counter() - start
        size = index_bytes(db)
        store_size = db.stat().st_size
        print(f"{events:>12,} events  {indexed:,} messages indexed in {built:,.1f} s; index {size / 2**20:,.0f} MiB "
              f"({size / max(indexed, 1):.0f} B a message; the store {store_size / 2**20:,.0f} MiB)", flush=True)
        rows.append({"events": events, "messages": indexed, "build_s": round(built, 1), "index_bytes": size,
                     "store_bytes": store_size})
        common, rare = words_by_count(db)
        customer = store.con.execute("SELECT customer_id FROM events LIMIT 1").fetchall()[0][0]
        brand = store.brands()[0]
        queries = {"rare word": rare, "common word": common, "two words": "parcel lost",
                   "phrase": '"where is my order"', "prefix": "refund*", "customer id": customer}
        times: list[float] = []
        for name, q in queries.items():
            taken = []
            first = search.search(store, q, [brand], every_brand=True, words=True)
            for _ in range(ROUNDS):
                for every_brand in (True, False):
                    for page in (1, 2):
                        start = time.perf_counter()
                        search.search(store, q, [brand], every_brand=every_brand, words=True, page=page)
                        taken.append(time.perf_counter() - start)
            times += taken
            taken.sort()
            p95 = taken[int(0.95 * (len(taken) - 1))]
            print(f"{'':>12}  {name:<12} {q!r:<24} p50 {statistics.median(taken) * 1000:7.1f} ms  "
                  f"p95 {p95 * 1000:7.1f} ms  (page 1: {len(first.messages)} messages, {first.id_count} by id)",
                  flush=True)
            rows.append({"events": events, "query": name, "q": q, "p50_ms": round(statistics.median(taken) * 1000, 1),
                         "p95_ms": round(p95 * 1000, 1)})
        times.sort()
        p50, p95 = statistics.median(times), times[int(0.95 * (len(times) - 1))]
        print(f"{'':>12}  {'all queries':<37} p50 {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms", flush=True)
        rows.append({"events": events, "query": "all", "p50_ms": round(p50 * 1000, 1), "p95_ms": round(p95 * 1000, 1)})
        start = time.perf_counter()
        search.catch_up(store)
        idle = time.perf_counter() - start
    batch = OUT / "search-batch.jsonl"
    cli("generate", "--customers", "50", "--days", "30", "--seed", str(int(time.time())), "--brand", "newcomers",
        "--out", str(batch))
    cli("--db", str(db), "ingest", "--no-derive", str(batch))
    with Store(db) as store:
        start = time.perf_counter()
        added = search.catch_up(store)
        after = time.perf_counter() - start
    print(f"{'':>12}  keeping up: {idle * 1000:.0f} ms with nothing new, {after * 1000:.0f} ms for an ingest of "
          f"{added:,} new messages", flush=True)
    rows.append({"events": events, "catch_up_idle_ms": round(idle * 1000), "catch_up_new_ms": round(after * 1000),
                 "catch_up_new_messages": added})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    os.environ.setdefault("CONVOSCOPE_LOCK_TIMEOUT", "600")
    results = []
    for target in args.events:
        results += bench(target)
    (OUT / "search.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
