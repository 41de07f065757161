"""The optional event field `inbox` (issue 23 point 5, SPEC Appendix B; decisions 86-89), end to end.

At the boundary: a string of up to 200 characters on any type, blank as absent, in every input format
and the events API; compared for duplicate against conflict; kept in its own column, also in a store
written before the field existed. Then what the reports show of it under `--extra` and select by
`--where inbox=`, on the command line and over the API. (The derivation's readings run through both
the kernel and the reference in test_derivation_rules.py and test_properties.py.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cli_helpers import Convoscope, assert_usage_error, ev, make_id
from convoscope import service
from convoscope.config import Config
from convoscope.events import readers
from convoscope.store import SCHEMA_VERSION, Store
from convoscope.store import connect as connect_waiting
from event_files import write_csv, write_jsonl, write_parquet

DAY = "2026-05-21"
TYPES = ("customer_message", "ai_message", "handoff", "agent_message", "contact_end", "conversation_close",
         "conversation_reopen")
LONGEST = "i" * 199 + "é"  # 200 characters, 201 bytes: the limit counts characters


def at(minute: int) -> str:
    return f"{DAY}T10:{minute:02}:00Z"


def record(event_id: str, type_: str = "customer_message", **fields: Any) -> dict[str, Any]:
    found = ev(event_id, type_, at(len(event_id) % 60), customer=f"cust-{event_id}", **fields)
    return found | ({"category": "handoff_manual"} if type_ == "handoff" else {})


# Valid records (and one too long), with what is stored of each: its inbox, or None for a rejected one.
EDGE: list[tuple[dict[str, Any], str | None]] = [
    (record("longest", inbox=LONGEST), LONGEST),
    (record("too-long", inbox="i" * 201), None),
    (record("blank", inbox=" \u00a0"), ""),
    (record("tab", inbox="desk\t2"), "desk\t2"),  # like ai_agent: no rule on control characters
    *((record(f"on-{t}", t, inbox="7"), "7") for t in TYPES),
]


def stored(db: Path) -> dict[str, tuple[str | None, str | None]]:
    with Store(db) as store:
        found = store.con.execute("SELECT event_id, inbox, attributes::VARCHAR FROM events").fetchall()
    return {event_id: (inbox, attributes) for event_id, inbox, attributes in found}


def rejects(db: Path) -> dict[str, str]:
    with Store(db) as store:
        return dict(store.con.execute("SELECT event_id, reason FROM rejects").fetchall())


def ingest(db: Path, *paths: Path) -> tuple[int, int, int]:
    with Store(db) as store:
        counts = service.ingest(store, Config(), [str(p) for p in paths]).counts
    return counts.accepted, counts.duplicate, counts.rejected


def assert_edge_cases(db: Path) -> None:
    found, refused = stored(db), rejects(db)
    for item, inbox in EDGE:
        if inbox is None:
            assert refused[item["event_id"]] == "inbox is longer than 200 characters"
        else:
            assert found[item["event_id"]] == (inbox or None, None), item  # blank: absent; never an attribute


def test_json_lines_read_by_the_fast_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def exact_path(*args: object) -> None:
        raise AssertionError("every line is an object of typed fields: the fast reader takes the chunk")

    monkeypatch.setattr(readers, "_split_lines", exact_path)
    db = tmp_path / "s.duckdb"
    assert ingest(db, write_jsonl(tmp_path / "e.jsonl", *(r for r, _ in EDGE))) == (len(EDGE) - 1, 0, 1)
    assert_edge_cases(db)


@pytest.mark.parametrize(("value", "kind"), [(7, "a number"), (["7"], "a list"), ({"id": 7}, "an object"),
                                             (True, "true/false")])
def test_json_lines_of_another_type_are_rejected_naming_it(tmp_path: Path, value: object, kind: str) -> None:
    """A line the fast reader cannot type sends the chunk to the exact path, which names each problem."""
    db = tmp_path / "s.duckdb"
    path = write_jsonl(tmp_path / "e.jsonl", *(r for r, _ in EDGE), json.dumps(record("typed", inbox=value)))
    assert ingest(db, path) == (len(EDGE) - 1, 0, 2)
    assert rejects(db)["typed"] == f"inbox must be a string, not {kind}"
    assert_edge_cases(db)


def test_csv(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    assert ingest(db, write_csv(tmp_path / "e.csv", *(r for r, _ in EDGE), record("empty-cell", inbox=""))) \
        == (len(EDGE), 0, 1)
    assert_edge_cases(db)
    assert stored(db)["empty-cell"] == (None, None)


def test_parquet(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    assert ingest(db, write_parquet(tmp_path / "e.parquet", [r for r, _ in EDGE])) == (len(EDGE) - 1, 0, 1)
    assert_edge_cases(db)
    numbers = write_parquet(tmp_path / "n.parquet", [record("number", inbox=7)], inbox=pa.int64())
    assert ingest(db, numbers) == (0, 0, 1)
    assert rejects(db)["number"] == "inbox must be a string, not int64"


def test_every_format_stores_the_same_events(tmp_path: Path) -> None:
    records = [r for r, _ in EDGE]
    paths = [write_jsonl(tmp_path / "e.jsonl", *records), write_csv(tmp_path / "e.csv", *records),
             write_parquet(tmp_path / "e.parquet", records)]
    found = []
    for path in paths:
        db = tmp_path / f"{path.suffix[1:]}.duckdb"
        ingest(db, path)
        found.append(stored(db))
        # And each format's events are duplicates of the others'.
        assert ingest(db, *(p for p in paths if p != path)) == (0, 2 * (len(EDGE) - 1), 2)
    assert found[0] == found[1] == found[2]


# --- duplicate or conflict (SPEC 2.4) -------------------------------------------------------------------

def test_an_inbox_counts_in_duplicate_against_conflict(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    first = [record("same", inbox="1"), record("blank"), record("other", inbox="1"), record("added"),
             record("dropped", inbox="1")]
    assert ingest(db, write_jsonl(tmp_path / "first.jsonl", *first)) == (5, 0, 0)
    again = [record("same", inbox="1"), record("blank", inbox="\t"), record("other", inbox="2"),
             record("added", inbox="1"), record("dropped")]
    assert ingest(db, write_jsonl(tmp_path / "again.jsonl", *again)) == (0, 2, 3)
    with Store(db) as store:
        conflicts = {r[0] for r in store.con.execute("SELECT event_id FROM rejects WHERE kind = 'conflict'").fetchall()}
    assert conflicts == {"other", "added", "dropped"}
    assert {k: v[0] for k, v in stored(db).items()} == {"same": "1", "blank": None, "other": "1", "added": None,
                                                        "dropped": "1"}


def test_an_api_batch_checks_the_inbox_too(tmp_path: Path) -> None:
    from web_helpers import post_events

    cs = Convoscope(tmp_path)
    batch = [record("api-1", inbox="42"), record("api-2", inbox=42), record("api-3", "contact_end", inbox="i" * 201)]
    body = post_events(cs, batch)
    assert (body["accepted"], body["rejected"]) == (1, 2)
    assert {e["index"]: e["reason"] for e in body["errors"]} == {
        1: "inbox must be a string, not a number", 2: "inbox is longer than 200 characters"}
    assert stored(cs.db)["api-1"] == ("42", None)


# --- a store written before the field (decision 87) ------------------------------------------------------

def test_a_store_of_the_previous_version_moves_attributes_inbox_into_its_column(tmp_path: Path) -> None:
    cs = Convoscope(tmp_path)
    events = [
        record("moved", inbox="web", priority="high"),  # moves; priority stays
        record("blank", inbox="  "),  # blank: absent, and attributes empty
        record("number", inbox=7),  # not a string: stays
        record("long", inbox="i" * 201),  # too long: stays
        record("none", priority="low"),
    ]
    # As convoscope of schema version 3 stored them: `inbox` an unknown field, kept in attributes.
    kept = {"moved": {"inbox": "web", "priority": "high"}, "blank": {"inbox": "  "}, "number": {"inbox": 7},
            "long": {"inbox": "i" * 201}, "none": {"priority": "low"}}
    cs.ingest([{k: v for k, v in e.items() if k != "inbox"} for e in events])
    con = connect_waiting(cs.db)
    for event_id, attributes in kept.items():
        con.execute("UPDATE events SET attributes = ? WHERE event_id = ?", [json.dumps(attributes), event_id])
    con.execute("ALTER TABLE events DROP COLUMN inbox")
    for table, column in (("sessions", "inbox"), ("contacts", "inbox"), ("conversations", "inbox_at_created"),
                          ("conversation_closes", "inbox")):
        con.execute(f"ALTER TABLE derived.{table} DROP COLUMN {column}")
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    con.close()

    rows = {row["Customer ID"]: row["Inbox"] for row in cs.rows("--extra")}  # opening the store upgrades it
    assert rows == {"cust-moved": "web", "cust-blank": "", "cust-number": "", "cust-long": "", "cust-none": ""}
    found = {k: (inbox, json.loads(a) if a else None) for k, (inbox, a) in stored(cs.db).items()}
    assert found == {"moved": ("web", {"priority": "high"}), "blank": (None, None), "number": (None, {"inbox": 7}),
                     "long": (None, {"inbox": "i" * 201}), "none": (None, {"priority": "low"})}
    with Store(cs.db) as store:
        assert store.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [(SCHEMA_VERSION,)]
        assert store.count("pending") == 0
    # The records sent again: what moved is now what ingesting stores (duplicates); what stayed is refused.
    result = cs("ingest", str(cs.write_events(events, "again.jsonl")))
    assert result.stdout.strip() == "accepted 0, duplicate 3, rejected 2"


# --- reports (decisions 88 and 89) -------------------------------------------------------------------------

def timed(event_id: str, type_: str, hhmm: str, customer: str, **fields: Any) -> dict[str, Any]:
    return ev(event_id, type_, f"{DAY}T{hhmm}:00Z", customer, **fields)


STREAM = [
    # k1: a session (its inbox from its AI reply) handed off to a contact whose first event with an inbox
    # is a team message; then a second contact, without an inbox, reopens the conversation.
    timed("k1-a", "customer_message", "10:00", "k1"),
    timed("k1-b", "ai_message", "10:01", "k1", inbox="web"),
    timed("k1-c", "handoff", "10:02", "k1", category="handoff_manual"),
    timed("k1-d", "agent_message", "10:03", "k1", inbox="mail"),
    timed("k1-e", "contact_end", "10:04", "k1"),  # closes at 10:04
    timed("k1-f", "customer_message", "11:00", "k1", route="team"),
    timed("k1-g", "contact_end", "11:05", "k1", inbox=" "),  # closes at 11:05; a blank inbox is none
    # k2: a session taken over at the instant it started: the contact started last.
    timed("k2-a", "customer_message", "10:00", "k2", inbox="ai-desk"),
    timed("k2-b", "agent_message", "10:00", "k2", inbox="team-desk"),
    timed("k2-c", "contact_end", "10:10", "k2", inbox="team-desk"),
    # k3: nothing with an inbox.
    timed("k3-a", "customer_message", "10:00", "k3"),
]
CONVERSATION = {c: make_id("cnv_", "default", c, f"{c}-a") for c in ("k1", "k2", "k3")}
CONTACT = {e: make_id("ctc_", "default", e[:2], e) for e in ("k1-c", "k1-f", "k2-b")}


@pytest.fixture(scope="module")
def inboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Convoscope]:
    cs = Convoscope(tmp_path_factory.mktemp("inboxes"))
    cs.ingest(STREAM)
    yield cs


def column(cs: Convoscope, name: str, key: str, *args: str, as_of: str = "2026-06-01T00:00:00Z"
           ) -> dict[str, tuple[str, ...]]:
    """The extra columns of a report by `key`: the columns after the default ones."""
    defaults = {"sessions-detail": 16, "sessions-detail-with-messages": 17, "contact-export": 21,
                "conversation-export": 20}[name]
    return {row[key]: tuple(list(row.values())[defaults:]) for row in cs.rows(*args, name=name, as_of=as_of)}


def test_sessions_detail_extra_ends_with_the_inbox(inboxes: Convoscope) -> None:
    for name in ("sessions-detail", "sessions-detail-with-messages"):
        rows = column(inboxes, name, "Customer ID", "--extra", "--tz", "UTC")
        # Then Feedback and Feedback Score (tests/test_feedback.py).
        assert {k: v[5] for k, v in rows.items()} == {"k1": "web", "k2": "ai-desk", "k3": ""}
        assert rows["k1"][:5] == ("default", f"{DAY}T10:00:00+00:00", f"{DAY}T10:02:00+00:00", "handoff",
                                   "handed_off")


def test_contact_export_extra_is_the_inbox(inboxes: Convoscope) -> None:
    rows = {key: extra[:1] for key, extra in column(inboxes, "contact-export", "Contact ID", "--extra").items()}
    assert rows == {CONTACT["k1-c"]: ("mail",), CONTACT["k1-f"]: ("",), CONTACT["k2-b"]: ("team-desk",)}


@pytest.mark.parametrize(("as_of", "expected"), [
    # Every close counted: k1's last close is the contact without an inbox (no fallback to an earlier one).
    ("2026-06-01T00:00:00Z", {"k1": ("web", ""), "k2": ("ai-desk", "team-desk"), "k3": ("", "")}),
    # Between k1's closes: its last close then is 10:04, after the handoff contact; k3 has not closed yet.
    (f"{DAY}T10:30:00Z", {"k1": ("web", "mail"), "k2": ("ai-desk", "team-desk"), "k3": ("", "")}),
    # Before any close: no Last Closed At, so no inbox at it.
    (f"{DAY}T10:03:00Z", {"k1": ("web", ""), "k2": ("ai-desk", ""), "k3": ("", "")}),
])
def test_conversation_export_extra_is_the_inbox_at_creation_and_at_the_last_close(
    inboxes: Convoscope, as_of: str, expected: dict[str, tuple[str, str]]
) -> None:
    rows = {row["Customer ID"]: row for row in inboxes.rows("--extra", name="conversation-export", as_of=as_of)}
    assert {c: (r["Inbox At Created"], r["Inbox At Last Closed"]) for c, r in rows.items()} == expected
    for row in rows.values():  # empty exactly when Last Closed At is
        assert (row["Inbox At Last Closed"] == "") >= (row["Last Closed At"] == "")
    assert list(rows["k1"])[-3:] == ["Inbox At Created", "Inbox At Last Closed", "Automated Resolution"]


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("sessions-detail", "web", {"k1"}),
    ("sessions-detail", "ai-desk", {"k2"}),
    ("sessions-detail", "", {"k3"}),
    ("sessions-detail", "WEB", set()),  # as sent: not lower-cased like a channel
    ("sessions-detail", "mail", set()),  # the contact's, not the session's
    ("sessions-detail-with-messages", "ai-desk", {"k2"}),
    ("contact-export", "mail", {"k1"}),
    ("contact-export", "team-desk", {"k2"}),
    ("contact-export", "", {"k1"}),  # the second contact
    ("conversation-export", "web", {"k1"}),  # a session's
    ("conversation-export", "mail", {"k1"}),  # a contact's: any of its interactions
    ("conversation-export", "team-desk", {"k2"}),
    ("conversation-export", "", {"k3"}),  # none of its interactions has one
])
def test_every_detail_report_filters_on_the_inbox(inboxes: Convoscope, name: str, value: str,
                                                    expected: set[str]) -> None:
    assert {row["Customer ID"] for row in inboxes.rows("--where", f"inbox={value}", name=name)} == expected


def test_the_contact_filter_selects_by_the_contacts_own_inbox(inboxes: Convoscope) -> None:
    rows = inboxes.rows("--where", "inbox=", name="contact-export")
    assert [row["Contact ID"] for row in rows] == [CONTACT["k1-f"]]


@pytest.mark.parametrize(("name", "value", "figure", "count"), [
    ("sessions-summary", "web", "Sessions", "1"),
    ("contact-summary", "team-desk", "Contacts Ended", "1"),
    ("conversation-summary", "mail", "Conversations Closed", "1"),
])
def test_summaries_take_the_filter_of_their_detail_report(inboxes: Convoscope, name: str, value: str, figure: str,
                                                           count: str) -> None:
    [row] = inboxes.rows("--where", f"inbox={value}", name=name)
    assert row[figure] == count


@pytest.mark.parametrize("args", [("--where", "inbox=web"), ("--extra",)])
def test_data_quality_takes_neither(inboxes: Convoscope, args: tuple[str, ...]) -> None:
    assert_usage_error(inboxes("report", "data-quality", *args))


def test_the_api_and_the_report_page_get_inbox_from_the_same_definitions(inboxes: Convoscope) -> None:
    from web_helpers import add_user, bearer, csv_dicts, log_in, serving

    token = add_user(inboxes, "analyst1", "analyst")
    query = {"as_of": "2026-06-01T00:00:00Z", "extra": "true", "where": "inbox=mail", "tz": "UTC"}
    with serving(inboxes) as server:
        with server.client(headers=bearer(token)) as client:
            answer = client.get("/api/v1/reports/conversation-export", params=query,
                                headers={"Accept": "application/json"})
            assert answer.status_code == 200, answer.text
            [row] = answer.json()["rows"]
            assert (row["Conversation ID"], row["Inbox At Created"], row["Inbox At Last Closed"]) == (
                CONVERSATION["k1"], "web", None)
            as_csv = client.get("/api/v1/reports/contact-export", params=query)
            assert [(r["Contact ID"], r["Inbox"]) for r in csv_dicts(as_csv.text)] == [(CONTACT["k1-c"], "mail")]
            cli = inboxes("report", "contact-export", "--as-of", query["as_of"], "--extra", "--where", "inbox=mail",
                          "--tz", "UTC")
            assert as_csv.content == cli.stdout_bytes
        with server.client() as browser:
            assert log_in(browser, "analyst1").status_code == 303
            page = browser.get("/reports/contact-export")
            assert page.status_code == 200
            assert 'name="where.inbox"' in page.text
            for value in ("mail", "team-desk", "web", "ai-desk"):  # the inboxes the user's brands hold
                assert f'<option value="{value}">' in page.text
