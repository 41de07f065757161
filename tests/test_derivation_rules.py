"""SPEC 3, rule by rule: the worked example of SPEC 3.7, then one short scenario per edge rule.

Every scenario runs twice, through both readings of SPEC 3: the plain-Python reference
(tests/reference.py) and the production derivation (DuckDB store + numba kernel), so the two can
catch each other's mistakes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from convoscope.store import EVENT_TYPES  # noqa: E402
from engine import derive_engine  # noqa: E402
from reference import Settings, derive_reference, make_id  # noqa: E402

Derive = Callable[..., dict]


@pytest.fixture(params=["reference", "engine"])
def derive(request: pytest.FixtureRequest) -> Derive:
    """Both readings of SPEC 3."""
    return derive_reference if request.param == "reference" else derive_engine

WORKED_EXAMPLE = Path(__file__).parent / "fixtures" / "worked-example.jsonl"
FIELDS = [
    "event_id",
    "type",
    "occurred_at",
    "customer_id",
    "brand",
    "channel",
    "text",
    "route",
    "ai_agent",
    "guides",
    "category",
    "subcategory",
    "reason",
    "transfer_rationale",
    "agent",
    "inbox",
]
DAY = datetime(2026, 5, 21)
S = timedelta(hours=2)
W = timedelta(hours=24)


def at(hhmm: str, day: int = 0, seconds: int = 0) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return DAY + timedelta(days=day, hours=hours, minutes=minutes, seconds=seconds)


def ev(event_id: str, type_: str, when: datetime, **fields: object) -> dict:
    """A normalised event of customer c1, brand default; messages default to channel chat."""
    event: dict = {name: None for name in FIELDS}
    event.update(event_id=event_id, type=type_, occurred_at=when, customer_id="c1", brand="default")
    if type_ in ("customer_message", "ai_message", "agent_message"):
        event["channel"] = "chat"
    event.update(fields)
    return event


def load_jsonl(path: Path) -> list[dict]:
    events = []
    for line in path.read_text().splitlines():
        raw = json.loads(line)
        event = {name: raw.get(name) for name in FIELDS}
        event["brand"] = event["brand"] or "default"
        instant = datetime.fromisoformat(raw["occurred_at"].replace("Z", "+00:00"))
        event["occurred_at"] = instant.astimezone(UTC).replace(tzinfo=None)
        events.append(event)
    return events


def closes(tables: dict, conversation_id: str | None = None) -> list[tuple[datetime, bool]]:
    return [
        (row["closed_at"], row["counted"])
        for row in tables["conversation_closes"]
        if conversation_id is None or row["conversation_id"] == conversation_id
    ]


def kinds(tables: dict) -> list[tuple[str, str]]:
    return [(row["event_id"], row["kind"]) for row in tables["anomalies"]]


def by_first_event(tables: dict, table: str, event_id: str) -> dict:
    prefix = {"sessions": "ses_", "contacts": "ctc_", "conversations": "cnv_"}[table]
    key = {"sessions": "session_id", "contacts": "contact_id", "conversations": "conversation_id"}[table]
    wanted = make_id(prefix, "default", "c1", event_id)
    (row,) = [r for r in tables[table] if r[key] == wanted]
    return row


# --- SPEC 3.5 and 3.7 ----------------------------------------------------------------------------


def test_identifier_example() -> None:
    assert make_id("ses_", "default", "c1", "e01") == "ses_4608735b637b1399"


def test_worked_example(derive: Derive) -> None:
    t = derive(load_jsonl(WORKED_EXAMPLE))
    assert t["anomalies"] == []

    (conv,) = t["conversations"]
    assert conv["conversation_id"] == "cnv_4608735b637b1399"
    assert conv["created_at"] == at("10:00")
    assert conv["times_reopened"] == 1
    assert conv["ended_at"] == at("17:25")
    assert (conv["session_count"], conv["contact_count"]) == (2, 1)
    assert conv["handled_by"] == "ai_then_team"
    assert (conv["first_channel"], conv["last_channel"], conv["channel_count"]) == ("chat", "chat", 1)
    # Times Closed 2: 12:15 (Session 1 ended) and 17:25 (the contact ended); the conversation_close
    # at 17:25 lands on the closed conversation and only moves the last close time.
    assert closes(t) == [(at("12:15"), True), (at("17:25"), False), (at("17:25"), True)]
    assert sum(counted for _, counted in closes(t)) == 2

    s1, s2 = sorted(t["sessions"], key=lambda r: r["created_at"])
    # Issue 26's feedback columns: empty without feedback events (tests/test_feedback_reference.py).
    assert s1.get("feedback") is None and s1.get("feedback_score") is None
    s1 = {k: v for k, v in s1.items() if k not in ("feedback", "feedback_score")}
    assert s1 == {
        "brand": "default",
        "customer_id": "c1",
        "session_id": "ses_4608735b637b1399",
        "conversation_id": "cnv_4608735b637b1399",
        "created_at": at("10:00"),
        "last_activity_at": at("10:15"),
        "ended_at": at("12:15"),
        "end_reason": "inactivity",
        "channel": "chat",
        "ai_agent": "Care Agent",
        "guides_used": "Order Status, Shipping Times",
        "responded": True,
        "handed_off": False,
        "handoff_category": None,
        "handoff_subcategory": None,
        "handoff_reason": None,
        "transfer_rationale": None,
        "recontacted": True,  # Session 2 was created 4h45m after Session 1 ended
        "recontact_known_at": at("12:15", day=1),
        "inbox": None,
    }
    assert s2["session_id"] == "ses_0df32044d9fc7c8e"
    assert (s2["created_at"], s2["ended_at"], s2["end_reason"]) == (at("17:00"), at("17:10"), "handoff")
    assert (s2["responded"], s2["handed_off"], s2["guides_used"]) == (True, True, "Refunds")
    assert s2["handoff_category"] == "handoff_transfer_detector"
    assert s2["handoff_subcategory"] == "refund_request"
    assert s2["handoff_reason"] == "Customer asks for a refund on a lost parcel"
    assert s2["transfer_rationale"] == "Refunds over $50 need a team member"

    (c1,) = t["contacts"]
    assert c1["contact_id"] == make_id("ctc_", "default", "c1", "e07")
    assert (c1["source"], c1["session_id"], c1["channel"]) == ("handoff", s2["session_id"], "chat")
    assert (c1["created_at"], c1["ended_at"], c1["end_reason"]) == (at("17:10"), at("17:25"), "contact_end")
    assert c1["first_response_at"] - c1["created_at"] == timedelta(seconds=120)
    assert (c1["agents"], c1["customer_messages"], c1["agent_messages"]) == ("sam", 0, 1)

    messages = [(m["session_id"], m["seq"], m["event_id"], m["speaker"]) for m in t["session_messages"]]
    assert messages == [
        ("ses_0df32044d9fc7c8e", 0, "e05", "customer"),
        ("ses_0df32044d9fc7c8e", 1, "e06", "ai"),
        ("ses_4608735b637b1399", 0, "e01", "customer"),
        ("ses_4608735b637b1399", 1, "e02", "ai"),
        ("ses_4608735b637b1399", 2, "e03", "customer"),
        ("ses_4608735b637b1399", 3, "e04", "ai"),
    ]


def test_result_does_not_depend_on_input_order(derive: Derive) -> None:
    events = load_jsonl(WORKED_EXAMPLE)
    assert derive(events[::-1]) == derive(events)


# --- Sessions and the "at or after an end" rule (SPEC 3, 3.1) ------------------------------------


def test_gap_of_exactly_s_ends_the_session_without_closing_the_conversation(derive: Derive) -> None:
    t = derive([ev("a", "customer_message", at("10:00")), ev("b", "customer_message", at("12:00"))])
    sessions = sorted((s["created_at"], s["ended_at"], s["end_reason"]) for s in t["sessions"])
    assert sessions == [(at("10:00"), at("12:00"), "inactivity"), (at("12:00"), at("14:00"), "inactivity")]
    (conv,) = t["conversations"]
    assert conv["times_reopened"] == 0  # an end and a start at 12:00 do not close it
    assert closes(t) == [(at("14:00"), True)]


def test_gap_just_under_s_stays_in_the_session(derive: Derive) -> None:
    t = derive(
        [ev("a", "customer_message", at("10:00")), ev("b", "customer_message", at("11:59", seconds=59))]
    )
    (session,) = t["sessions"]
    assert session["ended_at"] == at("13:59", seconds=59)


def test_handoff_without_open_session_is_a_one_event_session(derive: Derive) -> None:
    t = derive([ev("h", "handoff", at("10:00"), category="handoff_manual", ai_agent="Bot")])
    (session,) = t["sessions"]
    assert (session["created_at"], session["ended_at"], session["end_reason"]) == (at("10:00"),) * 2 + (
        "handoff",
    )
    assert (session["responded"], session["handed_off"], session["handoff_category"]) == (
        False,
        True,
        "handoff_manual",
    )
    assert session["ai_agent"] == "Bot" and session["channel"] is None
    (contact,) = t["contacts"]
    assert (contact["source"], contact["session_id"], contact["channel"]) == (
        "handoff",
        session["session_id"],
        None,
    )
    assert closes(t) == [(at("10:00", day=1), True)]  # contact: 10:00 + C; never closed at 10:00


def test_session_messages_exclude_handoffs_and_contact_messages(derive: Derive) -> None:
    t = derive(
        [
            ev("a", "customer_message", at("10:00"), text="hi"),
            ev("b", "ai_message", at("10:01"), text="hello"),
            ev("c", "handoff", at("10:02"), category="handoff_qc"),
            ev("d", "customer_message", at("10:03"), text="still there?"),
        ]
    )
    assert [(m["event_id"], m["speaker"], m["text"]) for m in t["session_messages"]] == [
        ("a", "customer", "hi"),
        ("b", "ai", "hello"),
    ]
    assert t["contacts"][0]["customer_messages"] == 1


def test_guides_distinct_in_order_of_first_use(derive: Derive) -> None:
    t = derive(
        [
            ev("a", "ai_message", at("10:00"), guides=["B", "A"]),
            ev("b", "ai_message", at("10:01"), guides=["A", "b", "C"]),
            ev("c", "ai_message", at("10:02"), guides=None),
        ]
    )
    assert t["sessions"][0]["guides_used"] == "B, A, b, C"


# --- Contacts (SPEC 3.2) -------------------------------------------------------------------------


def test_team_takeover_by_an_inbound_message_routed_to_the_team(derive: Derive) -> None:
    t = derive(
        [ev("a", "customer_message", at("10:00")), ev("b", "customer_message", at("10:05"), route="team")]
    )
    (session,) = t["sessions"]
    assert (session["ended_at"], session["end_reason"], session["handed_off"]) == (
        at("10:05"),
        "team_takeover",
        True,
    )
    assert (session["handoff_category"], session["handoff_subcategory"]) == ("team_takeover", "inbound")
    assert (session["handoff_reason"], session["transfer_rationale"]) == (None, None)
    (contact,) = t["contacts"]
    assert (contact["source"], contact["session_id"]) == ("inbound", session["session_id"])
    assert t["conversations"][0]["handled_by"] == "ai_then_team"
    assert closes(t) == [(at("10:05", day=1), True)]


def test_team_takeover_by_an_agent_message(derive: Derive) -> None:
    t = derive(
        [ev("a", "ai_message", at("10:00")), ev("b", "agent_message", at("10:05"), agent="sam")]
    )
    (session,) = t["sessions"]
    assert (session["end_reason"], session["handoff_subcategory"]) == ("team_takeover", "outbound")
    (contact,) = t["contacts"]
    assert (contact["source"], contact["session_id"], contact["first_response_at"]) == (
        "outbound",
        session["session_id"],
        None,
    )
    assert (contact["agents"], contact["agent_messages"]) == ("sam", 1)


def test_handoff_while_a_contact_is_open(derive: Derive) -> None:
    t = derive(
        [
            ev("a", "agent_message", at("10:00")),
            ev("b", "ai_message", at("10:05")),  # starts a session: the AI re-engages
            ev("c", "handoff", at("10:10"), category="handoff_qc"),
        ]
    )
    assert kinds(t) == [("c", "handoff_while_contact_open")]
    (session,) = t["sessions"]
    assert (session["end_reason"], session["ended_at"], session["handed_off"]) == (
        "handoff",
        at("10:10"),
        True,
    )
    (contact,) = t["contacts"]  # no second contact
    assert contact["last_activity_at"] == at("10:00")  # the handoff is not contact activity
    assert contact["session_id"] is None


def test_ai_message_while_contact_open_starts_a_session_and_customer_goes_to_contact(derive: Derive) -> None:
    t = derive(
        [
            ev("a", "customer_message", at("10:00"), route="team"),
            ev("b", "ai_message", at("10:01")),
            ev("c", "customer_message", at("10:02")),
        ]
    )
    (session,) = t["sessions"]
    assert session["created_at"] == at("10:01") and session["end_reason"] == "inactivity"
    assert session["ended_at"] == at("12:01")
    (contact,) = t["contacts"]
    assert (contact["source"], contact["customer_messages"], contact["last_activity_at"]) == (
        "inbound",
        2,
        at("10:02"),
    )
    assert t["conversations"][0]["handled_by"] == "ai_and_team"


def test_contact_activity_and_inactivity_end(derive: Derive) -> None:
    t = derive(
        [
            ev("a", "agent_message", at("10:00"), agent="sam"),
            ev("b", "customer_message", at("11:00")),
            ev("c", "agent_message", at("12:00"), agent="kim"),
            ev("d", "agent_message", at("12:30"), agent="sam"),
            ev("e", "contact_end", at("12:30", day=1)),  # exactly C after the last activity
        ]
    )
    (contact,) = t["contacts"]
    assert (contact["ended_at"], contact["end_reason"]) == (at("12:30", day=1), "inactivity")
    assert (contact["agents"], contact["customer_messages"], contact["agent_messages"]) == ("sam, kim", 1, 3)
    assert kinds(t) == [("e", "contact_end_without_open_contact")]


def test_first_response_of_an_inbound_contact(derive: Derive) -> None:
    t = derive(
        [
            ev("a", "customer_message", at("10:00"), route="team", channel="email"),
            ev("b", "agent_message", at("10:30"), channel="chat"),
            ev("c", "contact_end", at("10:40")),
        ]
    )
    (contact,) = t["contacts"]
    assert (contact["first_response_at"], contact["channel"], contact["last_activity_at"]) == (
        at("10:30"),
        "email",
        at("10:40"),
    )
    conv = t["conversations"][0]
    assert (conv["first_channel"], conv["last_channel"], conv["channel_count"]) == ("email", "chat", 2)
    assert conv["handled_by"] == "team_only"


# --- Routing (SPEC 3.4) --------------------------------------------------------------------------


def test_routing_follows_ai_channels_and_route(derive: Derive) -> None:
    settings = Settings(ai_channels=("chat",))
    t = derive(
        [
            ev("a", "customer_message", at("10:00"), channel="email"),  # not an AI channel: team
            ev("b", "contact_end", at("10:01")),
            ev("c", "customer_message", at("11:00"), channel="email", route="ai"),  # route wins
            ev("d", "customer_message", at("11:01"), channel="email"),  # joins the open session
        ],
        lambda brand: settings,
    )
    (contact,) = t["contacts"]
    assert contact["source"] == "inbound" and contact["session_id"] is None
    (session,) = t["sessions"]
    assert session["created_at"] == at("11:00") and session["last_activity_at"] == at("11:01")


def test_open_contact_takes_every_customer_message(derive: Derive) -> None:
    t = derive(
        [ev("a", "agent_message", at("10:00")), ev("b", "customer_message", at("10:01"), route="ai")]
    )
    assert t["sessions"] == [] and t["contacts"][0]["customer_messages"] == 1


# --- Conversations (SPEC 3.3) --------------------------------------------------------------------


def test_reopen_window_is_strict(derive: Derive) -> None:
    first = [ev("a", "customer_message", at("10:00"))]  # closes at 12:00
    inside = derive(first + [ev("b", "customer_message", at("12:00", day=1, seconds=-1))])
    (conv,) = inside["conversations"]
    assert conv["times_reopened"] == 1
    assert closes(inside) == [(at("12:00"), True), (at("14:00", day=1, seconds=-1), True)]

    on_edge = derive(first + [ev("b", "customer_message", at("12:00", day=1))])
    assert len(on_edge["conversations"]) == 2
    assert by_first_event(on_edge, "conversations", "b")["times_reopened"] == 0


def test_lazy_ends_in_time_order_close_at_the_last_one(derive: Derive) -> None:
    t = derive(
        [
            ev("a", "agent_message", at("10:00")),  # contact, expected end 10:00 + 1 day
            ev("b", "ai_message", at("11:00")),  # session, expected end 13:00
            ev("c", "customer_message", at("09:59", day=2)),  # before (10:00 + 1 day) + W
        ]
    )
    # The session ends first (13:00) and leaves the contact open: the conversation closes only when
    # the contact ends, a day after 10:00; the next message then reopens it.
    first = by_first_event(t, "conversations", "a")
    assert closes(t, first["conversation_id"]) == [(at("10:00", day=1), True), (at("11:59", day=2), True)]
    assert first["times_reopened"] == 1 and len(t["conversations"]) == 1
    assert first["ended_at"] == at("11:59", day=2)


def test_conversation_reopen_extends_the_window(derive: Derive) -> None:
    base = [ev("a", "customer_message", at("10:00"))]  # closes 12:00, window until day 1 12:00
    later = ev("c", "customer_message", at("09:00", day=2))
    without = derive(base + [later])
    assert len(without["conversations"]) == 2

    t = derive(base + [ev("r", "conversation_reopen", at("10:00", day=1)), later])
    (conv,) = t["conversations"]
    assert conv["times_reopened"] == 1  # the joining interaction reopens; the reopen event does not count
    assert t["anomalies"] == []


def test_conversation_reopen_after_the_window_passed_still_extends_it(derive: Derive) -> None:
    t = derive(
        [
            ev("a", "customer_message", at("10:00")),  # window ends day 1 12:00
            ev("r", "conversation_reopen", at("08:00", day=3)),
            ev("b", "customer_message", at("07:59", day=4)),
        ]
    )
    assert len(t["conversations"]) == 1 and t["conversations"][0]["times_reopened"] == 1


def test_conversation_reopen_on_an_open_conversation_changes_nothing(derive: Derive) -> None:
    base = [ev("a", "customer_message", at("10:00")), ev("b", "customer_message", at("11:00"))]
    with_reopen = base + [ev("r", "conversation_reopen", at("10:30"))]
    assert derive(with_reopen) == derive(base)


def test_reopen_without_conversation(derive: Derive) -> None:
    t = derive([ev("r", "conversation_reopen", at("10:00"))])
    assert kinds(t) == [("r", "reopen_without_conversation")]
    assert t["conversations"] == []


def test_conversation_close_ends_open_interactions(derive: Derive) -> None:
    t = derive(
        [
            ev("a", "agent_message", at("10:00")),
            ev("b", "ai_message", at("10:05")),
            ev("x", "conversation_close", at("10:10")),
        ]
    )
    assert [(r["end_reason"], r["ended_at"]) for r in t["sessions"] + t["contacts"]] == [
        ("conversation_close", at("10:10")),
        ("conversation_close", at("10:10")),
    ]
    assert t["sessions"][0]["handed_off"] is False
    assert t["contacts"][0]["last_activity_at"] == at("10:00")
    assert closes(t) == [(at("10:10"), True)]


def test_conversation_close_on_a_closed_conversation_within_its_window(derive: Derive) -> None:
    t = derive(
        [
            ev("a", "customer_message", at("10:00")),  # closes 12:00
            ev("x", "conversation_close", at("20:00")),  # moves the last close, not counted
            ev("b", "customer_message", at("19:00", day=1)),  # past 12:00 + W, before 20:00 + W
        ]
    )
    (conv,) = t["conversations"]
    assert closes(t) == [(at("12:00"), True), (at("20:00"), False), (at("21:00", day=1), True)]
    assert conv["times_reopened"] == 1
    assert conv["ended_at"] == at("21:00", day=1)
    assert t["anomalies"] == []


def test_close_anomalies(derive: Derive) -> None:
    t = derive(
        [
            ev("x1", "conversation_close", at("09:00")),  # no conversation yet
            ev("a", "customer_message", at("10:00")),  # closes 12:00; window ends day 1 12:00
            ev("x2", "conversation_close", at("12:00", day=1)),  # window no longer open
        ]
    )
    assert kinds(t) == [("x1", "close_without_conversation"), ("x2", "close_after_window")]
    assert closes(t) == [(at("12:00"), True)]


def test_contact_end_without_open_contact(derive: Derive) -> None:
    t = derive([ev("a", "ai_message", at("10:00")), ev("e", "contact_end", at("10:01"))])
    assert kinds(t) == [("e", "contact_end_without_open_contact")]
    assert t["contacts"] == []


# --- Session outcomes (SPEC 3.6) -----------------------------------------------------------------


def test_recontact_interval_is_inclusive(derive: Derive) -> None:
    base = [ev("a", "customer_message", at("10:00"))]  # ends 12:00, known 12:00 next day
    hit = derive(base + [ev("b", "customer_message", at("12:00", day=1))])
    assert by_first_event(hit, "sessions", "a")["recontacted"] is True
    miss = derive(base + [ev("b", "customer_message", at("12:00", day=1, seconds=1))])
    assert by_first_event(miss, "sessions", "a")["recontacted"] is False
    assert by_first_event(miss, "sessions", "a")["recontact_known_at"] == at("12:00", day=1)


def test_brands_and_customers_are_separate(derive: Derive) -> None:
    events = [
        ev("a", "customer_message", at("10:00")),
        ev("a", "customer_message", at("10:30"), brand="other"),
    ]
    events.append(ev("b", "customer_message", at("10:45"), customer_id="c2"))
    t = derive(
        events,
        lambda brand: Settings(session_inactivity=timedelta(minutes=10)) if brand == "other" else Settings(),
    )
    assert len(t["conversations"]) == 3
    other = [s for s in t["sessions"] if s["brand"] == "other"][0]
    assert other["ended_at"] == at("10:40")


# --- The optional field `inbox` (Appendix B; decisions 86 and 88) --------------------------------------


def inboxes(tables: dict, table: str) -> list[tuple[str, str | None]]:
    """(first event id, inbox) of each session or contact, by creation."""
    key, prefix = ("session_id", "ses_") if table == "sessions" else ("contact_id", "ctc_")
    first = {make_id(prefix, "default", "c1", e): e for e in "abcdefghijklmnopqrstuvwxyz"}
    return [(first[r[key]], r["inbox"]) for r in sorted(tables[table], key=lambda r: (r["created_at"], r[key]))]


def test_a_session_and_a_contact_take_the_inbox_of_their_first_event_that_has_one(derive: Derive) -> None:
    t = derive([
        ev("a", "customer_message", at("10:00")),
        ev("b", "ai_message", at("10:01"), inbox="web"),
        ev("c", "customer_message", at("10:02"), inbox="other"),
        ev("d", "handoff", at("10:03"), category="handoff_qc"),  # starts the contact, without an inbox
        ev("e", "agent_message", at("10:04"), inbox="mail"),
        ev("f", "contact_end", at("10:05"), inbox="late"),
    ])
    assert inboxes(t, "sessions") == [("a", "web")]
    # Not the session's: SPEC 4.4 hands the channel down to a handoff contact, Appendix B no inbox.
    assert inboxes(t, "contacts") == [("d", "mail")]


def test_a_handoff_contact_takes_the_handoffs_inbox_first(derive: Derive) -> None:
    t = derive([
        ev("a", "customer_message", at("10:00"), inbox="web"),
        ev("d", "handoff", at("10:03"), category="handoff_qc", inbox="queue"),
        ev("e", "agent_message", at("10:04"), inbox="mail"),
    ])
    assert inboxes(t, "sessions") == [("a", "web")]
    assert inboxes(t, "contacts") == [("d", "queue")]


def test_closes_and_reopens_give_no_interaction_an_inbox(derive: Derive) -> None:
    t = derive([
        ev("a", "customer_message", at("10:00")),
        ev("x", "conversation_close", at("10:30"), inbox="closed-by"),
        ev("r", "conversation_reopen", at("11:00"), inbox="reopened-by"),
        ev("b", "customer_message", at("11:30"), route="team"),
        ev("e", "contact_end", at("11:40")),
    ])
    assert inboxes(t, "sessions") == [("a", None)]
    assert inboxes(t, "contacts") == [("b", None)]
    (conv,) = t["conversations"]
    assert conv["inbox_at_created"] is None
    assert {row["inbox"] for row in t["conversation_closes"]} == {None}


def close_inboxes(tables: dict) -> list[tuple[datetime, bool, str | None]]:
    return [(r["closed_at"], r["counted"], r["inbox"]) for r in tables["conversation_closes"]]


def test_each_close_has_the_inbox_of_the_last_interaction_started_by_then(derive: Derive) -> None:
    t = derive([
        ev("a", "customer_message", at("10:00"), inbox="web"),  # session, closes 12:00
        ev("b", "customer_message", at("13:00"), route="team"),  # reopens: a contact without an inbox
        ev("e", "contact_end", at("13:05"), inbox="end"),  # the contact's first event with one
        ev("x", "conversation_close", at("14:00"), inbox="x"),  # moves the last close; read by none
    ])
    (conv,) = t["conversations"]
    assert conv["inbox_at_created"] == "web"
    assert inboxes(t, "contacts") == [("b", "end")]
    assert close_inboxes(t) == [(at("12:00"), True, "web"), (at("13:05"), True, "end"),
                                (at("14:00"), False, "end")]


def test_an_interaction_without_an_inbox_gives_none_and_no_fallback(derive: Derive) -> None:
    t = derive([
        ev("a", "customer_message", at("10:00"), inbox="web"),  # closes 12:00
        ev("b", "customer_message", at("13:00")),  # a second session, reopening it, without an inbox
    ])
    (conv,) = t["conversations"]
    assert conv["inbox_at_created"] == "web"
    assert close_inboxes(t) == [(at("12:00"), True, "web"), (at("15:00"), True, None)]


def test_interactions_starting_at_one_instant_go_by_event_order(derive: Derive) -> None:
    t = derive([
        ev("a", "customer_message", at("10:00"), inbox="ai-desk"),  # a session ...
        ev("b", "agent_message", at("10:00"), inbox="team-desk"),  # ... taken over at once
        ev("e", "contact_end", at("10:10")),
    ])
    (conv,) = t["conversations"]
    assert conv["inbox_at_created"] == "ai-desk"
    assert close_inboxes(t) == [(at("10:10"), True, "team-desk")]


def test_a_lone_handoff_makes_a_session_first_and_its_contact_last(derive: Derive) -> None:
    t = derive([
        ev("h", "handoff", at("10:00"), category="handoff_manual"),
        ev("i", "agent_message", at("10:01"), inbox="mail"),
        ev("j", "contact_end", at("10:02")),
    ])
    (session,) = t["sessions"]
    assert session["inbox"] is None
    (conv,) = t["conversations"]
    assert conv["inbox_at_created"] is None  # the session's: the first interaction
    assert close_inboxes(t) == [(at("10:02"), True, "mail")]  # the contact's: the last


# --- Invariants over random logs -----------------------------------------------------------------



# The reference reads SPEC 3 as it was before feedback (Appendix B); feedback's rules are checked by
# tests/test_feedback.py until tests/reference.py reads them too.
WITHOUT_FEEDBACK = tuple(t for t in EVENT_TYPES if t != "feedback")


@st.composite
def random_logs(draw: st.DrawFn) -> list[dict]:
    count = draw(st.integers(min_value=0, max_value=25))
    events = []
    for i in range(count):
        type_ = draw(st.sampled_from(WITHOUT_FEEDBACK))
        # Coarse steps (half hours over three days) so that ties and exact-S/C/W gaps are common.
        when = DAY + timedelta(minutes=30 * draw(st.integers(min_value=0, max_value=150)))
        fields: dict = {}
        if type_ == "customer_message":
            fields["route"] = draw(st.sampled_from([None, "ai", "team"]))
            fields["channel"] = draw(st.sampled_from(["chat", "email"]))
        if type_ == "handoff":
            fields["category"] = "handoff_manual"
        events.append(ev(f"e{i:02d}", type_, when, **fields))
    return events


@hypothesis_settings(max_examples=300, deadline=None)
@given(random_logs())
def test_invariants(events: list[dict]) -> None:
    short = Settings(
        session_inactivity=timedelta(hours=1),
        contact_inactivity=timedelta(hours=3),
        conversation_window=timedelta(hours=5),
        ai_channels=("chat",),
    )
    t = derive_reference(events, lambda brand: short)
    assert derive_reference(events[::-1], lambda brand: short) == t

    # Every message lands in exactly one interaction.
    counted_customer = sum(m["speaker"] == "customer" for m in t["session_messages"])
    counted_customer += sum(c["customer_messages"] for c in t["contacts"])
    assert counted_customer == sum(e["type"] == "customer_message" for e in events)
    assert sum(m["speaker"] == "ai" for m in t["session_messages"]) == sum(
        e["type"] == "ai_message" for e in events
    )
    assert sum(c["agent_messages"] for c in t["contacts"]) == sum(
        e["type"] == "agent_message" for e in events
    )

    # At most one open session and one open contact at a time.
    for table in ("sessions", "contacts"):
        spans = sorted((r["created_at"], r["ended_at"]) for r in t[table])
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))

    # Each conversation closes once more than it reopens (everything has ended by the last end).
    for conv in t["conversations"]:
        counted = [at_ for at_, c in closes(t, conv["conversation_id"]) if c]
        assert len(counted) == conv["times_reopened"] + 1
        assert max(counted) == conv["ended_at"]
