"""Benchmark: ingest a small batch into a large derived store, and time the derivation it causes.

Copies the derived store of a full `bench/run.py` run, then ingests BATCH new events — replies and new
messages of existing customers (late events landing in old conversations) and a few new customers —
and times storing and the incremental derive apart, in this process. Prints a table.

    .venv/bin/python bench/run.py --events 10000000            # once, to build bench/out/bench-10m.duckdb
    .venv/bin/python bench/incremental.py --store bench/out/bench-10m.duckdb --batch 1000
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from convoscope import service
from convoscope.config import Config
from convoscope.store import Store


def new_events(store: Store, batch: int) -> list[dict]:
    """`batch` events: pairs of a customer message and an AI reply for existing customers, and a
    tenth of them from new customers."""
    old = [r[0] for r in store.con.execute(
        f"SELECT customer_id FROM (SELECT DISTINCT customer_id FROM events) USING SAMPLE {batch} ROWS").fetchall()]
    start = datetime(2026, 5, 20, 9, tzinfo=UTC)
    # Ids shaped like the generator's (and real exports' random ones): spread over the stored ids, so
    # no min/max of the batch lets DuckDB skip the stored ones when it looks for duplicates.
    ids = iter(f"evt_{secrets.token_hex(8)}" for _ in range(batch))
    events = []
    for i in range(batch // 2):
        customer = old[i] if i % 10 else f"bench-new-{i}"
        at = start + timedelta(minutes=7 * i)
        events.append({"event_id": next(ids), "type": "customer_message", "customer_id": customer,
                       "occurred_at": at.isoformat(), "channel": "chat", "text": "is my order on its way?"})
        events.append({"event_id": next(ids), "type": "ai_message", "customer_id": customer,
                       "occurred_at": (at + timedelta(seconds=20)).isoformat(), "channel": "chat",
                       "ai_agent": "Ava", "text": "It left the warehouse this morning."})
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="A derived store (it is copied, not changed).")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    config = Config()
    print(f"{'store events':>14}  {'batch':>6}  {'customers':>9}  {'store':>8}  {'derive':>8}  {'peak RSS':>9}")
    with tempfile.TemporaryDirectory(prefix="convoscope-bench-") as scratch:
        for run in range(args.repeat):
            copy = Path(scratch) / f"store-{run}.duckdb"
            shutil.copyfile(args.store, copy)
            with Store(copy) as store:
                stored = store.count("events")
                events = new_events(store, args.batch)
                batch = Path(scratch) / "batch.jsonl"
                batch.write_text("".join(json.dumps(e) + "\n" for e in events))
                began = time.perf_counter()
                service.ingest(store, config, [str(batch)], derive=False)
                stored_s = time.perf_counter() - began
                began = time.perf_counter()
                result = service.ensure_derived(store, config)
                derive_s = time.perf_counter() - began
            copy.unlink()
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            customers = result.customers if result else 0
            print(f"{stored:>14,}  {len(events):>6,}  {customers:>9,}  {stored_s:>6.2f} s  {derive_s:>6.2f} s  "
                  f"{rss:>6,.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
