"""Benchmark: what a webhook delivery costs the server (issue 30 point 1), in CPU.

Starts `convoscope serve` on a new store in a scratch folder, sends `--deliveries` signed Chatwoot deliveries of one
message each (bench/live.py's) from `--threads` senders at once, as fast as they are answered, and prints the server
process's user and system CPU time a delivery over the run (its writer's rounds included) and the deliveries
answered a second. On a machine a live load saturates, that CPU is what a delivery takes from the writer's rounds.

    .venv/bin/python bench/webhook_cpu.py --deliveries 6000 --threads 24
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from convoscope import synth_chatwoot  # noqa: E402
from live import SECRET, deliveries, signed  # noqa: E402
from load import CLI, free_port, markdown, wait_until_up  # noqa: E402


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process `pid` so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=6000)
    parser.add_argument("--threads", type=int, default=24, help="senders at once (default 24, as bench/live.py)")
    args = parser.parse_args()

    bodies = deliveries(args.deliveries)
    with tempfile.TemporaryDirectory() as scratch:
        db, config = Path(scratch) / "store.duckdb", Path(scratch) / "convoscope.toml"
        config.write_text(f'[server]\nrate_limit = 0\n\n[sources.chatwoot]\nwebhook_secret = "{SECRET}"\n'
                          'brand = "chatwoot-cpu"\n')
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([*CLI, "--db", str(db), "--config", str(config), "serve", "--port", str(port)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            wait_until_up(url, server, lambda: "(its output is not kept)")
            next_body, lock, failures = [0], threading.Lock(), []

            def send() -> None:
                with httpx.Client(base_url=url, timeout=30) as client:
                    while True:
                        with lock:
                            number = next_body[0]
                            next_body[0] += 1
                        if number >= len(bodies):
                            return
                        body, event_id = bodies[number]
                        answer = client.post(synth_chatwoot.WEBHOOK_PATH, **signed(body, f"cpu-{event_id}"))
                        if answer.status_code != 200:
                            failures.append(f"HTTP {answer.status_code}: {answer.text[:200]}")

            user, system = cpu_seconds(server.pid)
            began = time.perf_counter()
            senders = [threading.Thread(target=send) for _ in range(args.threads)]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
            took = time.perf_counter() - began
            time.sleep(3)  # the last round
            user_after, system_after = cpu_seconds(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=120)
    if failures:
        raise SystemExit(f"{len(failures)} deliveries failed, the first: {failures[0]}")
    print(markdown([{"deliveries": f"{args.deliveries:,}", "senders": str(args.threads),
                     "answered a second": f"{args.deliveries / took:,.0f}",
                     "user CPU a delivery": f"{(user_after - user) / args.deliveries * 1000:.2f} ms",
                     "system CPU a delivery": f"{(system_after - system) / args.deliveries * 1000:.2f} ms"}]))


if __name__ == "__main__":
    main()
