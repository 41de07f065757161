"""Gladly's Conversation Timestamps report (issue 25; decisions 99-101): the rows of the worked example
derived by hand from SPEC 3.7, who starts and closes a conversation in each way the log tells it, the
inboxes of decision 88, the as-of time and the local-date anchor; and on a generated brand, agreement with
conversation-export's Created At, Times Closed and Times Reopened.

The report is not registered under a name yet (the Gladly dialect will serve it), so it runs here through
`reports.build_params` and `reports.report_rows`, the path every report takes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import WORKED_EXAMPLE, Convoscope, ev, make_id
from convoscope import reports, service
from convoscope.config import Config
from convoscope.reports.gladly_timestamps import CONVERSATION_TIMESTAMPS
from convoscope.store import Store
from gladly_clients import TAP_TIMESTAMPS_PROPERTIES
from web_helpers import cli_ok, generate_brand

AS_OF = "2026-06-01T00:00:00Z"
WORKED = make_id("cnv_", "default", "c1", "e01")


def timestamps(db: Path, *, as_of: str = AS_OF, **options: Any) -> list[dict[str, str]]:
    """The report's rows as CSV cells by header (an empty cell as ''), derived first as a report run does."""
    with Store(db) as store:
        service.ensure_derived(store, Config())
        params = reports.build_params(CONVERSATION_TIMESTAMPS, Config(), store.brands(), as_of=as_of, **options)
        header, rows = reports.report_rows(store, Config(), CONVERSATION_TIMESTAMPS, params)
    return [dict(zip(header, (cell or "" for cell in row), strict=True)) for row in rows]


def short(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
    """The cells this report fills, in column order (the others are checked empty once, below)."""
    return [(r["Timezone Filter"], r["Timestamp"], r["Event Type"], r["Conversation ID"], r["Customer ID"],
             r["Initiator Type"], r["Assigned Inbox Name"]) for r in rows]


@pytest.fixture(scope="module")
def worked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = Convoscope(tmp_path_factory.mktemp("timestamps"))
    cli_ok(store, "ingest", str(WORKED_EXAMPLE))
    return store.db


def test_the_header_is_tap_gladlys_schema_in_order(worked: Path) -> None:
    assert [c.display for c in CONVERSATION_TIMESTAMPS.columns] == list(TAP_TIMESTAMPS_PROPERTIES)
    assert CONVERSATION_TIMESTAMPS.name == "ConversationTimestampsReport"


def test_the_worked_example(worked: Path) -> None:
    """SPEC 3.7: created at 10:00 by the customer's message; closed at 12:15 when Session 1 ended by
    inactivity (the system); reopened at 17:00 by the customer's message; closed at 17:25 when Sam's
    contact_end ended the contact (a team member; the conversation_close at that instant only moves the
    close and is no second close). No inbox anywhere in it."""
    rows = timestamps(worked, tz="UTC")
    assert short(rows) == [
        ("UTC", "2026-05-21 10:00:00", "CONVERSATION/CREATED", WORKED, "c1", "CUSTOMER", ""),
        ("UTC", "2026-05-21 12:15:00", "CONVERSATION/CLOSED", WORKED, "c1", "SYSTEM", ""),
        ("UTC", "2026-05-21 17:00:00", "CONVERSATION/REOPENED", WORKED, "c1", "CUSTOMER", ""),
        ("UTC", "2026-05-21 17:25:00", "CONVERSATION/CLOSED", WORKED, "c1", "AGENT", ""),
    ]
    filled = {"Timezone Filter", "Timestamp", "Event Type", "Conversation ID", "Customer ID", "Initiator Type",
              "Assigned Inbox Name"}
    assert all(row[name] == "" for row in rows for name in row if name not in filled)


def test_local_wall_clock_and_the_zone_filter(worked: Path) -> None:
    """Decision 101: the time in the report's zone, as `YYYY-MM-DD HH:MM:SS`, no offset; the zone named in
    Timezone Filter (Los Angeles is UTC-7 in May)."""
    rows = timestamps(worked, tz="America/Los_Angeles")
    assert [(r["Timezone Filter"], r["Timestamp"]) for r in rows] == [
        ("America/Los_Angeles", "2026-05-21 03:00:00"), ("America/Los_Angeles", "2026-05-21 05:15:00"),
        ("America/Los_Angeles", "2026-05-21 10:00:00"), ("America/Los_Angeles", "2026-05-21 10:25:00"),
    ]


def test_anchored_on_the_events_local_date(worked: Path) -> None:
    """In Tokyo (UTC+9) the creation and first close fall on 21 May, the reopen and last close on 22 May:
    a day selects the events of that day, not whole conversations."""
    on_22 = timestamps(worked, tz="Asia/Tokyo", date_from="2026-05-22", date_to="2026-05-22")
    assert [(r["Timestamp"], r["Event Type"]) for r in on_22] == [
        ("2026-05-22 02:00:00", "CONVERSATION/REOPENED"), ("2026-05-22 02:25:00", "CONVERSATION/CLOSED")]
    on_21 = timestamps(worked, tz="Asia/Tokyo", date_from="2026-05-21", date_to="2026-05-21")
    assert [r["Event Type"] for r in on_21] == ["CONVERSATION/CREATED", "CONVERSATION/CLOSED"]
    assert timestamps(worked, tz="UTC", date_from="2026-05-22") == []


@pytest.mark.parametrize(("as_of", "events"), [
    ("2026-05-21T12:00:00Z", ["CONVERSATION/CREATED"]),  # Session 1 is still open: its close is expected
    ("2026-05-21T12:15:00Z", ["CONVERSATION/CREATED", "CONVERSATION/CLOSED"]),  # closed at this very instant
    ("2026-05-21T17:10:00Z", ["CONVERSATION/CREATED", "CONVERSATION/CLOSED", "CONVERSATION/REOPENED"]),
])
def test_only_what_has_happened_by_the_as_of_time(worked: Path, as_of: str, events: list[str]) -> None:
    assert [r["Event Type"] for r in timestamps(worked, tz="UTC", as_of=as_of)] == events


DAY = "2026-05-21"


def at(hhmm: str, day: str = DAY) -> str:
    return f"{day}T{hhmm}:00Z"


# Each customer opens one conversation in another way; expected rows derived by hand from SPEC 3.1-3.3 with
# the default durations (S 2h, C 24h, W 24h) and decisions 88 and 99.
INITIATORS = [
    # out: a team member's outbound message creates it; their contact_end closes it.
    ev("o1", "agent_message", at("09:00"), "out", agent="sam", inbox="Billing"),
    ev("o2", "contact_end", at("09:10"), "out", agent="sam"),
    # ai: the customer's message opens an AI session; a conversation_close naming nobody ends it (SYSTEM); the
    # customer comes back within the window (a reopen), and that session ends by inactivity 2h later.
    ev("a1", "customer_message", at("09:00"), "ai"),
    ev("a2", "ai_message", at("09:01"), "ai"),
    ev("a3", "conversation_close", at("09:05"), "ai"),
    ev("a4", "customer_message", at("10:00"), "ai", inbox="Support"),
    # solo: a lone handoff makes a one-event session and a contact (the AI started it), which ends by
    # inactivity 24h later; the contact, started after the session, gives the close its inbox.
    ev("h1", "handoff", at("09:00"), "solo", category="handoff_manual", inbox="Escalations"),
    # two: a team contact closed by the team; then the customer's AI message and a team member's message at
    # one instant: a reopen the customer started, whose inbox is the takeover contact's (the last to start).
    ev("t1", "customer_message", at("09:00"), "two", route="team", inbox="A"),
    ev("t2", "contact_end", at("09:05"), "two", agent="kim"),
    ev("t3", "customer_message", at("10:00"), "two", route="ai", inbox="B"),
    ev("t4", "agent_message", at("10:00"), "two", agent="kim", inbox="C"),
    ev("t5", "contact_end", at("10:30"), "two", agent="kim"),
    # late: the session had already ended by inactivity at 11:00 when Sam's close arrived at that instant
    # (an event at an end belongs to what comes next): inactivity closed it, the close only moves it.
    ev("l1", "customer_message", at("09:00"), "late"),
    ev("l2", "ai_message", at("09:00"), "late"),
    ev("l3", "conversation_close", at("11:00"), "late", agent="sam"),
    # bot: the AI agent writes first.
    ev("b1", "ai_message", at("09:00"), "bot"),
]


def test_who_starts_closes_and_reopens_and_in_which_inbox(tmp_path: Path) -> None:
    cs = Convoscope(tmp_path)
    cs.ingest(INITIATORS)

    def conv(customer: str, first: str) -> str:
        return make_id("cnv_", "default", customer, first)

    want = [
        (at("09:00"), conv("out", "o1"), "CONVERSATION/CREATED", "AGENT", "Billing"),
        (at("09:10"), conv("out", "o1"), "CONVERSATION/CLOSED", "AGENT", "Billing"),
        (at("09:00"), conv("ai", "a1"), "CONVERSATION/CREATED", "CUSTOMER", ""),
        (at("09:05"), conv("ai", "a1"), "CONVERSATION/CLOSED", "SYSTEM", ""),
        (at("10:00"), conv("ai", "a1"), "CONVERSATION/REOPENED", "CUSTOMER", "Support"),
        (at("12:00"), conv("ai", "a1"), "CONVERSATION/CLOSED", "SYSTEM", "Support"),
        (at("09:00"), conv("solo", "h1"), "CONVERSATION/CREATED", "SYSTEM", "Escalations"),
        (at("09:00", "2026-05-22"), conv("solo", "h1"), "CONVERSATION/CLOSED", "SYSTEM", "Escalations"),
        (at("09:00"), conv("two", "t1"), "CONVERSATION/CREATED", "CUSTOMER", "A"),
        (at("09:05"), conv("two", "t1"), "CONVERSATION/CLOSED", "AGENT", "A"),
        (at("10:00"), conv("two", "t1"), "CONVERSATION/REOPENED", "CUSTOMER", "C"),
        (at("10:30"), conv("two", "t1"), "CONVERSATION/CLOSED", "AGENT", "C"),
        (at("09:00"), conv("late", "l1"), "CONVERSATION/CREATED", "CUSTOMER", ""),
        (at("11:00"), conv("late", "l1"), "CONVERSATION/CLOSED", "SYSTEM", ""),
        (at("09:00"), conv("bot", "b1"), "CONVERSATION/CREATED", "SYSTEM", ""),
        (at("11:00"), conv("bot", "b1"), "CONVERSATION/CLOSED", "SYSTEM", ""),
    ]
    rank = {"CONVERSATION/CREATED": 0, "CONVERSATION/REOPENED": 1, "CONVERSATION/CLOSED": 2}
    want.sort(key=lambda w: (w[0], w[1], rank[w[2]]))  # by time, then conversation id, then event
    found = timestamps(cs.db, tz="UTC")
    assert [(r["Timestamp"], r["Conversation ID"], r["Event Type"], r["Initiator Type"], r["Assigned Inbox Name"])
            for r in found] == [(t[:10] + " " + t[11:19], *rest) for t, *rest in want]
    # 09:00 holds five creations of five conversations: they come in id order, as SPEC 4.1 orders rows.
    first = [r["Conversation ID"] for r in found[:5]]
    assert first == sorted(first) and len(set(first)) == 5


def test_a_spreadsheet_formula_in_an_inbox_is_guarded(tmp_path: Path) -> None:
    cs = Convoscope(tmp_path)
    cs.ingest([ev("x1", "customer_message", at("09:00"), "x", inbox="=HYPERLINK(1)")])
    [created, *_] = timestamps(cs.db, tz="UTC")
    assert created["Assigned Inbox Name"] == "'=HYPERLINK(1)"


def test_agrees_with_conversation_export_on_a_generated_brand(tmp_path: Path) -> None:
    """Read without this report: a creation per conversation-export row, at its Created At; as many closes
    and reopens per conversation as its Times Closed and Times Reopened; in time order."""
    cs = Convoscope(tmp_path)
    generate_brand(cs, customers=120, days=5, seed=11, start="2026-05-01")
    as_of = "2026-06-01T00:00:00Z"
    rows = timestamps(cs.db, tz="UTC", as_of=as_of)
    export = cs.rows("--tz", "UTC", name="conversation-export", as_of=as_of)
    assert len(export) > 30
    created = [(r["Conversation ID"], r["Timestamp"]) for r in rows if r["Event Type"] == "CONVERSATION/CREATED"]
    assert created == [(r["Conversation ID"], r["Created At"][:19].replace("T", " ")) for r in export]
    counts = Counter((r["Conversation ID"], r["Event Type"]) for r in rows)
    for r in export:
        assert counts[(r["Conversation ID"], "CONVERSATION/CLOSED")] == int(r["Times Closed"]), r
        assert counts[(r["Conversation ID"], "CONVERSATION/REOPENED")] == int(r["Times Reopened"]), r
    assert sum(counts[(r["Conversation ID"], "CONVERSATION/REOPENED")] for r in export) > 0
    assert [r["Timestamp"] for r in rows] == sorted(r["Timestamp"] for r in rows)
    assert {r["Initiator Type"] for r in rows} == {"CUSTOMER", "AGENT", "SYSTEM"}
