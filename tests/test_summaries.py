"""SPEC 4, 4.1 and 4.3–4.8 through the real command line: the summary reports and the exports behind them.

Every test runs `convoscope ingest` and `convoscope report` through Click's runner on a store in a
temporary directory and reads the CSV that came out. First, on a generated brand of over 20,000 events,
every figure of `sessions-summary`, `contact-summary` and `conversation-summary` is recomputed in plain
Python (exact fractions, rounded half away from zero) from the rows of `sessions-detail`,
`contact-export` and `conversation-export`, for two time zones, every period, every `--by` dimension,
`--where` filters and partial date ranges. Then, on small hand-made event streams: the summaries of the
worked example (SPEC 3.7), period labels at year ends and odd offsets, unique customers across brands,
the time anchors (creation for the exports, end or last close for the summaries; open entities left
out; a reopen moves a conversation), the unified view of AI sessions and team contacts per
conversation (Handled By), rounding, truncated seconds and zero denominators, headers of every new
report and usage errors."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from cli_helpers import (
    AS_OF,
    Convoscope,
    assert_usage_error,
    ev,
    make_id,
    one_message_each,
    parse,
    shared_store,
)

ZONES = ("America/New_York", "Asia/Kolkata")
PERIODS = ("half_hour", "day", "week", "month", "quarter", "year")
DIMENSIONS = {"channel": "Channel", "ai_agent": "AI Agent", "guide": "Guide", "handoff_category": "Handoff Category"}
RECONTACT = "Was Recontacted Resolution - 24 Hours"

SESSIONS_SUMMARY = ["Period", "Sessions", "Responded", "Resolved", "Handed Off", "No Response", "Open",
                    "Resolution Rate", "Handoff Rate", "Recontact Rate"]
CONTACT_EXPORT = [
    "Contact ID", "Conversation ID", "Customer ID", "Brand", "Channel", "Direction", "Source", "Session ID",
    "Handoff Category", "Created At", "First Response At", "Last Activity At", "Ended At", "End Reason", "Agents",
    "First Response Seconds", "Duration Seconds", "Customer Messages", "Agent Messages", "Status",
    "Conversation Link",
]
CONTACT_SUMMARY = ["Period", "Contacts Ended", "Inbound", "Outbound", "From Handoff", "Avg First Response Seconds",
                   "Median First Response Seconds", "Avg Duration Seconds", "Avg Agent Messages"]
CONVERSATION_EXPORT = [
    "Created At", "Conversation ID", "Customer ID", "Brand", "Conversation Link", "Status", "First Closed At",
    "Last Closed At", "First Channel", "Last Channel", "Count of Channels", "Count of Sessions", "Count of Contacts",
    "Sessions Resolved", "Sessions Handed Off", "Handled By", "Times Closed", "Times Reopened",
    "Created-to-First Closed Time in seconds", "Created-to-Last Closed Time in seconds",
]
CONVERSATION_SUMMARY = [
    "Period", "Conversations Closed", "Unique Customers", "% Multichannel", "% AI Only", "% Handed Off",
    "Avg Count of Sessions", "Avg Count of Contacts", "Avg Count of Channels", "Avg Times Closed",
    "Avg Created-to-Last Closed Time in seconds",
]
DATA_QUALITY = ["Kind", "Reason", "Event ID", "Brand", "Customer ID", "Time", "Source"]

Row = dict[str, str]
Span = tuple[str, str] | None


# --- helpers ---------------------------------------------------------------------------------------


def report_rows(store: Convoscope, name: str, *args: str, as_of: str = AS_OF) -> list[Row]:
    return parse(store.report(*args, name=name, as_of=as_of))


def report_table(store: Convoscope, name: str, *args: str, as_of: str = AS_OF) -> list[list[str]]:
    """The whole CSV, header first, as lists of cells (from the raw bytes: Click's `stdout` rewrites CRLF)."""
    text = store.report(*args, name=name, as_of=as_of).stdout_bytes.decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def snake(display: str) -> str:
    """SPEC 4.1: lower-cased, `%` → `pct`, runs of other non-alphanumerics → `_`, trimmed."""
    return re.sub(r"[^a-z0-9]+", "_", display.lower().replace("%", "pct")).strip("_")


# --- SPEC 4.1 formats, recomputed exactly ---------------------------------------------------------------


def decimal(value: Fraction | None, places: int) -> str:
    """A number with `places` decimals, rounded half away from zero; None (a zero denominator) is empty."""
    if value is None:
        return ""
    scaled = abs(value) * 10**places
    whole = int(scaled)
    if scaled - whole >= Fraction(1, 2):
        whole += 1
    digits = str(whole).rjust(places + 1, "0")
    sign = "-" if value < 0 and whole else ""
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def ratio(numerator: int, denominator: int) -> Fraction | None:
    return Fraction(numerator, denominator) if denominator else None


def rate(numerator: int, denominator: int) -> str:
    return decimal(ratio(numerator, denominator), 4)


def percent(numerator: int, denominator: int) -> str:
    share = ratio(numerator, denominator)
    return decimal(None if share is None else share * 100, 2)


def average(values: list[int]) -> str:
    return decimal(ratio(sum(values), len(values)), 2)


def median(values: list[int]) -> str:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if not ordered:
        return ""
    if len(ordered) % 2:
        return decimal(Fraction(ordered[middle]), 2)
    return decimal(Fraction(ordered[middle - 1] + ordered[middle], 2), 2)


def test_the_recomputation_rounds_half_away_from_zero() -> None:
    # The examples of SPEC 4.1, and the halves that float rounding (half to even) gets wrong.
    assert rate(1, 32) == "0.0313"
    assert rate(0, 5) == "0.0000" and rate(1, 1) == "1.0000" and rate(3, 0) == ""
    assert percent(1, 32) == "3.13" and percent(1, 6) == "16.67" and percent(2, 2) == "100.00"
    assert average([0, 0, 0, 0, 0, 0, 0, 1]) == "0.13" and average([]) == ""
    assert median([1, 2, 3, 10]) == "2.50" and median([5, 1, 3]) == "3.00" and median([]) == ""
    assert decimal(Fraction(-1, 8), 2) == "-0.13"


def period_label(timestamp: str, period: str) -> str:
    """SPEC 4.1 label of a local timestamp `YYYY-MM-DDTHH:MM:SS±HH:MM` (its wall time is the report's zone)."""
    local = datetime.fromisoformat(timestamp)
    if period == "half_hour":
        return f"{local:%Y-%m-%dT%H}:{local.minute // 30 * 30:02d}"
    if period == "day":
        return local.date().isoformat()
    if period == "week":
        year, week, _ = local.date().isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{local:%Y-%m}"
    if period == "quarter":
        return f"{local.year}-Q{(local.month - 1) // 3 + 1}"
    assert period == "year"
    return str(local.year)


def assert_local(timestamp: str, tz: str) -> None:
    """A report timestamp is the instant in the report's zone, with that zone's offset, seconds truncated."""
    instant = datetime.fromisoformat(timestamp)
    assert instant.microsecond == 0
    assert instant.astimezone(ZoneInfo(tz)).isoformat() == timestamp, (timestamp, tz)


def in_span(timestamp: str, span: Span) -> bool:
    """SPEC 4: `from` and `to` are inclusive local dates."""
    if span is None:
        return True
    local_date = datetime.fromisoformat(timestamp).date()
    return date.fromisoformat(span[0]) <= local_date <= date.fromisoformat(span[1])


def span_args(span: Span) -> list[str]:
    return [] if span is None else ["--from", span[0], "--to", span[1]]


# --- the summaries, recomputed from the detail rows --------------------------------------------------


def grouped(rows: list[Row], key: Callable[[Row], list[tuple[str, ...]]]) -> list[tuple[tuple[str, ...], list[Row]]]:
    """Rows grouped by every key they count under, in order of the keys (periods with no rows left out)."""
    groups: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for row in rows:
        for k in key(row):
            groups[k].append(row)
    return sorted(groups.items())


def summarise_sessions(detail: list[Row], period: str, by: str | None) -> list[list[str]]:
    """SPEC 4.3 over sessions-detail rows (with --extra, for Created At)."""

    def keys(row: Row) -> list[tuple[str, ...]]:
        label = period_label(row["Created At"], period)
        if by is None:
            return [(label,)]
        if by == "guide":
            guides = row["Guides Used"].split(", ") if row["Guides Used"] else [""]
            return [(label, guide) for guide in guides]
        column = {"channel": "Channel", "ai_agent": "Gladly Agent", "handoff_category": "Handoff Category"}[by]
        return [(label, row[column])]

    table = []
    for key, rows in grouped(detail, keys):
        def count(test: Callable[[Row], bool], rows: list[Row] = rows) -> int:
            return sum(1 for row in rows if test(row))

        open_ = count(lambda r: r["Was Handed Off"] == "")
        closed = len(rows) - open_
        responded = count(lambda r: r["Was Responded To"] == "true")
        resolved = count(lambda r: r["Was Resolved"] == "true")
        handed_off = count(lambda r: r["Was Handed Off"] == "true")
        no_response = count(lambda r: r["Was Handed Off"] != "" and r["Was Responded To"] == "false")
        responded_handed_off = count(lambda r: r["Was Responded To"] == "true" and r["Was Handed Off"] == "true")
        recontacted = count(lambda r: r[RECONTACT] == "true")
        known = count(lambda r: r[RECONTACT] in ("true", "false"))
        table.append([
            *key, str(len(rows)), str(responded), str(resolved), str(handed_off), str(no_response), str(open_),
            rate(resolved, resolved + responded_handed_off), rate(handed_off, closed), rate(recontacted, known),
        ])
    return table


def summarise_contacts(export: list[Row], period: str, span: Span) -> list[list[str]]:
    """SPEC 4.5 over contact-export rows: closed contacts, by the local time of their end."""
    ended = [row for row in export if row["Status"] == "ended" and in_span(row["Ended At"], span)]
    table = []
    for (label,), rows in grouped(ended, lambda row: [(period_label(row["Ended At"], period),)]):
        first_responses = [int(row["First Response Seconds"]) for row in rows if row["First Response Seconds"]]
        table.append([
            label, str(len(rows)),
            str(sum(row["Direction"] == "INBOUND" for row in rows)),
            str(sum(row["Direction"] == "OUTBOUND" for row in rows)),
            str(sum(row["Source"] == "handoff" for row in rows)),
            average(first_responses), median(first_responses),
            average([int(row["Duration Seconds"]) for row in rows]),
            average([int(row["Agent Messages"]) for row in rows]),
        ])
    return table


def summarise_conversations(export: list[Row], period: str, span: Span) -> list[list[str]]:
    """SPEC 4.7 over conversation-export rows: closed conversations, by the local time of their last close."""
    closed = [row for row in export if row["Status"] == "CLOSED" and in_span(row["Last Closed At"], span)]
    table = []
    for (label,), rows in grouped(closed, lambda row: [(period_label(row["Last Closed At"], period),)]):
        n = len(rows)

        def mean(column: str, rows: list[Row] = rows) -> str:
            return average([int(row[column]) for row in rows])

        table.append([
            label, str(n), str(len({(row["Brand"], row["Customer ID"]) for row in rows})),
            percent(sum(int(row["Count of Channels"]) > 1 for row in rows), n),
            percent(sum(row["Handled By"] == "ai_only" for row in rows), n),
            percent(sum(int(row["Sessions Handed Off"]) > 0 for row in rows), n),
            mean("Count of Sessions"), mean("Count of Contacts"), mean("Count of Channels"), mean("Times Closed"),
            mean("Created-to-Last Closed Time in seconds"),
        ])
    return table


# --- 1. figures agree with the detail rows, on a generated brand (SPEC 4.3, 4.5, 4.7, 4.1) ----------


@dataclass
class Brand:
    """A generated brand in one store, judged at noon (UTC) of its last day, so that some of it is open."""

    store: Convoscope
    as_of: str
    events: int
    cache: dict[tuple[str, ...], list[Row]] = field(default_factory=dict)

    def rows(self, name: str, *args: str) -> list[Row]:
        """A report's rows, run once per module for the same arguments."""
        key = (name, *args)
        if key not in self.cache:
            self.cache[key] = report_rows(self.store, name, *args, as_of=self.as_of)
        return self.cache[key]

    def table(self, name: str, *args: str) -> list[list[str]]:
        return report_table(self.store, name, *args, as_of=self.as_of)


@pytest.fixture(scope="module")
def brand(tmp_path_factory: pytest.TempPathFactory) -> Brand:
    store = Convoscope(tmp_path_factory.mktemp("brand"))
    path = store.dir / "events.jsonl"
    result = store("generate", "--customers", "1100", "--days", "30", "--seed", "7", "--out", str(path))
    assert result.exit_code == 0, result.stderr
    with path.open(encoding="utf-8") as lines:
        times = [datetime.fromisoformat(json.loads(line)["occurred_at"]) for line in lines]
    last_day = max(times).date()
    result = store("ingest", str(path))
    assert result.exit_code == 0, result.stderr
    return Brand(store, f"{last_day.isoformat()}T12:00:00Z", len(times))


# Every zone and period over all data, and a few date ranges that cover part of it (the last one ends on
# the as-of day, where most open entities are).
CASES = [
    *((tz, period, None) for tz in ZONES for period in PERIODS),
    ("America/New_York", "day", ("2026-05-10", "2026-05-20")),
    ("America/New_York", "week", ("2026-05-10", "2026-05-20")),
    ("Asia/Kolkata", "month", ("2026-05-04", "2026-05-17")),
    ("Asia/Kolkata", "half_hour", ("2026-05-29", "2026-05-30")),
    ("America/New_York", "year", ("2026-05-28", "2026-05-30")),
]


def case_id(case: tuple[str, str, Span]) -> str:
    tz, period, span = case
    return f"{tz.split('/')[1]}-{period}" + ("" if span is None else f"-{span[0]}..{span[1]}")


CASE_IDS = [case_id(case) for case in CASES]


def test_the_generated_brand_is_large_and_partly_open(brand: Brand) -> None:
    assert brand.events >= 20_000
    sessions = brand.rows("sessions-detail", "--tz", "UTC", "--extra")
    contacts = brand.rows("contact-export", "--tz", "UTC")
    conversations = brand.rows("conversation-export", "--tz", "UTC")
    assert len(sessions) > 1000 and len(contacts) > 500 and len(conversations) > 1000
    # Without open and closed entities of each kind, the summaries below would test less than they say.
    assert {row["Outcome"] for row in sessions} == {"open", "resolved", "handed_off", "no_response"}
    assert {row["Status"] for row in contacts} == {"open", "ended"}
    assert {row["Status"] for row in conversations} == {"OPEN", "CLOSED"}
    assert {row["Handled By"] for row in conversations} >= {"ai_only", "ai_then_team", "team_only"}


@pytest.mark.parametrize(("tz", "period", "span"), CASES, ids=CASE_IDS)
def test_sessions_summary_agrees_with_sessions_detail(brand: Brand, tz: str, period: str, span: Span) -> None:
    detail = brand.rows("sessions-detail", "--tz", tz, "--period", period, "--extra", *span_args(span))
    for row in detail:
        assert_local(row["Created At"], tz)
        assert in_span(row["Created At"], span)
        assert row["Created Date"] == period_label(row["Created At"], period)
    got = brand.table("sessions-summary", "--tz", tz, "--period", period, *span_args(span))
    expected = summarise_sessions(detail, period, None)
    assert got[0] == SESSIONS_SUMMARY
    assert got[1:] == expected
    assert sum(int(row[1]) for row in got[1:]) == len(detail)


BY_CASES = [(by, tz, period, span) for by in DIMENSIONS for tz, period, span in (CASES[1], CASES[8], CASES[12])]


@pytest.mark.parametrize(("by", "tz", "period", "span"), BY_CASES,
                         ids=[f"{by}-{case_id((tz, period, span))}" for by, tz, period, span in BY_CASES])
def test_sessions_summary_by_dimension_agrees_with_sessions_detail(
    brand: Brand, by: str, tz: str, period: str, span: Span
) -> None:
    detail = brand.rows("sessions-detail", "--tz", tz, "--period", period, "--extra", *span_args(span))
    got = brand.table("sessions-summary", "--tz", tz, "--period", period, "--by", by, *span_args(span))
    assert got[0] == ["Period", DIMENSIONS[by], *SESSIONS_SUMMARY[1:]]
    assert got[1:] == summarise_sessions(detail, period, by)
    assert len({row[1] for row in got[1:]}) >= 3  # several values of the dimension


@pytest.mark.parametrize(("tz", "period", "span"), CASES, ids=CASE_IDS)
def test_contact_summary_agrees_with_contact_export(brand: Brand, tz: str, period: str, span: Span) -> None:
    export = brand.rows("contact-export", "--tz", tz)
    for row in export:
        assert row["Status"] in ("open", "ended"), row
        assert (row["Status"] == "ended") == (row["Ended At"] != ""), row
        for column in ("Created At", "Ended At"):
            if row[column]:
                assert_local(row[column], tz)
    got = brand.table("contact-summary", "--tz", tz, "--period", period, *span_args(span))
    assert got[0] == CONTACT_SUMMARY
    assert got[1:] == summarise_contacts(export, period, span)
    assert got[1:], "some contacts ended in the range"


@pytest.mark.parametrize(("tz", "period", "span"), CASES, ids=CASE_IDS)
def test_conversation_summary_agrees_with_conversation_export(
    brand: Brand, tz: str, period: str, span: Span
) -> None:
    export = brand.rows("conversation-export", "--tz", tz)
    for row in export:
        assert row["Status"] in ("OPEN", "CLOSED"), row
        assert row["Status"] == "OPEN" or row["Last Closed At"], row
        for column in ("Created At", "First Closed At", "Last Closed At"):
            if row[column]:
                assert_local(row[column], tz)
    got = brand.table("conversation-summary", "--tz", tz, "--period", period, *span_args(span))
    assert got[0] == CONVERSATION_SUMMARY
    assert got[1:] == summarise_conversations(export, period, span)
    assert got[1:], "some conversations closed in the range"


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("span", [("2026-05-10", "2026-05-20"), ("2026-05-29", "2026-05-30"), ("2026-05-30", "2026-06-30")])
@pytest.mark.parametrize("name", ["contact-export", "conversation-export", "sessions-detail"])
def test_a_ranged_export_is_the_full_export_cut_by_creation_date(
    brand: Brand, name: str, span: tuple[str, str], tz: str
) -> None:
    """SPEC 4: exports place a row in the range by its creation; every other cell is the same."""
    extra = ["--extra"] if name == "sessions-detail" else []
    full = brand.rows(name, "--tz", tz, *extra)
    ranged = brand.rows(name, "--tz", tz, *extra, *span_args(span))
    assert ranged == [row for row in full if in_span(row["Created At"], span)]
    assert ranged


def test_summaries_take_day_as_the_default_period(brand: Brand) -> None:
    for name in ("sessions-summary", "contact-summary", "conversation-summary"):
        assert brand.table(name, "--tz", "Asia/Kolkata") == brand.table(name, "--tz", "Asia/Kolkata", "--period", "day")


def has_guide(guide: str) -> Callable[[Row], bool]:
    return lambda row: guide in row["Guides Used"].split(", ")


@pytest.mark.parametrize(
    ("name", "by", "where", "keep"),
    [
        ("sessions-summary", None, "channel=email", lambda r: r["Channel"] == "email"),
        ("sessions-summary", None, "handoff_category=handoff_manual", lambda r: r["Handoff Category"] == "handoff_manual"),
        ("sessions-summary", None, "outcome=no_response", lambda r: r["Outcome"] == "no_response"),
        # an empty value: the sessions without one, the summary's row under an empty value
        ("sessions-summary", None, "handoff_category=", lambda r: r["Handoff Category"] == ""),
        ("sessions-summary", "handoff_category", "ai_agent=", lambda r: r["Gladly Agent"] == ""),
        # filtered sessions still count under every guide they used
        ("sessions-summary", "guide", "guide=Order Status", has_guide("Order Status")),
        ("sessions-summary", "ai_agent", "channel=chat", lambda r: r["Channel"] == "chat"),
        ("contact-summary", None, "source=handoff", lambda r: r["Source"] == "handoff"),
        ("contact-summary", None, "channel=chat", lambda r: r["Channel"] == "chat"),
        ("conversation-summary", None, "handled_by=ai_then_team", lambda r: r["Handled By"] == "ai_then_team"),
    ],
)
def test_summaries_with_a_where_filter_agree_with_the_filtered_rows(
    brand: Brand, name: str, by: str | None, where: str, keep: Callable[[Row], bool]
) -> None:
    tz, period = "America/New_York", "week"
    by_args = [] if by is None else ["--by", by]
    if name == "sessions-summary":
        rows = [row for row in brand.rows("sessions-detail", "--tz", tz, "--period", period, "--extra") if keep(row)]
        expected = summarise_sessions(rows, period, by)
    elif name == "contact-summary":
        expected = summarise_contacts([row for row in brand.rows("contact-export", "--tz", tz) if keep(row)], period, None)
    else:
        rows = [row for row in brand.rows("conversation-export", "--tz", tz) if keep(row)]
        expected = summarise_conversations(rows, period, None)
    got = brand.table(name, "--tz", tz, "--period", period, *by_args, "--where", where)
    assert got[1:] == expected
    assert got[1:], "the filter keeps something"
    assert got != brand.table(name, "--tz", tz, "--period", period, *by_args)


def test_the_worked_example_summaries(worked: Convoscope) -> None:
    """SPEC 3.7: session 1 resolved and recontacted, session 2 handed off to a contact answered in 120 s."""
    assert report_table(worked, "sessions-summary", "--tz", "UTC")[1:] == [
        ["2026-05-21", "2", "2", "1", "1", "0", "0", "0.5000", "0.5000", "1.0000"],
    ]
    assert report_table(worked, "sessions-summary", "--tz", "UTC", "--period", "half_hour")[1:] == [
        ["2026-05-21T10:00", "1", "1", "1", "0", "0", "0", "1.0000", "0.0000", "1.0000"],
        ["2026-05-21T17:00", "1", "1", "0", "1", "0", "0", "0.0000", "1.0000", ""],
    ]
    assert report_table(worked, "sessions-summary", "--tz", "UTC", "--by", "guide")[1:] == [
        ["2026-05-21", "Order Status", "1", "1", "1", "0", "0", "0", "1.0000", "0.0000", "1.0000"],
        ["2026-05-21", "Refunds", "1", "1", "0", "1", "0", "0", "0.0000", "1.0000", ""],
        ["2026-05-21", "Shipping Times", "1", "1", "1", "0", "0", "0", "1.0000", "0.0000", "1.0000"],
    ]
    assert report_table(worked, "sessions-summary", "--tz", "UTC", "--by", "handoff_category")[1:] == [
        ["2026-05-21", "", "1", "1", "1", "0", "0", "0", "1.0000", "0.0000", "1.0000"],
        ["2026-05-21", "handoff_transfer_detector", "1", "1", "0", "1", "0", "0", "0.0000", "1.0000", ""],
    ]
    assert report_table(worked, "contact-summary", "--tz", "America/Los_Angeles")[1:] == [
        ["2026-05-21", "1", "1", "0", "1", "120.00", "120.00", "900.00", "1.00"],
    ]
    # created 10:00, last closed 17:25 (7h25m), closed twice, one session handed off
    assert report_table(worked, "conversation-summary", "--tz", "UTC")[1:] == [
        ["2026-05-21", "1", "1", "0.00", "0.00", "100.00", "2.00", "1.00", "1.00", "2.00", "26700.00"],
    ]


PERIOD_EVENTS = {
    "new-year-2027": "2027-01-01T12:00:00Z",  # a Friday: ISO week 2026-W53
    "first-monday-2027": "2027-01-04T12:00:00Z",
    "new-year-2026": "2026-01-01T03:00:00Z",  # still 2025-12-31 in Los Angeles
    "may": "2026-05-21T10:45:00Z",
}


@pytest.fixture(scope="module")
def periods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Convoscope]:
    yield from one_message_each(tmp_path_factory, PERIOD_EVENTS)


@pytest.mark.parametrize(
    ("tz", "period", "expected"),
    [
        ("UTC", "week", [("2026-W01", 1), ("2026-W21", 1), ("2026-W53", 1), ("2027-W01", 1)]),
        ("America/Los_Angeles", "week", [("2026-W01", 1), ("2026-W21", 1), ("2026-W53", 1), ("2027-W01", 1)]),
        ("America/Los_Angeles", "day", [("2025-12-31", 1), ("2026-05-21", 1), ("2027-01-01", 1), ("2027-01-04", 1)]),
        ("America/Los_Angeles", "month", [("2025-12", 1), ("2026-05", 1), ("2027-01", 2)]),
        ("America/Los_Angeles", "quarter", [("2025-Q4", 1), ("2026-Q2", 1), ("2027-Q1", 2)]),
        ("America/Los_Angeles", "year", [("2025", 1), ("2026", 1), ("2027", 2)]),
        ("UTC", "year", [("2026", 2), ("2027", 2)]),
        ("Asia/Kolkata", "half_hour", [("2026-01-01T08:30", 1), ("2026-05-21T16:00", 1), ("2027-01-01T17:30", 1),
                                       ("2027-01-04T17:30", 1)]),
        ("Asia/Kathmandu", "half_hour", [("2026-01-01T08:30", 1), ("2026-05-21T16:30", 1), ("2027-01-01T17:30", 1),
                                         ("2027-01-04T17:30", 1)]),
    ],
)
def test_summary_period_labels(periods: Convoscope, tz: str, period: str, expected: list[tuple[str, int]]) -> None:
    got = report_table(periods, "sessions-summary", "--tz", tz, "--period", period)
    assert [(row[0], int(row[1])) for row in got[1:]] == expected


def test_summaries_across_a_dst_change(cs: Convoscope) -> None:
    # US DST starts 2026-03-08 02:00 local (07:00Z). Each session ends, and its conversation closes, 2h after.
    cs.ingest([
        ev("b1", "customer_message", "2026-03-08T04:30:00Z", customer="before"),  # 03-07 23:30 EST
        ev("a1", "customer_message", "2026-03-08T12:00:00Z", customer="after"),  # 03-08 08:00 EDT
    ])
    sessions = report_table(cs, "sessions-summary", "--tz", "America/New_York", "--period", "half_hour")
    assert [row[:2] for row in sessions[1:]] == [["2026-03-07T23:30", "1"], ["2026-03-08T08:00", "1"]]
    sessions = report_table(cs, "sessions-summary", "--tz", "America/New_York")
    assert [row[:2] for row in sessions[1:]] == [["2026-03-07", "1"], ["2026-03-08", "1"]]
    assert [row[:2] for row in report_table(cs, "sessions-summary", "--tz", "UTC")[1:]] == [["2026-03-08", "2"]]
    # closed at 01:30 EST and 10:00 EDT: both on 2026-03-08, each 7200 s after creation
    conversations = report_table(cs, "conversation-summary", "--tz", "America/New_York")
    assert [[row[0], row[1], row[-1]] for row in conversations[1:]] == [["2026-03-08", "2", "7200.00"]]
    only_the_7th = report_table(cs, "sessions-summary", "--tz", "America/New_York", "--to", "2026-03-07")
    assert [row[:2] for row in only_the_7th[1:]] == [["2026-03-07", "1"]]


def test_unique_customers_are_brand_and_customer(cs: Convoscope) -> None:
    cs.config.write_text('conversation_window = "1h"\n')  # two conversations of one customer in one day
    cs.ingest([
        ev("a1", "customer_message", "2026-05-21T01:00:00Z", brand="acme"),
        ev("a2", "ai_message", "2026-05-21T01:01:00Z", brand="acme"),  # closes 03:01
        ev("a3", "customer_message", "2026-05-21T05:00:00Z", brand="acme"),  # after the window: a new one
        ev("a4", "ai_message", "2026-05-21T05:01:00Z", brand="acme"),  # closes 07:01
        ev("b1", "customer_message", "2026-05-21T10:00:00Z", brand="beta"),  # the same customer id
        ev("b2", "ai_message", "2026-05-21T10:01:00Z", brand="beta"),
    ])
    assert [row[:3] for row in report_table(cs, "conversation-summary", "--tz", "UTC")[1:]] == [["2026-05-21", "3", "2"]]
    acme = report_table(cs, "conversation-summary", "--tz", "UTC", "--brand", "acme")
    assert [row[:3] for row in acme[1:]] == [["2026-05-21", "2", "1"]]
    beta = report_table(cs, "conversation-summary", "--tz", "UTC", "--brand", "beta")
    assert [row[:3] for row in beta[1:]] == [["2026-05-21", "1", "1"]]
    assert report_table(cs, "sessions-summary", "--tz", "UTC", "--brand", "acme")[1][:2] == ["2026-05-21", "2"]


# --- 2. time anchors (SPEC 4: exports by creation, summaries by end or last close) ------------------


ANCHOR_EVENTS = [
    # AI only: created 2026-05-21 23:00, closed 2026-05-22 01:01 (inactivity).
    ev("o1", "customer_message", "2026-05-21T23:00:00Z", customer="overnight"),
    ev("o2", "ai_message", "2026-05-21T23:01:00Z", customer="overnight"),
    # a team contact: created 2026-05-23 23:30, ended 2026-05-24 00:10.
    ev("t1", "customer_message", "2026-05-23T23:30:00Z", customer="team-overnight", route="team"),
    ev("t2", "agent_message", "2026-05-23T23:40:00Z", customer="team-overnight", agent="sam"),
    ev("t3", "contact_end", "2026-05-24T00:10:00Z", customer="team-overnight", agent="sam"),
    # a session that runs until 2026-05-25 12:01 (inactivity).
    ev("s1", "customer_message", "2026-05-25T10:00:00Z", customer="still-open"),
    ev("s2", "ai_message", "2026-05-25T10:01:00Z", customer="still-open"),
    # a team contact without a contact_end: it ends by inactivity at 2026-05-26 09:05.
    ev("u1", "customer_message", "2026-05-25T09:00:00Z", customer="team-open", route="team"),
    ev("u2", "agent_message", "2026-05-25T09:05:00Z", customer="team-open", agent="kim"),
]
BEFORE_THE_OPEN_ONES_END = "2026-05-25T11:00:00Z"


@pytest.fixture(scope="module")
def anchors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Convoscope]:
    yield from shared_store(tmp_path_factory, ANCHOR_EVENTS)


@pytest.mark.parametrize(
    ("name", "day", "customers"),
    [
        ("conversation-export", "2026-05-21", ["overnight"]),
        ("conversation-export", "2026-05-22", []),
        ("conversation-export", "2026-05-23", ["team-overnight"]),
        ("conversation-export", "2026-05-24", []),
        ("contact-export", "2026-05-23", ["team-overnight"]),
        ("contact-export", "2026-05-24", []),
    ],
)
def test_exports_place_a_row_on_its_creation_day(anchors: Convoscope, name: str, day: str, customers: list[str]) -> None:
    rows = report_rows(anchors, name, "--tz", "UTC", "--from", day, "--to", day)
    assert [row["Customer ID"] for row in rows] == customers


def test_conversation_summary_places_a_conversation_on_its_last_close_day(anchors: Convoscope) -> None:
    got = report_table(anchors, "conversation-summary", "--tz", "UTC")
    assert [row[:3] for row in got[1:]] == [
        ["2026-05-22", "1", "1"],  # overnight, created the day before
        ["2026-05-24", "1", "1"],  # team-overnight, created the day before
        ["2026-05-25", "1", "1"],  # still-open, closed at 12:01
        ["2026-05-26", "1", "1"],  # team-open, closed by the contact's inactivity end
    ]
    only_the_21st = report_table(anchors, "conversation-summary", "--tz", "UTC", "--from", "2026-05-21", "--to", "2026-05-21")
    assert only_the_21st == [CONVERSATION_SUMMARY]
    only_the_22nd = report_table(anchors, "conversation-summary", "--tz", "UTC", "--from", "2026-05-22", "--to", "2026-05-22")
    assert only_the_22nd == [CONVERSATION_SUMMARY, got[1]]
    # overnight: created 23:00, closed 01:01 the next day.
    assert got[1][-1] == "7260.00"


def test_contact_summary_places_a_contact_on_its_end_day(anchors: Convoscope) -> None:
    got = report_table(anchors, "contact-summary", "--tz", "UTC")
    assert got[1:] == [
        ["2026-05-24", "1", "1", "0", "0", "600.00", "600.00", "2400.00", "1.00"],
        ["2026-05-26", "1", "1", "0", "0", "300.00", "300.00", "86700.00", "1.00"],
    ]
    assert report_table(anchors, "contact-summary", "--tz", "UTC", "--to", "2026-05-23") == [CONTACT_SUMMARY]


def test_a_time_zone_moves_the_anchor_days(anchors: Convoscope) -> None:
    # In Los Angeles, overnight is created (16:00) and closed (18:01) on 2026-05-21.
    export = report_rows(anchors, "conversation-export", "--tz", "America/Los_Angeles")
    overnight = [row for row in export if row["Customer ID"] == "overnight"][0]
    assert (overnight["Created At"], overnight["Last Closed At"]) == ("2026-05-21T16:00:00-07:00",
                                                                      "2026-05-21T18:01:00-07:00")
    got = report_table(anchors, "conversation-summary", "--tz", "America/Los_Angeles")
    assert [row[:2] for row in got[1:]] == [["2026-05-21", "1"], ["2026-05-23", "1"], ["2026-05-25", "1"],
                                            ["2026-05-26", "1"]]


def test_open_conversations_and_contacts_are_left_out_of_the_summaries(anchors: Convoscope) -> None:
    as_of = BEFORE_THE_OPEN_ONES_END  # still-open's session and team-open's contact are open
    conversations = {row["Customer ID"]: row for row in report_rows(anchors, "conversation-export", "--tz", "UTC", as_of=as_of)}
    assert {c: row["Status"] for c, row in conversations.items()} == {
        "overnight": "CLOSED", "team-overnight": "CLOSED", "still-open": "OPEN", "team-open": "OPEN"}
    assert conversations["still-open"]["Last Closed At"] == ""
    summary = report_table(anchors, "conversation-summary", "--tz", "UTC", as_of=as_of)
    assert [row[:2] for row in summary[1:]] == [["2026-05-22", "1"], ["2026-05-24", "1"]]

    contacts = {row["Customer ID"]: row for row in report_rows(anchors, "contact-export", "--tz", "UTC", as_of=as_of)}
    assert contacts["team-open"]["Status"] == "open"
    assert (contacts["team-open"]["Ended At"], contacts["team-open"]["Duration Seconds"]) == ("", "")
    assert contacts["team-overnight"]["Status"] == "ended"
    summary = report_table(anchors, "contact-summary", "--tz", "UTC", as_of=as_of)
    assert [row[:2] for row in summary[1:]] == [["2026-05-24", "1"]]


@pytest.mark.parametrize(("as_of", "present"), [("2026-05-25T12:00:59Z", False), ("2026-05-25T12:01:00Z", True)])
def test_a_conversation_closes_at_its_end_itself(anchors: Convoscope, as_of: str, present: bool) -> None:
    # SPEC 3: open while its end is later than the as-of time.
    summary = report_table(anchors, "conversation-summary", "--tz", "UTC", "--from", "2026-05-25", as_of=as_of)
    assert summary[1:] == ([["2026-05-25", "1", "1", "0.00", "100.00", "0.00", "1.00", "0.00", "1.00", "1.00",
                             "7260.00"]] if present else [])


REOPEN_DAY_ONE = [
    ev("r1", "customer_message", "2026-05-21T10:00:00Z", customer="back"),
    ev("r2", "ai_message", "2026-05-21T10:01:00Z", customer="back"),  # closes at 12:01 (inactivity)
]
REOPEN_DAY_TWO = [
    # 2026-05-22 09:00 is within the reopen window (until 2026-05-22 12:01): the conversation reopens.
    ev("r3", "customer_message", "2026-05-22T09:00:00Z", customer="back"),
    ev("r4", "ai_message", "2026-05-22T09:01:00Z", customer="back"),  # closes again at 11:01
]


def test_reopening_moves_the_conversation_to_its_new_close_day(cs: Convoscope) -> None:
    cs.ingest(REOPEN_DAY_ONE, name="day-one.jsonl")
    assert report_table(cs, "conversation-summary", "--tz", "UTC")[1:] == [
        ["2026-05-21", "1", "1", "0.00", "100.00", "0.00", "1.00", "0.00", "1.00", "1.00", "7260.00"],
    ]
    cs.ingest(REOPEN_DAY_TWO, name="day-two.jsonl")
    assert report_table(cs, "conversation-summary", "--tz", "UTC")[1:] == [
        # created 2026-05-21 10:00, last closed 2026-05-22 11:01: 25h01m.
        ["2026-05-22", "1", "1", "0.00", "100.00", "0.00", "2.00", "0.00", "1.00", "2.00", "90060.00"],
    ]
    (row,) = report_rows(cs, "conversation-export", "--tz", "UTC")
    assert row["Conversation ID"] == make_id("cnv_", "default", "back", "r1")
    assert (row["Created At"], row["First Closed At"], row["Last Closed At"]) == (
        "2026-05-21T10:00:00+00:00", "2026-05-21T12:01:00+00:00", "2026-05-22T11:01:00+00:00")
    assert (row["Times Closed"], row["Times Reopened"], row["Count of Sessions"], row["Status"]) == ("2", "1", "2", "CLOSED")
    assert (row["Created-to-First Closed Time in seconds"], row["Created-to-Last Closed Time in seconds"]) == (
        "7260", "90060")
    # The export keeps the conversation on its creation day.
    assert report_rows(cs, "conversation-export", "--tz", "UTC", "--from", "2026-05-22") == []


# --- 3. the unified view: Handled By (SPEC 4.6, 4.7) ---------------------------------------------------


UNIFIED_EVENTS = [
    # ai_only: one resolved session, closes 12:01.
    ev("a1", "customer_message", "2026-05-21T10:00:00Z", customer="ai"),
    ev("a2", "ai_message", "2026-05-21T10:01:00Z", customer="ai"),
    # ai_then_team by handoff: the handoff starts a contact linked to the session; closes 10:30.
    ev("h1", "customer_message", "2026-05-21T10:00:00Z", customer="handoff"),
    ev("h2", "ai_message", "2026-05-21T10:01:00Z", customer="handoff"),
    ev("h3", "handoff", "2026-05-21T10:02:00Z", customer="handoff", category="handoff_manual"),
    ev("h4", "agent_message", "2026-05-21T10:05:00Z", customer="handoff", agent="sam"),
    ev("h5", "contact_end", "2026-05-21T10:30:00Z", customer="handoff", agent="sam"),
    # ai_then_team by takeover: a team member writes while the session is open; closes 10:10.
    ev("k1", "customer_message", "2026-05-21T10:00:00Z", customer="takeover"),
    ev("k2", "ai_message", "2026-05-21T10:01:00Z", customer="takeover"),
    ev("k3", "agent_message", "2026-05-21T10:02:00Z", customer="takeover", agent="kim"),
    ev("k4", "contact_end", "2026-05-21T10:10:00Z", customer="takeover", agent="kim"),
    # team_only: routed to the team, by email; closes 10:20.
    ev("t1", "customer_message", "2026-05-21T10:00:00Z", customer="team", channel="email", route="team"),
    ev("t2", "agent_message", "2026-05-21T10:05:00Z", customer="team", channel="email", agent="sam"),
    ev("t3", "contact_end", "2026-05-21T10:20:00Z", customer="team", agent="sam"),
    # ai_and_team: the session ends by inactivity at 12:01 and the conversation closes; an outbound email
    # at 13:00, within the reopen window, starts an unlinked contact in the same conversation; closes 13:10.
    ev("b1", "customer_message", "2026-05-21T10:00:00Z", customer="ai-then-outbound"),
    ev("b2", "ai_message", "2026-05-21T10:01:00Z", customer="ai-then-outbound"),
    ev("b3", "agent_message", "2026-05-21T13:00:00Z", customer="ai-then-outbound", channel="email", agent="kim"),
    ev("b4", "contact_end", "2026-05-21T13:10:00Z", customer="ai-then-outbound", agent="kim"),
    # ai_and_team the other way round: a team contact ends at 10:10, then the customer writes again and
    # the AI answers (no route, every channel goes to the AI); closes 13:01.
    ev("m1", "customer_message", "2026-05-21T10:00:00Z", customer="team-then-ai", route="team"),
    ev("m2", "agent_message", "2026-05-21T10:05:00Z", customer="team-then-ai", agent="sam"),
    ev("m3", "contact_end", "2026-05-21T10:10:00Z", customer="team-then-ai", agent="sam"),
    ev("m4", "customer_message", "2026-05-21T11:00:00Z", customer="team-then-ai"),
    ev("m5", "ai_message", "2026-05-21T11:01:00Z", customer="team-then-ai"),
]
UNIFIED_COLUMNS = ["Handled By", "Count of Sessions", "Count of Contacts", "Sessions Resolved", "Sessions Handed Off",
                   "Count of Channels", "First Channel", "Last Channel", "Times Closed", "Times Reopened",
                   "Created-to-Last Closed Time in seconds"]
UNIFIED = {
    "ai": ["ai_only", "1", "0", "1", "0", "1", "chat", "chat", "1", "0", "7260"],
    "handoff": ["ai_then_team", "1", "1", "0", "1", "1", "chat", "chat", "1", "0", "1800"],
    "takeover": ["ai_then_team", "1", "1", "0", "1", "1", "chat", "chat", "1", "0", "600"],
    "team": ["team_only", "0", "1", "0", "0", "1", "email", "email", "1", "0", "1200"],
    "ai-then-outbound": ["ai_and_team", "1", "1", "1", "0", "2", "chat", "email", "2", "1", "11400"],
    "team-then-ai": ["ai_and_team", "1", "1", "1", "0", "1", "chat", "chat", "2", "1", "10860"],
}


@pytest.fixture(scope="module")
def unified(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Convoscope]:
    yield from shared_store(tmp_path_factory, UNIFIED_EVENTS)


def test_conversation_export_handled_by(unified: Convoscope) -> None:
    rows = {row["Customer ID"]: row for row in report_rows(unified, "conversation-export", "--tz", "UTC")}
    assert {customer: [row[c] for c in UNIFIED_COLUMNS] for customer, row in rows.items()} == UNIFIED
    assert {row["Status"] for row in rows.values()} == {"CLOSED"}
    assert rows["handoff"]["Conversation ID"] == make_id("cnv_", "default", "handoff", "h1")
    assert rows["team"]["Conversation ID"] == make_id("cnv_", "default", "team", "t1")
    assert rows["team"]["Conversation Link"] == "http://127.0.0.1:8000/conversations/" + rows["team"]["Conversation ID"]


def test_contact_export_links_handoffs_and_takeovers_only(unified: Convoscope) -> None:
    rows = {row["Customer ID"]: row for row in report_rows(unified, "contact-export", "--tz", "UTC")}
    assert set(rows) == {"handoff", "takeover", "team", "ai-then-outbound", "team-then-ai"}
    columns = ["Direction", "Source", "Session ID", "Handoff Category", "Channel", "First Response Seconds",
               "Duration Seconds", "Status"]
    assert {customer: [row[c] for c in columns] for customer, row in rows.items()} == {
        "handoff": ["INBOUND", "handoff", make_id("ses_", "default", "handoff", "h1"), "handoff_manual", "chat",
                    "180", "1680", "ended"],
        "takeover": ["OUTBOUND", "outbound", make_id("ses_", "default", "takeover", "k1"), "team_takeover", "chat",
                     "", "480", "ended"],
        "team": ["INBOUND", "inbound", "", "", "email", "300", "1200", "ended"],
        "ai-then-outbound": ["OUTBOUND", "outbound", "", "", "email", "", "600", "ended"],
        "team-then-ai": ["INBOUND", "inbound", "", "", "chat", "300", "600", "ended"],
    }
    assert rows["handoff"]["Contact ID"] == make_id("ctc_", "default", "handoff", "h3")
    assert rows["handoff"]["Conversation ID"] == make_id("cnv_", "default", "handoff", "h1")
    assert rows["ai-then-outbound"]["Conversation ID"] == make_id("cnv_", "default", "ai-then-outbound", "b1")


def test_conversation_summary_reports_ai_and_team_together(unified: Convoscope) -> None:
    got = report_table(unified, "conversation-summary", "--tz", "UTC")
    # 6 conversations: 1 multichannel, 1 AI only, 2 with a handed-off session; 5 sessions, 5 contacts,
    # 7 channels, 8 closes, 33120 seconds from creation to last close.
    assert got == [CONVERSATION_SUMMARY,
                   ["2026-05-21", "6", "6", "16.67", "16.67", "33.33", "0.83", "0.83", "1.17", "1.33", "5520.00"]]
    ai_and_team = report_table(unified, "conversation-summary", "--tz", "UTC", "--where", "handled_by=ai_and_team")
    assert ai_and_team[1:] == [["2026-05-21", "2", "2", "50.00", "0.00", "0.00", "1.00", "1.00", "1.50", "2.00",
                                "11130.00"]]


# --- 4. rounding, truncation and zero denominators (SPEC 4.1) ------------------------------------------


ROUNDING_EVENTS = [
    *(event for i in range(31) for event in (
        ev(f"r{i}-1", "customer_message", "2026-05-21T10:00:00Z", customer=f"r{i:02d}"),
        ev(f"r{i}-2", "ai_message", "2026-05-21T10:01:00Z", customer=f"r{i:02d}"),
    )),
    ev("h1", "customer_message", "2026-05-21T10:00:00Z", customer="h"),
    ev("h2", "ai_message", "2026-05-21T10:01:00Z", customer="h"),
    ev("h3", "handoff", "2026-05-21T10:02:00Z", customer="h", category="handoff_qc"),
    ev("h4", "contact_end", "2026-05-21T10:03:12Z", customer="h"),
]


def test_rates_and_percentages_round_half_away_from_zero(cs: Convoscope) -> None:
    cs.ingest(ROUNDING_EVENTS)  # 32 sessions and conversations, one handed off
    assert report_table(cs, "sessions-summary", "--tz", "UTC")[1:] == [
        ["2026-05-21", "32", "32", "31", "1", "0", "0", "0.9688", "0.0313", "0.0000"],
    ]
    # 31 × 7260 s + 192 s over 32 is 7039.125.
    assert report_table(cs, "conversation-summary", "--tz", "UTC")[1:] == [
        ["2026-05-21", "32", "32", "0.00", "96.88", "3.13", "1.00", "0.03", "1.00", "1.00", "7039.13"],
    ]


CONTACT_EVENTS = [
    # from a handoff at 10:01:00.600: first response after 59.9 s, ends after 599.9 s; shown 59 and 599.
    ev("h1", "customer_message", "2026-05-21T10:00:00Z", customer="handed"),
    ev("h2", "ai_message", "2026-05-21T10:00:30Z", customer="handed"),
    ev("h3", "handoff", "2026-05-21T10:01:00.600Z", customer="handed", category="handoff_manual"),
    ev("h4", "agent_message", "2026-05-21T10:02:00.500Z", customer="handed", agent="sam"),
    ev("h5", "contact_end", "2026-05-21T10:11:00.500Z", customer="handed", agent="sam"),
    # inbound at 10:00: first response after 121 s, two agent messages, 1200 s.
    ev("i1", "customer_message", "2026-05-21T10:00:00Z", customer="inbound", route="team"),
    ev("i2", "agent_message", "2026-05-21T10:02:01Z", customer="inbound", agent="kim"),
    ev("i3", "agent_message", "2026-05-21T10:05:00Z", customer="inbound", agent="sam"),
    ev("i4", "contact_end", "2026-05-21T10:20:00Z", customer="inbound", agent="sam"),
    # outbound at 10:00: no first response, four agent messages, 1800 s.
    *(ev(f"o{i}", "agent_message", f"2026-05-21T10:0{i}:00Z", customer="outbound", agent="kim") for i in range(4)),
    ev("o9", "contact_end", "2026-05-21T10:30:00Z", customer="outbound", agent="kim"),
]


def test_contact_summary_over_whole_seconds_with_a_median_of_two(cs: Convoscope) -> None:
    cs.ingest(CONTACT_EVENTS)
    export = {row["Customer ID"]: row for row in report_rows(cs, "contact-export", "--tz", "UTC")}
    assert [export[c]["First Response Seconds"] for c in ("handed", "inbound", "outbound")] == ["59", "121", ""]
    assert [export[c]["Duration Seconds"] for c in ("handed", "inbound", "outbound")] == ["599", "1200", "1800"]
    assert export["inbound"]["Agents"] == "kim, sam"
    assert export["handed"]["Created At"] == "2026-05-21T10:01:00+00:00"
    assert report_table(cs, "contact-summary", "--tz", "UTC")[1:] == [
        # (59 + 121) / 2; (599 + 1200 + 1800) / 3; (1 + 2 + 4) / 3
        ["2026-05-21", "3", "2", "1", "1", "90.00", "90.00", "1199.67", "2.33"],
    ]


ZERO_EVENTS = [
    ev("n1", "customer_message", "2026-05-21T10:00:00Z", customer="silent"),  # no_response from 12:00
    ev("w1", "customer_message", "2026-05-22T10:00:00Z", customer="talking"),  # open until 12:01
    ev("w2", "ai_message", "2026-05-22T10:01:00Z", customer="talking"),
    ev("x1", "agent_message", "2026-05-21T10:00:00Z", customer="outreach", agent="kim"),  # outbound only
    ev("x2", "agent_message", "2026-05-21T10:01:00Z", customer="outreach", agent="kim"),
    ev("x3", "contact_end", "2026-05-21T10:05:00Z", customer="outreach", agent="kim"),
]


def test_a_zero_denominator_is_an_empty_cell(cs: Convoscope) -> None:
    cs.ingest(ZERO_EVENTS)
    as_of = "2026-05-22T11:00:00Z"
    assert report_table(cs, "sessions-summary", "--tz", "UTC", as_of=as_of)[1:] == [
        # only a no-response session: no resolution rate, a handoff rate of 0 over 1 closed session
        ["2026-05-21", "1", "0", "0", "0", "1", "0", "", "0.0000", ""],
        # only an open (already answered) session: no closed sessions at all
        ["2026-05-22", "1", "1", "0", "0", "0", "1", "", "", ""],
    ]
    assert report_table(cs, "contact-summary", "--tz", "UTC", as_of=as_of)[1:] == [
        ["2026-05-21", "1", "0", "1", "0", "", "", "300.00", "2.00"],
    ]


# --- 5. headers and usage errors (SPEC 4.1, 4.3–4.8, 6.1) ----------------------------------------------


HEADERS = [
    ("sessions-summary", [], SESSIONS_SUMMARY),
    *(("sessions-summary", ["--by", by], ["Period", column, *SESSIONS_SUMMARY[1:]]) for by, column in DIMENSIONS.items()),
    ("contact-export", [], CONTACT_EXPORT),
    ("contact-summary", [], CONTACT_SUMMARY),
    ("conversation-export", [], CONVERSATION_EXPORT),
    ("conversation-summary", [], CONVERSATION_SUMMARY),
    ("data-quality", [], DATA_QUALITY),
]


@pytest.mark.parametrize(("name", "args", "expected"), HEADERS, ids=[f"{n}{''.join(a)}" for n, a, _ in HEADERS])
def test_display_headers(unified: Convoscope, name: str, args: list[str], expected: list[str]) -> None:
    assert report_table(unified, name, *args)[0] == expected
    assert report_table(unified, name, "--headers", "display", *args)[0] == expected


@pytest.mark.parametrize(("name", "args", "expected"), HEADERS, ids=[f"{n}{''.join(a)}" for n, a, _ in HEADERS])
def test_snake_headers(unified: Convoscope, name: str, args: list[str], expected: list[str]) -> None:
    assert report_table(unified, name, "--headers", "snake", *args)[0] == [snake(h) for h in expected]


def test_snake_headers_spelled_out(unified: Convoscope) -> None:
    assert report_table(unified, "conversation-summary", "--headers", "snake")[0] == [
        "period", "conversations_closed", "unique_customers", "pct_multichannel", "pct_ai_only", "pct_handed_off",
        "avg_count_of_sessions", "avg_count_of_contacts", "avg_count_of_channels", "avg_times_closed",
        "avg_created_to_last_closed_time_in_seconds",
    ]
    assert report_table(unified, "sessions-summary", "--headers", "snake", "--by", "handoff_category")[0] == [
        "period", "handoff_category", "sessions", "responded", "resolved", "handed_off", "no_response", "open",
        "resolution_rate", "handoff_rate", "recontact_rate",
    ]
    assert report_table(unified, "contact-export", "--headers", "snake")[0][-6:] == [
        "first_response_seconds", "duration_seconds", "customer_messages", "agent_messages", "status",
        "conversation_link",
    ]


@pytest.mark.parametrize("name", ["sessions-summary", "contact-export", "contact-summary", "conversation-export",
                                  "conversation-summary", "data-quality"])
def test_a_report_without_rows_keeps_its_header_and_crlf(unified: Convoscope, name: str) -> None:
    result = unified.report("--from", "2030-01-01", name=name)
    assert result.stdout_bytes.endswith(b"\r\n") and result.stdout_bytes.count(b"\r\n") == 1


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("contact-summary", ["--by", "channel"]),
        ("conversation-summary", ["--by", "channel"]),
        ("contact-export", ["--by", "channel"]),
        ("contact-export", ["--period", "day"]),
        ("conversation-export", ["--period", "week"]),
        ("data-quality", ["--period", "day"]),
        ("sessions-summary", ["--by", "outcome"]),
        ("sessions-summary", ["--by", "agent"]),
        ("sessions-summary", ["--period", "fortnight"]),
        ("contact-summary", ["--period", "hour"]),
        ("sessions-summary", ["--where", "source=handoff"]),  # a contact-report key
        ("sessions-summary", ["--where", "color=red"]),
        ("contact-export", ["--where", "outcome=resolved"]),  # a session-report key
        ("contact-summary", ["--where", "handled_by=ai_only"]),  # a conversation-report key
        ("conversation-export", ["--where", "source=inbound"]),
        ("conversation-summary", ["--where", "guide=Refunds"]),
        ("conversation-summary", ["--where", "channel"]),
        ("contact-summary", ["--headers", "camel"]),
        ("conversation-summary", ["--tz", "Mars/Olympus"]),
        ("contact-export", ["--from", "2026-02-30"]),
        ("conversation-summary", ["--extra"]),  # only the sessions-detail reports take --extra
    ],
)
def test_usage_errors(unified: Convoscope, name: str, args: list[str]) -> None:
    assert_usage_error(unified("report", name, "--as-of", AS_OF, *args))
