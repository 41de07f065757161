"""SPEC 4.4 and 4.6 through the real command line: the contact and conversation exports.

The worked example of SPEC 3.7 cell by cell in both exports; what an earlier as-of time hides (a
contact still open, a first response not yet sent, a conversation between its close and its reopen);
the filters of each export; the summaries' usage errors; and a store written by the previous
derived-table layout, which is rebuilt from its events before the next report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import WORKED_EXAMPLE, Convoscope, assert_usage_error, ev, make_id, parse
from convoscope.store import DERIVED_TABLES, Store
from convoscope.store import connect as connect_waiting

LINK = "http://127.0.0.1:8000/conversations/"


def test_worked_example_contact_export(worked: Convoscope) -> None:
    """SPEC 3.7: Contact 1 — source handoff, linked to Session 2, 17:10–17:25, first response 120 s."""
    [row] = worked.rows(name="contact-export")
    conversation = make_id("cnv_", "default", "c1", "e01")
    assert row == {
        "Contact ID": make_id("ctc_", "default", "c1", "e07"),
        "Conversation ID": conversation,
        "Customer ID": "c1",
        "Brand": "default",
        "Channel": "chat",
        "Direction": "INBOUND",
        "Source": "handoff",
        "Session ID": make_id("ses_", "default", "c1", "e05"),
        "Handoff Category": "handoff_transfer_detector",
        "Created At": "2026-05-21T17:10:00+00:00",
        "First Response At": "2026-05-21T17:12:00+00:00",
        "Last Activity At": "2026-05-21T17:25:00+00:00",
        "Ended At": "2026-05-21T17:25:00+00:00",
        "End Reason": "contact_end",
        "Agents": "sam",
        "First Response Seconds": "120",
        "Duration Seconds": "900",
        "Customer Messages": "0",
        "Agent Messages": "1",
        "Status": "ended",
        "Conversation Link": LINK + conversation,
    }


def test_worked_example_conversation_export(worked: Convoscope) -> None:
    """SPEC 3.7: created 10:00, closed 12:15, reopened 17:00, closed 17:25; closed twice, reopened once."""
    [row] = worked.rows(name="conversation-export")
    conversation = make_id("cnv_", "default", "c1", "e01")
    assert row == {
        "Created At": "2026-05-21T10:00:00+00:00",
        "Conversation ID": conversation,
        "Customer ID": "c1",
        "Brand": "default",
        "Conversation Link": LINK + conversation,
        "Status": "CLOSED",
        "First Closed At": "2026-05-21T12:15:00+00:00",
        "Last Closed At": "2026-05-21T17:25:00+00:00",
        "First Channel": "chat",
        "Last Channel": "chat",
        "Count of Channels": "1",
        "Count of Sessions": "2",
        "Count of Contacts": "1",
        "Sessions Resolved": "1",
        "Sessions Handed Off": "1",
        "Handled By": "ai_then_team",
        "Times Closed": "2",
        "Times Reopened": "1",
        "Created-to-First Closed Time in seconds": str(2 * 3600 + 15 * 60),
        "Created-to-Last Closed Time in seconds": str(7 * 3600 + 25 * 60),
    }


@pytest.mark.parametrize(("as_of", "status", "first", "last", "closed", "reopened"), [
    ("2026-05-21T11:00:00Z", "OPEN", "", "", "0", "0"),  # before the first close
    # Closed at 12:15, yet open: session 2 and its contact (17:00 to 17:25) end later than the as-of time.
    ("2026-05-21T12:15:00Z", "OPEN", "12:15", "12:15", "1", "0"),
    ("2026-05-21T16:59:59Z", "OPEN", "12:15", "12:15", "1", "0"),
    ("2026-05-21T17:00:00Z", "OPEN", "12:15", "12:15", "1", "1"),  # reopened
    ("2026-05-21T17:25:00Z", "CLOSED", "12:15", "17:25", "2", "1"),  # an end at as-of is closed
])
def test_conversation_as_of(worked: Convoscope, as_of: str, status: str, first: str, last: str,
                            closed: str, reopened: str) -> None:
    """A conversation is open while any of its interactions is, that is, until its latest end (SPEC 3,
    3.3); closes and reopens later than the as-of time do not count yet (SPEC 4.6)."""
    [row] = worked.rows(name="conversation-export", as_of=as_of)
    assert row["Status"] == status
    assert row["First Closed At"][11:16] == first
    assert row["Last Closed At"][11:16] == last
    assert (row["Times Closed"], row["Times Reopened"]) == (closed, reopened)
    assert (row["Created-to-Last Closed Time in seconds"] == "") == (last == "")


def test_contact_as_of_hides_what_has_not_happened(worked: Convoscope) -> None:
    """At 17:11 the contact is open and unanswered: end, reason, response and durations are empty."""
    [row] = worked.rows(name="contact-export", as_of="2026-05-21T17:11:00Z")
    assert row["Status"] == "open"
    for cell in ("Ended At", "End Reason", "First Response At", "First Response Seconds", "Duration Seconds"):
        assert row[cell] == "", cell
    [row] = worked.rows(name="contact-export", as_of="2026-05-21T17:12:00Z")
    assert (row["Status"], row["First Response Seconds"], row["Duration Seconds"]) == ("open", "120", "")
    assert worked.rows(name="contact-summary", as_of="2026-05-21T17:12:00Z") == []


def test_report_in_another_zone(worked: Convoscope) -> None:
    [row] = worked.rows("--tz", "America/Los_Angeles", name="conversation-export")
    assert row["Created At"] == "2026-05-21T03:00:00-07:00"
    assert row["Last Closed At"] == "2026-05-21T10:25:00-07:00"


def _team_and_ai(cs: Convoscope) -> None:
    """Customer a: an AI session on chat, then an SMS reply from the team (outbound, agent kim).
    Customer b: an inbound email contact answered by lee. Customer c: AI only, on voice."""
    cs.ingest([
        ev("a1", "customer_message", "2026-05-21T10:00:00Z", "a"),
        ev("a2", "ai_message", "2026-05-21T10:01:00Z", "a"),
        ev("a3", "agent_message", "2026-05-21T13:00:00Z", "a", channel="sms", agent="kim"),
        ev("a4", "contact_end", "2026-05-21T13:05:00Z", "a"),
        ev("b1", "customer_message", "2026-05-21T11:00:00Z", "b", channel="email", route="team"),
        ev("b2", "agent_message", "2026-05-21T11:30:00Z", "b", channel="email", agent="lee"),
        ev("b3", "contact_end", "2026-05-21T11:40:00Z", "b"),
        ev("c1", "customer_message", "2026-05-21T12:00:00Z", "c", channel="voice"),
        ev("c2", "ai_message", "2026-05-21T12:00:30Z", "c", channel="voice"),
    ])


def test_export_filters(cs: Convoscope) -> None:
    _team_and_ai(cs)
    customers = {
        args: [r["Customer ID"] for r in cs.rows(*args, name=name)]
        for name, args in [
            ("conversation-export", ("--where", "channel=SMS")),  # any of its channels, any case
            ("conversation-export", ("--where", "channel=chat")),
            ("conversation-export", ("--where", "handled_by=team_only")),
            ("conversation-export", ("--where", "handled_by=ai_and_team")),
            ("contact-export", ("--where", "source=outbound")),
            ("contact-export", ("--where", "agent=lee")),
            ("contact-export", ("--where", "channel=email", "--where", "source=inbound")),
            ("contact-export", ("--where", "channel=email", "--where", "source=outbound")),
        ]
    }
    assert list(customers.values()) == [["a"], ["a"], ["b"], ["a"], ["a"], ["b"], ["b"], []]
    [a] = cs.rows("--where", "channel=sms", name="conversation-export")
    assert (a["First Channel"], a["Last Channel"], a["Count of Channels"]) == ("chat", "sms", "2")
    [outbound] = cs.rows("--where", "source=outbound", name="contact-export")
    assert (outbound["Direction"], outbound["First Response At"], outbound["First Response Seconds"]) == \
        ("OUTBOUND", "", "")
    assert (outbound["Session ID"], outbound["Handoff Category"]) == ("", "")  # after the session ended


@pytest.mark.parametrize(("name", "args"), [
    ("contact-export", ("--period", "day")),
    ("contact-export", ("--where", "outcome=resolved")),
    ("contact-export", ("--where", "source=phone")),
    ("contact-summary", ("--by", "channel")),
    ("conversation-export", ("--where", "handled_by=robots")),
    ("conversation-summary", ("--extra",)),
    ("sessions-summary", ("--by", "agent")),
    ("sessions-summary", ("--period", "fortnight")),
    ("data-quality", ("--where", "kind=anomaly")),
])
def test_usage_errors(worked: Convoscope, name: str, args: tuple[str, ...]) -> None:
    assert_usage_error(worked("report", name, *args))


def test_store_of_the_previous_layout_is_rebuilt(tmp_path: Path) -> None:
    """A store of the layout before version 3 (derived tables in the main schema, events without their
    key) gets the keys and rebuilds its derived tables from its events, losing nothing."""
    cs = Convoscope(tmp_path)
    assert cs("ingest", str(WORKED_EXAMPLE)).exit_code == 0
    want = cs.rows(name="conversation-export")
    con = connect_waiting(cs.db)
    for table in DERIVED_TABLES:
        con.execute(f"DROP VIEW {table}")
    con.execute("DROP SCHEMA derived CASCADE")
    con.execute("CREATE TABLE sessions (brand VARCHAR, customer_id VARCHAR, session_id VARCHAR)")
    con.execute("INSERT INTO sessions VALUES ('default', 'c1', 'ses_stale')")
    con.execute("CREATE TABLE conversations (brand VARCHAR, customer_id VARCHAR, conversation_id VARCHAR)")
    con.execute("ALTER TABLE events DROP COLUMN event_key")
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    assert cs.rows(name="conversation-export") == want
    assert len(cs.rows()) == 2  # sessions derived again
    with Store(cs.db) as store:
        assert store.count("events") == 10
        [(keyed,)] = store.con.execute("SELECT count(event_key) FROM events").fetchall()
        assert keyed == 10


def test_summary_rows_are_periods_in_order(worked: Convoscope) -> None:
    result = worked.report(name="sessions-summary", as_of="2026-06-01T00:00:00Z")
    rows = parse(result)
    assert [r["Period"] for r in rows] == ["2026-05-21"]
    assert (rows[0]["Sessions"], rows[0]["Resolved"], rows[0]["Resolution Rate"]) == ("2", "1", "0.5000")
    assert rows[0]["Recontact Rate"] == "1.0000"  # Session 1 was recontacted


def test_the_repeated_half_hour_of_a_fall_back_night_is_one_row(cs: Convoscope) -> None:
    """Decision 30: 01:40 EDT and 01:40 EST are two instants with one local label, so one summary row,
    the label the detail report shows for both."""
    cs.ingest([
        ev("x1", "customer_message", "2026-11-01T05:40:00Z", "x"),  # 01:40 EDT
        ev("y1", "customer_message", "2026-11-01T06:40:00Z", "y"),  # 01:40 EST, an hour later
    ])
    args = ("--tz", "America/New_York", "--period", "half_hour")
    detail = cs.rows(*args, as_of="2026-11-03T00:00:00Z")
    assert [r["Created Date"] for r in detail] == ["2026-11-01T01:30", "2026-11-01T01:30"]
    [row] = cs.rows(*args, name="sessions-summary", as_of="2026-11-03T00:00:00Z")
    assert (row["Period"], row["Sessions"], row["No Response"]) == ("2026-11-01T01:30", "2", "2")


def test_rows_of_one_instant_are_in_id_order(tmp_path: Path) -> None:
    """SPEC 4.1: rows by anchor time, then id, as text. The ids of these four contacts and conversations
    begin with 5, 7, 8 and a: ordering by the stored 64-bit keys as signed numbers would put 8 and a first."""
    cs = Convoscope(tmp_path)
    cs.ingest([ev(f"{c}1", "customer_message", "2026-05-21T10:00:00Z", customer=c, brand=b, route="team")
               for c, b in (("dan", "beta"), ("amy", "acme"), ("cat", "acme"), ("bob", "beta"))])
    for name, column in (("contact-export", "Contact ID"), ("conversation-export", "Conversation ID")):
        ids = [row[column] for row in cs.rows("--tz", "UTC", name=name)]
        assert ids == sorted(ids) and len(ids) == 4, name
        assert {i[4] for i in ids} == {"5", "7", "8", "a"}, name
