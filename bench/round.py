"""Benchmark: one round of the server's writer alone (issue 30 point 1), the floor of live freshness.

A round as `web/writer.py` makes it under bench/live.py's load, with nothing else running: `--deliveries` mapped
Chatwoot deliveries (bench/live.py's, of one message each) and `--batches` API batches of 100 events (bench/load.py's
new customers), stored in one transaction (`service.store_together`) and derived (`service.ensure_derived`), with the
ids the writer knows learnt first. Writes to the store it is given: run it on a copy. Prints each round's storing and
deriving time, and how long DuckDB takes to plan the chunk's validation (an `EXPLAIN` of it, the part that does not
depend on the chunk's size).

    cp /tmp/live10m-fresh6.duckdb /tmp/round10m.duckdb
    .venv/bin/python bench/round.py --db /tmp/round10m.duckdb --rounds 6
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from convoscope import sources  # noqa: E402
from convoscope.config import Config  # noqa: E402
from convoscope.events.known import KnownIds  # noqa: E402
from convoscope.events.readers import line_texts, stage_texts, unstage_mapped  # noqa: E402
from convoscope.events.schema import validation_sql  # noqa: E402
from convoscope.service import events as service  # noqa: E402
from convoscope.store import Store  # noqa: E402
from live import deliveries  # noqa: E402
from load import batch_events, markdown  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="a store with events (a copy: the rounds write to it)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--deliveries", type=int, default=600, help="webhook deliveries a round (default 600)")
    parser.add_argument("--batches", type=int, default=4, help="API batches of 100 events a round (default 4)")
    args = parser.parse_args()

    bodies = deliveries(args.deliveries * args.rounds)
    known = KnownIds()
    rows = []
    with Store(args.db) as store:
        known.load(store.con)
        for number in range(args.rounds):
            bodies_now = bodies[number * args.deliveries:(number + 1) * args.deliveries]
            records = [sources.map_delivery("chatwoot", body, source=f"webhook:chatwoot:round-{number}-{i}")
                       for i, (body, _) in enumerate(bodies_now)]
            batches = [service.Batch([json.dumps(e).encode() for e in batch_events(f"round-{number}-{b}a")
                                      + batch_events(f"round-{number}-{b}b")], f"api:round-{number}-{b}")
                       for b in range(args.batches)]
            began = time.perf_counter()
            service.store_together(store, batches, [("chatwoot", "chatwoot-round", records)], known=known)
            stored = time.perf_counter()
            service.ensure_derived(store, Config())
            derived = time.perf_counter()
            rows.append({"round": str(number + 1), "events": f"{len(records) + 100 * args.batches:,}",
                         "storing": f"{(stored - began) * 1000:,.0f} ms",
                         "deriving": f"{(derived - stored) * 1000:,.0f} ms"})
        planned = []
        stage_texts(store.con, line_texts([("plan", [b"{}"])]))  # a chunk of one line, to plan over
        try:
            for _ in range(3):
                began = time.perf_counter()
                store.con.execute("EXPLAIN " + validation_sql(None, record="rec", told_brand=True))
                planned.append(time.perf_counter() - began)
        finally:
            unstage_mapped(store.con)
    print(f"{args.db}: a round of {args.deliveries} deliveries and {args.batches} batches of 100, alone")
    print(markdown(rows))
    print(f"planning the validation of a chunk (EXPLAIN, best of 3): {min(planned) * 1000:,.0f} ms")


if __name__ == "__main__":
    main()
