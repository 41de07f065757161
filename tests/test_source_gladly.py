"""The Gladly source (SOURCES.md 2): what each line of an export job and each AI Sessions Detail row
becomes. Small export directories are built from the sample's shapes (tests/fixtures/sources/gladly,
a copy of the shared sample)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from convoscope.errors import IngestError
from convoscope.sources import MAX_TEXT, Outcome
from convoscope.sources.gladly import read_export

SAMPLE = Path(__file__).parent / "fixtures" / "sources" / "gladly"
HEADER = ["Session ID", "Customer ID", "Conversation ID", "Channel", "Gladly Agent", "Guides Used", "Created Date",
          "Was Handed Off", "Was Resolved", "Was Recontacted Resolution - 24 Hours", "Was Responded To",
          "Handoff Category", "Handoff Subcategory", "Handoff Reason", "Transfer Rationale", "Conversation Link"]
CUSTOMER = "KgnVOMc2TbiA3zad6iVlWA"
AGENT_ID = "WmeA3Y51Q5ayCAaZ1AotIA"
AI = {"type": "SYSTEM", "id": "SIDEKICK_V2"}
BY_CUSTOMER = {"type": "CUSTOMER", "id": CUSTOMER}
BY_AGENT = {"type": "AGENT", "id": AGENT_ID}


# --- Building exports --------------------------------------------------------------------------------


def item(item_id: str, at: str, initiator: dict[str, str] | None = None, *, kind: str = "CHAT_MESSAGE",
         session: str | None = "S1", content_session: str | None = None, conversation: str | None = "C1",
         customer: str = CUSTOMER, **content: Any) -> dict[str, Any]:
    """A conversation item in the sample's shape (a chat message unless `kind` says otherwise)."""
    obj: dict[str, Any] = {"id": item_id, "customerId": customer, "timestamp": at}
    if conversation is not None:
        obj["conversationId"] = conversation
    if initiator is not None:
        obj["initiator"] = initiator
    if session is not None:
        obj["sessionId"] = session
    body: dict[str, Any] = {"type": kind}
    if content_session is not None:
        body["sessionId"] = content_session
    if kind in ("CHAT_MESSAGE", "SMS", "WHATSAPP", "FACEBOOK_MESSAGE", "INSTAGRAM_DIRECT", "TWITTER", "EMAIL"):
        body.setdefault("content", f"text of {item_id}")
    body.update(content)
    obj["content"] = body
    return obj


def row(session: str, handed_off: str = "true", *, agent: str = "Care Agent", guides: str = "Order Status, Refunds",
        category: str = "handoff_transfer_detector", subcategory: str = "refund_request",
        reason: str = "Customer wants a refund", rationale: str = "Refunds need a team member.",
        **other: str) -> dict[str, str]:
    """An AI Sessions Detail row in the sample's shape."""
    cells = {"Session ID": session, "Customer ID": CUSTOMER, "Conversation ID": "C1", "Channel": "chat",
             "Gladly Agent": agent, "Guides Used": guides, "Created Date": "2026-05-21", "Was Handed Off": handed_off,
             "Was Resolved": "false", "Was Recontacted Resolution - 24 Hours": "", "Was Responded To": "true",
             "Handoff Category": category, "Handoff Subcategory": subcategory, "Handoff Reason": reason,
             "Transfer Rationale": rationale, "Conversation Link": "https://acme.gladly.com/customer/x/conversation/C1"}
    cells.update(other)
    return cells


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def export(root: Path, items: list[dict[str, Any] | str], rows: list[dict[str, str]] | None = None, *,
           agents: bool = True) -> Path:
    """An export job's directory: the items (objects, or raw lines as given), agents.jsonl from the
    sample, and the rows as gladly-ai-sessions-detail.csv."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [line if isinstance(line, str) else json.dumps(line) for line in items]
    (root / "conversation_items.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if agents:
        (root / "agents.jsonl").write_bytes((SAMPLE / "export" / "agents.jsonl").read_bytes())
    if rows is not None:
        write_csv(root / "gladly-ai-sessions-detail.csv", rows)
    return root


def read(path: Path, **options: Any) -> list[Outcome]:
    return list(read_export(path, **options))


def events(outcomes: list[Outcome]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        for event in outcome.events:
            assert event["event_id"] not in found, event
            found[event["event_id"]] = event
    return found


def one(outcomes: list[Outcome]) -> Outcome:
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


def route(outcomes: list[Outcome], item_id: str) -> str:
    return str(events(outcomes)[f"gladly:{item_id}"]["route"])


def handoff(outcomes: list[Outcome], session: str) -> dict[str, Any]:
    return events(outcomes)[f"gladly:handoff:{session}"]


def assert_one_line(message: str | None) -> None:
    assert message
    assert not any(ch in message for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), message


# --- The sample --------------------------------------------------------------------------------------


def test_sample_export_gives_the_thirteen_expected_events() -> None:
    outcomes = read(SAMPLE / "export")
    expected = [json.loads(line) for line in (SAMPLE / "expected-events.jsonl").read_text().splitlines()]
    got = [event for outcome in outcomes for event in outcome.events]
    assert len(got) == 13
    assert sorted(got, key=lambda e: e["event_id"]) == sorted(expected, key=lambda e: e["event_id"])
    assert Counter(o.ignored for o in outcomes if o.ignored) == {"topic_change": 1, "note": 1, "not_handed_off": 1}
    assert [o for o in outcomes if o.rejected] == []
    assert sum(o.truncated for o in outcomes) == 0


def test_sample_outcomes_name_their_file_line_and_raw_text_in_file_order() -> None:
    outcomes = read(SAMPLE / "export")
    items = (SAMPLE / "export" / "conversation_items.jsonl").resolve()
    report = (SAMPLE / "export" / "gladly-ai-sessions-detail.csv").resolve()
    assert [(o.source, o.line) for o in outcomes] == [(str(items), n) for n in range(1, 15)] + [
        (str(report), 2), (str(report), 3)]
    assert [o.raw for o in outcomes[:14]] == items.read_text().splitlines()
    assert [o.raw for o in outcomes[14:]] == report.read_bytes().decode().split("\r\n")[1:3]
    note = outcomes[12]
    assert (note.ignored, note.occurred_at, note.events) == ("note", "2026-05-21T17:13:20.000Z", [])
    assert all(o.occurred_at is None for o in outcomes if o.events)


# --- Items (SOURCES.md 2.2) ----------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "channel", "field"), [
    ("CHAT_MESSAGE", "chat", "content"), ("SMS", "sms", "content"), ("WHATSAPP", "whatsapp", "content"),
    ("FACEBOOK_MESSAGE", "facebook", "content"), ("INSTAGRAM_DIRECT", "instagram", "content"),
    ("TWITTER", "twitter", "content"), ("EMAIL", "email", "content"), ("VOICE_AI_MESSAGE", "voice", "body"),
])
def test_message_types_give_their_channel_and_text(tmp_path: Path, kind: str, channel: str, field: str) -> None:
    extra = {"subject": "Where is my order"} if kind == "EMAIL" else {}
    outcomes = read(export(tmp_path, [item("m1", "2026-05-21T10:00:00.000Z", BY_CUSTOMER, kind=kind,
                                           **{field: "Hello there"}, **extra)]))
    assert one(outcomes).events == [{"event_id": "gladly:m1", "type": "customer_message",
                                     "occurred_at": "2026-05-21T10:00:00.000Z", "customer_id": CUSTOMER,
                                     "channel": channel, "text": "Hello there", "route": "team"}]


def test_initiators_decide_customer_agent_and_ai_messages(tmp_path: Path) -> None:
    outcomes = read(export(tmp_path, [
        item("c1", "2026-05-21T10:00:00.000Z", BY_CUSTOMER),
        item("a1", "2026-05-21T10:00:05.000Z", AI),
        item("t1", "2026-05-21T10:05:00.000Z", BY_AGENT),
    ]))
    found = events(outcomes)
    assert found["gladly:c1"]["type"] == "customer_message"
    assert found["gladly:a1"] == {"event_id": "gladly:a1", "type": "ai_message", "occurred_at": "2026-05-21T10:00:05.000Z",
                                  "customer_id": CUSTOMER, "channel": "chat", "text": "text of a1"}
    assert found["gladly:t1"]["type"] == "agent_message"
    assert found["gladly:t1"]["agent"] == "Amy Agent"


def test_agent_without_a_name_in_agents_jsonl_is_its_raw_id(tmp_path: Path) -> None:
    unknown = {"type": "AGENT", "id": "noSuchAgent00000000000"}
    found = events(read(export(tmp_path / "a", [item("t1", "2026-05-21T10:05:00.000Z", unknown)])))
    assert found["gladly:t1"]["agent"] == "noSuchAgent00000000000"
    without_file = events(read(export(tmp_path / "b", [item("t1", "2026-05-21T10:05:00.000Z", BY_AGENT)],
                                      agents=False)))
    assert without_file["gladly:t1"]["agent"] == AGENT_ID


@pytest.mark.parametrize(("initiator", "ignored"), [
    ({"type": "AUTOMATION", "id": "rule1"}, "automation"),
    ({"type": "INTERNAL", "id": "x"}, "other_initiator"),
    ({"type": "EXTERNAL", "id": "someone@example.com"}, "other_initiator"),
    ({"type": "SYSTEM", "id": "ROUTING"}, "system_other"),
])
def test_other_initiators_are_ignored(tmp_path: Path, initiator: dict[str, str], ignored: str) -> None:
    outcome = one(read(export(tmp_path, [item("x1", "2026-05-21T10:00:00.000Z", initiator)])))
    assert (outcome.events, outcome.ignored, outcome.rejected) == ([], ignored, None)
    assert outcome.occurred_at == "2026-05-21T10:00:00.000Z"


def test_api_messages_are_ai_replies_unless_ai_api_users_says_otherwise(tmp_path: Path) -> None:
    path = export(tmp_path, [item("p1", "2026-05-21T10:00:00.000Z", {"type": "API", "id": "bot-one"}),
                             item("p2", "2026-05-21T10:00:01.000Z", {"type": "API", "id": "crm-sync"})])
    assert [o.events[0]["type"] for o in read(path)] == ["ai_message", "ai_message"]
    listed = read(path, ai_api_users=("bot-one",))
    assert listed[0].events[0]["type"] == "ai_message"
    assert (listed[1].events, listed[1].ignored) == ([], "api_not_ai")
    assert [o.ignored for o in read(path, ai_api_users=())] == ["api_not_ai", "api_not_ai"]


def test_unknown_and_missing_initiators_are_rejected(tmp_path: Path) -> None:
    outcomes = read(export(tmp_path, [item("u1", "2026-05-21T10:00:00.000Z", {"type": "ROBOT", "id": "r"}),
                                      item("u2", "2026-05-21T10:00:00.000Z", None)]))
    assert [o.rejected for o in outcomes] == ["unknown_initiator", "no_initiator"]
    assert all(o.events == [] for o in outcomes)
    for outcome in outcomes:
        assert_one_line(outcome.message)


def test_phone_call_from_a_customer_goes_to_the_team_and_its_answer_is_an_agent_message(tmp_path: Path) -> None:
    call = item("call1", "2026-05-21T09:00:00.000Z", BY_CUSTOMER, kind="PHONE_CALL", session=None,
                startedAt="2026-05-21T09:00:00.000Z", answeredAt="2026-05-21T09:00:42.500Z",
                **{"from": "+14155335980", "to": "+18005550100"})
    call["responder"] = BY_AGENT
    outcome = one(read(export(tmp_path, [call])))
    assert outcome.events == [
        {"event_id": "gladly:call1", "type": "customer_message", "occurred_at": "2026-05-21T09:00:00.000Z",
         "customer_id": CUSTOMER, "channel": "voice", "route": "team"},
        {"event_id": "gladly:call1:answered", "type": "agent_message", "occurred_at": "2026-05-21T09:00:42.500Z",
         "customer_id": CUSTOMER, "channel": "voice", "agent": "Amy Agent"},
    ]


def test_phone_call_answer_needs_answered_at_and_an_agent_responder(tmp_path: Path) -> None:
    unanswered = item("call1", "2026-05-21T09:00:00.000Z", BY_CUSTOMER, kind="PHONE_CALL", session=None)
    unanswered["responder"] = BY_AGENT
    no_responder = item("call2", "2026-05-21T09:00:00.000Z", BY_CUSTOMER, kind="PHONE_CALL", session=None,
                        answeredAt="2026-05-21T09:00:42.500Z")
    outcomes = read(export(tmp_path, [unanswered, no_responder]))
    assert [[e["event_id"] for e in o.events] for o in outcomes] == [["gladly:call1"], ["gladly:call2"]]


def test_phone_call_by_an_agent_is_an_agent_message_and_others_are_ignored(tmp_path: Path) -> None:
    outcomes = read(export(tmp_path, [
        item("out1", "2026-05-21T09:00:00.000Z", BY_AGENT, kind="PHONE_CALL", session=None),
        item("sys1", "2026-05-21T09:00:00.000Z", {"type": "SYSTEM", "id": "IVR"}, kind="PHONE_CALL", session=None),
        item("none", "2026-05-21T09:00:00.000Z", None, kind="PHONE_CALL", session=None),
    ]))
    assert outcomes[0].events == [{"event_id": "gladly:out1", "type": "agent_message",
                                   "occurred_at": "2026-05-21T09:00:00.000Z", "customer_id": CUSTOMER,
                                   "channel": "voice", "agent": "Amy Agent"}]
    assert (outcomes[1].ignored, outcomes[2].rejected) == ("other_initiator", "no_initiator")


def test_voicemail_is_a_customer_message_to_the_team(tmp_path: Path) -> None:
    voicemail = item("vm1", "2026-05-21T09:00:00.000Z", BY_CUSTOMER, kind="VOICEMAIL", session=None,
                     startedAt="2026-05-21T09:00:00.000Z", recordingDuration=31)
    assert one(read(export(tmp_path, [voicemail]))).events == [
        {"event_id": "gladly:vm1", "type": "customer_message", "occurred_at": "2026-05-21T09:00:00.000Z",
         "customer_id": CUSTOMER, "channel": "voice", "route": "team"}]


def test_status_changes_close_reopen_or_are_ignored(tmp_path: Path) -> None:
    def change(item_id: str, status: str, initiator: dict[str, str]) -> dict[str, Any]:
        return item(item_id, "2026-05-21T11:00:00.000Z", initiator, kind="CONVERSATION_STATUS_CHANGE",
                    session=None, status=status)

    outcomes = read(export(tmp_path, [change("s1", "CLOSED", BY_AGENT), change("s2", "CLOSED", AI),
                                      change("s3", "OPEN", BY_AGENT), change("s4", "OPEN", BY_CUSTOMER),
                                      change("s5", "WAITING", BY_AGENT), change("s6", "SNOOZED", BY_AGENT)]))
    base = {"occurred_at": "2026-05-21T11:00:00.000Z", "customer_id": CUSTOMER}
    assert outcomes[0].events == [{"event_id": "gladly:s1", "type": "conversation_close", "agent": "Amy Agent", **base}]
    assert outcomes[1].events == [{"event_id": "gladly:s2", "type": "conversation_close", **base}]
    assert outcomes[2].events == [{"event_id": "gladly:s3", "type": "conversation_reopen", "agent": "Amy Agent", **base}]
    assert [o.ignored for o in outcomes[3:]] == ["status_other"] * 3


@pytest.mark.parametrize(("kind", "reason"), [("CONVERSATION_NOTE", "note"), ("TOPIC_CHANGE", "topic_change"),
                                              ("CUSTOMER_ACTIVITY", "customer_activity"), ("TASK", "task")])
def test_notes_topics_activities_and_tasks_are_ignored(tmp_path: Path, kind: str, reason: str) -> None:
    outcome = one(read(export(tmp_path, [item("n1", "2026-05-21T12:00:00.5+02:00", BY_AGENT, kind=kind)])))
    assert (outcome.events, outcome.ignored, outcome.occurred_at) == ([], reason, "2026-05-21T12:00:00.5+02:00")


def test_an_unknown_item_type_is_rejected(tmp_path: Path) -> None:
    outcome = one(read(export(tmp_path, [item("x1", "2026-05-21T10:00:00.000Z", BY_CUSTOMER, kind="HOLOGRAM")])))
    assert (outcome.events, outcome.rejected) == ([], "unknown_type")
    assert "HOLOGRAM" in str(outcome.message)
    assert outcome.occurred_at == "2026-05-21T10:00:00.000Z"


@pytest.mark.parametrize("missing", ["id", "customerId", "timestamp", "content.type"])
def test_an_item_without_a_required_field_is_rejected(tmp_path: Path, missing: str) -> None:
    obj = item("x1", "2026-05-21T10:00:00.000Z", BY_CUSTOMER)
    if missing == "content.type":
        del obj["content"]["type"]
    else:
        del obj[missing]
    outcome = one(read(export(tmp_path, [obj])))
    assert (outcome.events, outcome.rejected) == ([], "missing_field")
    assert f"`{missing}`" in str(outcome.message)
    assert_one_line(outcome.message)


@pytest.mark.parametrize("stamp", ["2026-05-21T10:00:00.000", "2026-05-21 10:00:00", "21/05/2026 10:00",
                                   "2026-02-30T10:00:00Z", "2026-05-21T10:00:00+25:00"])
def test_a_timestamp_without_a_zone_or_not_rfc_3339_is_rejected(tmp_path: Path, stamp: str) -> None:
    outcome = one(read(export(tmp_path, [item("x1", stamp, BY_CUSTOMER)])))
    assert (outcome.events, outcome.rejected, outcome.occurred_at) == ([], "bad_time", None)
    assert_one_line(outcome.message)


def test_lines_that_are_not_json_objects_are_rejected_and_blank_lines_are_no_record(tmp_path: Path) -> None:
    good = json.dumps(item("ok", "2026-05-21T10:00:00.000Z", BY_CUSTOMER))
    outcomes = read(export(tmp_path, ['{"id": "x1", "customerId": ', "", "[1, 2]", "   ", good]))
    assert [(o.line, o.rejected) for o in outcomes] == [(1, "not_json"), (3, "not_json"), (5, None)]
    assert outcomes[0].raw == '{"id": "x1", "customerId": '
    for outcome in outcomes[:2]:
        assert_one_line(outcome.message)


def test_lines_nested_too_deeply_or_not_utf8_are_rejected_without_stopping_the_read(tmp_path: Path) -> None:
    root = export(tmp_path, [])
    good = json.dumps(item("ok", "2026-05-21T10:00:00.000Z", BY_CUSTOMER)).encode()
    (root / "conversation_items.jsonl").write_bytes(b"[" * 100_000 + b"]" * 100_000 + b"\n" + b'{"id": "\xff"}\n'
                                                     + good + b"\n")
    outcomes = read(root)
    assert [o.rejected for o in outcomes] == ["not_json", "not_json", None]
    assert outcomes[1].raw == '{"id": "\ufffd"}'


def test_crlf_line_ends_are_not_part_of_the_raw_text(tmp_path: Path) -> None:
    root = export(tmp_path, [])
    line = json.dumps(item("m1", "2026-05-21T10:00:00.000Z", BY_CUSTOMER))
    (root / "conversation_items.jsonl").write_bytes((line + "\r\n").encode() * 2)
    assert [(o.line, o.raw) for o in read(root)] == [(1, line), (2, line)]


def test_messages_quote_values_cut_short_on_one_line(tmp_path: Path) -> None:
    long_type = "WEIRD\nTYPE\u2028" + "X" * 500
    outcome = one(read(export(tmp_path, [item("x1", "2026-05-21T10:00:00.000Z", BY_CUSTOMER, kind=long_type)])))
    assert outcome.rejected == "unknown_type"
    assert_one_line(outcome.message)
    assert "X" * 41 not in str(outcome.message)
    assert len(str(outcome.message)) < 250


def test_text_is_cut_at_100000_characters_and_counted(tmp_path: Path) -> None:
    outcomes = read(export(tmp_path, [
        item("long", "2026-05-21T10:00:00.000Z", BY_CUSTOMER, content="é" * (MAX_TEXT + 5)),
        item("exact", "2026-05-21T10:00:01.000Z", BY_CUSTOMER, content="a" * MAX_TEXT),
        item("empty", "2026-05-21T10:00:02.000Z", BY_CUSTOMER, content=""),
    ]))
    assert outcomes[0].events[0]["text"] == "é" * MAX_TEXT
    assert [o.truncated for o in outcomes] == [1, 0, 0]
    assert len(outcomes[1].events[0]["text"]) == MAX_TEXT
    assert "text" not in outcomes[2].events[0]


# --- AI sessions, routing and handoffs (SOURCES.md 2.3) -------------------------------------------------


def handed_off_session(session: str = "S1", **item_options: Any) -> list[dict[str, Any]]:
    """A customer message, two AI replies, then a customer message after the handoff (ids c1, a1, a2, c2,
    prefixed by the session unless it is S1)."""
    p = "" if session == "S1" else session
    return [item(f"{p}c1", "2026-05-21T17:00:00.000Z", BY_CUSTOMER, session=session, **item_options),
            item(f"{p}a1", "2026-05-21T17:01:00.250Z", AI, session=session, **item_options),
            item(f"{p}a2", "2026-05-21T17:10:00.480Z", AI, session=session, **item_options),
            item(f"{p}c2", "2026-05-21T17:10:31.000Z", BY_CUSTOMER, session=session, **item_options)]


def test_handoff_from_a_handed_off_row_at_the_last_ai_reply(tmp_path: Path) -> None:
    outcomes = read(export(tmp_path, handed_off_session(), [row("S1")]))
    assert handoff(outcomes, "S1") == {
        "event_id": "gladly:handoff:S1", "type": "handoff", "occurred_at": "2026-05-21T17:10:00.480Z",
        "customer_id": CUSTOMER, "ai_agent": "Care Agent", "category": "handoff_transfer_detector",
        "subcategory": "refund_request", "reason": "Customer wants a refund",
        "transfer_rationale": "Refunds need a team member."}
    assert [route(outcomes, "c1"), route(outcomes, "c2")] == ["ai", "team"]


def test_handoff_customer_id_is_the_items_not_the_csv_customer_id(tmp_path: Path) -> None:
    outcomes = read(export(tmp_path, handed_off_session(), [row("S1", **{"Customer ID": "mergedAwayProfile"})]))
    assert handoff(outcomes, "S1")["customer_id"] == CUSTOMER


@pytest.mark.parametrize(("items_session", "content_session", "conversation", "row_session"), [
    ("S1", "chatSession", "C1", "S1"),  # the top-level sessionId first
    (None, "chatSession", "C1", "chatSession"),  # else content.sessionId
    (None, None, "C1", "C1"),  # else the conversationId
])
def test_session_key_falls_back_from_session_id_to_content_then_conversation(
        tmp_path: Path, items_session: str | None, content_session: str | None, conversation: str,
        row_session: str) -> None:
    items = [item(i["id"].removeprefix("gladly:"), i["timestamp"], i["initiator"], session=items_session,
                  content_session=content_session, conversation=conversation)
             for i in handed_off_session()]
    outcomes = read(export(tmp_path, items, [row(row_session)]))
    assert handoff(outcomes, row_session)["occurred_at"] == "2026-05-21T17:10:00.480Z"
    assert [route(outcomes, "c1"), route(outcomes, "c2")] == ["ai", "team"]


def test_a_row_naming_a_fallback_key_that_a_top_level_session_id_overrides_matches_no_item(tmp_path: Path) -> None:
    items = [item("c1", "2026-05-21T17:00:00.000Z", BY_CUSTOMER, session="S1", content_session="chatSession")]
    outcomes = read(export(tmp_path, items, [row("chatSession")]))
    assert outcomes[-1].rejected == "no_items"
    assert outcomes[-1].events == []


def test_messages_outside_the_ai_session_key_go_to_the_team(tmp_path: Path) -> None:
    # As in the sample: a customer line with no top-level sessionId after the handoff has another key.
    items = [*handed_off_session(content_session="chatSession")[:3],
             item("c2", "2026-05-21T17:10:31.000Z", BY_CUSTOMER, session=None, content_session="chatSession"),
             item("other", "2026-05-21T16:00:00.000Z", BY_CUSTOMER, session="S9")]
    outcomes = read(export(tmp_path, items, [row("S1")]))
    assert [route(outcomes, "c1"), route(outcomes, "c2"), route(outcomes, "other")] == ["ai", "team", "team"]


def test_an_ai_session_without_a_row_routes_every_customer_message_to_the_ai(tmp_path: Path) -> None:
    outcomes = read(export(tmp_path, handed_off_session()))
    assert [route(outcomes, "c1"), route(outcomes, "c2")] == ["ai", "ai"]
    assert not any(e["type"] == "handoff" for e in events(outcomes).values())
    assert all("ai_agent" not in e and "guides" not in e for e in events(outcomes).values())


def test_a_row_that_was_not_handed_off_routes_to_the_ai_and_names_the_ai_agent(tmp_path: Path) -> None:
    outcomes = read(export(tmp_path, handed_off_session(), [row("S1", "false")]))
    assert outcomes[-1].ignored == "not_handed_off"
    assert [route(outcomes, "c1"), route(outcomes, "c2")] == ["ai", "ai"]
    found = events(outcomes)
    assert (found["gladly:a1"]["ai_agent"], found["gladly:a2"]["ai_agent"]) == ("Care Agent", "Care Agent")


def test_a_customer_message_at_the_handoff_instant_goes_to_the_ai_however_the_time_is_spelled(tmp_path: Path) -> None:
    items = [*handed_off_session(),
             item("same", "2026-05-21T17:10:00.48Z", BY_CUSTOMER),
             item("offset", "2026-05-21T19:10:00.480000+02:00", BY_CUSTOMER),
             item("later", "2026-05-21T17:10:00.481Z", BY_CUSTOMER)]
    outcomes = read(export(tmp_path, items, [row("S1")]))
    assert [route(outcomes, i) for i in ("same", "offset", "later")] == ["ai", "ai", "team"]


def test_the_last_ai_reply_is_the_latest_instant_not_the_largest_string(tmp_path: Path) -> None:
    items = [item("c1", "2026-05-21T10:00:00Z", BY_CUSTOMER),
             item("a1", "2026-05-21T10:00:05.5Z", AI),
             item("a2", "2026-05-21T10:00:05Z", AI),  # a larger string, an earlier instant
             item("a3", "2026-05-21T11:00:00+02:00", AI),  # 09:00 UTC
             item("c2", "2026-05-21T10:00:05.2Z", BY_CUSTOMER)]
    outcomes = read(export(tmp_path, items, [row("S1")]))
    assert handoff(outcomes, "S1")["occurred_at"] == "2026-05-21T10:00:05.5Z"
    assert route(outcomes, "c2") == "ai"


def test_without_an_ai_reply_the_handoff_is_at_the_first_customer_message(tmp_path: Path) -> None:
    items = [item("c2", "2026-05-21T17:05:00.000Z", BY_CUSTOMER),
             item("c1", "2026-05-21T17:00:00.1Z", BY_CUSTOMER),
             item("c3", "2026-05-21T19:03:00+02:00", BY_CUSTOMER),
             item("t1", "2026-05-21T17:06:00.000Z", BY_AGENT)]
    outcomes = read(export(tmp_path, items, [row("S1")]))
    assert handoff(outcomes, "S1")["occurred_at"] == "2026-05-21T17:00:00.1Z"
    assert [route(outcomes, i) for i in ("c1", "c2", "c3")] == ["ai", "team", "team"]


def test_a_handed_off_row_with_neither_ai_reply_nor_customer_message_is_rejected(tmp_path: Path) -> None:
    outcomes = read(export(tmp_path, [item("t1", "2026-05-21T17:06:00.000Z", BY_AGENT)], [row("S1")]))
    report = outcomes[-1]
    assert (report.events, report.rejected) == ([], "no_handoff_time")
    assert_one_line(report.message)


def test_a_row_whose_session_has_no_item_is_rejected(tmp_path: Path) -> None:
    for handed_off in ("true", "false"):
        outcomes = read(export(tmp_path / handed_off, handed_off_session(), [row("S404", handed_off)]))
        assert (outcomes[-1].rejected, outcomes[-1].events) == ("no_items", [])
        assert "S404" in str(outcomes[-1].message)


def test_rejected_items_do_not_count_as_the_items_of_a_session(tmp_path: Path) -> None:
    items = [item("u1", "2026-05-21T17:00:00.000Z", {"type": "ROBOT", "id": "r"}, session="S7"),
             item("u2", "2026-05-21T17:00:01.000Z", BY_CUSTOMER, kind="HOLOGRAM", session="S7")]
    outcomes = read(export(tmp_path, items, [row("S7")]))
    assert [o.rejected for o in outcomes] == ["unknown_initiator", "unknown_type", "no_items"]


def test_a_session_id_shared_by_two_customers_is_rejected(tmp_path: Path) -> None:
    items = [*handed_off_session(), item("z1", "2026-05-21T17:00:00.000Z", BY_CUSTOMER, customer="otherCustomer")]
    outcomes = read(export(tmp_path, items, [row("S1")]))
    assert outcomes[-1].rejected == "ambiguous_session"
    assert not any(e["type"] == "handoff" for e in events(outcomes).values())


def test_identical_repeated_rows_count_once(tmp_path: Path) -> None:
    root = export(tmp_path, handed_off_session(), [row("S1"), row("S1")])
    write_csv(root / "later-download.csv", [row("S1", **{"Was Recontacted Resolution - 24 Hours": "false"})])
    outcomes = read(root)
    reports = [o for o in outcomes if o.source.endswith(".csv")]
    # Each repeat gives the same handoff again, which the ingest counts as a duplicate of the first.
    assert [(Path(o.source).name, o.line, o.ignored, len(o.events)) for o in reports] == [
        ("gladly-ai-sessions-detail.csv", 2, None, 1), ("gladly-ai-sessions-detail.csv", 3, None, 1),
        ("later-download.csv", 2, None, 1)]
    assert reports[0].events == reports[1].events == reports[2].events
    assert reports[0].events[0]["event_id"] == "gladly:handoff:S1"
    assert not any(o.rejected for o in outcomes)


def test_rows_that_differ_for_one_session_are_all_rejected_whatever_the_file_order(tmp_path: Path) -> None:
    found = []
    for first, second in (("a.csv", "b.csv"), ("b.csv", "a.csv")):
        root = export(tmp_path / first, handed_off_session())
        write_csv(root / first, [row("S1", category="handoff_manual")])
        write_csv(root / second, [row("S1", category="handoff_qc")])
        outcomes = read(root)
        assert [o.rejected for o in outcomes if o.source.endswith(".csv")] == ["conflicting_rows"] * 2
        for outcome in outcomes[-2:]:
            assert_one_line(outcome.message)
        found.append(events(outcomes))
    assert found[0] == found[1]
    assert "gladly:handoff:S1" not in found[0]
    assert all("ai_agent" not in e for e in found[0].values())
    assert [found[0]["gladly:c1"]["route"], found[0]["gladly:c2"]["route"]] == ["ai", "ai"]  # an ai_message has it


@pytest.mark.parametrize(("cell", "handed_off"), [("true", True), ("TRUE", True), ("True", True), ("false", False),
                                                  ("FALSE", False), ("", False)])
def test_was_handed_off_is_read_in_any_case(tmp_path: Path, cell: str, handed_off: bool) -> None:
    outcomes = read(export(tmp_path, handed_off_session(), [row("S1", cell)]))
    assert ("gladly:handoff:S1" in events(outcomes)) is handed_off
    assert outcomes[-1].ignored == (None if handed_off else "not_handed_off")


def test_empty_category_is_unspecified_and_empty_optional_cells_are_absent(tmp_path: Path) -> None:
    outcomes = read(export(tmp_path, handed_off_session(),
                           [row("S1", agent="", guides="", category="", subcategory="", reason="", rationale="")]))
    assert handoff(outcomes, "S1") == {"event_id": "gladly:handoff:S1", "type": "handoff",
                                       "occurred_at": "2026-05-21T17:10:00.480Z", "customer_id": CUSTOMER,
                                       "category": "unspecified"}
    found = events(outcomes)
    assert all("ai_agent" not in found[f"gladly:{i}"] and "guides" not in found[f"gladly:{i}"] for i in ("a1", "a2"))


def test_ai_agent_of_every_ai_reply_and_guides_on_the_first_only(tmp_path: Path) -> None:
    outcomes = read(export(tmp_path, handed_off_session(), [row("S1", guides="Order Status, Refunds, Returns")]))
    found = events(outcomes)
    assert found["gladly:a1"]["ai_agent"] == found["gladly:a2"]["ai_agent"] == "Care Agent"
    assert found["gladly:a1"]["guides"] == ["Order Status", "Refunds", "Returns"]
    assert "guides" not in found["gladly:a2"]


def test_the_first_ai_reply_is_by_instant_then_id_not_by_file_order(tmp_path: Path) -> None:
    items = [item("c1", "2026-05-21T10:00:00.000Z", BY_CUSTOMER),
             item("late", "2026-05-21T10:00:09.000Z", AI),
             item("b", "2026-05-21T10:00:01.1Z", AI),
             item("a", "2026-05-21T10:00:01.100Z", AI),  # the same instant as b: the smaller id wins
             item("zone", "2026-05-21T12:00:01.2+02:00", AI)]  # a larger string, a later instant
    found = events(read(export(tmp_path, items, [row("S1", "false", guides="Order Status")])))
    assert [i for i in ("late", "b", "a", "zone") if "guides" in found[f"gladly:{i}"]] == ["a"]
    assert found["gladly:a"]["guides"] == ["Order Status"]


def test_csv_rows_keep_their_first_physical_line_and_raw_text(tmp_path: Path) -> None:
    root = export(tmp_path, [*handed_off_session(), *handed_off_session("S2")[:1]])
    header = [*HEADER, "Message History"]
    write_csv(root / "with-messages.csv", [
        row("S1", **{"Message History": "[17:00] Customer: It did not arrive\r\n[17:01] AI: Sorry!"}),
        row("S2", "false", **{"Message History": "one line"})], header)
    outcomes = [o for o in read(root) if o.source.endswith(".csv")]
    assert [o.line for o in outcomes] == [2, 4]
    text = (root / "with-messages.csv").read_bytes().decode()
    assert outcomes[0].raw + "\r\n" + outcomes[1].raw + "\r\n" == text.split("\r\n", 1)[1]
    assert "It did not arrive\r\n[17:01]" in outcomes[0].raw
    assert outcomes[0].events[0]["type"] == "handoff"
    assert outcomes[1].ignored == "not_handed_off"
    assert outcomes[0].source == str((root / "with-messages.csv").resolve())


def test_a_csv_with_bare_carriage_returns_is_read_line_by_line(tmp_path: Path) -> None:
    root = export(tmp_path, [*handed_off_session(), *handed_off_session("S2")])
    (root / "old-mac.csv").write_bytes(b"Session ID,Handoff Category,Was Handed Off\rS1,,true\r\rS2,,false\r")
    outcomes = [o for o in read(root) if o.source.endswith(".csv")]
    assert [(o.line, o.raw, o.ignored) for o in outcomes] == [(2, "S1,,true", None), (4, "S2,,false", "not_handed_off")]
    assert outcomes[0].events[0]["category"] == "unspecified"


def test_only_csv_files_with_session_id_and_handoff_category_are_read(tmp_path: Path) -> None:
    root = export(tmp_path, handed_off_session())
    (root / "notes.csv").write_text("Session ID,Comment\r\nS1,hello\r\n")
    write_csv(root / "sessions.csv", [row("S1")])
    outcomes = read(root)
    assert {Path(o.source).name for o in outcomes} == {"conversation_items.jsonl", "sessions.csv"}


def test_a_row_with_the_wrong_number_of_cells_or_no_session_id_is_rejected(tmp_path: Path) -> None:
    root = export(tmp_path, handed_off_session())
    write_csv(root / "sessions.csv", [row(""), row("S1")])
    with (root / "sessions.csv").open("a", newline="") as f:
        f.write("S1,short,row\r\n")
    outcomes = [o for o in read(root) if o.source.endswith(".csv")]
    assert [(o.line, o.rejected) for o in outcomes] == [(2, "no_session"), (3, None), (4, "bad_row")]
    assert outcomes[2].raw == "S1,short,row"


# --- The directory -------------------------------------------------------------------------------------


def test_a_directory_without_conversation_items_raises_an_ingest_error(tmp_path: Path) -> None:
    (tmp_path / "agents.jsonl").write_text("")
    with pytest.raises(IngestError, match="conversation_items.jsonl") as raised:
        read_export(tmp_path)
    assert_one_line(raised.value.message)


def test_an_items_file_that_cannot_be_read_raises_an_ingest_error_at_once(tmp_path: Path) -> None:
    (tmp_path / "conversation_items.jsonl").mkdir()
    with pytest.raises(IngestError, match="cannot read"):
        read_export(tmp_path)


def test_a_missing_path_or_a_file_raises_an_ingest_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="does not exist"):
        read_export(tmp_path / "nowhere")
    root = export(tmp_path / "job", [])
    with pytest.raises(IngestError, match="not a directory"):
        read_export(root / "conversation_items.jsonl")
