"""What a page reads of a whole table at every request (the brands, their events' span) is kept until the store's
next commit, whichever process commits (`store.while_unchanged`): never an answer older than the files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from convoscope import service
from convoscope.config import Config
from convoscope.reports.filters import event_span
from convoscope.store import Store, while_unchanged


def event(brand: str, when: str) -> bytes:
    return json.dumps({"event_id": f"e-{brand}-{when}", "brand": brand, "customer_id": "c1", "occurred_at": when,
                       "type": "customer_message", "channel": "chat", "text": "hello"}).encode()


def test_a_kept_answer_is_read_again_after_a_commit_of_this_process_or_another(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    with Store(path) as store:
        service.ingest_lines(store, Config(), [event("acme", "2026-05-01T10:00:00Z")], source="test")
        computed = []

        def brands() -> list[str]:
            computed.append(1)
            return store.brands()

        assert while_unchanged(store, ("test",), brands) == ["acme"]
        assert while_unchanged(store, ("test",), brands) == ["acme"] and len(computed) == 1  # kept
        assert event_span(store, ["acme"]) is not None
        first_span = event_span(store, ["acme"])

        service.ingest_lines(store, Config(), [event("globex", "2026-05-02T10:00:00Z"),
                                               event("acme", "2026-05-03T10:00:00Z")], source="test")
        assert store.brands(kept=True) == ["acme", "globex"]
        assert while_unchanged(store, ("test",), brands) == ["acme", "globex"] and len(computed) == 2
        later = event_span(store, ["acme"])
        assert first_span is not None and later is not None and later[1] > first_span[1]

    # Another process commits while this one has the store closed, as the command line does beside a server.
    lines = tmp_path / "more.jsonl"
    lines.write_bytes(event("initech", "2026-05-04T10:00:00Z") + b"\n")
    subprocess.run([sys.executable, "-m", "convoscope", "--db", str(path), "ingest", str(lines)], check=True,
                   capture_output=True)
    with Store(path) as store:
        assert store.brands(kept=True) == ["acme", "globex", "initech"]
