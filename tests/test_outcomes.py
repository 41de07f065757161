"""Issue 26, points 2-5: outcomes that hold up, through the real command line (and a report page).

Every number of the four new reports — outcomes-summary, automation-summary, handoff-funnel,
guide-effectiveness — and every new per-row fact under `--extra` (Durable Resolution, Resolution Class,
Automated Resolution, Resolved First Time) is recomputed in plain Python (`outcomes_reading`) from the rows of
sessions-detail, contact-export and conversation-export with `--extra`, on a generated two-brand store (each brand
its own `durable_window` and `recontact_window`, the generator's feedback included, so that Confirmed, Disputed,
Feedback Given and Negative Feedback Rate are recomputed too) and on the worked example extended with crafted
customers; then the crafted customers' figures are checked against the values worked out by hand: a return exactly
at end + D, the as-of time exactly at end + D, pending conversations left out of the automation rates, zero
denominators, each step of the funnel, a brand's own D.

The tests of the feedback store (the worked example with `feedback` events) need the feedback derivation of issue
26 point 1 (branch feedback-derive): they pass once both are merged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cli_helpers import AS_OF, WORKED_EXAMPLE, Convoscope, assert_usage_error, ev, parse
from convoscope import synth
from convoscope.reports import REPORTS
from outcomes_reading import (
    Row,
    Rows,
    Span,
    at,
    automation_summary,
    guide_effectiveness,
    handoff_funnel,
    in_span,
    outcomes_summary,
)
from test_summaries import report_table, snake
from web_helpers import add_user, assert_json_cell, csv_dicts, log_in, serving

NEW_REPORTS = ("outcomes-summary", "guide-effectiveness", "handoff-funnel", "automation-summary")
HEADERS = {
    "outcomes-summary": ["Period", "Resolved", "Confirmed", "Disputed", "Came Back", "Durable", "Pending",
                         "Durable Resolution Rate", "Feedback Given", "Negative Feedback Rate"],
    "guide-effectiveness": ["Guide", "Sessions", "Resolution Rate", "Durable Resolution Rate", "Handoff Rate",
                            "Top Handoff Categories", "Negative Feedback Rate", "Recontact Rate"],
    "handoff-funnel": ["Period", "Handoff Category", "Handed Off", "Contacts", "First Responses",
                       "Median First Response Seconds", "Resolved First Time", "Came Back"],
    "automation-summary": ["Period", "Conversations", "With AI", "Team Only", "Handed Off", "AI Only Resolved",
                           "Pending", "Automation Rate", "AI Coverage"],
}


@dataclass
class Store:
    """A store, the as-of time its reports are judged at, and its brands' windows (D, R) for the reading."""

    cli: Convoscope
    as_of: str
    durable: dict[str, timedelta] = field(default_factory=dict)
    recontact: dict[str, timedelta] = field(default_factory=dict)
    cache: dict[tuple[str, ...], list[Row]] = field(default_factory=dict)

    def rows(self, name: str, *args: str, as_of: str | None = None) -> list[Row]:
        key = (name, as_of or self.as_of, *args)
        if key not in self.cache:
            self.cache[key] = parse(self.cli.report(*args, name=name, as_of=as_of or self.as_of))
        return self.cache[key]

    def table(self, name: str, *args: str, as_of: str | None = None) -> list[list[str]]:
        return report_table(self.cli, name, *args, as_of=as_of or self.as_of)

    def reading(self, tz: str, as_of: str | None = None) -> Rows:
        """The three detail reports with --extra, every row, in zone `tz`."""
        args = ("--tz", tz, "--extra")
        return Rows(self.rows("sessions-detail", *args, as_of=as_of), self.rows("contact-export", *args, as_of=as_of),
                    self.rows("conversation-export", *args, as_of=as_of), at((as_of or self.as_of).replace("Z", "+00:00")),
                    self.durable, self.recontact)


# --- a generated store: two brands, each with its own windows ----------------------------------------------------

BETA = "[brands.beta]\ndurable_window = \"2d\"\nrecontact_window = \"12h\"\n"


def whole_seconds(log: synth.GeneratedLog) -> synth.GeneratedLog:
    """The log with every time cut to its second, so that the rows' times (seconds, SPEC 4.1) are the store's."""
    events = log.events
    micros = pc.cast(events["occurred_at"], pa.int64())
    cut = pc.multiply(pc.divide(micros, 1_000_000), 1_000_000)
    column = events.schema.get_field_index("occurred_at")
    return synth.GeneratedLog(events=events.set_column(column, "occurred_at",
                                                       pc.cast(cut, events.schema.field("occurred_at").type)))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Store:
    cli = Convoscope(tmp_path_factory.mktemp("outcomes-generated"))
    assert cli.config is not None
    cli.config.write_text(cli.config.read_text() + BETA)
    last = None
    for brand, customers, seed in (("acme", 1100, 17), ("beta", 400, 18)):
        blocks = [whole_seconds(block) for block in synth.generate_blocks(customers=customers, days=30, seed=seed,
                                                                           brand=brand)]
        path = cli.dir / f"{brand}.jsonl"
        synth.write(blocks, path)
        result = cli("ingest", str(path))
        assert result.exit_code == 0, result.stderr
        times = pc.max(pa.concat_arrays([b.events["occurred_at"].combine_chunks() for b in blocks])).as_py()
        last = max(last, times) if last else times
    assert last is not None
    return Store(cli, f"{last.date().isoformat()}T12:00:00Z", durable={"beta": timedelta(days=2)},
                 recontact={"beta": timedelta(hours=12)})


def test_the_generated_store_holds_every_outcome(generated: Store) -> None:
    """Without each value present, the agreement below would prove less than it says: the generator's feedback
    too (resolved sessions confirmed and disputed, handed-off ones and contacts rated, some feedback attached to
    nothing), so that Confirmed, Disputed, Feedback Given and Negative Feedback Rate are recomputed from rows."""
    rows = generated.reading("UTC")
    assert len(rows.sessions) > 3000 and {s["Brand"] for s in rows.sessions} == {"acme", "beta"}
    assert {s["Resolution Class"] for s in rows.sessions} == {"", "confirmed", "disputed", "came_back", "durable",
                                                               "pending"}
    assert {s["Feedback"] for s in rows.sessions if s["Was Handed Off"] == "true"} == {"", "positive", "negative"}
    assert {c["Feedback"] for c in rows.contacts} == {"", "positive", "negative"}
    assert {s["Feedback Score"] for s in rows.sessions} == {"", "1", "2", "3", "4", "5"}
    quality = parse(generated.cli.report(name="data-quality", as_of=generated.as_of))
    assert any(r["Reason"].startswith("feedback_without_interaction") for r in quality)
    assert {c["Automated Resolution"] for c in rows.conversations} == {"", "true", "false"}
    pending = [c for c in rows.conversations if c["Status"] == "CLOSED" and c["Automated Resolution"] == ""]
    assert pending, "no closed conversation is pending"
    assert {c["Resolved First Time"] for c in rows.contacts} == {"", "true", "false"}
    assert sum(rows.came_back(c) == "true" for c in rows.contacts) > 10


# --- a crafted store: the worked example and customers made for each rule -----------------------------------------

QUICK = "[brands.quick]\ndurable_window = \"1h\"\n"


def resolved(customer: str, asked: str, answered: str, *, guide: str = "Order Status", brand: str | None = None) -> list[dict]:
    """A session the AI resolves: a question and its answer; it ends S (2h) after the answer."""
    return [ev(f"{customer}-1", "customer_message", asked, customer=customer, brand=brand),
            ev(f"{customer}-2", "ai_message", answered, customer=customer, brand=brand, ai_agent="Care Agent",
               guides=[guide])]


def handed(customer: str, day: str, category: str, *, guide: str = "Refunds") -> list[dict]:
    """A session handed off at 00:05 after an answer at 00:00 (hours of `day`, as `HH`)."""
    return [ev(f"{customer}-1", "customer_message", f"{day}:00:00Z", customer=customer),
            ev(f"{customer}-2", "ai_message", f"{day}:00:00Z", customer=customer, ai_agent="Care Agent", guides=[guide]),
            ev(f"{customer}-3", "handoff", f"{day}:05:00Z", customer=customer, category=category)]


def answered(customer: str, day: str, category: str, answer: str, end: str) -> list[dict]:
    """`handed`, then sam's answer and the contact's end at `answer` and `end` (`HH:MM` on `day`'s date)."""
    date = day[:10]
    return [*handed(customer, day, category),
            ev(f"{customer}-4", "agent_message", f"{date}T{answer}:00Z", customer=customer, agent="sam"),
            ev(f"{customer}-5", "contact_end", f"{date}T{end}:00Z", customer=customer, agent="sam")]


CRAFTED = [
    # Durable Resolution at D's edges: three sessions end at 2026-05-10 12:00:05 (S after the answer); end + D is
    # 2026-05-17 12:00:05. A session at end + D exactly came back; one a second later did not; a contact counts too.
    *resolved("d-at", "2026-05-10T10:00:00Z", "2026-05-10T10:00:05Z"),
    ev("d-at-back", "customer_message", "2026-05-17T12:00:05Z", customer="d-at"),
    *resolved("d-after", "2026-05-10T10:00:00Z", "2026-05-10T10:00:05Z"),
    ev("d-after-back", "customer_message", "2026-05-17T12:00:06Z", customer="d-after"),
    *resolved("d-contact", "2026-05-10T10:00:00Z", "2026-05-10T10:00:05Z"),
    ev("d-contact-back", "customer_message", "2026-05-17T12:00:05Z", customer="d-contact", route="team"),
    # The as-of time at end + D: the session ends 2026-05-12 10:00, end + D is 2026-05-19 10:00.
    *resolved("d-edge", "2026-05-12T08:00:00Z", "2026-05-12T08:00:00Z"),
    # The handoff funnel, 2026-05-15: answered and resolved first time, then back on 05-18 (L = 09:20) …
    *answered("f-first", "2026-05-15T09", "handoff_manual", "09:07", "09:20"),
    ev("f-first-back", "customer_message", "2026-05-18T10:00:00Z", customer="f-first"),
    # … answered, then a second contact the same evening: not resolved first time (the second one is) …
    *answered("f-again", "2026-05-15T10", "handoff_manual", "10:06", "10:15"),
    ev("f-again-6", "customer_message", "2026-05-15T20:00:00Z", customer="f-again", route="team"),
    ev("f-again-7", "agent_message", "2026-05-15T20:05:00Z", customer="f-again", agent="kim"),
    ev("f-again-8", "contact_end", "2026-05-15T20:10:00Z", customer="f-again", agent="kim"),
    # … never answered (the contact ends C after the handoff) …
    *handed("f-silent", "2026-05-15T11", "handoff_manual"),
    # … taken over by the team (outbound: no first response) …
    *resolved("f-takeover", "2026-05-15T12:00:00Z", "2026-05-15T12:00:00Z"),
    ev("f-takeover-3", "agent_message", "2026-05-15T12:10:00Z", customer="f-takeover", agent="kim"),
    ev("f-takeover-4", "contact_end", "2026-05-15T12:30:00Z", customer="f-takeover", agent="kim"),
    # … and handed off while a contact is open: no contact of its own.
    ev("f-double-1", "customer_message", "2026-05-15T13:00:00Z", customer="f-double", route="team"),
    ev("f-double-2", "agent_message", "2026-05-15T13:01:00Z", customer="f-double", agent="sam"),
    ev("f-double-3", "ai_message", "2026-05-15T13:02:00Z", customer="f-double", ai_agent="Care Agent", guides=["Refunds"]),
    ev("f-double-4", "handoff", "2026-05-15T13:03:00Z", customer="f-double", category="handoff_qc"),
    ev("f-double-5", "contact_end", "2026-05-15T13:30:00Z", customer="f-double", agent="sam"),
    # 2026-05-31: one closed within R of the as-of time, one still open: Resolved First Time unknown for both.
    *answered("f-window", "2026-05-31T09", "handoff_qc", "09:06", "10:00"),
    *handed("f-open", "2026-05-31T20", "handoff_qc"),
    ev("f-open-4", "agent_message", "2026-05-31T20:06:00Z", customer="f-open", agent="sam"),
    # Brand quick, D = 1h: back 1h30 after the end (durable there, not with 7 days) and 30 minutes after (came back).
    *resolved("q1", "2026-05-20T10:00:00Z", "2026-05-20T10:00:00Z", brand="quick"),
    ev("q1-back", "customer_message", "2026-05-20T13:30:00Z", customer="q1", brand="quick"),
    *resolved("q2", "2026-05-20T10:00:00Z", "2026-05-20T10:00:00Z", brand="quick"),
    ev("q2-back", "customer_message", "2026-05-20T12:30:00Z", customer="q2", brand="quick"),
    # Automation over all demand, conversations created 2026-05-24: AI alone and durable, AI alone and pending
    # (it ends 05-25 01:00, end + D after the as-of time), AI alone but back on 05-26, team only, handed off.
    *resolved("a-durable", "2026-05-24T00:10:00Z", "2026-05-24T00:10:00Z"),
    *resolved("a-pending", "2026-05-24T23:00:00Z", "2026-05-24T23:00:00Z"),
    *resolved("a-cameback", "2026-05-24T05:00:00Z", "2026-05-24T05:00:00Z"),
    ev("a-cameback-back", "customer_message", "2026-05-26T09:00:00Z", customer="a-cameback"),
    ev("a-team-1", "customer_message", "2026-05-24T12:00:00Z", customer="a-team", route="team"),
    ev("a-team-2", "agent_message", "2026-05-24T12:01:00Z", customer="a-team", agent="sam"),
    ev("a-team-3", "contact_end", "2026-05-24T12:30:00Z", customer="a-team", agent="sam"),
    *answered("a-handoff", "2026-05-24T13", "handoff_qc", "13:06", "13:20"),
    # 2026-05-30: the day's only closed conversation is pending (zero denominators); 05-31: one still open.
    *resolved("a-late", "2026-05-30T10:00:00Z", "2026-05-30T10:00:00Z"),
    *resolved("a-open", "2026-05-31T23:30:00Z", "2026-05-31T23:30:00Z"),
]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Store:
    cli = Convoscope(tmp_path_factory.mktemp("outcomes-crafted"))
    assert cli.config is not None
    cli.config.write_text(cli.config.read_text() + QUICK)
    cli.ingest([json.loads(line) for line in WORKED_EXAMPLE.read_text().splitlines()] + CRAFTED)
    return Store(cli, AS_OF, durable={"quick": timedelta(hours=1)})


STORES = ("generated", "crafted")


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Store:
    found: Store = request.getfixturevalue(request.param)
    return found


# --- 1. every per-row fact agrees with the rules ----------------------------------------------------------------

def test_durable_resolution_and_resolution_class_follow_the_rule(store: Store) -> None:
    rows = store.reading("UTC")
    assert [(s["Durable Resolution"], s["Resolution Class"]) for s in rows.sessions] == [
        (rows.durable_resolution(s), rows.resolution_class(s)) for s in rows.sessions]


def test_automated_resolution_follows_the_rule(store: Store) -> None:
    rows = store.reading("UTC")
    assert [c["Automated Resolution"] for c in rows.conversations] == [
        rows.automated_resolution(c) for c in rows.conversations]


def test_resolved_first_time_follows_the_rule(store: Store) -> None:
    rows = store.reading("UTC")
    assert [c["Resolved First Time"] for c in rows.contacts] == [rows.resolved_first_time(c) for c in rows.contacts]


def test_a_session_has_at_most_one_contact_taking_over(store: Store) -> None:
    """The funnel joins a handed-off session to the contact linked to it: one at most."""
    linked = [c["Session ID"] for c in store.reading("UTC").contacts if c["Session ID"]]
    assert len(linked) == len(set(linked))


# --- 2. every figure of every new report agrees with the detail rows ----------------------------------------------

CASES: list[tuple[str, str, Span]] = [
    ("UTC", "day", None), ("America/New_York", "week", None), ("Asia/Kolkata", "month", None),
    ("America/New_York", "half_hour", ("2026-05-20", "2026-05-21")), ("UTC", "day", ("2026-05-10", "2026-05-24")),
]


def case_id(case: tuple[str, str, Span]) -> str:
    tz, period, span = case
    return f"{tz.split('/')[-1]}-{period}" + ("" if span is None else f"-{span[0]}..{span[1]}")


def span_args(span: Span) -> list[str]:
    return [] if span is None else ["--from", span[0], "--to", span[1]]


@pytest.mark.parametrize(("tz", "period", "span"), CASES, ids=[case_id(c) for c in CASES])
def test_outcomes_summary_agrees_with_sessions_detail(store: Store, tz: str, period: str, span: Span) -> None:
    rows = store.reading(tz)
    picked = [s for s in rows.sessions if in_span(s["Created At"], span)]
    got = store.table("outcomes-summary", "--tz", tz, "--period", period, *span_args(span))
    assert got[0] == HEADERS["outcomes-summary"]
    assert got[1:] == outcomes_summary(rows, picked, period, None)
    assert got[1:]


@pytest.mark.parametrize("by", ["channel", "ai_agent", "guide", "handoff_category"])
def test_outcomes_summary_by_dimension_agrees_with_sessions_detail(store: Store, by: str) -> None:
    rows = store.reading("America/New_York")
    got = store.table("outcomes-summary", "--tz", "America/New_York", "--period", "week", "--by", by)
    assert got[1:] == outcomes_summary(rows, rows.sessions, "week", by)


@pytest.mark.parametrize(("tz", "span"), [("UTC", None), ("Asia/Kolkata", ("2026-05-12", "2026-05-24"))])
def test_guide_effectiveness_agrees_with_sessions_detail(store: Store, tz: str, span: Span) -> None:
    rows = store.reading(tz)
    got = store.table("guide-effectiveness", "--tz", tz, *span_args(span))
    assert got[0] == HEADERS["guide-effectiveness"]
    assert got[1:] == guide_effectiveness(rows, [s for s in rows.sessions if in_span(s["Created At"], span)])
    assert len(got) > 2


@pytest.mark.parametrize(("tz", "period", "span"), CASES, ids=[case_id(c) for c in CASES])
def test_automation_summary_agrees_with_conversation_export(store: Store, tz: str, period: str, span: Span) -> None:
    rows = store.reading(tz)
    picked = [c for c in rows.conversations if in_span(c["Created At"], span)]
    got = store.table("automation-summary", "--tz", tz, "--period", period, *span_args(span))
    assert got[0] == HEADERS["automation-summary"]
    assert got[1:] == automation_summary(rows, picked, period, None)
    assert got[1:]


@pytest.mark.parametrize("by", ["channel", "ai_agent", "brand"])
def test_automation_summary_by_dimension_agrees_with_conversation_export(store: Store, by: str) -> None:
    rows = store.reading("UTC")
    got = store.table("automation-summary", "--tz", "UTC", "--period", "week", "--by", by)
    assert got[1:] == automation_summary(rows, rows.conversations, "week", by)


@pytest.mark.parametrize(("tz", "period", "span"), CASES, ids=[case_id(c) for c in CASES])
def test_handoff_funnel_agrees_with_the_detail_rows(store: Store, tz: str, period: str, span: Span) -> None:
    rows = store.reading(tz)
    picked = [s for s in rows.sessions if in_span(s["Created At"], span)]
    got = store.table("handoff-funnel", "--tz", tz, "--period", period, *span_args(span))
    assert got[0] == HEADERS["handoff-funnel"]
    assert got[1:] == handoff_funnel(rows, picked, period)
    assert got[1:]


@pytest.mark.parametrize(("name", "where", "column", "value"), [
    ("outcomes-summary", "channel=chat", "Channel", "chat"),
    ("outcomes-summary", "guide=Order Status", "Guides Used", "Order Status"),
    ("guide-effectiveness", "ai_agent=Care Agent", "Gladly Agent", "Care Agent"),
    ("handoff-funnel", "channel=email", "Channel", "email"),
    ("handoff-funnel", "handoff_category=handoff_qc", "Handoff Category", "handoff_qc"),
    ("automation-summary", "handled_by=ai_only", "Handled By", "ai_only"),
    ("automation-summary", "channel=chat", "channels", "chat"),
])
def test_a_filter_selects_the_rows_it_names(generated: Store, name: str, where: str, column: str, value: str) -> None:
    """The filters of each report's family select its rows (a funnel's contacts are its sessions')."""
    rows = generated.reading("UTC")
    got = generated.table(name, "--tz", "UTC", "--period", "week", "--where", where) if name != "guide-effectiveness" \
        else generated.table(name, "--tz", "UTC", "--where", where)
    if name == "automation-summary":
        if column == "channels":  # any channel of the conversation: its sessions' and contacts' channels
            used = {row["Conversation ID"] for row in rows.sessions + rows.contacts if row["Channel"] == value}
            picked = [c for c in rows.conversations if c["Conversation ID"] in used]
        else:
            picked = [c for c in rows.conversations if c[column] == value]
        assert got[1:] == automation_summary(rows, picked, "week", None)
    else:
        sessions = [s for s in rows.sessions
                    if (value in s[column].split(", ") if column == "Guides Used" else s[column] == value)]
        expected = {"outcomes-summary": lambda: outcomes_summary(rows, sessions, "week", None),
                    "guide-effectiveness": lambda: guide_effectiveness(rows, sessions),
                    "handoff-funnel": lambda: handoff_funnel(rows, sessions, "week")}[name]()
        assert got[1:] == expected
    assert got[1:], "the filter keeps something"


# --- 3. the crafted customers, worked out by hand -----------------------------------------------------------------

def by_customer(rows: list[Row], column: str = "Customer ID") -> dict[str, list[Row]]:
    found: dict[str, list[Row]] = {}
    for row in rows:
        found.setdefault(row[column], []).append(row)
    return found


def test_a_return_at_end_plus_d_exactly_is_coming_back(crafted: Store) -> None:
    """[end, end + D] is closed: a session or a contact created at end + D came back; a second later, not."""
    first = {customer: rows[0] for customer, rows in by_customer(crafted.rows("sessions-detail", "--extra")).items()}
    assert [(first[c]["Ended At"], first[c]["Durable Resolution"], first[c]["Resolution Class"])
            for c in ("d-at", "d-after", "d-contact")] == [
        ("2026-05-10T12:00:05+00:00", "false", "came_back"),
        ("2026-05-10T12:00:05+00:00", "true", "durable"),
        ("2026-05-10T12:00:05+00:00", "false", "came_back"),
    ]


@pytest.mark.parametrize(("as_of", "durable", "klass", "summary"), [
    ("2026-05-19T09:59:59Z", "", "pending", ["1", "0", "0", "0", "0", "1", "", "0", ""]),
    ("2026-05-19T10:00:00Z", "", "pending", ["1", "0", "0", "0", "0", "1", "", "0", ""]),  # as-of = end + D: unknown
    ("2026-05-19T10:00:01Z", "true", "durable", ["1", "0", "0", "0", "1", "0", "1.0000", "0", ""]),
])
def test_the_as_of_time_at_end_plus_d_is_still_unknown(crafted: Store, as_of: str, durable: str, klass: str,
                                                       summary: list[str]) -> None:
    (edge,) = by_customer(crafted.rows("sessions-detail", "--extra", as_of=as_of))["d-edge"]
    assert (edge["Ended At"], edge["Durable Resolution"], edge["Resolution Class"]) == (
        "2026-05-12T10:00:00+00:00", durable, klass)
    assert crafted.table("outcomes-summary", "--from", "2026-05-12", "--to", "2026-05-12", as_of=as_of)[1:] == [
        ["2026-05-12", *summary]]


def test_a_brands_own_durable_window(crafted: Store) -> None:
    """Brand quick judges with D = 1h: back 1h30 after the end is durable there, 30 minutes after came back."""
    rows = by_customer(crafted.rows("sessions-detail", "--extra", "--brand", "quick"))
    assert [(rows[c][0]["Durable Resolution"], rows[c][1]["Durable Resolution"]) for c in ("q1", "q2")] == [
        ("true", ""), ("false", "")]
    described = crafted.cli("report", "outcomes-summary", "--as-of", AS_OF, "--describe")
    assert described.exit_code == 0
    assert "; judged with default: durable_window=7d; quick: durable_window=1h" in described.stderr
    plain = crafted.cli("report", "sessions-summary", "--as-of", AS_OF, "--describe")
    assert "judged with" not in plain.stderr  # the derivation settings alone decide it


def test_outcomes_summary_worked_out_by_hand(crafted: Store) -> None:
    assert crafted.table("outcomes-summary")[1:] == [
        ["2026-05-10", "3", "0", "0", "2", "1", "0", "0.3333", "0", ""],
        ["2026-05-12", "1", "0", "0", "0", "1", "0", "1.0000", "0", ""],
        ["2026-05-15", "0", "0", "0", "0", "0", "0", "", "0", ""],  # handed off: nothing resolved, empty rate
        ["2026-05-17", "0", "0", "0", "0", "0", "0", "", "0", ""],
        ["2026-05-18", "0", "0", "0", "0", "0", "0", "", "0", ""],
        ["2026-05-20", "2", "0", "0", "1", "1", "0", "0.5000", "0", ""],
        ["2026-05-21", "1", "0", "0", "1", "0", "0", "0.0000", "0", ""],  # SPEC 3.7: session 2 came 4h45 later
        ["2026-05-24", "3", "0", "0", "1", "1", "1", "0.5000", "0", ""],
        ["2026-05-26", "0", "0", "0", "0", "0", "0", "", "0", ""],
        ["2026-05-30", "1", "0", "0", "0", "0", "1", "", "0", ""],  # only pending: the rate's denominator is 0
        ["2026-05-31", "0", "0", "0", "0", "0", "0", "", "0", ""],
    ]


def test_automation_summary_leaves_pending_conversations_out_of_its_rates(crafted: Store) -> None:
    got = {row[0]: row[1:] for row in crafted.table("automation-summary")[1:]}
    # 05-24: five closed conversations; a-pending is counted, and left out of both rates: 1 / 4 and 3 / 4.
    assert got["2026-05-24"] == ["5", "4", "1", "1", "1", "1", "0.2500", "0.7500"]
    assert got["2026-05-30"] == ["1", "1", "0", "0", "0", "1", "", ""]  # every one pending: empty rates
    assert got["2026-05-31"] == ["1", "1", "0", "1", "0", "0", "0.0000", "1.0000"]  # the open ones are not counted
    assert got["2026-05-15"] == ["5", "5", "0", "4", "0", "0", "0.0000", "1.0000"]
    assert got["2026-05-20"] == ["2", "2", "0", "0", "1", "0", "0.5000", "1.0000"]
    conversations = by_customer(crafted.rows("conversation-export", "--extra"))
    assert {c: conversations[c][0]["Automated Resolution"] for c in ("a-durable", "a-pending", "a-cameback", "a-team",
                                                                     "a-handoff", "a-open", "c1")} == {
        "a-durable": "true", "a-pending": "", "a-cameback": "false", "a-team": "false", "a-handoff": "false",
        "a-open": "", "c1": "false"}


def test_handoff_funnel_worked_out_by_hand(crafted: Store) -> None:
    assert crafted.table("handoff-funnel")[1:] == [
        # f-first (120 s, resolved first time, back on 05-18), f-again (60 s, a second contact), f-silent
        ["2026-05-15", "handoff_manual", "3", "3", "2", "90.00", "1", "1"],
        ["2026-05-15", "handoff_qc", "1", "0", "0", "", "0", "0"],  # handed off while a contact was open
        ["2026-05-15", "team_takeover", "1", "1", "0", "", "0", "0"],  # outbound: the team wrote first
        ["2026-05-21", "handoff_transfer_detector", "1", "1", "1", "120.00", "1", "0"],
        ["2026-05-24", "handoff_qc", "1", "1", "1", "60.00", "1", "0"],
        ["2026-05-31", "handoff_qc", "2", "2", "2", "60.00", "0", "0"],  # within R of the close, or still open
    ]
    contacts = by_customer(crafted.rows("contact-export", "--extra"))
    assert {c: [row["Resolved First Time"] for row in contacts[c]] for c in (
        "f-first", "f-again", "f-silent", "f-takeover", "f-double", "f-window", "f-open", "c1")} == {
        "f-first": ["true"], "f-again": ["false", "true"], "f-silent": ["true"], "f-takeover": ["true"],
        "f-double": ["true"], "f-window": [""], "f-open": [""], "c1": ["true"]}


def test_guide_effectiveness_worked_out_by_hand(crafted: Store) -> None:
    got = crafted.table("guide-effectiveness", "--from", "2026-05-15", "--to", "2026-05-21")
    assert got[1:] == [
        ["", "5", "", "", "0.0000", "", "", ""],  # the sessions without a guide: returns that had no answer
        # f-takeover (handed off), q1 (durable with quick's D), q2 and c1's first (came back)
        ["Order Status", "4", "0.7500", "0.3333", "0.2500", "team_takeover (1)", "", "1.0000"],
        ["Refunds", "5", "0.0000", "", "1.0000", "handoff_manual (3), handoff_qc (1), handoff_transfer_detector (1)",
         "", ""],
        ["Shipping Times", "1", "1.0000", "0.0000", "0.0000", "", "", "1.0000"],
    ]


@pytest.mark.parametrize("name", NEW_REPORTS)
def test_display_and_snake_headers(crafted: Store, name: str) -> None:
    period = [] if name == "guide-effectiveness" else ["--period", "month"]
    assert crafted.table(name, *period)[0] == HEADERS[name]
    snakes = crafted.table(name, *period, "--headers", "snake")
    assert snakes[0] == [snake(h) for h in HEADERS[name]]
    assert snakes[1:] == crafted.table(name, *period)[1:]


def test_snake_headers_spelled_out(crafted: Store) -> None:
    assert crafted.table("automation-summary", "--headers", "snake", "--by", "ai_agent")[0] == [
        "period", "ai_agent", "conversations", "with_ai", "team_only", "handed_off", "ai_only_resolved", "pending",
        "automation_rate", "ai_coverage"]
    extra = {name: crafted.table(name, "--extra", "--headers", "snake")[0][-n:] for name, n in (
        ("sessions-detail", 2), ("contact-export", 1), ("conversation-export", 1))}
    assert extra == {"sessions-detail": ["durable_resolution", "resolution_class"],
                     "contact-export": ["resolved_first_time"], "conversation-export": ["automated_resolution"]}


@pytest.mark.parametrize(("name", "args"), [
    ("guide-effectiveness", ["--period", "week"]),  # one row per guide over the range
    ("guide-effectiveness", ["--extra"]),
    ("handoff-funnel", ["--by", "channel"]),  # its dimension is the handoff category, always
    ("automation-summary", ["--by", "guide"]),
    ("automation-summary", ["--where", "outcome=resolved"]),  # a session-report key
    ("outcomes-summary", ["--where", "handled_by=ai_only"]),  # a conversation-report key
    ("outcomes-summary", ["--by", "brand"]),
    ("handoff-funnel", ["--where", "source=handoff"]),
])
def test_usage_errors(crafted: Store, name: str, args: list[str]) -> None:
    assert_usage_error(crafted.cli("report", name, "--as-of", AS_OF, *args))


def test_the_default_columns_of_spec_4_do_not_change(crafted: Store) -> None:
    """New per-row facts come only with --extra."""
    for name, last in (("sessions-detail", "Conversation Link"), ("contact-export", "Conversation Link"),
                       ("conversation-export", "Created-to-Last Closed Time in seconds")):
        assert crafted.table(name)[0][-1] == last


# --- 4. the report pages show them ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(crafted: Store) -> Iterator[httpx.Client]:
    """The crafted store served, and a browser logged in as an analyst."""
    add_user(crafted.cli, "ana", "analyst")
    with serving(crafted.cli) as server, server.client() as client:
        assert log_in(client, "ana").status_code == 303
        yield client


@pytest.mark.parametrize("name", NEW_REPORTS)
def test_a_report_page_runs_each_new_report(browser: httpx.Client, crafted: Store, name: str) -> None:
    page = browser.get(f"/reports/{name}", params={"run": "1", "tz": "UTC"})
    assert page.status_code == 200, page.text
    headers = re.findall(r'<th scope="col"[^>]*><a class="sort" href="[^"]*sort=([a-z0-9_]+)[^"]*">([^<]*)<', page.text)
    assert [header for _, header in headers] == HEADERS[name]  # each sorts the table by itself, on the server
    assert [snake for snake, _ in headers] == [snake(header) for header in HEADERS[name]]
    shown = re.findall(r"<tr>(.*?)</tr>", page.text.split("<tbody>")[1].split("</tbody>")[0], re.S)
    assert len(shown) == len(crafted.table(name, "--tz", "UTC")) - 1
    if name == "handoff-funnel":  # the totals: one row over every category
        totals = re.search(r'<tr id="report-totals">(.*?)</tr>', page.text, re.S)
        assert totals is not None
        # A page judges now, after every window of the crafted events: f-window's and f-open's contacts were
        # resolved first time in the end.
        assert re.findall(r'data-value="([^"]*)"', totals.group(1)) == ["Total", "", "9", "8", "6", "60.00", "5", "1"]
        cells = re.sub(r"<a [^>]*>|</a>", "", totals.group(1))  # a figure links to its rows (issue 28)
        assert re.findall(r">([^<]*)</td>", cells)[5] == "1m 00s"  # the median, shown as a duration
    listed = browser.get("/reports").text
    assert f'href="/reports/{name}"' in listed


def test_the_api_gives_each_new_report_as_csv_and_json(browser: httpx.Client, crafted: Store) -> None:
    for name in NEW_REPORTS:
        as_csv = browser.get(f"/api/v1/reports/{name}", params={"as_of": AS_OF})
        as_json = browser.get(f"/api/v1/reports/{name}", params={"as_of": AS_OF}, headers={"Accept": "application/json"})
        assert as_csv.status_code == as_json.status_code == 200
        assert as_csv.content == crafted.cli.report(name=name).stdout_bytes
        assert as_json.json()["columns"] == HEADERS[name]
        rows = csv_dicts(as_csv.text)
        assert len(as_json.json()["rows"]) == len(rows)
        for got, row in zip(as_json.json()["rows"], rows, strict=True):  # typed by column (issue 28)
            for column in REPORTS[name].columns:
                assert_json_cell(column.kind, got[column.display], row[column.display], (name, column.display))
        assert "durable_window=" in as_csv.headers["X-Convoscope-Definitions"]


# --- 5. the feedback store: waits for the feedback derivation (issue 26 point 1, branch feedback-derive) ------------

FEEDBACK = [
    # c1 of the worked example: pleased with session 1 (open at 10:20), not with session 2 (open at 17:05).
    {"event_id": "fb1", "type": "feedback", "occurred_at": "2026-05-21T10:20:00Z", "customer_id": "c1",
     "rating": "positive", "score": 5},
    {"event_id": "fb2", "type": "feedback", "occurred_at": "2026-05-21T17:05:00Z", "customer_id": "c1",
     "rating": "negative", "score": 2},
    # fb-d: resolved (it ends 11:00), then displeased at 11:30: the session that ended last, within F.
    *resolved("fb-d", "2026-05-22T09:00:00Z", "2026-05-22T09:00:00Z"),
    {"event_id": "fb-d-3", "type": "feedback", "occurred_at": "2026-05-22T11:30:00Z", "customer_id": "fb-d",
     "rating": "negative"},
]


@pytest.fixture(scope="module")
def with_feedback(tmp_path_factory: pytest.TempPathFactory) -> Store:
    cli = Convoscope(tmp_path_factory.mktemp("outcomes-feedback"))
    cli.ingest([json.loads(line) for line in WORKED_EXAMPLE.read_text().splitlines()] + FEEDBACK)
    return Store(cli, AS_OF)


def test_feedback_decides_the_resolution_class(with_feedback: Store) -> None:
    rows = with_feedback.rows("sessions-detail", "--extra")
    assert [(r["Customer ID"], r["Feedback"], r["Durable Resolution"], r["Resolution Class"]) for r in rows] == [
        ("c1", "positive", "false", "confirmed"),  # it came back (session 2), and the customer said it helped
        ("c1", "negative", "", ""),  # handed off: not resolved
        ("fb-d", "negative", "true", "disputed"),
    ]
    assert list(rows[0])[-4:] == ["Feedback", "Feedback Score", "Durable Resolution", "Resolution Class"]


def test_feedback_figures_worked_out_by_hand(with_feedback: Store) -> None:
    assert with_feedback.table("outcomes-summary")[1:] == [
        ["2026-05-21", "1", "1", "0", "0", "0", "0", "0.0000", "2", "0.5000"],
        ["2026-05-22", "1", "0", "1", "0", "0", "0", "1.0000", "1", "1.0000"],
    ]
    assert [[row[0], row[6]] for row in with_feedback.table("guide-effectiveness")[1:]] == [
        ["Order Status", "0.5000"], ["Refunds", "1.0000"], ["Shipping Times", "0.0000"]]


def test_feedback_figures_agree_with_sessions_detail(with_feedback: Store) -> None:
    rows = with_feedback.reading("UTC")
    assert all("Feedback" in s for s in rows.sessions)
    assert [(s["Durable Resolution"], s["Resolution Class"]) for s in rows.sessions] == [
        (rows.durable_resolution(s), rows.resolution_class(s)) for s in rows.sessions]
    assert with_feedback.table("outcomes-summary")[1:] == outcomes_summary(rows, rows.sessions, "day", None)
    assert with_feedback.table("guide-effectiveness")[1:] == guide_effectiveness(rows, rows.sessions)


def test_without_feedback_every_feedback_rate_is_empty(crafted: Store) -> None:
    """No feedback at all: every Negative Feedback Rate is empty, and Feedback Given 0 (zero denominators)."""
    assert {row[6] for row in crafted.table("guide-effectiveness")[1:]} == {""}
    assert {(row[8], row[9]) for row in crafted.table("outcomes-summary")[1:]} == {("0", "")}


def test_the_next_interaction_is_the_first_other_one_at_or_after_the_time() -> None:
    """What the derive keeps for Durable Resolution, Came Back and Resolved First Time (decision 176), on the
    cases a search could get wrong: a session that starts and ends at one instant (itself is not its next, another
    one then is), a contact created exactly at the end, two contacts created at one instant (each the other's
    next), a customer with contacts only between two with sessions, nothing after."""
    from convoscope.derive.kernel import NONE, earliest, first_created

    # Customer 0: sessions [10, 20], [20, 20] (starts and ends at one instant), [20, 30]; a contact at 25.
    # Customer 1: contacts only, two at 1 and one at 100. Customer 2: a session [5, 8], a contact at 8, a session
    # [40, 50] and nothing after. Customer 3: a session [60, 60] alone, then a contact at 70.
    s_group = np.array([0, 0, 0, 2, 2, 3])
    s_created = np.array([10, 20, 20, 5, 40, 60])
    s_end = np.array([20, 20, 30, 8, 50, 60])
    c_group = np.array([0, 1, 1, 1, 2, 3])
    c_created = np.array([25, 1, 1, 100, 8, 70])
    none = np.full(6, -1)
    after_end = earliest(first_created(s_group, s_end, np.arange(6), s_group, s_created),
                         first_created(s_group, s_end, none, c_group, c_created))
    assert after_end.tolist() == [20, 20, NONE, 8, NONE, 70]
    # A contact's next other contact, from its own creation.
    assert first_created(c_group, c_created, np.arange(6), c_group, c_created).tolist() == [
        NONE, 1, 1, NONE, NONE, NONE]
    # After a close at 25 of customer 0 and at 9 of customer 2: the contact at 25 itself counts, a close has no own.
    closes = (np.array([0, 2]), np.array([25, 9]), np.array([-1, -1]))
    assert earliest(first_created(*closes, s_group, s_created), first_created(*closes, c_group, c_created)).tolist() \
        == [25, 40]
