"""`convoscope pull chatwoot` (issue 23 point 4) over real HTTP, against `chatwoot_replay`: a server that
pages backfill records as Chatwoot's REST API does and fails on purpose. A pulled message is stored as its
capture line is (the same events as `ingest --source chatwoot`), once however it arrived (webhook, pull,
both); the pull survives a 429, a 500 and a dropped connection, stops in one line when a failure lasts,
and run again goes on where it stopped, fetching only what it had not stored."""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import pty
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import Result

from chatwoot_replay import ACCOUNT, TOKEN, Replay, Seen, make_records, sample_records, serving
from cli_helpers import Convoscope
from convoscope import service
from convoscope.sources import chatwoot_api
from convoscope.sources.chatwoot import map_backfill
from convoscope.spool import Spool, spool_folder
from convoscope.store import Store
from convoscope.store import connect as connect_waiting
from source_helpers import by_id, expected_events, stored_events, webhook_bodies
from web_helpers import CONVOSCOPE, free_port

# A dataset over three pages of conversations (25, 25, 10) whose message counts cross MessageFinder's
# page of 20 on both sides: 0, 1, 19, 20 (a full page, then an empty one), 21, 40 and 45.
SIZES = (0, 1, 19, 20, 21, 40, 45)


def many() -> list[dict[str, Any]]:
    return make_records(60, messages=lambda i: SIZES[i % len(SIZES)])


def message_requests_for(size: int) -> int:
    """The message pages a conversation of `size` messages takes: full pages of 20, then a shorter one."""
    return size // 20 + 1


@pytest.fixture(autouse=True)
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the client asked for, recorded instead of slept."""
    asked: list[float] = []
    monkeypatch.setattr(chatwoot_api, "sleep", asked.append)
    return asked


def token_file(cs: Convoscope, token: str = TOKEN) -> Path:
    path = cs.dir / "chatwoot-token"
    path.write_text(token + "\n")
    return path


def pull(cs: Convoscope, replay: Replay, *args: str, token: str = TOKEN) -> Result:
    """`convoscope pull chatwoot` on `cs` from `replay`; whatever it printed holds no token."""
    result = cs("pull", "chatwoot", "--url", replay.url, "--account", str(ACCOUNT),
                "--token-file", str(token_file(cs, token)), *args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    for text in (result.stdout, result.stderr):
        assert TOKEN not in text and token not in text
    return result


def events_in(db: Path) -> dict[str, dict[str, Any]]:
    """The store's events by id as SPEC 2 events."""
    return by_id(stored_events(db))


def events_as_stored(db: Path) -> list[tuple[Any, ...]]:
    """Every stored value of every event but where and when it was read."""
    return rows(db, "SELECT * EXCLUDE (ingested_at, source, line) FROM events ORDER BY ALL")


def counts(result: Result) -> str:
    return result.stdout.strip().splitlines()[-1]


def capture(cs: Convoscope, records: list[dict[str, Any]], name: str = "capture.jsonl") -> Path:
    """The records as a Chatwoot capture file (one backfill record a line), for `ingest --source chatwoot`."""
    path = cs.dir / name
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = connect_waiting(db, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# Everything a pull leaves in the store, without the times of day it ran or the replay's port.
SNAPSHOT = {
    "events": "SELECT * EXCLUDE (ingested_at) FROM events",
    "rejects": "SELECT * EXCLUDE (rejected_at) FROM rejects",
    "duplicates": "SELECT * EXCLUDE (seen_at) FROM duplicates",
    "source_records": "SELECT * EXCLUDE (recorded_at) FROM source_records",
    "chatwoot_pulls": "SELECT * EXCLUDE (site, pulled_at) FROM chatwoot_pulls",
    "pending": "SELECT * FROM pending",
    "sessions": "SELECT * FROM sessions",
    "contacts": "SELECT * FROM contacts",
    "conversations": "SELECT * FROM conversations",
}


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {table: rows(db, f"{sql} ORDER BY ALL") for table, sql in SNAPSHOT.items()}


def conversation_of(seen: Seen) -> int:
    return int(seen.path.split("/")[-2])


def pulled_ids(db: Path) -> set[int]:
    return {r[0] for r in rows(db, "SELECT conversation FROM chatwoot_pulls")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Any, ...]]]:
    """The store one uninterrupted pull of `many()` leaves."""
    cs = Convoscope(tmp_path_factory.mktemp("reference"))
    with serving(Replay(many())) as replay, pytest.MonkeyPatch.context() as patch:
        patch.setattr(chatwoot_api, "sleep", lambda seconds: None)
        assert pull(cs, replay).exit_code == 0
    return snapshot(cs.db)


# --- what a pull stores ------------------------------------------------------------------------------


def test_the_sample_pulled_gives_the_events_its_capture_gives(cs: Convoscope, tmp_path: Path) -> None:
    with serving(Replay(sample_records())) as replay:
        result = pull(cs, replay)
    assert result.exit_code == 0, result.stderr
    assert counts(result) == "accepted 11, duplicate 0, ignored 6, rejected 0"
    messages = [e for e in expected_events("chatwoot") if ":message:" in e["event_id"]]
    assert events_in(cs.db) == by_id(messages)
    # ... the very events `ingest --source chatwoot` stores from the same records.
    (tmp_path / "ingested").mkdir()
    other = Convoscope(tmp_path / "ingested")
    assert other("ingest", "--source", "chatwoot", str(capture(other, sample_records()))).exit_code == 0
    assert events_as_stored(cs.db) == events_as_stored(other.db)
    # Each message is a record of its own, named by conversation and message id.
    assert rows(cs.db, "SELECT source, line FROM events WHERE event_id = 'chatwoot:3:message:5870'") == [
        ("pull:chatwoot:3:277", 5870)]
    assert rows(cs.db, "SELECT DISTINCT system, via, brand FROM source_records") == [("chatwoot", "pull", "default")]
    assert rows(cs.db, "SELECT source, line, outcome, reason FROM source_records WHERE line IN (5841, 5865) "
                       "ORDER BY line") == [("pull:chatwoot:3:276", 5841, "ignored", "template"),
                                            ("pull:chatwoot:3:277", 5865, "ignored", "private_note")]
    # Every status was asked for (the sample's conversations are resolved: Chatwoot's default lists open ones).
    [listing] = replay.list_requests()
    assert listing.query["status"] == "all"
    assert [conversation_of(r) for r in replay.message_requests()] == [277, 276]  # newest activity first
    assert "pulled 2 conversations of 2 listed" in result.stderr


def test_the_brand_is_the_options_else_the_configurations(cs: Convoscope) -> None:
    assert cs.config is not None
    cs.config.write_text('[sources.chatwoot]\nbrand = "acme"\n')
    with serving(Replay(sample_records())) as replay:
        assert pull(cs, replay).exit_code == 0
        assert pull(cs, replay, "--brand", "outdoor").exit_code == 0  # nothing changed: nothing fetched
        replay.conversation(276)["conversation"]["last_activity_at"] += 1
        assert pull(cs, replay, "--brand", "outdoor").exit_code == 0
    assert rows(cs.db, "SELECT brand, count(*) FROM events GROUP BY ALL ORDER BY ALL") == [("acme", 11), ("outdoor", 4)]


def test_several_pages_of_conversations_and_of_messages(cs: Convoscope, tmp_path: Path) -> None:
    records = many()
    with serving(Replay(records)) as replay:
        result = pull(cs, replay)
    assert result.exit_code == 0, result.stderr
    other = Convoscope(tmp_path)
    assert other("ingest", "--source", "chatwoot", str(capture(other, records))).exit_code == 0
    assert events_as_stored(cs.db) == events_as_stored(other.db)
    assert len(events_as_stored(cs.db)) > 500
    # Three pages of the list (25, 25, 10) and no fourth; each conversation's pages until a short one.
    assert [r.query["page"] for r in replay.list_requests()] == ["1", "2", "3"]
    asked: dict[int, list[Seen]] = {}
    for seen in replay.message_requests():
        asked.setdefault(conversation_of(seen), []).append(seen)
    assert {number: len(pages) for number, pages in asked.items()} == {
        r["conversation"]["id"]: message_requests_for(len(r["messages"])) for r in records}
    # Each page after the first asks for the messages before the oldest it has.
    longest = asked[records[6]["conversation"]["id"]]  # 45 messages
    ids = [m["id"] for m in records[6]["messages"]]
    assert [p.query.get("before") for p in longest] == [None, str(ids[25]), str(ids[5])]


# --- failures on the way ------------------------------------------------------------------------------


def in_30_seconds() -> str:
    return email.utils.formatdate(time.time() + 30, usegmt=True)


@pytest.mark.parametrize(("kind", "path", "after", "retry_after", "paused"), [
    ("429", "/conversations", 1, "7", lambda p: p == [7.0]),
    ("429", "/messages", 5, None, lambda p: p == [chatwoot_api.THROTTLED_PAUSE]),
    ("429", "/messages", 9, "date", lambda p: len(p) == 1 and 25 < p[0] <= 30),
    ("500", "/messages", 3, None, lambda p: p == [chatwoot_api.FIRST_PAUSE]),
    ("500", "/conversations", 2, None, lambda p: p == [chatwoot_api.FIRST_PAUSE]),
    ("drop", "/conversations", 1, None, lambda p: p == [chatwoot_api.FIRST_PAUSE]),
    ("drop", "/messages", 7, None, lambda p: p == [chatwoot_api.FIRST_PAUSE]),
], ids=["429-seconds", "429-bare", "429-date", "500-messages", "500-list", "drop-list", "drop-messages"])
def test_a_429_a_500_and_a_dropped_connection_are_survived(
        cs: Convoscope, pauses: list[float], reference: dict[str, list[tuple[Any, ...]]], kind: str, path: str,
        after: int, retry_after: str | None, paused: Callable[[list[float]], bool]) -> None:
    with serving(Replay(many())) as replay:
        replay.fail(kind, path=path, after=after, retry_after=in_30_seconds() if retry_after == "date" else retry_after)
        result = pull(cs, replay)
    assert result.exit_code == 0, result.stderr
    assert paused(pauses), pauses
    failed = [i for i, r in enumerate(replay.requests) if r.answer in (429, 500, "drop")]
    assert len(failed) == 1
    retried, again = replay.requests[failed[0]], replay.requests[failed[0] + 1]
    assert (again.path, again.query, again.answer) == (retried.path, retried.query, 200)
    assert snapshot(cs.db) == reference


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    now = 1_779_357_600.0
    assert chatwoot_api.retry_after("120", now=now) == 120.0
    assert chatwoot_api.retry_after(" 0 ", now=now) == 0.0
    assert chatwoot_api.retry_after(email.utils.formatdate(now + 90, usegmt=True), now=now) == 90.0
    assert chatwoot_api.retry_after("Thu, 21 May 2026 09:00:00 GMT", now=now) == 0.0  # already past
    assert chatwoot_api.retry_after("soon", now=now) is None
    assert chatwoot_api.retry_after(None, now=now) is None


def test_a_long_retry_after_stops_the_pull_instead_of_waiting(cs: Convoscope, pauses: list[float]) -> None:
    with serving(Replay(sample_records())) as replay:
        replay.fail("429", path="/messages", retry_after="3600")
        result = pull(cs, replay)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "asks to wait 3600 s" in result.stderr
    assert "run pull again" in result.stderr
    assert pauses == []


def test_a_failure_that_lasts_stops_the_pull_and_a_second_run_goes_on_where_it_stopped(
        cs: Convoscope, pauses: list[float], reference: dict[str, list[tuple[Any, ...]]]) -> None:
    records = many()
    with serving(Replay(records)) as replay:
        replay.fail("500", path="/messages", after=40, times=None)  # the installation goes down for good
        first = pull(cs, replay)
        assert first.exit_code == 1
        [line] = first.stderr.splitlines()
        assert line.startswith("convoscope: error: Chatwoot at http://127.0.0.1:")
        assert "answered GET /api/v1/accounts/3/conversations/" in line and "500 Internal Server Error" in line
        assert "run pull again later and it goes on where it stopped" in line
        assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0]  # growing pauses, a bounded number of them
        done = pulled_ids(cs.db)
        fetched_whole = {conversation_of(r) for r in replay.message_requests()} - {
            conversation_of(replay.message_requests()[-1])}
        assert done == fetched_whole and 0 < len(done) < 60  # what was fetched whole was kept

        replay.heal()
        replay.requests.clear()
        second = pull(cs, replay)
    assert second.exit_code == 0, second.stderr
    left = [r for r in records if r["conversation"]["id"] not in done]
    assert {conversation_of(r) for r in replay.message_requests()} == {r["conversation"]["id"] for r in left}
    assert len(replay.message_requests()) == sum(message_requests_for(len(r["messages"])) for r in left)
    assert f"{len(done)} had no activity since the last pull" in second.stderr
    assert snapshot(cs.db) == reference


def test_a_pull_killed_midway_and_run_again_leaves_what_one_run_leaves(
        cs: Convoscope, reference: dict[str, list[tuple[Any, ...]]]) -> None:
    with serving(Replay(many(), delay=0.03)) as replay:
        process = subprocess.Popen(
            [str(CONVOSCOPE), "--db", str(cs.db), "--config", str(cs.config), "pull", "chatwoot", "--url", replay.url,
             "--account", str(ACCOUNT), "--token-file", str(token_file(cs))],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        # 80 of the 109 message pages: more than PULL_BATCH_SECONDS of fetching, so a batch was stored.
        # Meanwhile the store is free for others but while a batch is written.
        opened = 0
        while len(replay.message_requests()) < 80 and process.poll() is None and time.monotonic() < deadline:
            if len(replay.message_requests()) > 10 and not opened:
                with contextlib.suppress(duckdb.IOException):
                    duckdb.connect(str(cs.db), read_only=True).close()
                    opened += 1
            time.sleep(0.01)
        assert opened
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        done = pulled_ids(cs.db)
        assert 0 < len(done) < 60
        replay.delay = 0
        replay.requests.clear()
        result = pull(cs, replay)
    assert result.exit_code == 0, result.stderr
    assert not {conversation_of(r) for r in replay.message_requests()} & done  # nothing stored is fetched again
    assert snapshot(cs.db) == reference


def test_ctrl_c_keeps_what_was_fetched_and_says_to_run_again(cs: Convoscope) -> None:
    with serving(Replay(many(), delay=0.02)) as replay:
        process = subprocess.Popen(
            [str(CONVOSCOPE), "--db", str(cs.db), "--config", str(cs.config), "pull", "chatwoot", "--url", replay.url,
             "--account", str(ACCOUNT), "--token-file", str(token_file(cs))],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while len(replay.message_requests()) < 20 and process.poll() is None:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        stopped_at = len(replay.message_requests())
        assert stopped_at < 60
    assert process.returncode == 130, stderr
    assert stderr.splitlines()[-1] == ("convoscope: error: interrupted; the conversations stored so far are kept: "
                                       "run pull again and it goes on where it stopped")
    # The conversations fetched whole were stored, though their batch was neither full nor old enough.
    asked = {conversation_of(r) for r in replay.message_requests()[:stopped_at]}
    assert len(pulled_ids(cs.db)) > 0 and pulled_ids(cs.db) <= asked


def test_a_later_pull_fetches_only_conversations_with_new_activity(cs: Convoscope) -> None:
    records = many()
    with serving(Replay(records)) as replay:
        assert pull(cs, replay).exit_code == 0
        before = len(stored_events(cs.db))
        replay.requests.clear()
        unchanged = pull(cs, replay)
        assert unchanged.exit_code == 0
        assert counts(unchanged) == "accepted 0, duplicate 0, ignored 0, rejected 0"
        assert replay.message_requests() == [] and len(replay.list_requests()) == 3
        # A customer writes again in one conversation, and a new conversation starts.
        changed = records[3]
        reply = dict(changed["messages"][0], id=5_000_001, created_at=changed["conversation"]["last_activity_at"] + 60,
                     content="one more question")
        changed["messages"].append(reply)
        changed["conversation"]["last_activity_at"] = reply["created_at"]
        records.append(make_records(1, messages=lambda i: 2, first_id=7000, first_activity=1_780_000_000)[0])
        replay.requests.clear()
        later = pull(cs, replay)
    assert later.exit_code == 0, later.stderr
    assert {conversation_of(r) for r in replay.message_requests()} == {changed["conversation"]["id"], 7000}
    old = sum(len(o.events) for o in map_backfill(changed["conversation"], changed["messages"][:-1], source="", line=None))
    assert counts(later).startswith(f"accepted 3, duplicate {old}, ")  # the reply, and the new conversation's two
    assert len(stored_events(cs.db)) == before + 3


# --- one event however it came -----------------------------------------------------------------------


def receive_webhooks(cs: Convoscope) -> None:
    """The sample's webhook deliveries, kept and merged as `serve` keeps and merges them."""
    spool = Spool(spool_folder(cs.db))
    for i, body in enumerate(webhook_bodies()):
        spool.put("chatwoot", "default", body, delivery=f"delivery-{i}")
    with Store(cs.db) as store:
        merged = service.merge_spool(store)
    assert (merged.accepted, merged.rejected) == (14, 0)


def test_a_message_seen_by_the_webhook_and_by_the_pull_is_one_event(cs: Convoscope) -> None:
    receive_webhooks(cs)
    with serving(Replay(sample_records())) as replay:
        result = pull(cs, replay)
    assert result.exit_code == 0, result.stderr
    assert counts(result) == "accepted 0, duplicate 11, ignored 6, rejected 0"
    assert events_in(cs.db) == by_id(expected_events("chatwoot"))
    assert rows(cs.db, "SELECT count(*), min(source) FROM duplicates") == [(11, "pull:chatwoot:3:276")]
    assert rows(cs.db, "SELECT DISTINCT source LIKE 'webhook:chatwoot:%' FROM events") == [(True,)]


def test_an_edited_message_is_a_conflict_kept_as_a_reject(cs: Convoscope) -> None:
    receive_webhooks(cs)
    records = sample_records()
    edited = next(m for m in records[0]["messages"] if m["id"] == 5847)
    edited["content"] = "Let me check that for you, one moment."
    with serving(Replay(records)) as replay:
        result = pull(cs, replay)
    assert result.exit_code == 3
    assert counts(result) == "accepted 0, duplicate 10, ignored 6, rejected 1"
    assert "rejected: conflict 1" in result.stderr
    [(kind, source, line, raw)] = rows(cs.db, "SELECT kind, source, line, raw FROM rejects")
    assert (kind, source, line) == ("conflict", "pull:chatwoot:3:276", 5847)
    assert json.loads(raw)["messages"] == [edited]  # the record as pulled, to ingest once fixed
    assert rows(cs.db, "SELECT text FROM events WHERE event_id = 'chatwoot:3:message:5847'") == [
        ("Let me check that for you.",)]  # the stored event never changes (SPEC 2.4)
    listed = cs("rejects")
    assert "pull:chatwoot:3:276,5847" in listed.stdout


# --- tokens, accounts and options ---------------------------------------------------------------------


def test_a_token_that_is_not_an_administrators_pulls_what_it_sees_with_a_warning(cs: Convoscope) -> None:
    records = sample_records() + make_records(3, messages=lambda i: 2, inbox=12)
    with serving(Replay(records, role="agent", inboxes={11})) as replay:
        result = pull(cs, replay)
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == ["convoscope: warning: the access token is an agent's of account 3, not an administrator's: "
                        "Chatwoot lists it only the conversations of its own inboxes, so some may be missing; use an "
                        "administrator's token to pull every inbox"]
    assert counts(result) == "accepted 11, duplicate 0, ignored 6, rejected 0"  # inbox 11's only


def test_a_wrong_token_is_refused_in_one_line(cs: Convoscope) -> None:
    with serving(Replay(sample_records())) as replay:
        result = pull(cs, replay, token="not-the-token-8d1e")
    assert result.exit_code == 1
    assert result.stderr == (f"convoscope: error: Chatwoot at {replay.url} refused the access token for GET "
                             "/api/v1/profile (Invalid Access Token); put the access token of an administrator of "
                             "account 3 in --token-file (Chatwoot: Profile settings, Access Token)\n")
    assert [r.path for r in replay.requests] == ["/api/v1/profile"]
    assert not cs.db.exists()  # no empty store is left behind


def test_an_account_the_token_is_not_a_member_of_is_refused(cs: Convoscope) -> None:
    with serving(Replay(sample_records())) as replay:
        result = cs("pull", "chatwoot", "--url", replay.url, "--account", "4", "--token-file", str(token_file(cs)))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "not a member of account 4" in result.stderr and "its accounts: 3" in result.stderr


def test_an_address_nothing_answers_at_fails_at_once(cs: Convoscope, pauses: list[float]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cs("pull", "chatwoot", "--url", url, "--account", "3", "--token-file", str(token_file(cs)))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"convoscope: error: cannot reach Chatwoot at {url} (ConnectError")
    assert result.stderr.rstrip().endswith("check --url") and pauses == []


@pytest.mark.parametrize(("args", "says"), [
    (("--url", "chat.example.com"), "is not the address of a Chatwoot installation"),
    (("--url", "https://user:pw@chat.example.com"), "without a name, password"),
    (("--since", "last week"), "--since 'last week' is not a date"),
    (("--since", "2026-05-01T00:00:00"), "is not a date"),  # a time without an offset
    (("--brand", "Acme Corp"), "is not a brand name"),
    (("--token-file", "/nonexistent/token"), "does not exist"),
])
def test_usage_errors_come_before_anything_is_fetched_or_stored(cs: Convoscope, args: tuple[str, ...],
                                                                says: str) -> None:
    options = {"--url": "https://chat.example.com", "--account": "3", "--token-file": str(token_file(cs))}
    options.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = cs("pull", "chatwoot", *[part for pair in options.items() for part in pair])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and says in result.stderr
    assert not cs.db.exists()


def test_a_token_file_must_hold_the_token_alone(cs: Convoscope) -> None:
    path = cs.dir / "token"
    for text in ("", "\n", "two tokens\n"):
        path.write_text(text)
        result = cs("pull", "chatwoot", "--url", "https://chat.example.com", "--account", "3", "--token-file", str(path))
        assert result.exit_code == 2
        assert "must hold the access token alone, on one line" in result.stderr


def test_since_fetches_only_conversations_active_since_then(cs: Convoscope) -> None:
    records = many()
    activity = sorted(r["conversation"]["last_activity_at"] for r in records)
    since = activity[-30]  # the 30 most recently active: the first page and part of the second
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
    with serving(Replay(records)) as replay:
        result = pull(cs, replay, "--since", when)
    assert result.exit_code == 0, result.stderr
    assert [r.query["page"] for r in replay.list_requests()] == ["1", "2"]  # no page after an older one
    assert {conversation_of(r) for r in replay.message_requests()} == {
        r["conversation"]["id"] for r in records if r["conversation"]["last_activity_at"] >= since}
    assert f"pulled 30 conversations active since {when}" in result.stderr


def test_since_a_day_starts_at_its_midnight_in_utc() -> None:
    assert chatwoot_api.parse_since("2026-05-21") == 1_779_321_600
    assert chatwoot_api.parse_since("2026-05-21T12:00:00+02:00") == 1_779_321_600 + 10 * 3600


# --- a list that changes while it is read -----------------------------------------------------------


def test_a_list_that_changes_while_it_is_paged_is_told_and_the_next_pull_completes_it(cs: Convoscope) -> None:
    records = many()
    newest = max(records, key=lambda r: r["conversation"]["last_activity_at"])

    def delete_the_newest(seen: Seen) -> None:  # once page 1 is read, its first conversation is deleted
        if seen.path.endswith("/conversations") and seen.query.get("page") == "1" and newest in records:
            records.remove(newest)

    with serving(Replay(records, on_request=delete_the_newest)) as replay:
        first = pull(cs, replay)
        assert first.exit_code == 0, first.stderr
        assert "convoscope: 1 conversations were deleted in Chatwoot while pulling" in first.stderr
        assert ("convoscope: warning: 1 conversations never appeared on the list's pages (it changed while it was "
                "read); run pull again to fetch them") in first.stderr
        missed = set(r["conversation"]["id"] for r in records) - pulled_ids(cs.db)
        assert len(missed) == 1
        replay.requests.clear()
        second = pull(cs, replay)
    assert second.exit_code == 0, second.stderr
    assert {conversation_of(r) for r in replay.message_requests()} == missed
    assert "warning" not in second.stderr


def test_the_page_size_is_the_installations(cs: Convoscope) -> None:
    records = make_records(20, messages=lambda i: 1)
    with serving(Replay(records, per_page=7)) as replay:  # CONVERSATION_RESULTS_PER_PAGE=7 there
        result = pull(cs, replay)
    assert result.exit_code == 0, result.stderr
    assert [r.query["page"] for r in replay.list_requests()] == ["1", "2", "3"]
    assert pulled_ids(cs.db) == {r["conversation"]["id"] for r in records}


def test_the_progress_bar_shows_on_a_terminal(cs: Convoscope) -> None:
    terminal, its_end = pty.openpty()
    with serving(Replay(many(), delay=0.01)) as replay:
        subprocess.run([str(CONVOSCOPE), "--db", str(cs.db), "--config", str(cs.config), "pull", "chatwoot", "--url",
                        replay.url, "--account", str(ACCOUNT), "--token-file", str(token_file(cs))],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=its_end, check=True, timeout=300)
    os.close(its_end)
    drawn = b""
    with contextlib.suppress(OSError):
        while piece := os.read(terminal, 65536):
            drawn += piece
    os.close(terminal)
    assert b"Pulling conversations" in drawn and b"/60" in drawn, drawn[:300]
    assert TOKEN.encode() not in drawn
