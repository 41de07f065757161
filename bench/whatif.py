"""Benchmark: what-if (`compare`) and handoff-themes inside one process, as the server runs them, on the stores
`bench/run.py` leaves in bench/out: the time of each step once the modules are loaded, apart from the process start
that every `convoscope` command pays (numba, scikit-learn and SciPy imported: about 2-4 s on this machine).

    .venv/bin/python bench/whatif.py --events 1000000 10000000
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from convoscope import reports, service
from convoscope.config import Config, parse_definition_set, with_overrides
from convoscope.derive import duckdb_engine
from convoscope.reports import compare
from convoscope.store import Store

T = TypeVar("T")
OUT = Path(__file__).resolve().parent / "out"
WINDOW: dict[str, Any] = {"date_from": "2026-05-01", "date_to": "2026-05-30", "tz": "UTC", "as_of": "2026-07-01T00:00:00Z"}
SETS = ["session_inactivity=30m", "session_inactivity=4h", "recontact_window=72h,conversation_window=48h"]


def timed(rows: list[tuple[str, str, float]], events: str, step: str, work: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - start
    rows.append((events, step, seconds))
    print(f"{events:>12}  {step:<44} {seconds:>8.2f} s", flush=True)
    return result


def bench(tag: str, events: str, rows: list[tuple[str, str, float]]) -> None:
    config = Config()
    asker = service.Asker("bench", "cli")
    with Store(OUT / f"bench-{tag}.duckdb") as store:
        params = {r.name: service.prepare_report(store, config, r.name, asker, **WINDOW)[1] for r in compare.REPORTS}
        timed(rows, events, "compare: the stored column (3 Total rows)", lambda: compare.figures(store, config, params))
        sorted_events = timed(rows, events, "compare: sort the range's customers once",
                              lambda: duckdb_engine.sorted_customers(store, "brand = 'default'"))
        scratch = Store.scratch()
        changed = with_overrides(config, parse_definition_set(SETS[0]))
        assert sorted_events is not None
        timed(rows, events, "compare: derive one set in memory", lambda: duckdb_engine.derive_sorted(
            sorted_events, changed.for_brand, scratch, compare.TABLES))
        timed(rows, events, "compare: one set's figures", lambda: compare.figures(scratch, changed, params))
        scratch.close()
        for count in (1, len(SETS)):
            timed(rows, events, f"compare: whole, {count} set{'s' * (count > 1)}",
                  functools.partial(service.compare, store, config, SETS[:count], asker, **WINDOW))
        themes = reports.get_report("handoff-themes")
        prepared = service.prepare_report(store, config, themes.name, asker, **WINDOW)[1]
        timed(rows, events, "handoff-themes: group and count", lambda: reports.report_rows(store, config, themes,
                                                                                             prepared))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    args = parser.parse_args()
    print(f"{'events':>12}  {'step':<44} {'time':>10}")
    rows: list[tuple[str, str, float]] = []
    for target in args.events:
        tag = f"{target // 1_000_000}m" if target >= 1_000_000 else f"{target // 1000}k"
        bench(tag, f"{target:,}", rows)


if __name__ == "__main__":
    main()
