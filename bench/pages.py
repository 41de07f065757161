"""Benchmark: a detail report's page at scale (issue 28 point 3, issue 30 point 2), as a report page reads it.

For each detail report, times what a page request asks of the reports (`web.reports.html_table`): the count,
then a page's rows — the first page, the middle page and the first page sorted by one column. Cold is a request
whose keys this process has not listed yet (the paging cache emptied first: reports/paging.py), warm one asked
again; DuckDB's own buffers are warm in both. Prints p50 and p95 over `--repeat` requests, in seconds, and the floor
beside them: the report's table listed in its order, the least a page that needs every key can cost. Runs against
an older commit too (without reports/paging.py, where cold and warm are the same work).

    .venv/bin/python bench/pages.py --db /work/bench10m-pg.duckdb --from 2026-05-01 --to 2026-05-30 --tz UTC
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from convoscope import reports, service
from convoscope.config import Config, load_config
from convoscope.reports.base import Params, Report
from convoscope.store import Store, id_order, stored

# The column each report's sorted view sorts by, and whether the other way round.
SORTS = {"sessions-detail": ("Channel", False), "contact-export": ("Duration Seconds", True),
         "conversation-export": ("Last Closed At", True)}
# The floor of a page that needs the whole ordered list of keys: the report's table listed in its order, none of the
# report's own work (zones, joins, filters); the store's rows are the range's, give or take a day.
FLOORS = {"sessions-detail": ("sessions", "session_key"), "sessions-detail-with-messages": ("sessions", "session_key"),
          "contact-export": ("contacts", "contact_key"),
          "conversation-export": ("conversations", "conversation_key")}


def clear() -> None:
    """Empty the paging cache, where the code has one."""
    paging = getattr(reports, "paging", None)
    if paging is not None:
        paging.KEYS.clear()


def timed(work: Callable[[], object], *, repeat: int, cold: bool) -> list[float]:
    if not cold:
        work()  # the request that fills the cache
    seconds = []
    for _ in range(repeat):
        if cold:
            clear()
        start = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - start)
    return seconds


def request(store: Store, config: Config, report: Report, params: Params, *, rows: bool = True, size: int = 100,
            offset: int = 0, order: reports.Order | None = None) -> Callable[[], object]:
    """What a page request asks of the reports: the count, then (with `rows`) the page's rows."""
    def work() -> object:
        counted = reports.count_rows(store, config, report, params)
        if not rows:
            return counted
        return reports.report_rows(store, config, report, params, limit=size, offset=offset, order=order)
    return work


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--from", dest="date_from", default="2026-05-01")
    parser.add_argument("--to", dest="date_to", default="2026-05-30")
    parser.add_argument("--tz", default="UTC")
    parser.add_argument("--as-of", default="2026-06-01T00:00:00Z",
                        help="fixed, as a page's links can give it; without one every request is as of its own now")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--reports", nargs="*", default=list(SORTS), help=f"of {', '.join(FLOORS)}")
    args = parser.parse_args()

    config = load_config(None)
    store = Store(args.db, read_only=True)
    asker = service.Asker("bench", "page", brands=None, messages=True)
    print(f"{'report':<22} {'view':<8} {'rows':>9} {'cold p50':>9} {'cold p95':>9} {'warm p50':>9} {'warm p95':>9}")
    for name in args.reports:
        report, params = service.prepare_report(store, config, name, asker, brands=[], date_from=args.date_from,
                                                date_to=args.date_to, tz=args.tz, as_of=args.as_of)
        count = reports.count_rows(store, config, report, params)
        middle = (count // args.size // 2) * args.size
        column, descending = SORTS.get(name, SORTS["sessions-detail"])
        order = reports.Order([c.display for c in report.output_columns(params)].index(column), descending)

        table, key = FLOORS[name]
        floor = f"SELECT {key} FROM {stored(table)} ORDER BY created_at, {id_order(key)}"
        views = {"floor": lambda sql=floor: store.con.execute(sql).fetchnumpy(),
                 "count": request(store, config, report, params, rows=False),
                 "page 1": request(store, config, report, params, size=args.size),
                 "middle": request(store, config, report, params, size=args.size, offset=middle),
                 "sorted": request(store, config, report, params, size=args.size, order=order)}
        for view, work in views.items():
            cold = timed(work, repeat=args.repeat, cold=True)
            warm = timed(work, repeat=args.repeat, cold=False)
            print(f"{name:<22} {view:<8} {count:>9} {statistics.median(cold):>9.3f} {p95(cold):>9.3f} "
                  f"{statistics.median(warm):>9.3f} {p95(warm):>9.3f}", flush=True)
    store.close()


if __name__ == "__main__":
    main()
