"""Benchmark: concurrent load on one `convoscope serve` over loopback (issue 6).

Writers post batches of events (POST /api/v1/events) while readers run reports (GET
/api/v1/reports/...) and viewers open conversations, through the API and as web pages, for a bounded
time. Each batch is CUSTOMERS_PER_BATCH brand-new customers, each with one complete conversation (one AI
session handed off to one team contact) on LOAD_DAY, so a report of that day must show every session of
a batch or none of them. Readers check that on every answer; `verify_store` checks afterwards that every
posted event is in the store. Prints, per kind of request, the count, requests per second and p50/p99
latency, and the events posted per second. tests/test_load.py runs the same scenario for a shorter time.

    .venv/bin/python bench/load.py                        # 60 s; 3 writers, 2 readers, 2 viewers
    .venv/bin/python bench/load.py --duration 120 --writers 4 --readers 2 --viewers 2 --customers 2000
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

LOAD_DAY = "2025-03-12"  # every load batch happens on this day, which no generated event is on
LOAD_AS_OF = "2025-03-20T00:00:00Z"  # fixed, so that the reports of LOAD_DAY are deterministic
CUSTOMERS_PER_BATCH = 5
EVENTS_PER_CUSTOMER = 10
BATCH_EVENTS = CUSTOMERS_PER_BATCH * EVENTS_PER_CUSTOMER
REQUEST_TIMEOUT = 30.0  # seconds; a request slower than this counts as failed
PASSWORD = "load test password"

POST = "post events"
DETAIL = "sessions-detail csv"
SUMMARY = "sessions-summary json"
BASELINE = "sessions-detail json (whole brand)"
CONVERSATION_API = "conversation api"
CONVERSATION_PAGE = "conversation page"
KINDS = (POST, DETAIL, SUMMARY, BASELINE, CONVERSATION_API, CONVERSATION_PAGE)


def batch_events(batch: str) -> list[dict[str, Any]]:
    """CUSTOMERS_PER_BATCH new customers `{batch}-c{j}`, each with one conversation on LOAD_DAY: an AI
    session (three customer messages, two replies, a handoff) and the team contact it opened."""
    events = []
    for j in range(CUSTOMERS_PER_BATCH):
        customer = f"{batch}-c{j}"
        steps: list[tuple[str, str, dict[str, Any]]] = [
            ("09:00:00", "customer_message", {"channel": "chat", "text": "Where is my parcel?"}),
            ("09:00:05", "ai_message", {"channel": "chat", "text": "Let me look.", "ai_agent": "Care",
                                        "guides": ["Order Status"]}),
            ("09:02:00", "customer_message", {"channel": "chat", "text": "It is late"}),
            ("09:02:05", "ai_message", {"channel": "chat", "text": "It left the depot today.", "ai_agent": "Care"}),
            ("09:04:00", "customer_message", {"channel": "chat", "text": "I want a person"}),
            ("09:04:05", "handoff", {"category": "handoff_manual", "ai_agent": "Care"}),
            ("09:05:00", "agent_message", {"channel": "chat", "text": "Hello, Sam here.", "agent": "sam"}),
            ("09:06:00", "customer_message", {"channel": "chat", "text": "Thanks"}),
            ("09:07:00", "agent_message", {"channel": "chat", "text": "Refund sent.", "agent": "sam"}),
            ("09:08:00", "contact_end", {"agent": "sam"}),
        ]
        for n, (clock, type_, fields) in enumerate(steps):
            events.append({"event_id": f"{customer}-e{n}", "type": type_, "occurred_at": f"{LOAD_DAY}T{clock}Z",
                           "customer_id": customer, **fields})
    assert len(events) == BATCH_EVENTS
    return events


def batch_of(customer: str) -> str | None:
    """The batch a load customer belongs to (None for a customer of the generated brand)."""
    found = re.fullmatch(r"(load-w\d+-\d+)-c\d+", customer)
    return found.group(1) if found else None


@dataclass
class Credentials:
    """An administrator's token for the writers, a reporting role's for the readers, and for the viewers
    a token and a user name to log in with (password PASSWORD) for the pages."""

    writer_token: str
    reader_token: str
    viewer_token: str
    page_user: str


@dataclass
class Observed:
    """What the clients saw: latencies per kind, every failure, every posted event id, and every
    inconsistency a report showed."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)
    inconsistencies: list[str] = field(default_factory=list)
    posted: set[str] = field(default_factory=set)
    batches: set[str] = field(default_factory=set)
    report_sizes: set[int] = field(default_factory=set)  # how many batches each sessions-detail showed
    seconds: float = 0.0

    def merge(self, other: Observed) -> None:
        for kind, values in other.latencies.items():
            self.latencies[kind] += values
        self.failures += other.failures
        self.inconsistencies += other.inconsistencies
        self.posted |= other.posted
        self.batches |= other.batches
        self.report_sizes |= other.report_sizes


class Scenario:
    """The clients' shared state: the stop signal, the conversation ids found in reports so far, and
    the whole-brand report read before the load started, which the load must not change."""

    def __init__(self, url: str, credentials: Credentials, *, baseline_query: dict[str, str]) -> None:
        self.url, self.credentials, self.baseline_query = url, credentials, baseline_query
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.conversations: list[str] = []
        self.load_conversations: set[str] = set()
        self.baseline: Any = None

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT, headers=headers)

    def add_conversations(self, ids: list[str], *, load: bool) -> None:
        with self.lock:
            fresh = [i for i in ids if i not in self.load_conversations] if load else ids
            self.conversations += fresh
            if load:
                self.load_conversations.update(fresh)

    def timed(self, seen: Observed, kind: str, send: Callable[..., httpx.Response], path: str,
              **options: Any) -> httpx.Response | None:
        """`send(path, **options)`'s response when it is 2xx; else None, with the failure recorded."""
        start = time.perf_counter()
        try:
            response = send(path, **options)
        except httpx.HTTPError as exc:
            seen.failures.append(f"{kind}: {type(exc).__name__}: {exc}")
            return None
        seen.latencies[kind].append(time.perf_counter() - start)
        if not 200 <= response.status_code < 300:
            seen.failures.append(f"{kind}: HTTP {response.status_code}: {response.text[:300]}")
            return None
        return response

    # --- the three kinds of client -------------------------------------------------------------------

    def writer(self, number: int, seen: Observed) -> None:
        with self.client(self.credentials.writer_token) as client:
            sequence = 0
            while not self.stop.is_set():
                batch = f"load-w{number}-{sequence:06d}"
                sequence += 1
                events = batch_events(batch)
                response = self.timed(seen, POST, client.post, "/api/v1/events", json=events)
                if response is None:
                    continue
                answer = response.json()
                if answer != {"accepted": BATCH_EVENTS, "duplicate": 0, "rejected": 0, "errors": []}:
                    seen.failures.append(f"{POST}: batch {batch} answered {answer}")
                    continue
                seen.posted.update(e["event_id"] for e in events)
                seen.batches.add(batch)

    def reader(self, number: int, seen: Observed) -> None:
        """Runs, in turn, the sessions-detail CSV and the sessions-summary JSON of LOAD_DAY and the
        whole-brand sessions-detail JSON. Each answer must hold whole batches only, never fewer than
        this reader saw before, and the whole-brand report must not change."""
        day = {"from": LOAD_DAY, "to": LOAD_DAY, "tz": "UTC", "as_of": LOAD_AS_OF}
        as_json = {"Accept": "application/json"}
        batches_seen: set[str] = set()
        sessions_seen = 0
        with self.client(self.credentials.reader_token) as client:
            turn = number
            while not self.stop.is_set():
                turn += 1
                if turn % 3 == 0:
                    response = self.timed(seen, DETAIL, client.get, "/api/v1/reports/sessions-detail", params=day)
                    if response is None:
                        continue
                    rows = _csv_rows(response.text)
                    batches = whole_batches(rows, seen)
                    if not batches_seen <= batches:
                        seen.inconsistencies.append(f"sessions-detail lost batches it showed before: "
                                                    f"{sorted(batches_seen - batches)[:5]}")
                    batches_seen = batches
                    seen.report_sizes.add(len(batches))
                    self.add_conversations([row["Conversation ID"] for row in rows], load=True)
                elif turn % 3 == 1:
                    response = self.timed(seen, SUMMARY, client.get, "/api/v1/reports/sessions-summary", params=day,
                                          headers=as_json)
                    if response is None:
                        continue
                    sessions = sum(int(row["Sessions"]) for row in response.json()["rows"])
                    if sessions % CUSTOMERS_PER_BATCH or sessions < sessions_seen:
                        seen.inconsistencies.append(f"sessions-summary of {LOAD_DAY} counted {sessions} sessions "
                                                    f"(after {sessions_seen}): not whole batches of "
                                                    f"{CUSTOMERS_PER_BATCH}, or fewer than before")
                    sessions_seen = max(sessions_seen, sessions)
                else:
                    response = self.timed(seen, BASELINE, client.get, "/api/v1/reports/sessions-detail",
                                          params=self.baseline_query, headers=as_json)
                    if response is not None and response.json() != self.baseline:
                        seen.inconsistencies.append("the whole-brand sessions-detail changed under the load")

    def viewer(self, number: int, seen: Observed) -> None:
        """Opens random conversations found in the reports: even viewers through the API (checking a
        load conversation's ten events), odd ones as the web page of a logged-in user."""
        pick = random.Random(number)
        page = number % 2 == 1
        with self.client(None if page else self.credentials.viewer_token) as client:
            if page and not log_in(client, self.credentials.page_user, PASSWORD):
                seen.failures.append(f"{CONVERSATION_PAGE}: could not log in as {self.credentials.page_user}")
                return
            while not self.stop.is_set():
                with self.lock:
                    conversation = pick.choice(self.conversations)
                    is_load = conversation in self.load_conversations
                if page:
                    response = self.timed(seen, CONVERSATION_PAGE, client.get, f"/conversations/{conversation}")
                    if response is not None and conversation not in response.text:
                        seen.failures.append(f"{CONVERSATION_PAGE}: /conversations/{conversation} does not name it")
                    continue
                response = self.timed(seen, CONVERSATION_API, client.get, f"/api/v1/conversations/{conversation}")
                if response is None:
                    continue
                found = response.json()
                if found["conversation_id"] != conversation or (is_load and len(found["events"]) != EVENTS_PER_CUSTOMER):
                    seen.inconsistencies.append(f"conversation {conversation} answered "
                                                f"{found['conversation_id']} with {len(found['events'])} events")


def whole_batches(rows: list[dict[str, str]], seen: Observed) -> set[str]:
    """The batches the sessions-detail rows of LOAD_DAY show; a batch with some but not all of its
    sessions, or a row of no batch, is recorded as an inconsistency."""
    per_batch: dict[str, int] = defaultdict(int)
    for row in rows:
        batch = batch_of(row["Customer ID"])
        if batch is None:
            seen.inconsistencies.append(f"sessions-detail of {LOAD_DAY} shows customer {row['Customer ID']!r}")
            continue
        per_batch[batch] += 1
    for batch, count in per_batch.items():
        if count != CUSTOMERS_PER_BATCH:
            seen.inconsistencies.append(f"sessions-detail shows {count} of the {CUSTOMERS_PER_BATCH} "
                                        f"sessions of batch {batch}")
    return set(per_batch)


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


HIDDEN_CSRF = re.compile(r'<input[^>]*name="csrf"[^>]*value="([^"]*)"')


def log_in(client: httpx.Client, name: str, password: str) -> bool:
    """The login form as a browser fills it: its page (and cookie) first, then the post with its token."""
    form = client.get("/login")
    token = HIDDEN_CSRF.search(form.text)
    if form.status_code != 200 or token is None:
        return False
    answer = client.post("/login", data={"name": name, "password": password, "csrf": token.group(1), "next": "/"},
                         follow_redirects=False)
    return answer.status_code in (302, 303) and bool(client.cookies)


def run_load(url: str, credentials: Credentials, *, seconds: float, baseline_query: dict[str, str],
             writers: int = 3, readers: int = 2, viewers: int = 2) -> Observed:
    """Run the clients against the server at `url` for `seconds`, then wait for their last requests."""
    scenario = Scenario(url, credentials, baseline_query=baseline_query)
    observed = Observed()
    with scenario.client(credentials.reader_token) as client:
        first = client.get("/api/v1/reports/sessions-detail", params=baseline_query,
                           headers={"Accept": "application/json"})
    first.raise_for_status()
    scenario.baseline = first.json()
    scenario.add_conversations(sorted({row["Conversation ID"] for row in scenario.baseline["rows"]}), load=False)
    if not scenario.conversations:
        raise SystemExit(f"the report {baseline_query} has no sessions to open conversations of")

    parts: list[Observed] = []
    threads = []
    for role, count in ((scenario.writer, writers), (scenario.reader, readers), (scenario.viewer, viewers)):
        for number in range(count):
            part = Observed()
            parts.append(part)
            threads.append(threading.Thread(target=_guarded, args=(role, number, part), daemon=True))
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    scenario.stop.wait(seconds)
    scenario.stop.set()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT * 2)
    observed.seconds = time.perf_counter() - start
    for part in parts:
        observed.merge(part)
    if any(thread.is_alive() for thread in threads):
        observed.failures.append("a client was still waiting for an answer after the run")
    return observed


def _guarded(role: Callable[[int, Observed], None], number: int, seen: Observed) -> None:
    try:
        role(number, seen)
    except Exception as exc:  # a client that crashes is a failed run, not a silent thread
        seen.failures.append(f"{role.__name__} {number} crashed: {type(exc).__name__}: {exc}")


def verify_store(db: Path, observed: Observed) -> list[str]:
    """After the server stopped: every posted event is stored, nothing else of the load is, and each
    posted batch has its CUSTOMERS_PER_BATCH sessions derived."""
    import duckdb

    problems = []
    with duckdb.connect(str(db), read_only=True) as con:
        stored = {row[0] for row in con.execute("SELECT event_id FROM events WHERE customer_id LIKE 'load-w%'")
                  .fetchall()}
        sessions = con.execute("SELECT count(*) FROM sessions WHERE customer_id LIKE 'load-w%'").fetchall()[0][0]
        pending = con.execute("SELECT count(*) FROM pending").fetchall()[0][0]
    if missing := observed.posted - stored:
        problems.append(f"{len(missing)} posted events are not in the store, e.g. {sorted(missing)[:3]}")
    if unknown := stored - observed.posted:
        problems.append(f"{len(unknown)} stored load events were not acknowledged, e.g. {sorted(unknown)[:3]}")
    if sessions != len(observed.batches) * CUSTOMERS_PER_BATCH:
        problems.append(f"{sessions} load sessions derived for {len(observed.batches)} batches")
    if pending:
        problems.append(f"{pending} customers are still pending derivation")
    return problems


# --- reporting -----------------------------------------------------------------------------------------

def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def table(observed: Observed) -> list[dict[str, str]]:
    rows = []
    total = 0
    for kind in KINDS:
        values = observed.latencies.get(kind, [])
        total += len(values)
        if not values:
            continue
        rows.append({"request": kind, "requests": f"{len(values):,}", "req/s": f"{len(values) / observed.seconds:.1f}",
                     "p50": f"{percentile(values, 0.5) * 1000:,.0f} ms", "p99": f"{percentile(values, 0.99) * 1000:,.0f} ms"})
    rows.append({"request": "all", "requests": f"{total:,}", "req/s": f"{total / observed.seconds:.1f}", "p50": "",
                 "p99": ""})
    return rows


def markdown(rows: list[dict[str, str]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    lines += ["| " + " | ".join(row[h] for h in head) + " |" for row in rows]
    return "\n".join(lines)


# --- the benchmark: a store, users and a server of its own -----------------------------------------------

CLI = [sys.executable, "-m", "convoscope.cli"]


def convoscope(db: Path, config: Path, *args: str, input: str | None = None) -> str:
    done = subprocess.run([*CLI, "--db", str(db), "--config", str(config), *args], input=input,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"convoscope {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare(folder: Path, *, customers: int, days: int) -> tuple[Path, Path, Credentials, dict[str, str]]:
    """A store with a generated brand ending a week ago, and an administrator, an analyst and an agent."""
    db, config = folder / "load.duckdb", folder / "empty.toml"
    config.write_text("")
    start = date.today() - timedelta(days=days + 7)
    events = folder / "generated.jsonl"
    convoscope(db, config, "generate", "--customers", str(customers), "--days", str(days), "--seed", "6",
               "--start", start.isoformat(), "--out", str(events))
    convoscope(db, config, "ingest", str(events))
    tokens = {}
    for name, role in (("writer", "administrator"), ("reader", "analyst"), ("viewer", "agent")):
        convoscope(db, config, "users", "add", name, "--role", role, "--password-stdin", input=PASSWORD + "\n")
        tokens[name] = convoscope(db, config, "users", "token", name).strip()
    last = start + timedelta(days=days - 1)
    baseline = {"from": start.isoformat(), "to": last.isoformat(), "tz": "UTC",
                "as_of": f"{(last + timedelta(days=3)).isoformat()}T00:00:00Z"}
    return db, config, Credentials(tokens["writer"], tokens["reader"], tokens["viewer"], "viewer"), baseline


def serve(db: Path, config: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen([*CLI, "--db", str(db), "--config", str(config), "serve", "--port", str(port)],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_up(url, process, lambda: log.read_text(errors="replace"), within=60)
    except SystemExit:
        process.terminate()
        raise
    return process, url


def wait_until_up(url: str, server: subprocess.Popen[bytes], output: Callable[[], str], within: float = 120) -> None:
    """Wait until the server started as `server` answers at `url`; exit with its `output()` if it never does."""
    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(url + "/login", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit(f"convoscope serve did not start: {output()}")
        time.sleep(0.2)


def peak_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB; NaN when the kernel does not say."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--viewers", type=int, default=2, help="half through the API, half as web pages")
    parser.add_argument("--customers", type=int, default=2000, help="customers of the generated brand")
    parser.add_argument("--days", type=int, default=30, help="days of the generated brand")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="convoscope-load-") as scratch:
        folder = Path(scratch)
        db, config, credentials, baseline = prepare(folder, customers=args.customers, days=args.days)
        process, url = serve(db, config, folder / "serve.log")
        try:
            observed = run_load(url, credentials, seconds=args.duration, baseline_query=baseline,
                                writers=args.writers, readers=args.readers, viewers=args.viewers)
        finally:
            process.terminate()
            process.wait(timeout=30)
        problems = verify_store(db, observed)

    load = os.getloadavg()
    print(f"{args.duration:.0f} s of load; {args.writers} writers, {args.readers} readers, {args.viewers} viewers; "
          f"generated brand of {args.customers:,} customers over {args.days} days; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(markdown(table(observed)))
    print(f"events posted: {len(observed.posted):,} in {len(observed.batches):,} batches of {BATCH_EVENTS} "
          f"({len(observed.posted) / observed.seconds:,.0f} events/s); the sessions-detail of {LOAD_DAY} showed "
          f"{len(observed.report_sizes):,} different numbers of batches, up to {max(observed.report_sizes, default=0):,}")
    failed = observed.failures + observed.inconsistencies + problems
    for line in failed[:20]:
        print("FAILED:", line)
    if failed:
        raise SystemExit(f"{len(failed)} failures")
    print("no request failed; every posted event is stored; every report showed whole batches")


if __name__ == "__main__":
    main()
