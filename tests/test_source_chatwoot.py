"""The Chatwoot source (SOURCES.md 1): what each webhook body, backfill message and capture line becomes.

Records are the sample's own (tests/fixtures/sources/chatwoot, a copy of shared/samples/sources), changed
one field at a time, so that every test speaks Chatwoot's shapes and nothing else.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from convoscope.sources import MAX_TEXT, Outcome
from convoscope.sources.chatwoot import channel_of, map_backfill, map_webhook, read_capture

SAMPLES = Path(__file__).parent / "fixtures" / "sources" / "chatwoot"
WEBHOOKS = SAMPLES / "webhooks.jsonl"
BACKFILL = SAMPLES / "backfill.jsonl"
EXPECTED = [json.loads(line) for line in (SAMPLES / "expected-events.jsonl").read_text().splitlines()]
BODIES = [json.loads(line) for line in WEBHOOKS.read_text().splitlines()]
RECORDS = [json.loads(line) for line in BACKFILL.read_text().splitlines()]

# Sample records by what they are (line numbers of webhooks.jsonl, from 1).
INCOMING = BODIES[2]  # message 5844, from the contact
AI_REPLY = BODIES[3]  # message 5847, from the Captain assistant Ava
AGENT_REPLY = BODIES[17]  # message 5867, from the user Sam Rivera
CLOSE = BODIES[6]  # conversation 276, pending → resolved
HANDOFF = BODIES[14]  # conversation 277, pending → open
CONVERSATION = RECORDS[0]["conversation"]  # conversation 276 as the REST API lists it
REST_INCOMING = RECORDS[0]["messages"][1]  # message 5844 as the REST API gives it
REST_AI_REPLY = RECORDS[0]["messages"][2]  # message 5847
REST_AGENT_REPLY = RECORDS[1]["messages"][7]  # message 5867
BREAKS = re.compile("[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
SOURCE = "webhook:chatwoot:test"


def changed(record: dict[str, Any], *changes: tuple[str, Any]) -> dict[str, Any]:
    """A deep copy of a record with values set (or, given `...`, removed) at dotted paths."""
    record = copy.deepcopy(record)
    for path, value in changes:
        *parents, key = path.split(".")
        node = record
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is ...:
            node.pop(key, None)
        else:
            node[key] = value
    return record


def webhook(body: dict[str, Any]) -> Outcome:
    return map_webhook(json.dumps(body).encode(), source=SOURCE)


def backfill(message: dict[str, Any], conversation: dict[str, Any] = CONVERSATION) -> Outcome:
    [outcome] = map_backfill(conversation, [message], source="/captures/backfill.jsonl", line=7)
    return outcome


def the_event(outcome: Outcome) -> dict[str, Any]:
    assert outcome.rejected is None, outcome.message
    assert outcome.ignored is None
    [event] = outcome.events
    return event


def assert_rejected(outcome: Outcome, code: str) -> None:
    assert (outcome.rejected, outcome.events, outcome.ignored) == (code, [], None), outcome.message
    assert outcome.message and not BREAKS.search(outcome.message)
    assert len(outcome.message) < 300


def assert_ignored(outcome: Outcome, reason: str) -> None:
    assert (outcome.ignored, outcome.events, outcome.rejected) == (reason, [], None), outcome.message


# --- the samples --------------------------------------------------------------------------------


def test_webhooks_sample_gives_the_expected_events() -> None:
    outcomes = list(read_capture(WEBHOOKS))
    assert [o.line for o in outcomes] == list(range(1, 24))
    assert {o.source for o in outcomes} == {str(WEBHOOKS.resolve())}
    assert [e for o in outcomes for e in o.events] == EXPECTED
    assert Counter(o.ignored for o in outcomes if o.ignored) == {
        "conversation_updated": 3, "conversation_created": 2, "private_note": 2, "template": 1,
        "message_updated": 1,
    }
    assert not [o for o in outcomes if o.rejected]
    assert [o.raw for o in outcomes] == WEBHOOKS.read_text().splitlines()


def test_backfill_sample_gives_the_same_message_events() -> None:
    outcomes = list(read_capture(BACKFILL))
    messages = [e for e in EXPECTED if e["type"] not in ("handoff", "conversation_close")]
    assert len(messages) == 11
    assert [e for o in outcomes for e in o.events] == messages
    assert Counter(o.ignored for o in outcomes if o.ignored) == {"activity": 3, "private_note": 2, "template": 1}
    assert not [o for o in outcomes if o.rejected]
    assert [o.line for o in outcomes] == [1] * 6 + [2] * 11


def test_a_backfill_message_keeps_a_raw_record_that_can_be_ingested_alone() -> None:
    outcomes = list(read_capture(BACKFILL))
    for outcome, message in zip(outcomes, RECORDS[0]["messages"] + RECORDS[1]["messages"], strict=True):
        raw = json.loads(outcome.raw)
        assert raw["messages"] == [message]
        assert raw["conversation"]["id"] == message["conversation_id"]
        assert outcome.raw == json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
        [again] = map_backfill(raw["conversation"], raw["messages"], source=outcome.source, line=outcome.line)
        assert again == outcome


def test_ignored_records_keep_their_own_time() -> None:
    by_line = {o.line: o for o in read_capture(WEBHOOKS)}
    assert by_line[2].occurred_at == "2026-05-21T10:00:00Z"  # the template message
    assert by_line[1].occurred_at == "2026-05-21T10:00:00.412Z"  # conversation_created: its updated_at
    assert all(o.occurred_at is None for o in by_line.values() if o.events)


# --- messages: SOURCES.md 1.2, each row, on both inputs ------------------------------------------


def test_incoming_becomes_a_customer_message() -> None:
    expected = EXPECTED[0]
    assert the_event(webhook(INCOMING)) == expected
    assert the_event(backfill(REST_INCOMING)) == expected
    assert the_event(webhook(changed(INCOMING, ("sender", None)))) == expected  # the row asks no sender


def test_outgoing_from_a_user_is_an_agent_message_with_the_agent() -> None:
    event = the_event(webhook(AGENT_REPLY))
    assert (event["type"], event["agent"]) == ("agent_message", "Sam Rivera")
    assert "ai_agent" not in event
    conversation = RECORDS[1]["conversation"]
    assert the_event(backfill(REST_AGENT_REPLY, conversation)) == event


@pytest.mark.parametrize("sender_type", ["agent_bot", "captain_assistant"])
def test_outgoing_from_a_bot_or_captain_is_an_ai_message_with_the_ai_agent(sender_type: str) -> None:
    for outcome in (webhook(changed(AI_REPLY, ("sender.type", sender_type))),
                    backfill(changed(REST_AI_REPLY, ("sender.type", sender_type)))):
        event = the_event(outcome)
        assert (event["type"], event["ai_agent"]) == ("ai_message", "Ava")
        assert "agent" not in event


def test_a_sender_without_a_name_leaves_the_author_out_and_a_long_one_is_cut() -> None:
    assert "ai_agent" not in the_event(webhook(changed(AI_REPLY, ("sender.name", ...))))
    assert "agent" not in the_event(webhook(changed(AGENT_REPLY, ("sender.name", "  "))))
    assert the_event(webhook(changed(AGENT_REPLY, ("sender.name", "S" * 250))))["agent"] == "S" * 200


@pytest.mark.parametrize(("webhook_kind", "rest_kind"), [("activity", 2), ("template", 3)])
def test_activity_and_template_messages_are_ignored(webhook_kind: str, rest_kind: int) -> None:
    assert_ignored(webhook(changed(INCOMING, ("message_type", webhook_kind))), webhook_kind)
    assert_ignored(backfill(changed(REST_INCOMING, ("message_type", rest_kind))), webhook_kind)
    # The first row wins: a template needs none of the fields an event needs.
    assert_ignored(webhook(changed(INCOMING, ("message_type", webhook_kind), ("id", ...), ("account", ...))),
                   webhook_kind)


def test_private_notes_are_ignored_whoever_wrote_them() -> None:
    for body in (INCOMING, AI_REPLY, AGENT_REPLY):
        assert_ignored(webhook(changed(body, ("private", True))), "private_note")
    assert_ignored(backfill(changed(REST_AI_REPLY, ("private", True))), "private_note")
    # A template comes first (row 1), whether or not it is private.
    assert_ignored(webhook(changed(INCOMING, ("private", True), ("message_type", "template"))), "template")


def test_deleted_messages_are_ignored() -> None:
    deleted = {"deleted": True}
    assert_ignored(webhook(changed(INCOMING, ("content_attributes", deleted))), "deleted")
    assert_ignored(backfill(changed(REST_AGENT_REPLY, ("content_attributes", deleted))), "deleted")
    assert the_event(webhook(changed(INCOMING, ("content_attributes", {"deleted": False}))))


def test_outgoing_without_a_sender_is_an_automation_and_ignored() -> None:
    assert_ignored(webhook(changed(AGENT_REPLY, ("sender", None))), "automation")
    assert_ignored(backfill(changed(REST_AGENT_REPLY, ("sender", ...))), "automation")  # the REST view omits it


@pytest.mark.parametrize("kind", ["story", 4, -1, True, "Incoming", 1.0])
def test_another_kind_is_rejected(kind: Any) -> None:
    assert_rejected(webhook(changed(INCOMING, ("message_type", kind))), "unknown_kind")
    assert_rejected(backfill(changed(REST_INCOMING, ("message_type", kind))), "unknown_kind")


def test_a_message_without_a_kind_is_rejected() -> None:
    assert_rejected(webhook(changed(INCOMING, ("message_type", ...))), "missing_field")


@pytest.mark.parametrize("sender", [{"id": 1201, "name": "Maya Okafor", "type": "contact"},
                                    {"id": 7, "name": "Sam Rivera"}, "Sam Rivera"])
def test_outgoing_from_another_sender_type_is_rejected(sender: Any) -> None:
    outcome = webhook(changed(AGENT_REPLY, ("sender", sender)))
    assert_rejected(outcome, "unknown_sender")
    assert_rejected(backfill(changed(REST_AGENT_REPLY, ("sender", sender))), "unknown_sender")
    assert outcome.occurred_at == "2026-05-21T17:10:03Z"


@pytest.mark.parametrize("path", ["id", "created_at", "account", "account.id", "conversation.meta.sender.id",
                                  "conversation.meta", "conversation.channel", "conversation"])
def test_a_webhook_message_without_a_field_of_its_event_is_rejected(path: str) -> None:
    for value in (..., None):
        assert_rejected(webhook(changed(AI_REPLY, (path, value))), "missing_field")


@pytest.mark.parametrize(("path", "on"), [("id", "message"), ("created_at", "message"),
                                          ("account_id", "conversation"), ("meta.sender.id", "conversation"),
                                          ("meta.channel", "conversation")])
def test_a_backfill_message_without_a_field_of_its_event_is_rejected(path: str, on: str) -> None:
    if on == "message":
        outcome = backfill(changed(REST_AI_REPLY, (path, ...)))
    else:
        outcome = backfill(REST_AI_REPLY, changed(CONVERSATION, (path, None)))
    assert_rejected(outcome, "missing_field")


def test_a_backfill_message_that_cannot_be_mapped_is_rejected_on_its_own() -> None:
    messages = [REST_INCOMING, changed(REST_AI_REPLY, ("created_at", "soon")), RECORDS[0]["messages"][0]]
    outcomes = map_backfill(CONVERSATION, messages, source="x", line=1)
    assert [(bool(o.events), o.rejected, o.ignored) for o in outcomes] == [
        (True, None, None), (False, "bad_time", None), (False, None, "template")]


@pytest.mark.parametrize("value", ["5847x", -5847, 5847.0, "05847", True, {"id": 5847}])
def test_message_and_account_ids_must_be_whole_numbers(value: Any) -> None:
    assert_rejected(webhook(changed(AI_REPLY, ("id", value))), "bad_id")
    assert_rejected(webhook(changed(AI_REPLY, ("account.id", value))), "bad_id")
    assert_rejected(backfill(REST_AI_REPLY, changed(CONVERSATION, ("account_id", value))), "bad_id")


def test_ids_given_as_decimal_strings_give_the_same_event() -> None:
    event = the_event(webhook(changed(AI_REPLY, ("id", "5847"), ("account.id", "3"))))
    assert event == EXPECTED[1]


# --- customer ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "customer"), [(1201, "1201"), ("1201", "1201"), (0, "0"), ("0", "0"),
                                                 (12345678901234567890, "12345678901234567890")])
def test_customer_id_is_the_contact_id_in_decimal(value: Any, customer: str) -> None:
    assert the_event(webhook(changed(INCOMING, ("conversation.meta.sender.id", value))))["customer_id"] == customer
    conversation = changed(CONVERSATION, ("meta.sender.id", value))
    assert the_event(backfill(REST_INCOMING, conversation))["customer_id"] == customer


@pytest.mark.parametrize("value", ["01201", "00", "12a", "crm-8812", " 1201", "1201 ", "-1201", -1201, 1201.0,
                                   "1e3", "١٢٠١", "", True, [1201], {"id": 1201}])
def test_a_customer_id_that_is_not_a_canonical_number_is_rejected(value: Any) -> None:
    assert_rejected(webhook(changed(INCOMING, ("conversation.meta.sender.id", value))), "bad_customer_id")
    conversation = changed(CONVERSATION, ("meta.sender.id", value))
    assert_rejected(backfill(REST_INCOMING, conversation), "bad_customer_id")


def test_the_customer_is_the_conversation_contact_not_the_sender() -> None:
    body = changed(INCOMING, ("sender.id", 99))
    assert the_event(webhook(body))["customer_id"] == "1201"


# --- times ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("created_at", "occurred_at"), [
    ("2026-05-21T10:00:05.412Z", "2026-05-21T10:00:05Z"),
    ("2026-05-21T10:00:05.999999Z", "2026-05-21T10:00:05Z"),  # cut, not rounded to the next second
    ("2026-05-21T10:00:05Z", "2026-05-21T10:00:05Z"),
    ("2026-05-21T12:00:05.412+02:00", "2026-05-21T10:00:05Z"),
    ("2026-05-21T00:30:05-05:30", "2026-05-21T06:00:05Z"),
    ("2020-03-03 13:05:57 UTC", "2020-03-03T13:05:57Z"),  # old versions
])
def test_a_webhook_message_time_is_whole_seconds_utc(created_at: str, occurred_at: str) -> None:
    outcome = webhook(changed(INCOMING, ("created_at", created_at)))
    assert the_event(outcome)["occurred_at"] == occurred_at


@pytest.mark.parametrize(("created_at", "occurred_at"), [
    (1779357605, "2026-05-21T10:00:05Z"), (1583240757, "2020-03-03T13:05:57Z"),
    (1779357605.9, "2026-05-21T10:00:05Z"),
])
def test_a_backfill_message_time_is_epoch_seconds(created_at: float, occurred_at: str) -> None:
    assert the_event(backfill(changed(REST_INCOMING, ("created_at", created_at))))["occurred_at"] == occurred_at


@pytest.mark.parametrize("created_at", ["2026-05-21T10:00:05.412", "2026-05-21 10:00:05", "2020-03-03 13:05:57"])
def test_a_time_without_a_zone_is_rejected(created_at: str) -> None:
    outcome = webhook(changed(INCOMING, ("created_at", created_at)))
    assert_rejected(outcome, "bad_time")
    assert "zone" in (outcome.message or "")
    assert outcome.occurred_at is None


@pytest.mark.parametrize("created_at", ["yesterday", "2026-05-32T10:00:05Z", "2026-05-21T24:00:00Z",
                                        "2026-05-21T10:00:05+25:00", "", True, [1779357605], 10**20])
def test_a_time_that_cannot_be_read_is_rejected(created_at: Any) -> None:
    assert_rejected(webhook(changed(INCOMING, ("created_at", created_at))), "bad_time")
    assert_rejected(backfill(changed(REST_INCOMING, ("created_at", created_at))), "bad_time")


# --- text -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "text"), [
    ("line one\\\nline two", "line one\nline two"),  # the editor's hard break: a backslash before it goes
    ("line one\\\r\nline two", "line one\nline two"),  # and the break becomes LF, as Chatwoot writes it
    ("a\\\\\\\nb", "a\\\\\nb"),  # of a run of backslashes, the one before the break (SOURCES.md 1.2)
    ("thanks!\n\n", "thanks!"),  # trailing line breaks go
    ("thanks!\r\n", "thanks!"),
    ("one\n\ntwo", "one\n\ntwo"),  # line breaks inside stay
    ("\nhello", "\nhello"),
    ("C:\\temp and a\\ backslash", "C:\\temp and a\\ backslash"),  # a backslash before anything else stays
    ("bye \\\n", "bye "),
])
def test_text_gets_chatwoots_webhook_normalisation_on_both_inputs(content: str, text: str) -> None:
    assert the_event(webhook(changed(INCOMING, ("content", content))))["text"] == text
    assert the_event(backfill(changed(REST_INCOMING, ("content", content))))["text"] == text


def chatwoot_normalised(content: str) -> str:
    """What Chatwoot's webhook sends for a stored content [cw:app/services/messages/webhook_content_normalizer.rb]."""
    if not content.strip():
        return content
    return re.sub(r"(\r?\n)+\Z", "", re.sub(r"\\\r?\n", "\n", content))


@pytest.mark.parametrize("stored", ["one\\\ntwo", "path C:\\ next\\\r\nline", "thanks\n\n\n", "a\r\nb\r\n"])
def test_a_message_normalised_by_chatwoot_and_one_as_stored_give_one_text(stored: str) -> None:
    # The webhook carries Chatwoot's normalised content, the REST API the stored one: one event.
    webhook_event = the_event(webhook(changed(INCOMING, ("content", chatwoot_normalised(stored)))))
    backfill_event = the_event(backfill(changed(REST_INCOMING, ("content", stored))))
    assert webhook_event == backfill_event


@pytest.mark.parametrize("content", [None, "", "\n", "\r\n\r\n", "   "])
def test_empty_text_is_absent(content: Any) -> None:
    for outcome in (webhook(changed(INCOMING, ("content", content))),
                    backfill(changed(REST_INCOMING, ("content", content)))):
        assert "text" not in the_event(outcome)
    assert "text" not in the_event(backfill(changed(REST_INCOMING, ("content", ...))))


def test_text_longer_than_the_limit_is_cut_and_counted() -> None:
    outcome = webhook(changed(INCOMING, ("content", "é" * (MAX_TEXT + 5))))
    assert the_event(outcome)["text"] == "é" * MAX_TEXT
    assert outcome.truncated == 1
    # Normalisation comes first: trailing breaks do not make a text too long.
    outcome = backfill(changed(REST_INCOMING, ("content", "x" * MAX_TEXT + "\n\n")))
    assert (the_event(outcome)["text"], outcome.truncated) == ("x" * MAX_TEXT, 0)


def test_text_within_the_limit_is_not_counted() -> None:
    assert webhook(INCOMING).truncated == 0


# --- channels: SOURCES.md 1.5 ---------------------------------------------------------------------


@pytest.mark.parametrize(("channel_type", "channel"), [
    ("Channel::WebWidget", "chat"), ("Channel::Api", "api"), ("Channel::Email", "email"),
    ("Channel::Whatsapp", "whatsapp"), ("Channel::Sms", "sms"), ("Channel::TwilioSms", "sms"),
    ("Channel::FacebookPage", "facebook"), ("Channel::Instagram", "instagram"),
    ("Channel::Telegram", "telegram"), ("Channel::Line", "line"), ("Channel::TwitterProfile", "twitter"),
    ("Channel::Voice", "voice"), ("Channel::Tiktok", "tiktok"),
    ("Channel::FooBar", "foo_bar"), ("Channel::SMSGateway", "sms_gateway"), ("Channel::Matrix", "matrix"),
    ("Channel::Rcs2Business", "rcs2_business"), ("Channel::Foo-Bar", "foo_bar"),
    ("Channel::" + "Very" * 10, ("very_" * 10)[:32]),  # cut to 32 characters
])
def test_channel_types_map_to_channels(channel_type: str, channel: str) -> None:
    assert channel_of(channel_type) == channel
    assert the_event(webhook(changed(INCOMING, ("conversation.channel", channel_type))))["channel"] == channel
    conversation = changed(CONVERSATION, ("meta.channel", channel_type))
    assert the_event(backfill(REST_INCOMING, conversation))["channel"] == channel


@pytest.mark.parametrize("channel_type", ["WebWidget", "Channel::", "channel::WebWidget", "Channel:WebWidget",
                                          "Channel::Web Widget", "Channel::Foo::Bar", "Channel::Ünïcode",
                                          "Channel::_Private", ""])
def test_a_channel_type_without_a_name_after_the_prefix_is_rejected(channel_type: str) -> None:
    assert channel_of(channel_type) is None
    assert_rejected(webhook(changed(INCOMING, ("conversation.channel", channel_type))), "bad_channel")
    conversation = changed(CONVERSATION, ("meta.channel", channel_type))
    assert_rejected(backfill(REST_INCOMING, conversation), "bad_channel")


def test_a_channel_that_is_not_a_string_is_rejected() -> None:
    assert_rejected(webhook(changed(INCOMING, ("conversation.channel", 5))), "bad_channel")


# --- inbox: SOURCES.md 1.8 ------------------------------------------------------------------------


def test_inbox_is_the_inbox_id_on_every_event() -> None:
    assert all(e["inbox"] == "11" for e in EXPECTED)
    assert the_event(webhook(changed(INCOMING, ("conversation.inbox_id", "42"))))["inbox"] == "42"
    assert the_event(backfill(REST_INCOMING, changed(CONVERSATION, ("inbox_id", 42))))["inbox"] == "42"
    assert the_event(webhook(changed(CLOSE, ("inbox_id", 42))))["inbox"] == "42"
    # Read from the conversation, not from the message body's inbox object or the REST message.
    assert the_event(webhook(changed(INCOMING, ("inbox.id", 99))))["inbox"] == "11"
    assert the_event(backfill(changed(REST_INCOMING, ("inbox_id", 99))))["inbox"] == "11"


@pytest.mark.parametrize("value", [None, ...])
def test_a_null_or_missing_inbox_leaves_the_field_out(value: Any) -> None:
    for outcome in (webhook(changed(INCOMING, ("conversation.inbox_id", value))),
                    backfill(REST_INCOMING, changed(CONVERSATION, ("inbox_id", value))),
                    webhook(changed(HANDOFF, ("inbox_id", value)))):
        assert "inbox" not in the_event(outcome)


def test_an_inbox_id_that_is_not_a_number_is_rejected() -> None:
    assert_rejected(webhook(changed(INCOMING, ("conversation.inbox_id", "Website"))), "bad_id")
    assert_rejected(webhook(changed(CLOSE, ("inbox_id", 1.5))), "bad_id")


# --- status changes: SOURCES.md 1.3 ---------------------------------------------------------------


def status(previous: Any, current: Any, body: dict[str, Any] = CLOSE) -> dict[str, Any]:
    change = [{"status": {"previous_value": previous, "current_value": current}}]
    return changed(body, ("changed_attributes", change))


@pytest.mark.parametrize(("previous", "current", "kind", "type_"), [
    ("pending", "open", "handoff", "handoff"),
    ("open", "resolved", "close", "conversation_close"),
    ("pending", "resolved", "close", "conversation_close"),
    ("snoozed", "resolved", "close", "conversation_close"),
    ("resolved", "open", "reopen", "conversation_reopen"),
    ("resolved", "pending", "reopen", "conversation_reopen"),
])
def test_status_changes_that_become_events(previous: str, current: str, kind: str, type_: str) -> None:
    event = the_event(webhook(status(previous, current)))
    expected = {"event_id": f"chatwoot:3:conversation:276:{kind}:1779358320643", "type": type_,
                "occurred_at": "2026-05-21T10:12:00.643Z", "customer_id": "1201", "inbox": "11"}
    if kind == "handoff":
        expected["category"] = "bot_handoff"
    assert event == expected


@pytest.mark.parametrize(("previous", "current"), [
    ("open", "snoozed"), ("pending", "snoozed"), ("snoozed", "open"), ("open", "pending"),
    ("snoozed", "pending"), ("archived", "open"), ("open", "archived"), (None, "open"),
])
def test_other_status_changes_are_ignored(previous: Any, current: Any) -> None:
    outcome = webhook(status(previous, current))
    assert_ignored(outcome, "status_other")
    assert outcome.occurred_at == "2026-05-21T10:12:00.643Z"
    # Nothing of the event is needed to ignore it.
    assert_ignored(webhook(changed(status(previous, current), ("meta", ...), ("id", ...))), "status_other")


@pytest.mark.parametrize("changes", [..., None, [], [{"assignee_id": {"previous_value": None, "current_value": 7}}],
                                     [{"status": "resolved"}], {"status": {"current_value": "resolved"}}])
def test_a_status_body_without_a_status_change_is_rejected(changes: Any) -> None:
    assert_rejected(webhook(changed(CLOSE, ("changed_attributes", changes))), "no_status_change")


def test_the_status_change_is_found_among_other_changes() -> None:
    changes = [{"assignee_id": {"previous_value": None, "current_value": 7}},
               {"status": {"previous_value": "open", "current_value": "resolved"}}]
    assert the_event(webhook(changed(CLOSE, ("changed_attributes", changes))))["type"] == "conversation_close"


@pytest.mark.parametrize("path", ["id", "meta.sender.id", "meta", "updated_at"])
def test_a_status_body_without_a_field_of_its_event_is_rejected(path: str) -> None:
    assert_rejected(webhook(changed(CLOSE, (path, ...))), "missing_field")


def test_timestamp_is_not_a_fallback_for_updated_at() -> None:
    body = changed(CLOSE, ("updated_at", None))
    assert body["timestamp"]
    assert_rejected(webhook(body), "missing_field")


def test_status_account_falls_back_to_account_id_then_the_first_message() -> None:
    assert "account" not in CLOSE and "account_id" not in CLOSE  # the sample reads messages[0].account_id
    assert the_event(webhook(CLOSE))["event_id"].startswith("chatwoot:3:")
    with_account = changed(CLOSE, ("account", {"id": 5, "name": "Acme Outdoor"}), ("account_id", 6))
    assert the_event(webhook(with_account))["event_id"].startswith("chatwoot:5:")
    assert the_event(webhook(changed(CLOSE, ("account_id", 6))))["event_id"].startswith("chatwoot:6:")
    assert_rejected(webhook(changed(CLOSE, ("messages", []))), "missing_field")
    assert_rejected(webhook(changed(CLOSE, ("messages.0.account_id", None))), "missing_field")
    # A value that is there but wrong is not skipped over.
    assert_rejected(webhook(changed(CLOSE, ("account_id", "three"))), "bad_id")


def test_a_message_body_reads_its_account_from_account_id_only() -> None:
    assert_rejected(webhook(changed(INCOMING, ("account", ...))), "missing_field")


def test_a_resolve_and_a_reopen_in_one_second_are_two_events_in_order() -> None:
    close = the_event(webhook(changed(status("open", "resolved"), ("updated_at", 1779358320.101))))
    reopen = the_event(webhook(changed(status("resolved", "open"), ("updated_at", 1779358320.902))))
    assert close["event_id"] == "chatwoot:3:conversation:276:close:1779358320101"
    assert reopen["event_id"] == "chatwoot:3:conversation:276:reopen:1779358320902"
    assert close["occurred_at"] < reopen["occurred_at"]


@pytest.mark.parametrize(("updated_at", "milliseconds", "occurred_at"), [
    (1779358320.643821, 1779358320643, "2026-05-21T10:12:00.643Z"),
    (1779358320.0279999, 1779358320027, "2026-05-21T10:12:00.027Z"),  # as written: binary arithmetic says 028
    (1779358320, 1779358320000, "2026-05-21T10:12:00.000Z"),
    ("2026-05-21T10:12:00.643821Z", 1779358320643, "2026-05-21T10:12:00.643Z"),
])
def test_status_time_is_updated_at_to_the_millisecond(updated_at: Any, milliseconds: int, occurred_at: str) -> None:
    event = the_event(webhook(changed(CLOSE, ("updated_at", updated_at))))
    assert event["event_id"] == f"chatwoot:3:conversation:276:close:{milliseconds}"
    assert event["occurred_at"] == occurred_at


def test_status_events_carry_no_channel_or_people() -> None:
    for body in (CLOSE, HANDOFF):
        event = the_event(webhook(changed(body, ("meta.assignee", {"id": 7, "name": "Sam Rivera"}))))
        assert not {"channel", "agent", "ai_agent", "subcategory", "reason", "text"} & event.keys()


def test_a_status_customer_id_follows_the_message_rules() -> None:
    assert_rejected(webhook(changed(CLOSE, ("meta.sender.id", "01201"))), "bad_customer_id")
    assert the_event(webhook(changed(CLOSE, ("meta.sender.id", "1201"))))["customer_id"] == "1201"


# --- other events: SOURCES.md 1.4 -----------------------------------------------------------------


@pytest.mark.parametrize("event", [
    "message_updated", "conversation_created", "conversation_updated", "conversation_opened",
    "conversation_resolved", "contact_created", "contact_updated", "webwidget_triggered",
    "conversation_typing_on", "conversation_typing_off", "inbox_created", "inbox_updated",
])
def test_other_known_events_are_ignored_by_name(event: str) -> None:
    assert_ignored(webhook(changed(CLOSE, ("event", event))), event)
    assert_ignored(map_webhook(json.dumps({"event": event}).encode(), source=SOURCE), event)


@pytest.mark.parametrize("event", ["conversation_deleted", "MESSAGE_CREATED", "", "message_created "])
def test_an_unknown_event_is_rejected_not_malformed(event: str) -> None:
    outcome = webhook(changed(INCOMING, ("event", event)))
    assert_rejected(outcome, "unknown_event")
    assert outcome.source == SOURCE and outcome.line is None


def test_an_edited_message_never_changes_its_event() -> None:
    edited = changed(AGENT_REPLY, ("event", "message_updated"), ("content", "edited"))
    assert_ignored(webhook(edited), "message_updated")


# --- malformed bodies and capture lines -----------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'"message_created"', b"null", b"{}",
                                  b'{"event": 5}', b'{"event": null, "id": 1}', b'{"event": "x"',
                                  b"\xff\xfe{}", b'{"event": NaN}', b"[" * 100_000])
def test_a_body_that_is_not_an_object_with_a_string_event_is_malformed(body: bytes) -> None:
    outcome = map_webhook(body, source=SOURCE, line=None)
    assert_rejected(outcome, "malformed")
    assert outcome.raw == body.decode("utf-8", errors="replace")


def test_a_webhook_body_as_posted_keeps_its_raw_text() -> None:
    body = WEBHOOKS.read_bytes().splitlines()[2]
    outcome = map_webhook(body, source=SOURCE, line=3)
    assert (outcome.raw, outcome.line, outcome.source) == (body.decode(), 3, SOURCE)
    assert outcome.events == [EXPECTED[0]]


def test_a_capture_with_blank_and_bad_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps(INCOMING).encode(),
        b"",
        b"   \t",
        b"{not json",
        b'{"id": 5844, "content": "caf\xe9"}',
        b"[1, 2, 3]",
        b'{"id": 5844, "message_type": "incoming"}',
        json.dumps(RECORDS[0]).encode(),
        b'{"conversation": [], "messages": []}',
        b'{"conversation": {"id": 276}, "messages": []}',
        json.dumps({"conversation": CONVERSATION, "messages": [REST_INCOMING, "5847"]}).encode(),
        json.dumps(AI_REPLY).encode() + b"\r",
    ]
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b"\n".join(lines))  # and no line break after the last line
    outcomes = list(read_capture(capture))
    got = [(o.line, o.rejected or o.ignored or o.events[0]["event_id"]) for o in outcomes]
    assert got == [
        (1, "chatwoot:3:message:5844"),
        (4, "not_json"),
        (5, "not_json"),
        (6, "unknown_record"),
        (7, "unknown_record"),
        *[(8, r) for r in ("template", "chatwoot:3:message:5844", "chatwoot:3:message:5847",
                           "chatwoot:3:message:5849", "chatwoot:3:message:5850", "activity")],
        (9, "unknown_record"),
        (10, "no_messages"),
        (11, "chatwoot:3:message:5844"),
        (11, "unknown_record"),
        (12, "chatwoot:3:message:5847"),
    ]
    assert outcomes[1].raw == "{not json"
    assert outcomes[2].raw == '{"id": 5844, "content": "caf\ufffd"}'
    assert outcomes[-1].raw == json.dumps(AI_REPLY)  # the CR of a CRLF line end is not part of the record
    for outcome in outcomes:
        assert outcome.source == str(capture.resolve())
        if outcome.rejected:
            assert_rejected(outcome, outcome.rejected)


def test_white_space_of_any_kind_makes_a_blank_line(tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    capture.write_text("\u2028\n\xa0\n\t\r\n" + json.dumps(INCOMING) + "\n\n", encoding="utf-8")
    assert [(o.line, o.events) for o in read_capture(capture)] == [(4, [EXPECTED[0]])]


def test_a_line_with_a_huge_number_is_json_and_mapped_as_such(tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    capture.write_text(json.dumps(INCOMING).replace('"id": 5844', '"id": ' + "9" * 5000))
    [outcome] = read_capture(capture)
    assert_rejected(outcome, "bad_id")


def test_a_backfill_raw_record_stays_utf8_with_a_lone_surrogate() -> None:
    outcome = backfill(changed(REST_INCOMING, ("content", "caf\u00e9 \ud800")))
    outcome.raw.encode("utf-8")
    assert json.loads(outcome.raw)["messages"][0]["content"] == "caf\u00e9 \ud800"


def test_a_capture_may_start_with_a_byte_order_mark(tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b"\xef\xbb\xbf" + json.dumps(INCOMING).encode() + b"\n")
    assert [o.events for o in read_capture(capture)] == [[EXPECTED[0]]]


def test_a_capture_is_read_as_it_is_consumed(tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    capture.write_text(json.dumps(INCOMING) + "\n" + json.dumps(AI_REPLY) + "\n")
    outcomes = read_capture(capture)
    assert next(outcomes).events == [EXPECTED[0]]
    with capture.open("a") as file:  # written after the first record was read
        file.write(json.dumps(AGENT_REPLY) + "\n")
    assert [o.events[0]["event_id"] for o in outcomes] == ["chatwoot:3:message:5847", "chatwoot:3:message:5867"]


# --- reasons ----------------------------------------------------------------------------------------


def test_a_reason_is_one_short_line_that_quotes_values_cut_short() -> None:
    value = "12\n34\u2028" + "x" * 500
    outcome = webhook(changed(INCOMING, ("conversation.meta.sender.id", value)))
    assert_rejected(outcome, "bad_customer_id")
    message = outcome.message or ""
    assert "12 34 " in message and "x" * 41 not in message
    assert "conversation.meta.sender.id" in message and "5844" in message


def test_a_backfill_reason_names_the_field_as_the_rest_api_has_it() -> None:
    outcome = backfill(REST_INCOMING, changed(CONVERSATION, ("meta.sender.id", "abc")))
    assert "conversation.meta.sender.id" in (outcome.message or "")
    outcome = backfill(changed(REST_INCOMING, ("created_at", "soon")))
    assert "messages[].created_at" in (outcome.message or "")
