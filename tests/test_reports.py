"""SPEC 4, 4.1 and 4.2 through the real command line: the sessions-detail reports, byte for byte.

Every test writes events as a JSON Lines file, runs `convoscope ingest` and `convoscope report` through
Click's runner on a store in a temporary directory, and reads the CSV that came out: the worked
example's two sample files, headers, unknown values at an as-of time (SPEC 3.6), local dates and
period labels across DST changes and year ends, spreadsheet safety, filters and usage errors, the
Message History cell, row order, brands and `--out`.
"""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import (  # noqa: F401 — re-exported for the other report test modules
    AS_OF,
    FIXTURES,
    MESSAGE_TYPES,
    WORKED_EXAMPLE,
    Convoscope,
    assert_usage_error,
    ev,
    header,
    make_id,
    one_message_each,
    parse,
    shared_store,
)

DETAIL_HEADERS = [
    "Session ID", "Customer ID", "Conversation ID", "Channel", "Gladly Agent", "Guides Used", "Created Date",
    "Was Handed Off", "Was Resolved", "Was Recontacted Resolution - 24 Hours", "Was Responded To",
    "Handoff Category", "Handoff Subcategory", "Handoff Reason", "Transfer Rationale", "Conversation Link",
]
EXTRA_HEADERS = ["Brand", "Created At", "Ended At", "End Reason", "Outcome", "Inbox"]
FEEDBACK_HEADERS = ["Feedback", "Feedback Score"]  # last under --extra (tests/test_feedback.py)
OUTCOME_HEADERS = ["Durable Resolution", "Resolution Class"]  # issue 26, after every other extra column
SNAKE_HEADERS = [
    "session_id", "customer_id", "conversation_id", "channel", "gladly_agent", "guides_used", "created_date",
    "was_handed_off", "was_resolved", "was_recontacted_resolution_24_hours", "was_responded_to",
    "handoff_category", "handoff_subcategory", "handoff_reason", "transfer_rationale", "conversation_link",
]
UNKNOWN_CELLS = ["Was Handed Off", "Was Resolved", "Handoff Category", "Handoff Subcategory", "Handoff Reason",
                 "Transfer Rationale"]


# --- helpers ---------------------------------------------------------------------------------------


def by_customer(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for row in rows:
        assert row["Customer ID"] not in found, f"one session per customer expected: {row}"
        found[row["Customer ID"]] = row
    return found


# --- 1. the sample reports of the worked example (SPEC 3.7, 4.1) -------------------------------------


@pytest.mark.parametrize(
    ("name", "tz", "expected"),
    [
        ("sessions-detail", "UTC", "worked-example.sessions-detail.csv"),
        ("sessions-detail-with-messages", "America/Los_Angeles",
         "worked-example.sessions-detail-with-messages.America-Los_Angeles.csv"),
    ],
)
def test_worked_example_reports_byte_for_byte(worked: Convoscope, name: str, tz: str, expected: str) -> None:
    want = (FIXTURES / expected).read_bytes()
    got = worked.report("--tz", tz, name=name).stdout_bytes
    assert got == want
    assert not got.startswith(codecs.BOM_UTF8)
    assert got.endswith(b"\r\n")


@pytest.mark.parametrize("machine_zone", ["America/New_York", "Asia/Kolkata"])
def test_reports_do_not_depend_on_the_machine_time_zone(worked: Convoscope, machine_zone: str) -> None:
    # SPEC 4.1: times are rendered in the report's zone (--tz), whatever the TZ of the computer is.
    # The process's own zone is fixed at start-up, so the report runs in a child process.
    want = (FIXTURES / "worked-example.sessions-detail-with-messages.America-Los_Angeles.csv").read_bytes()
    command = [sys.executable, "-c", "from convoscope.cli import main; main()", "--db", str(worked.db),
               "--config", str(worked.config), "report", "sessions-detail-with-messages", "--as-of", AS_OF,
               "--tz", "America/Los_Angeles"]
    done = subprocess.run(command, capture_output=True, env={**os.environ, "TZ": machine_zone}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == want.decode().splitlines()  # a readable diff first
    assert done.stdout == want


def test_csv_is_rfc_4180_utf8_with_quotes_only_where_needed(cs: Convoscope) -> None:
    cs.ingest([
        ev("a1", "customer_message", "2026-05-21T10:00:00Z", text="Grüße — ✓"),
        ev("a2", "ai_message", "2026-05-21T10:01:00Z", ai_agent='Care "Bot"', guides=["Plain", "Día, uno"]),
        ev("a3", "handoff", "2026-05-21T10:02:00Z", category="handoff_manual", reason='Said "no", twice',
           subcategory="order #1234"),
    ])
    got = cs.report("--tz", "UTC", name="sessions-detail-with-messages").stdout_bytes
    assert not got.startswith(codecs.BOM_UTF8)
    header_line, row_text = got.split(b"\r\n", 1)
    assert header_line == ",".join(DETAIL_HEADERS + ["Message History"]).encode()
    assert row_text.endswith(b"\r\n") and row_text.count(b"\r\n") == 1
    row = row_text.decode("utf-8")
    assert ',"Care ""Bot""",' in row
    assert ',"Plain, Día, uno",' in row
    assert ',"Said ""no"", twice",' in row
    assert ",chat," in row and ",handoff_manual," in row  # not quoted: nothing to escape
    assert ",order #1234," in row  # nor for a `#`, which is no comment character in RFC 4180
    assert "Grüße — ✓".encode() in got
    # Message History: two lines joined by LF inside one quoted cell.
    assert row.endswith('"[2026-05-21 10:00:00] Customer: Grüße — ✓\n[2026-05-21 10:01:00] AI: "\r\n')


# --- 2. headers and --extra (SPEC 4.1, 4.2) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("sessions-detail", [], DETAIL_HEADERS),
        ("sessions-detail-with-messages", [], DETAIL_HEADERS + ["Message History"]),
        ("sessions-detail", ["--headers", "display"], DETAIL_HEADERS),
        ("sessions-detail", ["--headers", "snake"], SNAKE_HEADERS),
        ("sessions-detail-with-messages", ["--headers", "snake"], SNAKE_HEADERS + ["message_history"]),
        ("sessions-detail", ["--extra"], DETAIL_HEADERS + EXTRA_HEADERS + FEEDBACK_HEADERS + OUTCOME_HEADERS),
        ("sessions-detail-with-messages", ["--extra"],
         DETAIL_HEADERS + ["Message History"] + EXTRA_HEADERS + FEEDBACK_HEADERS + OUTCOME_HEADERS),
        ("sessions-detail", ["--extra", "--headers", "snake"],
         SNAKE_HEADERS + ["brand", "created_at", "ended_at", "end_reason", "outcome", "inbox", "feedback",
                          "feedback_score", "durable_resolution", "resolution_class"]),
    ],
)
def test_headers(worked: Convoscope, name: str, args: list[str], expected: list[str]) -> None:
    assert header(worked.report(*args, name=name)) == expected


def test_header_row_even_without_rows(worked: Convoscope) -> None:
    no_rows = worked.report("--from", "2030-01-01")
    assert no_rows.stdout_bytes == (",".join(DETAIL_HEADERS) + "\r\n").encode()


def test_extra_columns_of_the_worked_example(worked: Convoscope) -> None:
    rows = worked.rows("--extra", "--tz", "UTC")
    extra = [[row[h] for h in EXTRA_HEADERS] for row in rows]
    assert extra == [
        ["default", "2026-05-21T10:00:00+00:00", "2026-05-21T12:15:00+00:00", "inactivity", "resolved", ""],
        ["default", "2026-05-21T17:00:00+00:00", "2026-05-21T17:10:00+00:00", "handoff", "handed_off", ""],
    ]
    rows = worked.rows("--extra", "--tz", "America/Los_Angeles")
    assert [(r["Created At"], r["Ended At"]) for r in rows] == [
        ("2026-05-21T03:00:00-07:00", "2026-05-21T05:15:00-07:00"),
        ("2026-05-21T10:00:00-07:00", "2026-05-21T10:10:00-07:00"),
    ]


def test_extra_outcomes_and_truncated_seconds(cs: Convoscope) -> None:
    cs.ingest([
        # no_response: the customer wrote, no AI reply; ends by inactivity at 12:00:59.
        ev("n1", "customer_message", "2026-05-21T10:00:59.999999Z", customer="silent"),
        # open at the as-of time below.
        ev("o1", "customer_message", "2026-05-21T13:00:00Z", customer="talking"),
        ev("o2", "ai_message", "2026-05-21T13:01:00Z", customer="talking"),
    ])
    rows = by_customer(cs.rows("--extra", "--tz", "UTC", as_of="2026-05-21T14:00:00Z"))
    silent, talking = rows["silent"], rows["talking"]
    assert [silent[h] for h in EXTRA_HEADERS] == [
        "default", "2026-05-21T10:00:59+00:00", "2026-05-21T12:00:59+00:00", "inactivity", "no_response", "",
    ]
    assert [silent["Was Responded To"], silent["Was Handed Off"], silent["Was Resolved"]] == ["false", "false", "false"]
    assert silent["Was Recontacted Resolution - 24 Hours"] == ""  # only resolved sessions have one
    assert [talking[h] for h in EXTRA_HEADERS] == ["default", "2026-05-21T13:00:00+00:00", "", "", "open", ""]


# --- 3. unknown values at an as-of time (SPEC 3.6) ---------------------------------------------------


def resolved_session(customer: str) -> list[dict]:
    """A session answered at 10:05 that ends by inactivity at 12:05, resolved; recontact window
    [2026-05-21T12:05, 2026-05-22T12:05]."""
    return [ev(f"{customer}-r1", "customer_message", "2026-05-21T10:00:00Z", customer=customer),
            ev(f"{customer}-r2", "ai_message", "2026-05-21T10:05:00Z", customer=customer)]


COMEBACKS = {  # customer → when a new session starts, and the first session's expected recontact value
    "back-at-end": ("2026-05-21T12:05:00Z", "true"),  # at the end itself: a new session (gap of exactly S)
    "back-after-6h": ("2026-05-21T18:00:00Z", "true"),
    "back-at-24h": ("2026-05-22T12:05:00Z", "true"),  # exactly end + 24h: the window is closed on both sides
    "back-after-24h1s": ("2026-05-22T12:05:01Z", "false"),
}
JUDGED_EVENTS = [
    # "later": open until a handoff at 10:30; the first AI reply comes at 10:05.
    ev("h1", "customer_message", "2026-05-21T10:00:00Z", customer="later", text="hello"),
    ev("h2", "customer_message", "2026-05-21T10:03:00Z", customer="later", text="anyone?"),
    ev("h3", "ai_message", "2026-05-21T10:05:00Z", customer="later", text="Hi!", ai_agent="Care Agent"),
    ev("h4", "handoff", "2026-05-21T10:30:00Z", customer="later", category="handoff_manual", subcategory="asked",
       reason="wants a human", transfer_rationale="policy"),
    # "alone": resolved, nobody of the same customer comes back (other customers do).
    *resolved_session("alone"),
    # the comebacks, in another channel
    *(event for customer in COMEBACKS for event in resolved_session(customer)),
    *(ev(f"{customer}-r3", "customer_message", at, customer=customer, channel="email")
      for customer, (at, _) in COMEBACKS.items()),
    # "unanswered": no AI reply (no_response), back at 13:00 in a new session
    ev("n1", "customer_message", "2026-05-21T10:00:00Z", customer="unanswered"),
    ev("n2", "customer_message", "2026-05-21T13:00:00Z", customer="unanswered"),
    ev("n3", "ai_message", "2026-05-21T13:01:00Z", customer="unanswered"),
]


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Convoscope]:
    yield from shared_store(tmp_path_factory, JUDGED_EVENTS)


def first_session(cs: Convoscope, customer: str, as_of: str) -> dict[str, str]:
    return [row for row in cs.rows("--extra", "--tz", "UTC", as_of=as_of) if row["Customer ID"] == customer][0]


def test_open_session_before_the_first_ai_reply_has_only_unknowns(judged: Convoscope) -> None:
    row = first_session(judged, "later", "2026-05-21T10:04:00Z")
    for cell in [*UNKNOWN_CELLS, "Was Responded To", "Was Recontacted Resolution - 24 Hours", "Ended At",
                 "End Reason"]:
        assert row[cell] == "", cell
    assert row["Outcome"] == "open"


def test_open_session_after_the_first_ai_reply_is_responded_to(judged: Convoscope) -> None:
    row = first_session(judged, "later", "2026-05-21T10:06:00Z")
    assert row["Was Responded To"] == "true"
    for cell in [*UNKNOWN_CELLS, "Was Recontacted Resolution - 24 Hours", "Ended At", "End Reason"]:
        assert row[cell] == "", cell  # the handoff at 10:30 is still in the future
    assert row["Outcome"] == "open"


@pytest.mark.parametrize("as_of", ["2026-05-21T10:30:00Z", "2026-05-21T10:30:01Z", AS_OF])
def test_session_closed_at_its_end_shows_the_handoff(judged: Convoscope, as_of: str) -> None:
    # SPEC 3: open while the end is later than the as-of time, so closed at the end itself.
    row = first_session(judged, "later", as_of)
    assert [row[c] for c in UNKNOWN_CELLS] == ["true", "false", "handoff_manual", "asked", "wants a human", "policy"]
    assert row["Was Responded To"] == "true"
    assert row["Was Recontacted Resolution - 24 Hours"] == ""
    assert (row["Ended At"], row["End Reason"], row["Outcome"]) == ("2026-05-21T10:30:00+00:00", "handoff", "handed_off")


def test_open_session_by_expected_inactivity_end(judged: Convoscope) -> None:
    row = first_session(judged, "alone", "2026-05-21T12:04:59Z")  # expected end 12:05
    assert (row["Was Handed Off"], row["Was Resolved"], row["Was Responded To"], row["Outcome"]) == ("", "", "true", "open")
    row = first_session(judged, "alone", "2026-05-21T12:05:00Z")
    assert (row["Was Handed Off"], row["Was Resolved"], row["Outcome"]) == ("false", "true", "resolved")
    assert (row["Ended At"], row["End Reason"]) == ("2026-05-21T12:05:00+00:00", "inactivity")
    assert row["Was Recontacted Resolution - 24 Hours"] == ""  # the window runs until 2026-05-22T12:05


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        ("2026-05-21T13:00:00Z", ""),
        ("2026-05-22T12:04:59Z", ""),
        ("2026-05-22T12:05:00Z", ""),  # false only once the as-of time is *later* than end + R
        ("2026-05-22T12:05:01Z", "false"),
        (AS_OF, "false"),
    ],
)
def test_recontact_unknown_until_the_window_has_passed(judged: Convoscope, as_of: str, expected: str) -> None:
    row = first_session(judged, "alone", as_of)
    assert row["Was Resolved"] == "true"
    assert row["Was Recontacted Resolution - 24 Hours"] == expected


@pytest.mark.parametrize("customer", list(COMEBACKS))
def test_recontact_by_a_new_session_in_any_channel(judged: Convoscope, customer: str) -> None:
    rows = [row for row in judged.rows() if row["Customer ID"] == customer]
    assert [row["Session ID"] for row in rows] == [make_id("ses_", "default", customer, f"{customer}-r1"),
                                                   make_id("ses_", "default", customer, f"{customer}-r3")]
    assert rows[0]["Was Recontacted Resolution - 24 Hours"] == COMEBACKS[customer][1]
    assert rows[1]["Channel"] == "email"


def test_recontact_only_for_resolved_sessions(judged: Convoscope) -> None:
    first, second = [row for row in judged.rows() if row["Customer ID"] == "unanswered"]
    assert (first["Was Responded To"], first["Was Resolved"]) == ("false", "false")
    assert first["Was Recontacted Resolution - 24 Hours"] == ""  # although a session came 1h after its end
    assert second["Was Recontacted Resolution - 24 Hours"] == "false"
    later = first_session(judged, "later", AS_OF)  # handed off: another session of "later" never comes
    assert later["Was Recontacted Resolution - 24 Hours"] == ""


# --- 4. local dates, periods and ranges (SPEC 4, 4.1) -------------------------------------------------


PERIOD_EVENTS = {
    "ny-before": "2026-03-08T04:30:00Z",  # US DST starts 2026-03-08 02:00 local (07:00Z)
    "ny-after": "2026-03-08T12:00:00Z",
    "berlin-eve": "2026-10-24T22:30:00Z",  # EU DST ends 2026-10-25 03:00 CEST (01:00Z)
    "berlin-first-0230": "2026-10-25T00:30:00Z",
    "berlin-second-0230": "2026-10-25T01:30:00Z",
    "new-year-2026": "2026-01-01T03:00:00Z",
    "new-year-2027": "2027-01-01T12:00:00Z",
    "first-monday-2027": "2027-01-04T12:00:00Z",
    "may": "2026-05-21T10:45:00Z",
    "late-evening-la": "2026-05-22T03:30:00Z",
    "last-second": "2026-05-21T23:59:59Z",
}


@pytest.fixture(scope="module")
def periods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Convoscope]:
    yield from one_message_each(tmp_path_factory, PERIOD_EVENTS)


@pytest.mark.parametrize(
    ("customer", "tz", "created_date", "created_at"),
    [
        ("ny-before", "America/New_York", "2026-03-07", "2026-03-07T23:30:00-05:00"),
        ("ny-after", "America/New_York", "2026-03-08", "2026-03-08T08:00:00-04:00"),
        ("ny-before", "UTC", "2026-03-08", "2026-03-08T04:30:00+00:00"),
        ("berlin-eve", "Europe/Berlin", "2026-10-25", "2026-10-25T00:30:00+02:00"),
        ("berlin-first-0230", "Europe/Berlin", "2026-10-25", "2026-10-25T02:30:00+02:00"),
        ("berlin-second-0230", "Europe/Berlin", "2026-10-25", "2026-10-25T02:30:00+01:00"),
        ("berlin-eve", "UTC", "2026-10-24", "2026-10-24T22:30:00+00:00"),
        ("new-year-2026", "America/Los_Angeles", "2025-12-31", "2025-12-31T19:00:00-08:00"),
        ("may", "Asia/Kolkata", "2026-05-21", "2026-05-21T16:15:00+05:30"),
        ("may", "America/St_Johns", "2026-05-21", "2026-05-21T08:15:00-02:30"),
    ],
)
def test_local_date_and_offset(periods: Convoscope, customer: str, tz: str, created_date: str, created_at: str) -> None:
    row = by_customer(periods.rows("--tz", tz, "--extra"))[customer]
    assert (row["Created Date"], row["Created At"]) == (created_date, created_at)


@pytest.mark.parametrize(
    ("customer", "tz", "period", "label"),
    [
        ("new-year-2027", "UTC", "week", "2026-W53"),
        ("first-monday-2027", "UTC", "week", "2027-W01"),
        ("new-year-2026", "America/Los_Angeles", "week", "2026-W01"),  # Wednesday 2025-12-31 local
        ("new-year-2026", "America/Los_Angeles", "year", "2025"),
        ("new-year-2026", "America/Los_Angeles", "quarter", "2025-Q4"),
        ("new-year-2026", "America/Los_Angeles", "month", "2025-12"),
        ("new-year-2026", "UTC", "year", "2026"),
        ("may", "UTC", "day", "2026-05-21"),
        ("may", "UTC", "week", "2026-W21"),
        ("may", "UTC", "month", "2026-05"),
        ("may", "UTC", "quarter", "2026-Q2"),
        ("may", "UTC", "year", "2026"),
        ("may", "UTC", "half_hour", "2026-05-21T10:30"),
        ("may", "Asia/Kolkata", "half_hour", "2026-05-21T16:00"),  # 16:15 local
        ("may", "Asia/Kathmandu", "half_hour", "2026-05-21T16:30"),  # 16:30 local
        ("berlin-eve", "Europe/Berlin", "quarter", "2026-Q4"),
        ("berlin-first-0230", "Europe/Berlin", "half_hour", "2026-10-25T02:30"),
        ("berlin-second-0230", "Europe/Berlin", "half_hour", "2026-10-25T02:30"),
        ("ny-before", "America/New_York", "half_hour", "2026-03-07T23:30"),
    ],
)
def test_period_labels(periods: Convoscope, customer: str, tz: str, period: str, label: str) -> None:
    row = by_customer(periods.rows("--tz", tz, "--period", period))[customer]
    assert row["Created Date"] == label


@pytest.mark.parametrize(("tz", "period"), [
    ("Europe/Berlin", "half_hour"),  # both 02:30 of the night the clocks go back: one label, one row
    ("Asia/Kathmandu", "half_hour"), ("America/New_York", "day"), ("UTC", "week"),  # 2026-W53, then 2027-W01
    ("America/Los_Angeles", "week"), ("America/Los_Angeles", "quarter"), ("Europe/Berlin", "month"),
    ("UTC", "year"),
])
def test_a_summary_has_a_row_per_label_of_the_detail_counting_its_rows_in_time_order(
        periods: Convoscope, tz: str, period: str) -> None:
    """A summary groups by the period's start and labels each row once (reports/base.py `summary_query`): its
    labels are the detail's Created Date cells, each row counts the detail rows of its label."""
    counted = Counter(row["Created Date"] for row in periods.rows("--tz", tz, "--period", period))
    summary = periods.rows("--tz", tz, "--period", period, name="sessions-summary")
    assert [(row["Period"], int(row["Sessions"])) for row in summary] == sorted(counted.items())


@pytest.fixture(scope="module")
def early_years(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Convoscope]:
    yield from one_message_each(tmp_path_factory, {"y99": "0099-12-31T12:00:00Z", "y999": "0999-06-01T12:00:00Z",
                                                   "y1000": "1000-06-01T12:00:00Z"})


@pytest.mark.parametrize(("period", "labels"), [
    ("year", ["0099", "0999", "1000"]),
    ("quarter", ["0099-Q4", "0999-Q2", "1000-Q2"]),
    ("week", ["0099-W53", "0999-W22", "1000-W22"]),
    ("month", ["0099-12", "0999-06", "1000-06"]),
])
def test_labels_of_years_before_1000_have_four_digits_and_sort_in_time_order(
        early_years: Convoscope, period: str, labels: list[str]) -> None:
    """Years 0001 to 9999 are valid event times (SPEC 2.2); a label 99 would sort after 1000."""
    rows = early_years.rows("--tz", "UTC", "--period", period, name="sessions-summary")
    assert [row["Period"] for row in rows] == labels


@pytest.mark.parametrize(
    ("args", "included"),
    [
        (["--to", "2026-05-21", "--tz", "America/Los_Angeles"],
         {"ny-before", "ny-after", "new-year-2026", "may", "late-evening-la", "last-second"}),
        (["--to", "2026-05-21", "--tz", "UTC"], {"ny-before", "ny-after", "new-year-2026", "may", "last-second"}),
        (["--from", "2026-05-22", "--tz", "UTC"], {"late-evening-la", "berlin-eve", "berlin-first-0230",
                                                   "berlin-second-0230", "new-year-2027", "first-monday-2027"}),
        (["--from", "2026-05-21", "--to", "2026-05-21", "--tz", "UTC"], {"may", "last-second"}),
        (["--from", "2026-05-21", "--to", "2026-05-21", "--tz", "America/Los_Angeles"],
         {"may", "late-evening-la", "last-second"}),
        (["--from", "2026-05-22", "--to", "2026-05-22", "--tz", "UTC"], {"late-evening-la"}),
        (["--from", "2026-10-25", "--to", "2026-10-25", "--tz", "Europe/Berlin"],
         {"berlin-eve", "berlin-first-0230", "berlin-second-0230"}),
        (["--from", "2026-03-08", "--to", "2026-03-08", "--tz", "America/New_York"], {"ny-after"}),
        (["--from", "2026-03-08", "--to", "2026-03-08", "--tz", "UTC"], {"ny-before", "ny-after"}),
        (["--to", "2025-12-31", "--tz", "America/Los_Angeles"], {"new-year-2026"}),
        (["--to", "2025-12-31", "--tz", "UTC"], set()),
    ],
)
def test_from_and_to_are_inclusive_local_dates(periods: Convoscope, args: list[str], included: set[str]) -> None:
    assert {row["Customer ID"] for row in periods.rows(*args)} == included


def test_without_from_and_to_every_session(periods: Convoscope) -> None:
    assert {row["Customer ID"] for row in periods.rows()} == set(PERIOD_EVENTS)


# --- 5. spreadsheet safety (SPEC 4.1) ------------------------------------------------------------------


def test_text_cells_are_guarded_identifiers_and_links_are_not(cs: Convoscope) -> None:
    cs.ingest([
        ev("f1", "customer_message", "2026-05-21T10:00:00Z", customer="=1+2", text="=SUM(A1:A9)"),
        ev("f2", "ai_message", "2026-05-21T10:01:00Z", customer="=1+2", text="-5 is the answer", ai_agent="=evil()",
           guides=["+plus", "@at"]),
        ev("f3", "handoff", "2026-05-21T10:02:00Z", customer="=1+2", category="-cat", subcategory="@sub",
           reason='=HYPERLINK("http://x")', transfer_rationale="+rationale"),
        ev("p1", "customer_message", "2026-05-21T11:00:00Z", customer="+15551234567"),
        ev("p2", "ai_message", "2026-05-21T11:01:00Z", customer="+15551234567", ai_agent="@home",
           guides=["a=b", "-x"]),
        ev("p3", "handoff", "2026-05-21T11:02:00Z", customer="+15551234567", category="handoff_qc",
           subcategory="\tindented", reason="\rcarriage", transfer_rationale="fine = fine"),
        ev("m1", "customer_message", "2026-05-21T12:00:00Z", customer="-dash", text="plain"),
        ev("m2", "ai_message", "2026-05-21T12:01:00Z", customer="-dash", ai_agent="Care Agent", guides=["Plain"]),
    ])
    rows = by_customer(cs.rows("--tz", "UTC", name="sessions-detail-with-messages"))
    assert set(rows) == {"=1+2", "+15551234567", "-dash"}  # Customer ID never altered

    formula = rows["=1+2"]
    assert formula["Conversation ID"] == make_id("cnv_", "default", "=1+2", "f1")
    assert formula["Gladly Agent"] == "'=evil()"
    assert formula["Guides Used"] == "'+plus, @at"
    assert formula["Handoff Category"] == "'-cat"
    assert formula["Handoff Subcategory"] == "'@sub"
    assert formula["Handoff Reason"] == "'=HYPERLINK(\"http://x\")"
    assert formula["Transfer Rationale"] == "'+rationale"
    assert formula["Conversation Link"] == "http://127.0.0.1:8000/conversations/" + formula["Conversation ID"]
    assert formula["Message History"] == ("[2026-05-21 10:00:00] Customer: =SUM(A1:A9)\n"
                                          "[2026-05-21 10:01:00] AI: -5 is the answer")

    phone = rows["+15551234567"]
    assert phone["Session ID"] == make_id("ses_", "default", "+15551234567", "p1")
    assert phone["Gladly Agent"] == "'@home"
    assert phone["Guides Used"] == "a=b, -x"  # only the first character counts
    assert phone["Handoff Category"] == "handoff_qc"
    assert phone["Handoff Subcategory"] == "'\tindented"
    assert phone["Handoff Reason"] == "'\rcarriage"
    assert phone["Transfer Rationale"] == "fine = fine"

    plain = rows["-dash"]
    assert (plain["Gladly Agent"], plain["Guides Used"]) == ("Care Agent", "Plain")
    assert plain["Conversation Link"] == "http://127.0.0.1:8000/conversations/" + make_id("cnv_", "default", "-dash", "m1")


# --- 6. --where filters and usage errors (SPEC 4, 6.1) ---------------------------------------------


WHERE_EVENTS = [
    # resolved, chat, Care Agent
    ev("a1", "customer_message", "2026-05-21T10:00:00Z", customer="resolved"),
    ev("a2", "ai_message", "2026-05-21T10:01:00Z", customer="resolved", ai_agent="Care Agent", guides=["Order Status"]),
    # handed off, email, Sales Bot, two guides
    ev("b1", "customer_message", "2026-05-21T11:00:00Z", customer="handed", channel="email"),
    ev("b2", "ai_message", "2026-05-21T11:01:00Z", customer="handed", channel="email", ai_agent="Sales Bot",
       guides=["Refunds", "Order Status"]),
    ev("b3", "handoff", "2026-05-21T11:02:00Z", customer="handed", category="handoff_manual"),
    # no response, sms, handed off without an AI reply
    ev("c1", "customer_message", "2026-05-21T12:00:00Z", customer="unanswered", channel="sms"),
    ev("c2", "handoff", "2026-05-21T12:05:00Z", customer="unanswered", category="handoff_qc"),
    # open at the as-of time, chat, Care Agent; a handoff comes after the as-of time
    ev("d1", "customer_message", "2026-05-31T23:00:00Z", customer="open"),
    ev("d2", "ai_message", "2026-05-31T23:01:00Z", customer="open", ai_agent="Care Agent", guides=["Refunds"]),
    ev("d3", "handoff", "2026-06-01T00:30:00Z", customer="open", category="handoff_manual"),
]


@pytest.fixture(scope="module")
def where(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Convoscope]:
    yield from shared_store(tmp_path_factory, WHERE_EVENTS)


@pytest.mark.parametrize(
    ("filters", "customers"),
    [
        ([], ["resolved", "handed", "unanswered", "open"]),
        (["channel=chat"], ["resolved", "open"]),
        (["channel=email"], ["handed"]),
        (["channel=voice"], []),
        (["ai_agent=Care Agent"], ["resolved", "open"]),
        (["ai_agent=Sales Bot"], ["handed"]),
        (["guide=Order Status"], ["resolved", "handed"]),
        (["guide=Refunds"], ["handed", "open"]),
        (["guide=order status"], []),  # guide names are case-sensitive (SPEC 3.6)
        (["handoff_category=handoff_manual"], ["handed"]),  # "open" is not handed off yet at the as-of time
        (["handoff_category=handoff_qc"], ["unanswered"]),
        (["outcome=resolved"], ["resolved"]),
        (["outcome=handed_off"], ["handed"]),
        (["outcome=no_response"], ["unanswered"]),
        (["outcome=open"], ["open"]),
        (["channel=chat", "outcome=resolved"], ["resolved"]),
        (["channel=email", "outcome=resolved"], []),
        (["guide=Refunds", "ai_agent=Care Agent"], ["open"]),
    ],
)
def test_where_filters(where: Convoscope, filters: list[str], customers: list[str]) -> None:
    args = [arg for f in filters for arg in ("--where", f)]
    assert [row["Customer ID"] for row in where.rows(*args)] == customers


@pytest.mark.parametrize(
    "args",
    [
        ["--where", "color=red"],
        ["--where", "source=handoff"],  # a contact-report key
        ["--where", "outcome=bogus"],
        ["--where", "channel"],
        ["--by", "channel"],  # sessions-detail does not take `by`
        ["--period", "fortnight"],
        ["--headers", "camel"],
        ["--tz", "Mars/Olympus"],
        ["--tz", "posixrules"],  # Python opens this file; DuckDB, which renders the times, knows no such zone
        ["--tz", "localtime"],
        ["--from", "2026-13-01"],
        ["--from", "2026-W19"],  # ISO week date: Python reads it, SPEC 4 asks for a local date
        ["--from", "20260501"],
        ["--to", "tomorrow"],
        ["--as-of", "2026-06-01T00:00:00"],  # no offset
        ["--as-of", "2026-06-01T00:00:00+0200"],  # not RFC 3339
        ["--as-of", "2026-06-01X00:00:00Z"],
        ["--as-of", "yesterday"],
        ["--bogus-option"],
    ],
)
def test_usage_errors(where: Convoscope, args: list[str]) -> None:
    assert_usage_error(where("report", "sessions-detail", *args))


def test_unknown_report_is_a_usage_error(where: Convoscope) -> None:
    assert_usage_error(where("report", "sessions-detial"))


# --- 7. Message History (SPEC 4.2) -----------------------------------------------------------------


def test_message_history_holds_only_customer_and_ai_lines(cs: Convoscope) -> None:
    cs.ingest([
        ev("e1", "customer_message", "2026-05-21T10:00:05.987654Z", text="Hi there"),
        ev("e2", "ai_message", "2026-05-21T10:00:05.999Z", text="Hello!", ai_agent="Care Agent"),
        ev("e3", "customer_message", "2026-05-21T10:02:00Z"),  # no text
        ev("e4", "ai_message", "2026-05-21T10:03:00Z", text="   "),  # whitespace only: absent
        ev("e5", "handoff", "2026-05-21T10:04:00Z", category="handoff_manual", reason="needs a human"),
        ev("e6", "customer_message", "2026-05-21T10:05:00Z", text="to the team now"),
        ev("e7", "agent_message", "2026-05-21T10:06:00Z", text="Sam here", agent="sam"),
        ev("e8", "contact_end", "2026-05-21T10:07:00Z", agent="sam"),
        # a later customer routed to the team while no session is open: a contact, no session
        ev("t1", "customer_message", "2026-05-21T15:00:00Z", text="team please", route="team"),
        # another customer: a message routed to the team takes the open session over (SPEC 3.2)
        ev("k1", "customer_message", "2026-05-21T10:00:00Z", customer="c2", text="hi"),
        ev("k2", "ai_message", "2026-05-21T10:01:00Z", customer="c2", text="hello"),
        ev("k3", "customer_message", "2026-05-21T10:02:00Z", customer="c2", text="a human please", route="team"),
        ev("k4", "agent_message", "2026-05-21T10:03:00Z", customer="c2", text="Sam here", agent="sam"),
    ])
    rows = by_customer(cs.rows("--tz", "America/Los_Angeles", name="sessions-detail-with-messages"))
    assert rows["c1"]["Message History"] == (
        "[2026-05-21 03:00:05] Customer: Hi there\n"
        "[2026-05-21 03:00:05] AI: Hello!\n"
        "[2026-05-21 03:02:00] Customer: \n"
        "[2026-05-21 03:03:00] AI: "
    )
    takeover = rows["c2"]
    assert (takeover["Handoff Category"], takeover["Handoff Subcategory"]) == ("team_takeover", "inbound")
    assert takeover["Message History"] == "[2026-05-21 03:00:00] Customer: hi\n[2026-05-21 03:01:00] AI: hello"


def test_message_history_is_in_event_order_however_the_events_arrived(cs: Convoscope) -> None:
    """SPEC 2.4's order, not the order of the file: a session's messages ingested newest first, two of
    them at the same instant (a customer message ranks before the AI's reply)."""
    messages = [ev(f"m{n:02d}", "ai_message" if n % 2 else "customer_message",
                   f"2026-05-21T10:{n // 2 * 2:02d}:00Z", text=f"message {n}") for n in range(24)]
    cs.ingest(list(reversed(messages)))
    (row,) = cs.rows("--tz", "UTC", name="sessions-detail-with-messages")
    assert row["Message History"].split("\n") == [
        f"[2026-05-21 10:{n // 2 * 2:02d}:00] {'AI' if n % 2 else 'Customer'}: message {n}" for n in range(24)]


def test_message_history_turns_every_line_break_into_one_space(cs: Convoscope) -> None:
    text = "a\rb\nc\r\nd\u2028e\u2029f\u0085g\x0bh\x0ci"
    cs.ingest([
        ev("e1", "customer_message", "2026-05-21T10:00:00Z", text=text),
        ev("e2", "ai_message", "2026-05-21T10:01:00Z", text="two\n\nbreaks\r\n\r\nend\n"),
        ev("e3", "customer_message", "2026-05-21T10:02:00Z", text="tab\tstays"),
    ])
    result = cs.report("--tz", "UTC", name="sessions-detail-with-messages")
    (row,) = parse(result)
    assert row["Message History"].split("\n") == [
        "[2026-05-21 10:00:00] Customer: a b c d e f g h i",
        "[2026-05-21 10:01:00] AI: two  breaks  end ",
        "[2026-05-21 10:02:00] Customer: tab\tstays",
    ]
    data_row = result.stdout_bytes.decode("utf-8").split("\r\n", 1)[1].removesuffix("\r\n")
    for ch in "\r\u2028\u2029\u0085\x0b\x0c":
        assert ch not in data_row, repr(ch)


# --- 8. row order, brands, --out (SPEC 4.1, 6.1) ------------------------------------------------------


ORDER_EVENTS = [
    ev("z1", "customer_message", "2026-05-21T09:00:00Z", customer="zed", brand="acme"),
    *(ev(f"{c}1", "customer_message", "2026-05-21T10:00:00Z", customer=c, brand=b)
      for c, b in (("amy", "acme"), ("bob", "beta"), ("cat", "acme"), ("dan", "beta"))),
    ev("z2", "customer_message", "2026-05-21T13:00:00Z", customer="zed", brand="acme"),
    ev("y1", "customer_message", "2026-05-20T23:00:00Z", customer="yan", brand="beta"),
]


@pytest.fixture(scope="module")
def ordered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Convoscope]:
    yield from shared_store(tmp_path_factory, ORDER_EVENTS[::-1])  # arrival order must not matter


def expected_order(brands: set[str]) -> list[str]:
    first_events = [e for e in ORDER_EVENTS if e.get("brand") in brands]
    keyed = sorted((e["occurred_at"], make_id("ses_", e["brand"], e["customer_id"], e["event_id"])) for e in first_events)
    return [session_id for _, session_id in keyed]


@pytest.mark.parametrize(
    ("args", "brands"),
    [
        ([], {"acme", "beta"}),
        (["--brand", "acme"], {"acme"}),
        (["--brand", "beta"], {"beta"}),
        (["--brand", "acme", "--brand", "beta"], {"acme", "beta"}),
    ],
)
def test_rows_by_created_time_then_session_id(ordered: Convoscope, args: list[str], brands: set[str]) -> None:
    rows = ordered.rows("--tz", "UTC", "--extra", *args)
    assert [row["Session ID"] for row in rows] == expected_order(brands)
    assert {row["Brand"] for row in rows} == brands
    same_instant = [row["Session ID"] for row in rows if row["Created At"] == "2026-05-21T10:00:00+00:00"]
    assert same_instant == sorted(same_instant) and len(same_instant) >= 2


@pytest.mark.parametrize("name", ["sessions-detail", "sessions-detail-with-messages"])
def test_out_file_has_the_bytes_of_stdout(ordered: Convoscope, tmp_path: Path, name: str) -> None:
    stdout = ordered.report("--tz", "UTC", "--extra", name=name).stdout_bytes
    dash = ordered.report("--tz", "UTC", "--extra", "--out", "-", name=name).stdout_bytes
    assert dash == stdout
    out = tmp_path / "report.csv"
    result = ordered.report("--tz", "UTC", "--extra", "--out", str(out), name=name)
    assert out.read_bytes() == stdout
    assert result.stdout_bytes == b""  # the CSV goes to the file only
