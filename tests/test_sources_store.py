"""What a helpdesk's records become in the store (issue 23 point 1): their events go through SPEC 2's
validation, duplicates, conflicts and rejects exactly as plain events do, records that give no event are
kept (rejected) or counted (ignored), and `source_records` tells what became of each, once per record
however often the same input is read again."""

from __future__ import annotations

from pathlib import Path

import pytest

from convoscope import service
from convoscope.sources import Outcome
from convoscope.store import Store

SOURCE = "/captures/monday.jsonl"


def message(event_id: str, at: str = "2026-05-21T10:00:00Z", **fields: object) -> dict:
    return {"event_id": event_id, "type": "customer_message", "occurred_at": at, "customer_id": "1201",
            "channel": "chat", "text": "Hi", **fields}


def records() -> list[Outcome]:
    """A capture of four lines: one event, an ignored template, an unknown webhook, and a backfill line
    whose messages give a new event, an invalid one, a repeat of line 1 and a changed repeat of itself."""
    return [
        Outcome(SOURCE, 1, '{"line": 1}', events=[message("chatwoot:3:message:1")]),
        Outcome(SOURCE, 2, '{"line": 2}', ignored="template", occurred_at="2026-05-21T10:00:01Z"),
        Outcome(SOURCE, 3, '{"line": 3}', rejected="unknown_event",
                message="event 'contact_merged' is not one convoscope reads; tell us if you need it"),
        Outcome(SOURCE, 4, '{"line": 4, "message": 2}', events=[message("chatwoot:3:message:2", "2026-05-21T10:00:02Z")]),
        Outcome(SOURCE, 4, '{"line": 4, "message": 3}', events=[message("chatwoot:3:message:3", channel=None)]),
        Outcome(SOURCE, 4, '{"line": 4, "message": 1}', events=[message("chatwoot:3:message:1")]),
        Outcome(SOURCE, 4, '{"line": 4, "message": 2b}',
                events=[message("chatwoot:3:message:2", "2026-05-21T10:00:02Z", text="edited")]),
    ]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "store.duckdb") as opened:
        yield opened


def rows(store: Store, sql: str) -> list[tuple]:
    return store.con.execute(sql).fetchall()


def test_events_of_records_are_validated_merged_and_kept_like_plain_events(store: Store) -> None:
    counts = service.store_records(store, records(), system="chatwoot", via="file", brand="acme")
    assert (counts.accepted, counts.duplicate, counts.ignored, counts.rejected) == (2, 1, 1, 3)
    assert rows(store, "SELECT brand, event_id, source, line FROM events ORDER BY event_id") == [
        ("acme", "chatwoot:3:message:1", SOURCE, 1), ("acme", "chatwoot:3:message:2", SOURCE, 4)]
    # Every reject keeps the brand it was given, its line and the record as it came, to fix and send again.
    assert rows(store, "SELECT kind, brand, line, raw, left(reason, 30) FROM rejects ORDER BY raw") == [
        ("rejected", "acme", 3, '{"line": 3}', "event 'contact_merged' is not "),
        ("conflict", "acme", 4, '{"line": 4, "message": 2b}', "event_id 'chatwoot:3:message:2"),
        ("rejected", "acme", 4, '{"line": 4, "message": 3}', "channel is required on custome"),
    ]
    assert rows(store, "SELECT event_id, line FROM duplicates") == [("chatwoot:3:message:1", 4)]
    assert rows(store, "SELECT count(*) FROM pending") == [(1,)]


def test_what_became_of_each_record_is_recorded_by_line(store: Store) -> None:
    service.store_records(store, records(), system="chatwoot", via="file", brand="acme")
    assert rows(store, "SELECT line, seq, outcome, reason, strftime(occurred_at, '%H:%M:%S') FROM source_records "
                       "ORDER BY line, seq") == [
        (1, 0, "accepted", None, "10:00:00"),
        (2, 0, "ignored", "template", "10:00:01"),
        (3, 0, "rejected", "unknown_event", None),
        (4, 0, "accepted", None, "10:00:02"),
        (4, 1, "rejected", "invalid_event", "10:00:00"),
        (4, 2, "duplicate", None, "10:00:00"),
        (4, 3, "rejected", "conflict", "10:00:02"),
    ]


def test_reading_the_same_records_again_changes_nothing(store: Store) -> None:
    service.store_records(store, records(), system="chatwoot", via="file", brand="acme")
    before = {table: rows(store, f"SELECT * EXCLUDE ({stamp}) FROM {table} ORDER BY ALL")
              for table, stamp in (("events", "ingested_at"), ("rejects", "rejected_at"), ("duplicates", "seen_at"),
                                   ("source_records", "recorded_at"))}
    again = service.store_records(store, records(), system="chatwoot", via="file", brand="acme")
    # The command says what it saw (SPEC 2.4: a line read again is a duplicate of itself) ...
    assert (again.accepted, again.duplicate, again.ignored, again.rejected) == (0, 3, 1, 3)
    # ... but the store, the rejects and the sources report hold what they held.
    for table, stamp in (("events", "ingested_at"), ("rejects", "rejected_at"), ("duplicates", "seen_at"),
                         ("source_records", "recorded_at")):
        assert rows(store, f"SELECT * EXCLUDE ({stamp}) FROM {table} ORDER BY ALL") == before[table], table


def test_the_same_record_from_another_source_is_a_duplicate_there(store: Store) -> None:
    first = records()[:1]
    service.store_records(store, first, system="chatwoot", via="webhook", brand="acme")
    redelivered = [Outcome("webhook:chatwoot:d2", None, first[0].raw, events=first[0].events)]
    counts = service.store_records(store, redelivered, system="chatwoot", via="webhook", brand="acme")
    assert (counts.accepted, counts.duplicate) == (0, 1)
    assert rows(store, "SELECT source, outcome FROM source_records ORDER BY source") == [
        (SOURCE, "accepted"), ("webhook:chatwoot:d2", "duplicate")]
    assert rows(store, "SELECT count(*) FROM events") == [(1,)]


def test_a_record_fixed_in_place_replaces_what_its_line_gave(store: Store) -> None:
    broken = [Outcome(SOURCE, 1, '{"v": 1}', rejected="bad_customer_id", message="customer id 'x' is not a number")]
    service.store_records(store, broken, system="chatwoot", via="file", brand="acme")
    fixed = [Outcome(SOURCE, 1, '{"v": 2}', events=[message("chatwoot:3:message:1")])]
    service.store_records(store, fixed, system="chatwoot", via="file", brand="acme")
    assert rows(store, "SELECT line, outcome FROM source_records") == [(1, "accepted")]


def test_a_failure_inside_the_batch_stores_none_of_it(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from convoscope.events import mapped

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(mapped, "outcomes", broken)
    with pytest.raises(RuntimeError):
        service.store_records(store, records(), system="chatwoot", via="file", brand="acme")
    for table in ("events", "rejects", "duplicates", "source_records", "pending"):
        assert rows(store, f"SELECT count(*) FROM {table}") == [(0,)], table


def test_a_file_written_anew_under_the_same_name_adds_its_records(store: Store) -> None:
    """A capture rotated in place holds other records on the same lines: the earlier ones are still
    stored, and the report counts both."""
    service.store_records(store, records()[:1], system="chatwoot", via="file", brand="acme")
    rotated = [Outcome(SOURCE, 1, '{"line": 1, "day": 2}', events=[message("chatwoot:3:message:9")])]
    service.store_records(store, rotated, system="chatwoot", via="file", brand="acme")
    assert rows(store, "SELECT line, outcome, event_id FROM source_records ORDER BY event_id") == [
        (1, "accepted", "chatwoot:3:message:1"), (1, "accepted", "chatwoot:3:message:9")]
    assert rows(store, "SELECT count(*) FROM events") == [(2,)]


def test_the_same_file_for_two_brands_is_counted_for_each(store: Store) -> None:
    service.store_records(store, records(), system="chatwoot", via="file", brand="acme")
    service.store_records(store, records(), system="chatwoot", via="file", brand="beta")
    assert rows(store, "SELECT brand, count(*) FILTER (WHERE outcome = 'accepted') FROM source_records "
                       "GROUP BY brand ORDER BY brand") == [("acme", 2), ("beta", 2)]
