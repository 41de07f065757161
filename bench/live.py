"""Benchmark: freshness under continuous load on one `convoscope serve` (issue 30 point 1).

Starts `convoscope serve` on a store (`--db`, made beforehand by `convoscope ingest`; it gains the load's events), then for
`--seconds` sends `--rate` events a second in total: half through `POST /api/v1/events` in batches of 100 from
API_LANES writers at once
(bench/load.py's batches: new customers on LOAD_DAY, each with one conversation), half as single signed Chatwoot
webhook deliveries of one message each (`synth_chatwoot.generate`'s `message_created` deliveries that map to one
event, signed as Chatwoot signs). Meanwhile a reader polls the sessions summary (JSON API) of the store's own range
and a conversation page (logged in), and the command line runs `report sessions-summary` every 30 seconds.

Freshness is the time from a 200 answer (acceptance) to the effect in a report: for a sampled API batch, until the
sessions-detail JSON of LOAD_DAY lists its first customer; for a sampled delivery, until the sources report
(`where via=webhook`) counts as many accepted webhook events as had been acknowledged when it was. Afterwards the
server is stopped (draining its spool) and the store is read: every acknowledged event must be in it. Prints
p50/p99 freshness and request latency, the command line's times, events sent, accepted and lost, and the server's
peak resident memory (VmHWM).

    .venv/bin/python bench/live.py --db /tmp/live1m.duckdb --seconds 60 --rate 1000
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from convoscope import sources, synth_chatwoot  # noqa: E402
from load import (  # noqa: E402
    CLI,
    LOAD_DAY,
    PASSWORD,
    batch_events,
    free_port,
    log_in,
    markdown,
    peak_mib,
    percentile,
    wait_until_up,
)

BATCH = 100  # events a POST carries (two load batches of 50)
SECRET = "live-bench-secret"
BRAND = "chatwoot-live"  # the webhooks' brand, apart from the store's own
WEBHOOK_START = date(2025, 4, 1)
WEBHOOK_DAYS = 7
API_LANES = 12  # API writers, each sending its next batch once the last is answered: a POST waits for a writer round
SENDERS = 24  # webhook threads (--senders): each sends its next delivery once the last is answered (~75 ms under load)
PROBE_EVERY = 1.0  # seconds between freshness samples of each half
CLI_EVERY = 30.0
CLI_TIMEOUT = 60.0


@dataclass
class Seen:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    freshness: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    accepted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    api_ids: set[str] = field(default_factory=set)
    webhook_ids: set[str] = field(default_factory=set)
    cli: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def cli(db: Path, config: Path, *args: str, input: str | None = None, timeout: float | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--db", str(db), "--config", str(config), *args], input=input, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def deliveries(count: int) -> list[tuple[bytes, str]]:
    """`count` message deliveries of a generated Chatwoot account, each mapping to exactly one event, with it."""
    contacts = max(60, count // 8 + 100)
    while True:
        account = synth_chatwoot.generate(contacts=contacts, days=WEBHOOK_DAYS, start=WEBHOOK_START, seed=30)
        found = []
        for delivery in account.deliveries:
            if delivery.event != "message_created":
                continue
            record = sources.map_delivery("chatwoot", delivery.body, source="bench")
            if len(record.events) == 1:
                found.append((delivery.body, str(record.events[0]["event_id"])))
                if len(found) == count:
                    return found
        contacts = contacts * 3 // 2


def signed(body: bytes, delivery: str) -> dict[str, Any]:
    """A delivery's body and the headers Chatwoot signs it with (its id `delivery`), as `client.post` takes them."""
    headers = synth_chatwoot.signed_headers(body, secret=SECRET, timestamp=int(time.time()), delivery=delivery)
    return {"content": body, "headers": headers}


class Live:
    def __init__(self, url: str, tokens: dict[str, str], *, rate: float, seconds: float, db: Path, config: Path,
                 bodies: list[tuple[bytes, str]], range_: dict[str, str], conversation: str,
                 cli_every: float = CLI_EVERY, readers: bool = True, senders: int = SENDERS) -> None:
        self.cli_every = cli_every
        self.senders = senders
        self.readers = readers
        self.url, self.tokens, self.rate, self.seconds = url, tokens, rate, seconds
        self.db, self.config, self.bodies, self.range, self.conversation = db, config, bodies, range_, conversation
        self.seen = Seen()
        self.stop = threading.Event()
        self.start = 0.0
        self.next_body = 0
        self.body_lock = threading.Lock()
        self.api_probes: list[tuple[float, str]] = []  # (accepted at, customer) waiting to be seen
        self.webhook_probes: list[tuple[float, int]] = []  # (accepted at, webhook events acknowledged by then)
        self.probe_lock = threading.Lock()

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0,
                            headers={"Authorization": f"Bearer {token}"} if token else {})

    def timed(self, kind: str, send: Any, path: str, **options: Any) -> httpx.Response | None:
        begin = time.perf_counter()
        try:
            response = send(path, **options)
        except httpx.HTTPError as exc:
            with self.seen.lock:
                self.seen.failures.append(f"{kind}: {type(exc).__name__}: {exc}")
            return None
        with self.seen.lock:
            self.seen.latencies[kind].append(time.perf_counter() - begin)
            if response.status_code != 200:
                self.seen.failures.append(f"{kind}: HTTP {response.status_code}: {response.text[:200]}")
                return None
        return response

    def pace(self, number: int, per_second: float) -> bool:
        """Wait until request `number` of a stream of `per_second` is due; False once the run is over."""
        due = self.start + number / per_second
        if due - self.start >= self.seconds:
            return False
        delay = due - time.perf_counter()
        if delay > 0:
            self.stop.wait(delay)
        return not self.stop.is_set()

    def api_writer(self, lane: int) -> None:
        per_lane = self.rate / 2 / BATCH / API_LANES
        last_probe = 0.0
        with self.client(self.tokens["writer"]) as client:
            number = 0
            while self.pace(number, per_lane):
                events = (batch_events(f"load-w{lane}-{2 * number:06d}")
                          + batch_events(f"load-w{lane}-{2 * number + 1:06d}"))
                number += 1
                with self.seen.lock:
                    self.seen.sent["api"] += len(events)
                response = self.timed("POST /api/v1/events (100)", client.post, "/api/v1/events", json=events)
                if response is None:
                    continue
                accepted = response.json()["accepted"]
                now = time.perf_counter()
                with self.seen.lock:
                    self.seen.accepted["api"] += accepted
                    if accepted == len(events):
                        self.seen.api_ids.update(e["event_id"] for e in events)
                    else:
                        self.seen.failures.append(f"API batch answered {response.json()}")
                if lane == 0 and now - last_probe >= PROBE_EVERY:  # one lane's batches are the samples
                    last_probe = now
                    with self.probe_lock:
                        self.api_probes.append((now, events[-1]["customer_id"]))

    def webhook_sender(self, lane: int) -> None:
        per_lane = self.rate / 2 / self.senders
        last_probe = 0.0
        with httpx.Client(base_url=self.url, timeout=30.0) as client:
            number = 0
            while self.pace(number, per_lane):
                number += 1
                with self.body_lock:
                    if self.next_body >= len(self.bodies):
                        self.seen.failures.append("ran out of generated deliveries")
                        return
                    body, event_id = self.bodies[self.next_body]
                    self.next_body += 1
                with self.seen.lock:
                    self.seen.sent["webhook"] += 1
                response = self.timed("POST chatwoot webhook (1)", client.post, synth_chatwoot.WEBHOOK_PATH,
                                      **signed(body, f"live-{event_id}"))
                if response is None:
                    continue
                now = time.perf_counter()
                with self.seen.lock:
                    self.seen.accepted["webhook"] += response.json()["accepted"]
                    self.seen.webhook_ids.add(event_id)
                    acknowledged = self.seen.accepted["webhook"]
                if lane == 0 and now - last_probe >= PROBE_EVERY:
                    last_probe = now
                    with self.probe_lock:
                        self.webhook_probes.append((now, acknowledged))

    def prober(self, half: str) -> None:
        """Polls one half's report while its probes wait; each probe's freshness is its first poll that shows it.
        A thread a half, so that a probe waits for one report's polls only: freshness is known to within one poll
        (~0.2 s under load), which a poll of both reports in turn doubled."""
        as_json = {"Accept": "application/json"}
        day = {"from": LOAD_DAY, "to": LOAD_DAY, "tz": "UTC"}
        hooks = {"from": WEBHOOK_START.isoformat(), "to": "2025-04-30", "tz": "UTC", "where": "via=webhook"}
        probes = self.api_probes if half == "api" else self.webhook_probes
        with self.client(self.tokens["writer"]) as client:
            while not (self.stop.is_set() and not probes):
                with self.probe_lock:
                    waiting = list(probes)
                if waiting and half == "api":
                    asked = time.perf_counter()
                    response = self.timed("sessions-detail json (probe)", client.get, "/api/v1/reports/sessions-detail",
                                          params=day, headers=as_json)
                    if response is not None:
                        shown = {row["Customer ID"] for row in response.json()["rows"]}
                        with self.probe_lock:
                            for probe in [p for p in waiting if p[1] in shown]:
                                self.seen.freshness["API batch"].append(asked - probe[0])
                                probes.remove(probe)
                elif waiting:
                    asked = time.perf_counter()
                    response = self.timed("sources json (probe)", client.get, "/api/v1/reports/sources", params=hooks,
                                          headers=as_json)
                    if response is not None:
                        merged = sum(int(row["Accepted"] or 0) for row in response.json()["rows"] if not row["Reason"])
                        with self.probe_lock:
                            for probe in [p for p in waiting if p[1] <= merged]:
                                self.seen.freshness["webhook delivery"].append(asked - probe[0])
                                probes.remove(probe)
                if self.stop.is_set() and time.perf_counter() - self.start > self.seconds + 120:
                    self.seen.failures.append(f"{len(probes)} {half} probes never seen")
                    return
                time.sleep(0.05)

    def reader(self) -> None:
        with self.client(self.tokens["reader"]) as client:
            while not self.stop.is_set():
                self.timed("sessions-summary json", client.get, "/api/v1/reports/sessions-summary", params=self.range,
                           headers={"Accept": "application/json"})
                self.stop.wait(0.5)

    def viewer(self) -> None:
        with self.client() as client:
            try:
                logged_in = log_in(client, "viewer", PASSWORD)
            except httpx.HTTPError as exc:
                logged_in = False
                self.seen.failures.append(f"log in: {type(exc).__name__}")
            if not logged_in:
                self.seen.failures.append("the viewer could not log in")
                return
            while not self.stop.is_set():
                self.timed("conversation page", client.get, f"/conversations/{self.conversation}")
                self.stop.wait(0.5)

    def command_line(self) -> None:
        """`report sessions-summary` every `cli_every` seconds (the first after 10 s); what it answers, and after
        how long. It opens the store file itself, so it waits while the server has it open (decision 36)."""
        if not self.cli_every:
            return
        while not self.stop.wait(self.cli_every if self.seen.cli else 10.0):
            begin = time.perf_counter()
            try:
                done = cli(self.db, self.config, "report", "sessions-summary", "--from", self.range["from"], "--to",
                           self.range["to"], timeout=CLI_TIMEOUT)
                outcome = f"exit {done.returncode}" + (f" ({done.stderr.strip().splitlines()[-1][:120]})"
                                                        if done.returncode else "")
            except subprocess.TimeoutExpired:
                outcome = f"no answer within {CLI_TIMEOUT:.0f} s (killed)"
            self.seen.cli.append(f"{time.perf_counter() - begin:.1f} s, {outcome}")

    def run(self) -> None:
        self.start = time.perf_counter() + 0.5
        roles = [self.command_line] + ([self.reader, self.viewer] if self.readers else [])
        threads = [threading.Thread(target=r, daemon=True) for r in roles]
        threads += [threading.Thread(target=self.prober, args=(half,), daemon=True) for half in ("api", "webhook")]
        threads += [threading.Thread(target=self.api_writer, args=(lane,), daemon=True) for lane in range(API_LANES)]
        threads += [threading.Thread(target=self.webhook_sender, args=(lane,), daemon=True) for lane in range(self.senders)]
        for thread in threads:
            thread.start()
        time.sleep(self.seconds + 0.5)
        self.stop.set()
        for thread in threads:
            thread.join(CLI_TIMEOUT + 130)


ROUND = re.compile(r"round: (\d+) batches, (\d+) deliveries in (\d+) files; stored in ([\d.]+) s, derived in ([\d.]+) s")


def rounds(log: Path) -> list[dict[str, str]]:
    """The writer's rounds (the server's `--log-level debug` lines): what bounds freshness is a round's length."""
    found = [tuple(float(v) for v in m.groups()) for m in ROUND.finditer(log.read_text(errors="replace"))]
    if not found:
        return []
    rows = []
    for name, values, unit in (("writer round: deliveries", [f[1] for f in found], ""),
                               ("writer round: spool files (groups committed)", [f[2] for f in found], ""),
                               ("writer round: storing", [f[3] * 1000 for f in found], " ms"),
                               ("writer round: deriving", [f[4] * 1000 for f in found], " ms"),
                               ("writer round: whole", [(f[3] + f[4]) * 1000 for f in found], " ms")):
        rows.append({"what": name, "count": f"{len(values):,}", "p50": f"{percentile(values, 0.5):,.0f}{unit}",
                     "p99": f"{percentile(values, 0.99):,.0f}{unit}"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="a store with events (it gains the load's)")
    parser.add_argument("--rate", type=float, default=1000, help="events a second in total (default 1000)")
    parser.add_argument("--seconds", type=float, default=300, help="seconds of load (default 300)")
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: a free one)")
    parser.add_argument("--cli-every", type=float, default=CLI_EVERY,
                        help="seconds between command-line reports (default 30; 0: none, to see the server alone)")
    parser.add_argument("--senders", type=int, default=SENDERS,
                        help=f"webhook sender threads (default {SENDERS}); the webhook half's rate is theirs at most")
    parser.add_argument("--no-readers", action="store_true",
                        help="no reader or viewer (the probes still poll): what the writes cost alone")
    parser.add_argument("--from", dest="from_", default="2026-05-01", help="the store's own range, for the reader")
    parser.add_argument("--to", default="2026-05-30")
    args = parser.parse_args()

    db = args.db.resolve()
    config = db.with_name(db.name + ".live.toml")
    # No rate limit: the prober polls every 50 ms, faster than any person, to time freshness that finely.
    config.write_text(f'[server]\nrate_limit = 0\n\n[sources.chatwoot]\nwebhook_secret = "{SECRET}"\nbrand = "{BRAND}"\n')
    tokens = {}
    for name, role in (("writer", "administrator"), ("reader", "analyst"), ("viewer", "agent")):
        cli(db, config, "users", "add", name, "--role", role, "--password-stdin", input=PASSWORD + "\n")
        tokens[name] = cli(db, config, "users", "token", name).stdout.strip()
    range_ = {"from": args.from_, "to": args.to, "tz": "UTC"}
    made = time.perf_counter()
    bodies = deliveries(int(args.rate / 2 * args.seconds) + 1000)
    print(f"{len(bodies):,} webhook deliveries generated in {time.perf_counter() - made:.0f} s", flush=True)

    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = db.with_name(db.name + ".live.log")
    with log.open("wb") as out:
        server = subprocess.Popen([*CLI, "--db", str(db), "--config", str(config), "serve", "--port", str(port),
                                   "--log-level", "debug"],  # a line per round of the writer: rounds() reads them
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_up(url, server, lambda: log.read_text(errors="replace"))
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['reader']}"}, timeout=120) as c:
            first = c.get("/api/v1/reports/sessions-detail", params={**range_, "from": args.to},
                          headers={"Accept": "application/json"})
            first.raise_for_status()
            conversation = first.json()["rows"][0]["Conversation ID"]
        live = Live(url, tokens, rate=args.rate, seconds=args.seconds, db=db, config=config, bodies=bodies,
                    range_=range_, conversation=conversation, cli_every=args.cli_every, readers=not args.no_readers,
                    senders=args.senders)
        live.run()
        memory = f"{peak_mib(server.pid):,.0f} MiB"
    finally:
        server.terminate()
        server.wait(timeout=600)
    seen = live.seen

    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        stored = {r[0] for r in con.execute("SELECT event_id FROM events WHERE customer_id LIKE 'load-w%' "
                                            "OR event_id LIKE 'chatwoot:%'").fetchall()}
    lost = {"api": len(seen.api_ids - stored), "webhook": len(seen.webhook_ids - stored)}

    load = os.getloadavg()
    print(f"{args.seconds:.0f} s at {args.rate:,.0f} events/s on {db} ({os.cpu_count()} cores); "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    rows = []
    for kind, values in sorted(seen.latencies.items()):
        rows.append({"what": f"latency: {kind}", "count": f"{len(values):,}",
                     "p50": f"{percentile(values, 0.5) * 1000:,.0f} ms", "p99": f"{percentile(values, 0.99) * 1000:,.0f} ms"})
    for kind, values in sorted(seen.freshness.items()):
        rows.append({"what": f"freshness: {kind}", "count": f"{len(values):,}",
                     "p50": f"{percentile(values, 0.5) * 1000:,.0f} ms", "p99": f"{percentile(values, 0.99) * 1000:,.0f} ms"})
    rows += rounds(log)
    print(markdown(rows))
    for half in ("api", "webhook"):
        print(f"{half}: sent {seen.sent[half]:,} events, accepted {seen.accepted[half]:,}, lost {lost[half]:,}")
    print("command-line report:", "; ".join(seen.cli) or "never ran")
    print(f"server peak memory (VmHWM): {memory}")
    for line in seen.failures[:20]:
        print("FAILED:", line)
    if seen.failures or any(lost.values()):
        raise SystemExit(f"{len(seen.failures)} failures, {sum(lost.values())} events lost")


if __name__ == "__main__":
    main()
