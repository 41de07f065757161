"""The server's one writer of events (web/writer.py, issue 30): batches stored together in one round are read as one
file's lines would be, each batch gets its own answer, and the ids the writer keeps in memory (events/known.py) never
let an event in twice — not even one another process stored while the server had the store closed."""

from __future__ import annotations

import contextlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cli_helpers import Convoscope, ev
from convoscope import service
from convoscope.events.known import KnownIds
from convoscope.store import Store
from convoscope.store import connect as connect_waiting
from convoscope.web.writer import Writer
from web_helpers import add_user, bearer, serving

HELLO = {"channel": "chat", "text": "Hello"}


def lines(*events: dict) -> list[bytes]:
    return [json.dumps(event).encode() for event in events]


def count_events(db: Path) -> dict[str, int]:
    con = connect_waiting(db, read_only=True)
    try:
        return dict(con.execute("SELECT event_id, count(*) FROM events GROUP BY event_id").fetchall())
    finally:
        con.close()


def test_batches_stored_together_answer_each_as_if_stored_one_after_the_other(tmp_path: Path) -> None:
    first = ev("e1", "customer_message", "2026-05-01T09:00:00Z", **HELLO)
    again = dict(first)  # the same event in the next batch: a duplicate of the first batch's
    changed = ev("e2", "customer_message", "2026-05-01T09:01:00Z", **HELLO)
    conflict = {**changed, "text": "Something else"}
    with Store(tmp_path / "store.duckdb") as store:
        outcomes = service.store_batches(store, [
            service.Batch(lines(first, changed), "api:one"),
            service.Batch([b"", *lines(again), b"{not json", *lines(conflict)], "api:two", {0: "never sent"}),
        ], known=KnownIds())
        stored = store.con.execute("SELECT event_id, source, line FROM events ORDER BY event_id").fetchall()
    one, two = outcomes
    assert (one.counts.accepted, one.counts.duplicate, one.counts.rejected, one.errors) == (2, 0, 0, {})
    assert (two.counts.accepted, two.counts.duplicate, two.counts.rejected) == (0, 1, 3)
    assert two.errors[0] == "never sent"
    assert "not valid JSON" in two.errors[2]
    assert "was stored before from api:one line 2" in two.errors[3]
    assert stored == [("e1", "api:one", 1), ("e2", "api:one", 2)]


def test_known_ids_send_a_batch_with_a_stored_id_down_the_exact_path(tmp_path: Path) -> None:
    known = KnownIds()
    with Store(tmp_path / "store.duckdb") as store:
        service.store_batches(store, [service.Batch(lines(ev("k1", "customer_message", "2026-05-01T09:00:00Z",
                                                              **HELLO)), "api:one")], known=known)
        con = store.con
        assert known.may_hold(con, "SELECT 'default' AS brand, 'k1' AS event_id")
        assert not known.may_hold(con, "SELECT 'default' AS brand, 'k2' AS event_id")
        assert known.may_hold(con, "SELECT 'default' AS brand, 'k2' AS event_id")  # counted as stored once asked
        assert not known.may_hold(con, "SELECT 'another' AS brand, 'k1' AS event_id")
        assert not known.may_hold(con, "SELECT 'default' AS brand, 'x' || range AS event_id FROM range(3000)")


def test_an_event_another_process_stored_while_the_server_was_idle_is_a_duplicate_when_sent_again(
        tmp_path: Path) -> None:
    store = Convoscope(tmp_path)
    token = add_user(store, "sender", "administrator")
    first = ev("a1", "customer_message", "2026-05-01T09:00:00Z", **HELLO)
    later = ev("b1", "customer_message", "2026-05-01T09:05:00Z", **HELLO)
    with serving(store) as server, server.client(headers=bearer(token)) as client:
        assert client.post("/api/v1/events", json=[first]).json()["accepted"] == 1  # the writer has learnt the ids
        store.ingest([later])  # the command line, while the server has the store closed between requests
        again = client.post("/api/v1/events", json=[later]).json()
        changed = client.post("/api/v1/events", json=[{**later, "text": "Changed"}]).json()
    assert again == {"accepted": 0, "duplicate": 1, "rejected": 0, "errors": []}
    assert changed["rejected"] == 1 and "with different content" in changed["errors"][0]["reason"]
    assert count_events(store.db) == {"a1": 1, "b1": 1}


def test_batches_sent_at_once_are_each_answered_and_stored_once(tmp_path: Path) -> None:
    store = Convoscope(tmp_path)
    token = add_user(store, "sender", "administrator")
    batches = [[ev(f"p{i}-{j}", "customer_message", f"2026-05-01T09:{j:02d}:00Z", customer=f"c{i}", **HELLO)
                for j in range(20)] for i in range(8)]
    batches[7] = batches[0][:10] + [{"event_id": "bad"}]  # ten sent before (or at once: a duplicate all the same)
    with serving(store) as server, server.client(headers=bearer(token)) as client:
        client.post("/api/v1/events", json=batches[0]).raise_for_status()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda batch: client.post("/api/v1/events", json=batch).json(), batches[1:]))
        shown = client.get("/api/v1/reports/sessions-detail", params={"from": "2026-05-01", "to": "2026-05-01",
                                                                      "tz": "UTC"},
                           headers={"Accept": "application/json"}).json()["rows"]
    assert [a["accepted"] for a in answers] == [20] * 6 + [0]
    assert (answers[6]["duplicate"], answers[6]["rejected"], [e["index"] for e in answers[6]["errors"]]) == (10, 1, [10])
    assert sorted({row["Customer ID"] for row in shown}) == [f"c{i}" for i in range(7)]  # answered once derived
    assert len(count_events(store.db)) == 140 and set(count_events(store.db).values()) == {1}


def test_a_round_stores_batches_and_deliveries_in_one_chunk_each_counted_apart(tmp_path: Path) -> None:
    from convoscope.spool import Spool, spool_folder
    from source_helpers import webhook_bodies

    db = tmp_path / "store.duckdb"
    spool = Spool(spool_folder(db))
    for i, body in enumerate(webhook_bodies()):
        spool.put("chatwoot", "acme", body, delivery=f"d{i}")
    batch = service.Batch(lines(ev("api-1", "customer_message", "2026-05-01T09:00:00Z", **HELLO), {"event_id": "x"}),
                          "api:one")
    with Store(db) as store:
        (outcome,), merged, deliveries = service.store_round(store, [batch], spool.waiting(), known=KnownIds())
        by_source = dict(store.con.execute("SELECT via, sum(CASE WHEN outcome = 'accepted' THEN 1 END) "
                                           "FROM source_records GROUP BY via").fetchall())
        brands = dict(store.con.execute("SELECT brand, count(*) FROM events GROUP BY brand").fetchall())
    assert (outcome.counts.accepted, outcome.counts.rejected, sorted(outcome.errors)) == (1, 1, [1])
    assert len(merged) == deliveries == len(webhook_bodies())  # put one at a time: a file each
    assert spool.waiting() == merged  # the caller removes them once derived
    assert by_source == {"webhook": 14}  # the samples' 14 events (test_webhooks), apart from the API's
    assert brands == {"default": 1, "acme": 14}


def nice_of(stat: Path) -> int:
    """The nice value in a /proc stat file (field 19, after the command's parenthesised name)."""
    return int(stat.read_text().rpartition(")")[2].split()[16])


def thread_nice_values(pid: int) -> list[int]:
    """The nice value of each thread of process `pid`."""
    values = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            values.append(nice_of(task / "stat"))
    return values


def test_the_writer_runs_ahead_of_the_servers_other_threads(tmp_path: Path) -> None:
    """Freshness under load is a round's length, and a round waits for the cores behind every request unless the
    writer runs ahead of them (decision 178): its thread alone gets a lower nice value, where the kernel allows it
    (CAP_SYS_NICE, which root has), else it runs as the others."""
    with serving(Convoscope(tmp_path)) as server:
        deadline = time.monotonic() + 30
        while Writer.NICE not in thread_nice_values(server.process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        nice = thread_nice_values(server.process.pid)
        main = nice_of(Path(f"/proc/{server.process.pid}/stat"))
        if os.geteuid() == 0:
            assert Writer.NICE in nice and main == 0, nice  # the requests' threads as started
        else:
            assert Writer.NICE not in nice
