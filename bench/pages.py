"""Benchmark: every page a user opens at scale, over HTTP, and the CSV exports (issue 30 point 2); and, in process,
what a detail report's page asks of the reports (issue 28 point 3).

`--mode pages` (the default) starts `convoscope serve` on the store and, logged in through the login form as a
browser is, times each page: the dashboard (with its Outcomes section), the reports index, every report's page of
`reports.REPORTS` run over the range (summaries and details, `run=1`), a detail report's middle page too, and every
summary's JSON (`GET /api/v1/reports/NAME`, `Accept: application/json`: every report that is not paged). Cold is a
page's first request in a server process just started (`--cold` fresh processes; the pages of a round run in the
order of the table, so a page's DuckDB data may already have been read by one before it — the store is opened
again by each request anyway, as the server closes it between requests; the OS's file cache stays warm); warm is
`--repeat` requests of a page after one untimed. Then the with-messages export (`--export`, streamed, decision
169), in a fresh server each time, beside a hand-written DuckDB `COPY` of the same query into a file in a process
of its own, alternated `--export-repeat` times: time to the first byte (the header row) and to the first row,
total time, peak memory (the server's VmHWM, the COPY process's ru_maxrss) and whether the bytes are equal. The
COPY is the report's own query (`Report.query`) in the `COPY` options of reports/base.copy_csv, written out here:
it measures what the server adds to DuckDB, not the query. It writes to the store (a user, its token, the audit
rows of the with-messages pages and exports): give it a copy. One markdown table per part.

`--mode reports` is the earlier in-process table: for each detail report, what a page request asks of the reports
(`web.reports.html_table`): the count, then a page's rows — the first page, the middle page and the first page sorted
by one column. Cold is a request whose keys this process has not listed yet (the paging cache emptied first:
reports/paging.py), warm one asked again; DuckDB's own buffers are warm in both. Prints p50 and p95 over `--repeat`
requests, in seconds, and the floor beside them: the report's table listed in its order, the least a page that needs
every key can cost. Runs against an older commit too (without reports/paging.py, where cold and warm are the same
work).

    cp /work/bench10m.duckdb /tmp/pages.duckdb
    .venv/bin/python bench/pages.py --db /tmp/pages.duckdb --from 2026-05-01 --to 2026-05-30 --tz UTC
    .venv/bin/python bench/pages.py --mode reports --db /work/bench10m-pg.duckdb --repeat 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from convoscope import reports, service
from convoscope.config import Config, load_config
from convoscope.reports.base import Params, Report
from convoscope.store import Store, id_order, stored
from load import CLI, free_port, log_in, markdown, peak_mib, wait_until_up  # noqa: E402

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


def in_process(args: argparse.Namespace) -> None:
    """`--mode reports`: a detail report's page, as the reports compute it, in this process."""
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


# --- over HTTP: every page, every summary's JSON, the exports ------------------------------------------------

PASSWORD = "pages bench password"
EXPORT = "sessions-detail-with-messages"


class Served:
    """`convoscope serve` on the store in a process of its own, and a browser logged in to it."""

    def __init__(self, db: Path, config: Path, user: str) -> None:
        self.log = db.with_name(db.name + ".pages.log")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([*CLI, "--db", str(db), "--config", str(config), "serve", "--port",
                                             str(port)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_up(self.url, self.process, lambda: self.log.read_text(errors="replace"), within=300)
        except SystemExit:
            self.stop()
            raise
        self.browser = httpx.Client(base_url=self.url, timeout=600)
        if not log_in(self.browser, user, PASSWORD):
            self.stop()
            raise SystemExit(f"could not log in as {user}")

    def peak_mib(self) -> float:
        return peak_mib(self.process.pid)

    def stop(self) -> None:
        if hasattr(self, "browser"):
            self.browser.close()
        self.process.terminate()
        self.process.wait(timeout=600)


# One page to time: its row label, path and query, and the headers it is asked with.
Target = tuple[str, str, dict[str, str], dict[str, str]]
JSON = {"Accept": "application/json"}


def targets(served: Served, window: dict[str, str], size: int, only: str | None = None) -> list[Target]:
    """Every page a user opens over the range, from the report registry: the dashboard, the reports index, each
    report's page (a paged report's middle page too, found from its first page's count) and each summary's JSON,
    then a conversation's page and a session's JSON; those whose label `only` matches, when given."""
    dated = {k: v for k, v in window.items() if k != "as_of"}
    found: list[Target] = [("dashboard", "/dashboard", dated, {}), ("reports index", "/reports", {}, {})]
    for name, report in reports.REPORTS.items():
        query = window | {"run": "1", "size": str(size)}
        found.append((f"{name} page", f"/reports/{name}", query, {}))
        if report.keyed:
            first = served.browser.get(f"/reports/{name}", params=query)
            first.raise_for_status()
            count = int(re.search(r'data-count="([0-9]+)"', first.text).group(1))  # type: ignore[union-attr]
            middle = max(1, -(-count // size) // 2)
            found.append((f"{name} page {middle:,} (middle)", f"/reports/{name}", query | {"page": str(middle)}, {}))
        else:
            found.append((f"{name} json", f"/api/v1/reports/{name}", window, JSON))
    # One conversation's timeline and one session over the API: the first of the range's last day, as a person
    # opens them from a report.
    last = served.browser.get("/api/v1/reports/sessions-detail", params=dated | {"from": dated["to"]}, headers=JSON)
    last.raise_for_status()
    first_row = last.json()["rows"][0]
    found.append(("conversation page", f"/conversations/{first_row['Conversation ID']}", {}, {}))
    found.append(("session json", f"/api/v1/sessions/{first_row['Session ID']}", {}, JSON))
    return [target for target in found if only is None or re.search(only, target[0])]


def ask(served: Served, target: Target) -> float:
    _, path, query, headers = target
    start = time.perf_counter()
    answer = served.browser.get(path, params=query, headers=headers)
    seconds = time.perf_counter() - start
    if answer.status_code != 200:
        raise SystemExit(f"{path} {query}: {answer.status_code} {answer.text[:300]}")
    return seconds


def ms(values: list[float], share: float) -> str:
    return f"{p_of(values, share) * 1000:,.0f}"


def p_of(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def pages(args: argparse.Namespace, config: Path, user: str) -> None:
    window = {"from": args.date_from, "to": args.date_to, "tz": args.tz, "as_of": args.as_of}
    served = Served(args.db, config, user)  # lists the pages (asking the paged reports' first pages), then goes
    try:
        listed = targets(served, window, args.size, args.only)
    finally:
        served.stop()
    cold: dict[str, list[float]] = {}
    for _ in range(args.cold):
        served = Served(args.db, config, user)
        try:
            for target in listed:
                cold.setdefault(target[0], []).append(ask(served, target))
        finally:
            served.stop()
    served = Served(args.db, config, user)
    rows = []
    try:
        for target in listed:
            ask(served, target)
            warm = [ask(served, target) for _ in range(args.repeat)]
            seen = cold.get(target[0], [])
            rows.append({"page": target[0], "cold p50 ms": ms(seen, 0.5) if seen else "",
                         "cold p95 ms": ms(seen, 0.95) if seen else "", "warm p50 ms": ms(warm, 0.5),
                         "warm p95 ms": ms(warm, 0.95), "warm p95 < 300 ms": "yes" if p_of(warm, 0.95) < 0.3 else "NO"})
            print(" | ".join(rows[-1].values()), file=sys.stderr, flush=True)
        peak = served.peak_mib()
    finally:
        served.stop()
    print(f"\n{len(rows)} pages, range {args.date_from}..{args.date_to} {args.tz}, as of {args.as_of}; cold: "
          f"{args.cold} fresh server processes, warm: {args.repeat} requests after one; server VmHWM {peak:,.0f} MiB\n")
    print(markdown(rows), flush=True)


def export_over_http(args: argparse.Namespace, config: Path, user: str, out: Path) -> dict[str, object]:
    """The with-messages export as a browser downloads it, in a fresh server: the first byte, the first row, the
    end, the server's peak memory, and the bytes' digest."""
    served = Served(args.db, config, user)
    try:
        before = served.peak_mib()
        query = {"from": args.date_from, "to": args.date_to, "tz": args.tz, "as_of": args.as_of}
        digest, size, first, first_row, header = hashlib.sha256(), 0, None, None, None
        start = time.perf_counter()
        with served.browser.stream("GET", f"/api/v1/reports/{EXPORT}", params=query) as answer, \
                out.open("wb") as kept:
            answer.raise_for_status()
            for chunk in answer.iter_raw():
                now = time.perf_counter() - start
                first = first if first is not None else now
                if header is None and b"\r\n" in chunk:
                    header = size + chunk.index(b"\r\n") + 2  # the header row's bytes
                if first_row is None and header is not None and size + len(chunk) > header:
                    first_row = now
                digest.update(chunk)
                kept.write(chunk)
                size += len(chunk)
        total = time.perf_counter() - start
        return {"way": "server, streamed", "first byte s": f"{first:.3f}" if first is not None else "", "first row s": f"{first_row:.3f}" if first_row is not None else "no rows",
                "total s": f"{total:.2f}", "peak MiB": f"{served.peak_mib():,.0f} (idle {before:,.0f})",
                "MB": f"{size / 1e6:,.1f}", "sha256": digest.hexdigest()[:16]}
    finally:
        served.stop()


def export_by_copy(args: argparse.Namespace, config: Path, out: Path) -> dict[str, object]:
    """The hand-written COPY, in a process of its own (`--mode copy`)."""
    done = subprocess.run([sys.executable, __file__, "--mode", "copy", "--db", str(args.db), "--config", str(config),
                           "--from", args.date_from, "--to", args.date_to, "--tz", args.tz, "--as-of", args.as_of,
                           "--out", str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the COPY failed: {done.stderr}")
    found = json.loads(done.stdout)
    return {"way": "DuckDB COPY to a file", "first byte s": "", "first row s": "", "total s": f"{found['seconds']:.2f}",
            "peak MiB": f"{found['peak']:,.0f}", "MB": f"{out.stat().st_size / 1e6:,.1f}",
            "sha256": hashlib.sha256(out.read_bytes()).hexdigest()[:16]}


def copy_alone(args: argparse.Namespace) -> None:
    """`--mode copy`: the export's query, checked as the report path checks it, then COPY written out by hand."""
    config = load_config(args.config)
    store = Store(args.db, read_only=True)
    report, params = service.prepare_report(store, config, EXPORT, service.Asker("bench", "cli"), date_from=args.date_from,
                                            date_to=args.date_to, tz=args.tz, as_of=args.as_of)
    assert report.inputs is None, "a report with Python-computed inputs needs them registered first"
    names = ", ".join('"' + c.display.replace('"', '""') + '"' for c in report.output_columns(params))
    sql = (f"COPY (SELECT nullif(COLUMNS(*)::VARCHAR, '') FROM ({report.query(report, params, config)}) AS r({names})) "
           f"TO '{args.out}' (FORMAT csv, HEADER, NEW_LINE '\r\n', COMMENT '')")
    start = time.perf_counter()
    store.con.execute(sql)
    seconds = time.perf_counter() - start
    store.close()
    print(json.dumps({"seconds": seconds, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def exports(args: argparse.Namespace, config: Path, user: str) -> None:
    rows = []
    folder = args.db.with_name(args.db.name + ".exports")
    folder.mkdir(exist_ok=True)
    try:
        for _ in range(args.export_repeat):  # alternated: the server's, then the COPY
            rows.append(export_over_http(args, config, user, folder / "http.csv"))
            print(" | ".join(map(str, rows[-1].values())), file=sys.stderr, flush=True)
            rows.append(export_by_copy(args, config, folder / "copy.csv"))
            print(" | ".join(map(str, rows[-1].values())), file=sys.stderr, flush=True)
            rows[-1]["bytes equal"] = rows[-2]["bytes equal"] = str(
                (folder / "http.csv").read_bytes() == (folder / "copy.csv").read_bytes())
    finally:
        for path in folder.glob("*.csv"):
            path.unlink()
        folder.rmdir()
    server = [float(str(r["total s"])) for r in rows if r["way"] != "DuckDB COPY to a file"]
    copy = [float(str(r["total s"])) for r in rows if r["way"] == "DuckDB COPY to a file"]
    print(f"\n{EXPORT}, {args.date_from}..{args.date_to} {args.tz}, as of {args.as_of}; alternated {args.export_repeat}"
          f" times; median total {statistics.median(server):.2f} s streamed against {statistics.median(copy):.2f} s "
          f"for the COPY ({statistics.median(server) / statistics.median(copy):.2f}×)\n")
    print(markdown([{k: str(v) for k, v in row.items()} for row in rows]), flush=True)


def bench_user(db: Path, config: Path) -> str:
    """An administrator of this run (a name of its own, so that a second run on the same copy works)."""
    name = f"bench-pages-{int(time.time())}"
    done = subprocess.run([*CLI, "--db", str(db), "--config", str(config), "users", "add", name, "--role",
                           "administrator", "--password-stdin"], input=PASSWORD + "\n", capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"convoscope users add failed: {done.stderr}")
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("pages", "reports", "copy"), default="pages",
                        help="pages: over HTTP, then the exports (default); reports: the in-process paging table")
    parser.add_argument("--db", type=Path, required=True, help="the store (pages writes to it: give it a copy)")
    parser.add_argument("--config", type=Path, help="the configuration (default: one of the bench's, no rate limit)")
    parser.add_argument("--from", dest="date_from", default="2026-05-01")
    parser.add_argument("--to", dest="date_to", default="2026-05-30")
    parser.add_argument("--tz", default="UTC")
    parser.add_argument("--as-of", default="2026-06-01T00:00:00Z",
                        help="fixed, as a page's links can give it; without one every request is as of its own now")
    parser.add_argument("--repeat", type=int, help="warm requests of each (default 20; reports: 5)")
    parser.add_argument("--cold", type=int, default=3, help="pages: fresh server processes, one cold request each")
    parser.add_argument("--export-repeat", type=int, default=2, help="pages: rounds of the two exports")
    parser.add_argument("--no-exports", action="store_true", help="pages: the pages only")
    parser.add_argument("--only", metavar="REGEX", help="pages: those whose label (the table's first column) matches")
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--reports", nargs="*", default=list(SORTS), help=f"reports: of {', '.join(FLOORS)}")
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "reports":
        args.repeat = args.repeat or 5
        in_process(args)
        return
    if args.mode == "copy":
        copy_alone(args)
        return
    args.repeat = args.repeat or 20
    args.db = args.db.resolve()
    config = args.config or args.db.with_name(args.db.name + ".pages.toml")
    if args.config is None:
        config.write_text("[server]\nrate_limit = 0\n")
    user = bench_user(args.db, config)
    pages(args, config, user)
    if not args.no_exports:
        exports(args, config, user)


if __name__ == "__main__":
    main()
