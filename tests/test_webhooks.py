"""The live Chatwoot webhook (issue 23 point 3, SOURCES.md 1.7), through a real `convoscope serve` over
HTTP: signed deliveries are answered at once with the mapping's counts and kept durably in the spool
before the answer, whatever holds the store; the spool reaches the store, and a delivery answered 200 is
never lost, even when the server is killed right after answering. Bodies are the sample's
(`../shared/samples/sources/chatwoot/webhooks.jsonl`), in the shape Chatwoot's webhook listener posts."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from cli_helpers import Convoscope
from convoscope import service
from convoscope.spool import Spool
from convoscope.store import Store
from convoscope.store import connect as connect_waiting
from source_helpers import CHATWOOT, SECRET, by_id, expected_events, sign, stored_events, webhook_bodies
from web_helpers import LiveServer, cli_ok, csv_dicts, serving

TOKEN = "t" * 40
PATH = "/api/v1/sources/chatwoot/webhook"


@pytest.fixture
def store(tmp_path: Path) -> Convoscope:
    cs = Convoscope(tmp_path)
    assert cs.config is not None
    cs.config.write_text(f'[sources.chatwoot]\nwebhook_secret = "{SECRET}"\nwebhook_token = "{TOKEN}"\n'
                         'brand = "acme"\n')
    return cs


def spooled(store: Convoscope) -> list[Path]:
    folder = store.db.with_name(store.db.name + ".spool")
    return sorted(folder.glob("*.delivery")) if folder.is_dir() else []


def post(client: httpx.Client, body: bytes, **headers: str) -> httpx.Response:
    return client.post(PATH, content=body, headers={**sign(body), **headers})


def test_signed_deliveries_become_the_samples_events(store: Convoscope) -> None:
    answers = []
    with serving(store) as server, server.client() as client:
        for i, body in enumerate(webhook_bodies()):
            answer = post(client, body, **{"X-Chatwoot-Delivery": f"delivery-{i}"})
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
    # Stopping the server merged the spool: nothing is left in it, everything is in the store.
    assert spooled(store) == []
    assert by_id(stored_events(store.db, brand="acme")) == by_id(expected_events("chatwoot"))
    assert sum(a["accepted"] for a in answers) == 14
    assert sum(a["ignored"] for a in answers) == 9 and sum(a["rejected"] for a in answers) == 0
    assert all(a["duplicate"] == 0 for a in answers)  # known once merged: the sources report tells
    report = csv_dicts(cli_ok(store, "report", "sources", "--where", "via=webhook"))
    accepted = [r for r in report if r["Reason"] == ""]
    assert [(r["Period"], r["Source"], r["Accepted"]) for r in accepted] == [("2026-05-21", "chatwoot", "14")]


def test_a_delivery_sent_twice_is_one_event_and_a_duplicate(store: Convoscope) -> None:
    body = webhook_bodies()[2]  # the customer's first message
    with serving(store) as server, server.client() as client:
        for delivery in ("first", "second"):
            assert post(client, body, **{"X-Chatwoot-Delivery": delivery}).json()["accepted"] == 1
    assert len(stored_events(store.db)) == 1
    report = csv_dicts(cli_ok(store, "report", "sources"))
    assert [(r["Accepted"], r["Duplicate"]) for r in report] == [("1", "1")]


@pytest.mark.parametrize("headers_of", [
    pytest.param(lambda body: {}, id="unsigned"),
    pytest.param(lambda body: {**sign(body), "X-Chatwoot-Signature": "sha256=" + "0" * 64}, id="wrong signature"),
    pytest.param(lambda body: sign(body, secret="another secret"), id="another secret"),
    pytest.param(lambda body: sign(body + b" "), id="signature of another body"),
    # the exact 300 s edge is test_the_window_is_300_whole_seconds_either_way, on a fixed clock: here the
    # server's clock may tick a second after the test stamps, so stay clear of the edge
    pytest.param(lambda body: sign(body, timestamp=int(time.time()) - 360), id="6 min old"),
    pytest.param(lambda body: sign(body, timestamp=int(time.time()) + 360), id="6 min ahead"),
    pytest.param(lambda body: {**sign(body), "X-Chatwoot-Timestamp": "1.5"}, id="timestamp not whole seconds"),
])
def test_a_delivery_not_signed_by_chatwoot_is_refused_and_not_kept(store: Convoscope, headers_of) -> None:
    body = webhook_bodies()[2]
    with serving(store) as server, server.client() as client:
        answer = client.post(PATH, content=body, headers=headers_of(body))
        assert answer.status_code == 401, answer.text
        assert answer.json()["errors"][0]["code"] == "bad_signature"
        assert spooled(store) == []
    assert stored_events(store.db) == []
    assert csv_dicts(cli_ok(store, "rejects", "--all")) == []


def test_a_timestamp_just_inside_the_window_is_taken(store: Convoscope) -> None:
    body = webhook_bodies()[2]
    with serving(store) as server, server.client() as client:
        answer = client.post(PATH, content=body, headers=sign(body, timestamp=int(time.time()) - 290))
        assert answer.status_code == 200, answer.text


def test_without_a_secret_configured_nothing_is_taken(tmp_path: Path) -> None:
    store = Convoscope(tmp_path)
    body = webhook_bodies()[2]
    with serving(store) as server, server.client() as client:
        answer = client.post(PATH, content=body, headers=sign(body))
        assert answer.status_code == 401
        assert "webhook_secret" in answer.json()["errors"][0]["detail"]
        assert client.post(f"{PATH}/{TOKEN}", content=body).status_code == 401
    assert spooled(store) == []


def test_the_token_path_is_for_versions_that_do_not_sign(store: Convoscope) -> None:
    body = webhook_bodies()[2]
    with serving(store) as server, server.client() as client:
        assert client.post(f"{PATH}/{TOKEN}", content=body).status_code == 200
        assert client.post(f"{PATH}/{TOKEN[:-1]}x", content=body).status_code == 401
        assert client.post(f"{PATH}/{TOKEN}x", content=body).status_code == 401
    assert len(stored_events(store.db)) == 1


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"event": 5}', b'{"id": 1}', b"\xff\xfe"])
def test_a_malformed_body_is_answered_400_and_kept_as_a_reject(store: Convoscope, body: bytes) -> None:
    with serving(store) as server, server.client() as client:
        answer = post(client, body, **{"X-Chatwoot-Delivery": "d-400"})
        assert answer.status_code == 400, answer.text
        assert answer.json()["errors"][0]["attr"] == "body"
    rejects = cli_ok(store, "rejects")
    assert "webhook:chatwoot:d-400" in rejects
    dq = csv_dicts(cli_ok(store, "report", "data-quality"))
    assert [(r["Kind"], r["Brand"], r["Source"]) for r in dq] == [("rejected", "acme", "webhook:chatwoot:d-400")]


def test_an_unknown_event_is_answered_200_and_kept_as_a_reject(store: Convoscope) -> None:
    body = json.dumps({"event": "contact_merged", "id": 7}).encode()
    with serving(store) as server, server.client() as client:
        answer = post(client, body)
        assert answer.status_code == 200
        assert answer.json() == {"accepted": 0, "duplicate": 0, "rejected": 1, "ignored": 0}
    assert "contact_merged" in cli_ok(store, "rejects")


def hold(db: Path) -> duckdb.DuckDBPyConnection:
    """The store opened by another process, as a command holding it would, once the server lets go of it: a
    server just started opens it for a moment itself (its scheduler looks for runs due, its spool worker merges)."""
    return connect_waiting(db)


def test_the_answer_never_waits_for_the_store(store: Convoscope) -> None:
    """A command holding the store (here: this test, with the file open) does not delay the answer, and the
    spool reaches the store once it is free."""
    body = webhook_bodies()[2]
    Store(store.db).close()  # the store exists, with its tables
    with serving(store) as server, server.client() as client:
        holder = hold(store.db)
        try:
            started = time.monotonic()
            answer = post(client, body)
            waited = time.monotonic() - started
            assert answer.status_code == 200
            assert waited < 5, f"the answer took {waited:.1f} s while the store was held"
            assert len(spooled(store)) == 1
        finally:
            holder.close()
        deadline = time.monotonic() + 30
        while spooled(store) and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker merges once the store is free
        assert spooled(store) == []


def test_a_server_killed_right_after_answering_loses_nothing(store: Convoscope) -> None:
    bodies = webhook_bodies()
    server = LiveServer(store)
    holder = hold(store.db)  # so the worker cannot merge before the kill
    try:
        with server.client() as client:
            for body in bodies:
                assert post(client, body).status_code == 200
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
    finally:
        server.stop()
        holder.close()
    assert len(spooled(store)) == len(bodies)
    result = store("report", "sources")  # any command that opens the store merges what the server left
    assert result.exit_code == 0, result.stderr
    assert "merged webhook deliveries" in result.stderr
    assert spooled(store) == []
    assert by_id(stored_events(store.db, brand="acme")) == by_id(expected_events("chatwoot"))


def test_deliveries_sent_at_once_are_kept_in_groups_and_survive_a_kill(store: Convoscope) -> None:
    """Deliveries that come together are committed together (decision 177): every one answered 200 is in a spool
    file, read back whole, and reaches the store after the server is killed."""
    from concurrent.futures import ThreadPoolExecutor

    bodies = webhook_bodies()
    server = LiveServer(store)
    holder = hold(store.db)
    try:
        with server.client() as client, ThreadPoolExecutor(8) as senders:
            answers = list(senders.map(lambda i: post(client, bodies[i], **{"X-Chatwoot-Delivery": f"at-once-{i}"}),
                                       range(len(bodies))))
        assert [a.status_code for a in answers] == [200] * len(bodies)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
    finally:
        server.stop()
        holder.close()
    spool = Spool(store.db.with_name(store.db.name + ".spool"))
    kept = [d.delivery for path in spooled(store) for d in spool.read(path)]
    assert sorted(kept) == sorted(f"at-once-{i}" for i in range(len(bodies)))
    result = store("report", "sources")
    assert result.exit_code == 0, result.stderr
    assert spooled(store) == []
    assert by_id(stored_events(store.db, brand="acme")) == by_id(expected_events("chatwoot"))


def test_a_stopping_server_drains_the_spool_itself(store: Convoscope) -> None:
    """The worker cannot merge while a command holds the store; asked to stop, the server waits for the
    store and merges what it kept before it exits — no other command needed."""
    bodies = webhook_bodies()
    server = LiveServer(store)
    holder = hold(store.db)
    try:
        with server.client() as client:
            for body in bodies:
                assert post(client, body).status_code == 200
        assert len(spooled(store)) == len(bodies)
        server.process.terminate()
        time.sleep(1)
        assert server.process.poll() is None, "the server exited without draining its spool"
    finally:
        holder.close()
    # uvicorn stops gracefully (the lifespan's end drains the spool), then ends as SIGTERM asked.
    assert server.process.wait(timeout=60) in (0, -signal.SIGTERM), server.output()
    assert spooled(store) == []
    assert by_id(stored_events(store.db, brand="acme")) == by_id(expected_events("chatwoot"))


def test_a_damaged_spool_file_is_set_aside_and_blocks_nothing(store: Convoscope) -> None:
    Store(store.db).close()
    folder = store.db.with_name(store.db.name + ".spool")
    folder.mkdir()
    (folder / "00000000000000000001-damaged.delivery").write_bytes(b"\x00\x01 not a head\n{}")
    spool = Spool(folder)
    spool.put("chatwoot", "acme", webhook_bodies()[2], delivery="good")
    result = store("report", "sources")
    assert result.exit_code == 0, result.stderr
    assert "cannot be read" in result.stderr and "unreadable" in result.stderr
    assert (folder / "unreadable" / "00000000000000000001-damaged.delivery").exists()
    assert spooled(store) == []
    assert len(stored_events(store.db)) == 1


@pytest.mark.parametrize(("offset", "taken"), [(-300, True), (300, True), (-301, False), (301, False), (0, True)])
@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.99])
def test_the_window_is_300_whole_seconds_either_way(offset: int, taken: bool, fraction: float) -> None:
    """SOURCES.md 1.7: refused when the timestamp is *more than* 300 s from now; Chatwoot stamps whole
    seconds, so 300 s is in the window whatever fraction of a second the server's clock is at."""
    from convoscope.web.webhooks import signature_problem

    now = 1_779_386_400 + fraction
    body = webhook_bodies()[2]
    headers = sign(body, timestamp=int(now) + offset)
    refused = signature_problem(SECRET, body, headers["X-Chatwoot-Timestamp"], headers["X-Chatwoot-Signature"],
                                now=now)
    assert (refused is None) == taken, refused


def test_the_samples_signatures_are_chatwoots() -> None:
    """signatures.txt: each sample body signed by Chatwoot with `sample-secret` at 2026-05-21T18:00:00Z."""
    from convoscope.web.webhooks import signature_problem

    lines = [line.split() for line in (CHATWOOT / "signatures.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    for (number, stamp, signature), body in zip(lines, webhook_bodies(), strict=True):
        assert signature_problem(SECRET, body, stamp, signature, now=int(stamp) + 5) is None, number
        assert signature_problem("another", body, stamp, signature, now=int(stamp) + 5) is not None


def test_a_merge_takes_what_was_waiting_and_leaves_what_came_meanwhile(tmp_path: Path, monkeypatch) -> None:
    # While Chatwoot keeps sending, a merge that ran until the spool was empty held the store for as long as it
    # sent (bench/live.py: 30 s stalls of every other request at 500 deliveries a second).
    from convoscope import sources

    db = tmp_path / "store.duckdb"
    spool = Spool(db.with_name(db.name + ".spool"))
    bodies = webhook_bodies()
    for i, body in enumerate(bodies[:4]):
        spool.put("chatwoot", "default", body, delivery=f"before-{i}")
    mapped = sources.map_delivery
    came = []

    def map_while_more_come(*args, **options):
        if len(came) < 6:  # deliveries keep coming while the merge maps
            came.append(spool.put("chatwoot", "default", bodies[4 + len(came)], delivery=f"meanwhile-{len(came)}"))
        return mapped(*args, **options)

    monkeypatch.setattr(sources, "map_delivery", map_while_more_come)
    with Store(db) as store:
        service.merge_spool(store, batch=1)
    assert [d.delivery for p in spool.waiting() for d in spool.read(p)] == came
    monkeypatch.setattr(sources, "map_delivery", mapped)
    with Store(db) as store:
        service.merge_spool(store)
    assert spool.waiting() == []


def test_a_delivery_the_spool_cannot_keep_is_answered_503_and_nothing_is_kept(store: Convoscope) -> None:
    """A spool that cannot be written (here a file stands where its folder goes, as a full or failing disk would
    refuse it): the helpdesk is told the delivery was not kept, in one line, and the store gains nothing."""
    folder = store.db.with_name(store.db.name + ".spool")
    with serving(store) as server, server.client() as client:
        folder.write_text("not a folder")
        answer = post(client, webhook_bodies()[2])
        assert answer.status_code == 503, answer.text
        detail = answer.json()["errors"][0]
        assert detail["code"] == "not_kept" and "check the disk beside the store" in detail["detail"]
        folder.unlink()
        assert post(client, webhook_bodies()[2]).status_code == 200  # kept again once the disk is back
    assert len(stored_events(store.db, brand="acme")) == 1
