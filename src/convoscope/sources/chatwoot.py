"""Chatwoot (SOURCES.md 1): webhook bodies and REST backfill records turned into SPEC 2 events.

A pure mapping: it reads a record and says what it became (`Outcome`), and never touches the store. Two
inputs carry the same messages: a webhook body as Chatwoot posts it (`map_webhook`) and a backfill record,
one conversation of the REST API with its messages (`map_backfill`); a capture file holds either, one per
line (`read_capture`). Event ids are built from Chatwoot's own ids and times are cut to what both inputs
carry, so a message seen by both gives one event, the second a duplicate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from convoscope.config import SourceSettings
from convoscope.sources import Outcome, cut_text, files

NAME = "chatwoot"  # the first part of every event id (SOURCES.md preamble)

# SOURCES.md 1.4: events a webhook may carry that never become an event; their name is the reason.
IGNORED_EVENTS = frozenset({
    "message_updated", "conversation_created", "conversation_updated", "conversation_opened",
    "conversation_resolved", "contact_created", "contact_updated", "webwidget_triggered",
    "conversation_typing_on", "conversation_typing_off", "inbox_created", "inbox_updated",
})

# SOURCES.md 1.5: the channel types whose name says more than Rails' `underscore` of it would.
CHANNELS = {
    "WebWidget": "chat", "Api": "api", "Email": "email", "Whatsapp": "whatsapp", "Sms": "sms",
    "TwilioSms": "sms", "FacebookPage": "facebook", "Instagram": "instagram", "Telegram": "telegram",
    "Line": "line", "TwitterProfile": "twitter", "Voice": "voice", "Tiktok": "tiktok",
}
CHANNEL_PREFIX = "Channel::"
CHANNEL_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")  # SPEC 2.2

# Message kinds; the REST API sends their index [cw:app/models/message.rb].
KINDS = ("incoming", "outgoing", "activity", "template")
AI_SENDERS = ("agent_bot", "captain_assistant")

MAX_NAME = 200  # SPEC 2.2's limit on `agent` and `ai_agent`
MAX_ID = 200  # SPEC 2.2's limit on `event_id` and `customer_id`
DECIMAL_ID = re.compile(r"0|[1-9][0-9]*")

# ISO 8601 as Rails writes it (`2026-05-21T10:00:05.412Z`), and the older `2020-03-03 13:05:57 UTC`.
TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:[.,]([0-9]+))?"
                  r"(?:([Zz])| ?(UTC|[+-][0-9]{2}:?[0-9]{2}))?")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Chatwoot's webhook normalisation [cw:app/services/messages/webhook_content_normalizer.rb], applied as
# SOURCES.md 1.2 says on both inputs: each backslash followed by a line break becomes the break (as LF).
# A webhook's content was normalised by Chatwoot once already, so a run of two or more backslashes before
# a break loses one more there than in the REST API's content: such a message seen by both is a conflict,
# a known limit (decision 76).
HARD_BREAK = re.compile(r"\\\r?\n")
TRAILING_BREAKS = re.compile(r"(?:\r?\n)+\Z")

# What a reason quoting a value shows as a space, so that it stays one line (SPEC 2.4): control
# characters and the line separators (the same class as `events.schema.BREAKS_LINE`).
BREAKS_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
SHOWN = 40


class Unmappable(Exception):
    """A record that cannot become its event: `code` is the reject reason, `message` the one line kept."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- public interface ---------------------------------------------------------------------------

INPUTS = "Chatwoot captures: JSON Lines files of webhook bodies and REST backfill records, or folders of them"


def inputs(paths: list[str]) -> list[Path]:
    """The capture files `paths` name (a folder: its .jsonl files)."""
    return files(paths, (".jsonl", ".ndjson", ".json"), what="Chatwoot capture files (.jsonl)")


def read(path: Path, settings: SourceSettings) -> Iterator[Outcome]:
    """What every record of one capture file became (`read_capture`)."""
    return read_capture(path)



def read_capture(path: Path) -> Iterator[Outcome]:
    """Every record of a JSON Lines capture (SOURCES.md 1.1), in file order: one Outcome per webhook
    body, per message of a backfill record, or per line that is neither. Streams the file; never raises
    on its content."""
    source = str(path.resolve())
    with path.open("rb") as file:
        # Only a line feed ends a line: U+2028 and the other breaks Python knows may sit inside a JSON string.
        for number, data in enumerate(file, start=1):
            data = data.removesuffix(b"\n").removesuffix(b"\r")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as error:
                yield _rejected("not_json", f"the line is not UTF-8 text (byte {error.start + 1}); save the capture "
                                "as UTF-8 and ingest it again", source=source, line=number,
                                raw=data.decode("utf-8", errors="replace"))
                continue
            if number == 1:
                text = text.removeprefix("\ufeff")
            if text.strip():  # blank as the events reader counts it: white space of any kind
                yield from _read_line(text, source=source, line=number)


def map_webhook(body: bytes, *, source: str, line: int | None = None) -> Outcome:
    """One webhook delivery's raw body (SOURCES.md 1.2-1.4). A body that is not a JSON object with a
    string `event` is rejected as `malformed` (the web layer answers 400 for that code only)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _rejected("malformed", "the body is not UTF-8 text; post Chatwoot's webhook body unchanged",
                         source=source, line=line, raw=body.decode("utf-8", errors="replace"))
    try:
        record = _loads(text)
    except ValueError as error:
        return _rejected("malformed", f"the body is not JSON ({error}); post Chatwoot's webhook body unchanged",
                         source=source, line=line, raw=text)
    if not isinstance(record, dict):
        return _rejected("malformed", "the body is not a JSON object; post Chatwoot's webhook body unchanged",
                         source=source, line=line, raw=text)
    if not isinstance(record.get("event"), str):
        return _rejected("malformed", "the body has no string `event`; post Chatwoot's webhook body unchanged",
                         source=source, line=line, raw=text)
    return _map_body(record, source=source, line=line, raw=text)


def map_backfill(conversation: dict[str, Any], messages: list[dict[str, Any]], *, source: str,
                 line: int | None) -> list[Outcome]:
    """One conversation of `GET /api/v1/accounts/{a}/conversations` with every item of its messages
    endpoint: one Outcome per message (SOURCES.md 1.2, 1.4: message events only), each with the raw
    `{"conversation": ..., "messages": [that message]}` so that it can be fixed and ingested alone."""
    outcomes = []
    written = _compact(conversation)
    for item in messages:
        raw = f'{{"conversation":{written},"messages":[{_compact(item)}]}}'
        if not isinstance(item, dict):
            outcomes.append(_rejected(
                "unknown_record", f"a backfill message is {_shown(item)}, not an object; remove or correct it",
                source=source, line=line, raw=raw))
            continue
        meta = _object(conversation.get("meta"))
        outcomes.append(_map_message(Message(
            fields=BACKFILL_FIELDS, id=item.get("id"), time=item.get("created_at"),
            kind=item.get("message_type"), private=item.get("private"),
            attributes=item.get("content_attributes"), content=item.get("content"),
            sender=item.get("sender"), account=conversation.get("account_id"),
            customer=_object(meta.get("sender")).get("id"), channel=meta.get("channel"),
            inbox=conversation.get("inbox_id"),
        ), source=source, line=line, raw=raw))
    return outcomes


def channel_of(channel_type: str) -> str | None:
    """SPEC 2.2's `channel` for an inbox's `channel_type` (SOURCES.md 1.5): the named ones, else Rails'
    `underscore` of the name after `Channel::`, cut to 32 characters. None when it has no such name or
    the result is not a valid channel."""
    if not isinstance(channel_type, str) or not channel_type.startswith(CHANNEL_PREFIX):
        return None
    name = channel_type[len(CHANNEL_PREFIX):]
    if name in CHANNELS:
        return CHANNELS[name]
    channel = _underscore(name)[:32]
    return channel if CHANNEL_PATTERN.fullmatch(channel) else None


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One message as both inputs carry it (SOURCES.md 1.1), its values as received; `fields` names
    where each was read, for the reasons."""

    fields: Mapping[str, str]
    id: Any
    time: Any
    kind: Any
    private: Any
    attributes: Any
    content: Any
    sender: Any
    account: Any
    customer: Any
    channel: Any
    inbox: Any


WEBHOOK_FIELDS = {
    "id": "id", "time": "created_at", "kind": "message_type", "sender": "sender", "account": "account.id",
    "customer": "conversation.meta.sender.id", "channel": "conversation.channel",
    "inbox": "conversation.inbox_id",
}
BACKFILL_FIELDS = {
    "id": "messages[].id", "time": "messages[].created_at", "kind": "messages[].message_type",
    "sender": "messages[].sender", "account": "conversation.account_id",
    "customer": "conversation.meta.sender.id", "channel": "conversation.meta.channel",
    "inbox": "conversation.inbox_id",
}


def _read_line(text: str, *, source: str, line: int) -> Iterator[Outcome]:
    """What one non-blank line of a capture became (SOURCES.md 1.1)."""
    try:
        record = _loads(text)
    except ValueError as error:
        yield _rejected("not_json", f"the line is not JSON ({error}); correct or remove it",
                        source=source, line=line, raw=text)
        return
    if isinstance(record, dict) and isinstance(record.get("event"), str):
        yield _map_body(record, source=source, line=line, raw=text)
    elif isinstance(record, dict) and "conversation" in record and "messages" in record:
        conversation, messages = record["conversation"], record["messages"]
        if not isinstance(conversation, dict) or not isinstance(messages, list):
            yield _rejected("unknown_record", "a backfill record needs `conversation` as an object and `messages` "
                            "as a list; correct the line", source=source, line=line, raw=text)
        elif not messages:
            yield Outcome(source=source, line=line, raw=text, ignored="no_messages")
        else:
            yield from map_backfill(conversation, messages, source=source, line=line)
    else:
        yield _rejected("unknown_record", "the line is neither a webhook body (a string `event`) nor a backfill "
                        "record (`conversation` and `messages`); correct or remove it",
                        source=source, line=line, raw=text)


def _map_body(body: dict[str, Any], *, source: str, line: int | None, raw: str) -> Outcome:
    """A webhook body with a string `event` (SOURCES.md 1.2-1.4)."""
    event = body["event"]
    if event == "message_created":
        conversation = _object(body.get("conversation"))
        return _map_message(Message(
            fields=WEBHOOK_FIELDS, id=body.get("id"), time=body.get("created_at"),
            kind=body.get("message_type"), private=body.get("private"),
            attributes=body.get("content_attributes"), content=body.get("content"), sender=body.get("sender"),
            account=_object(body.get("account")).get("id"),
            customer=_object(_object(conversation.get("meta")).get("sender")).get("id"),
            channel=conversation.get("channel"), inbox=conversation.get("inbox_id"),
        ), source=source, line=line, raw=raw)
    if event == "conversation_status_changed":
        return _map_status(body, source=source, line=line, raw=raw)
    if event in IGNORED_EVENTS:
        # A message body's own time is its message's; a conversation's is its last change.
        if "message_type" in body:
            when, written = _readable(body.get("created_at")), _to_seconds
        else:
            when, written = _readable(body.get("updated_at")), _to_milliseconds
        return Outcome(source=source, line=line, raw=raw, ignored=event,
                       occurred_at=None if when is None else written(when))
    meta = _object(body.get("meta") or _object(body.get("conversation")).get("meta"))
    return _rejected("unknown_event", f"event {_shown(event)} is not one convoscope reads (SOURCES.md 1.4); "
                     "leave it out of the Chatwoot webhook's events", source=source, line=line, raw=raw,
                     customer=_object(meta.get("sender")).get("id"))


# --- messages (SOURCES.md 1.2) ------------------------------------------------------------------


def _map_message(message: Message, *, source: str, line: int | None, raw: str) -> Outcome:
    """One message, by the first row of SOURCES.md 1.2 that matches it."""
    when = _readable(message.time)
    occurred_at = None if when is None else _to_seconds(when)

    def ignored(reason: str) -> Outcome:
        return Outcome(source=source, line=line, raw=raw, ignored=reason, occurred_at=occurred_at)

    kind = _kind(message.kind)
    if kind in ("activity", "template"):
        return ignored(kind)
    if message.private is True:
        return ignored("private_note")
    if _object(message.attributes).get("deleted") is True:
        return ignored("deleted")
    try:
        if kind == "incoming":
            typed: dict[str, Any] = {"type": "customer_message"}
        elif kind == "outgoing":
            if message.sender is None:
                return ignored("automation")
            typed = _sender_fields(message)
        elif message.kind is None:
            raise Unmappable("missing_field", _missing(message, "kind"))
        else:
            raise Unmappable("unknown_kind", f"{_what(message)}: {message.fields['kind']} {_shown(message.kind)} is "
                             "not incoming, outgoing, activity or template (0 to 3); correct it")
        return _message_event(message, typed, source=source, line=line, raw=raw)
    except Unmappable as error:
        account, number = _decimal_id(message.account), _decimal_id(message.id)
        return _rejected(error.code, error.message, source=source, line=line, raw=raw, occurred_at=occurred_at,
                         customer=message.customer,
                         event_id=f"{NAME}:{account}:message:{number}" if account and number else None)


def _sender_fields(message: Message) -> dict[str, Any]:
    """The type and author of an outgoing message with a sender (SOURCES.md 1.2)."""
    sender = message.sender
    kind = sender.get("type") if isinstance(sender, dict) else None
    if kind == "user":
        event: dict[str, Any] = {"type": "agent_message"}
        author = "agent"
    elif kind in AI_SENDERS:
        event = {"type": "ai_message"}
        author = "ai_agent"
    else:
        shown = _shown(kind) if isinstance(sender, dict) else f"a sender that is {_shown(sender)}"
        raise Unmappable("unknown_sender", f"{_what(message)}: outgoing from {message.fields['sender']}.type "
                         f"{shown}, not user, agent_bot or captain_assistant; correct it")
    name = sender.get("name")
    if isinstance(name, str) and name.strip():
        event[author] = name[:MAX_NAME]
    return event


def _message_event(message: Message, typed: dict[str, Any], *, source: str, line: int | None,
                   raw: str) -> Outcome:
    """The event of a message that one of the three event rows of SOURCES.md 1.2 matched: `typed` holds
    its type and author; the fields every message event needs are read here, the first one missing or
    wrong rejecting it."""
    what, fields = _what(message), message.fields
    message_id = _required_id(message.id, fields["id"], what=what)
    occurred = _instant(message.time, fields["time"], what=what)
    account = _required_id(message.account, fields["account"], what=what)
    customer = _customer_id(message.customer, fields["customer"], what=what)
    channel = _channel(message.channel, fields["channel"], what=what)
    inbox = _inbox(message.inbox, fields["inbox"], what=what)
    event: dict[str, Any] = {
        "event_id": f"{NAME}:{account}:message:{message_id}",
        "occurred_at": _to_seconds(occurred),
        "customer_id": customer,
        "channel": channel,
        **typed,
    }
    if inbox is not None:
        event["inbox"] = inbox
    text, cut = _text(message.content)
    if text is not None:
        event["text"] = text
    return Outcome(source=source, line=line, raw=raw, events=[event], truncated=int(cut))


def _kind(value: object) -> str | None:
    """A message kind by name (webhooks) or by index (REST); None when it is neither."""
    if isinstance(value, str) and value in KINDS:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(KINDS):
        return KINDS[value]
    return None


def _text(content: object) -> tuple[str | None, bool]:
    """`text` from a message's content: Chatwoot's webhook normalisation (a backslash before a line
    break goes and the break becomes LF, trailing line breaks go) on both inputs, so that both give one
    text; absent when null, empty or only white space (SPEC 2.2 counts those as absent); cut to MAX_TEXT
    (SOURCES.md 1.2)."""
    if not isinstance(content, str):
        return None, False
    text = TRAILING_BREAKS.sub("", HARD_BREAK.sub("\n", content))
    if text.isspace():
        return None, False
    return cut_text(text)


# --- status changes (SOURCES.md 1.3) ------------------------------------------------------------


def _map_status(body: dict[str, Any], *, source: str, line: int | None, raw: str) -> Outcome:
    """A `conversation_status_changed` body: a handoff, close or reopen, or ignored (`status_other`)."""
    when = _readable(body.get("updated_at"))
    occurred_at = None if when is None else _to_milliseconds(when)
    what = f"conversation {_shown(body.get('id'))}"
    change = _status_change(body.get("changed_attributes"))
    if change is None:
        return _rejected("no_status_change", f"{what}: conversation_status_changed without a status in "
                         "changed_attributes; correct it as [{\"status\": {\"previous_value\", \"current_value\"}}]",
                         source=source, line=line, raw=raw, occurred_at=occurred_at)
    previous, current = change
    if previous == "pending" and current == "open":
        kind, type_ = "handoff", "handoff"
    elif current == "resolved":
        kind, type_ = "close", "conversation_close"
    elif previous == "resolved" and current in ("open", "pending"):
        kind, type_ = "reopen", "conversation_reopen"
    else:
        return Outcome(source=source, line=line, raw=raw, ignored="status_other", occurred_at=occurred_at)
    try:
        conversation = _required_id(body.get("id"), "id", what=what)
        account = _status_account(body, what=what)
        customer = _customer_id(_object(_object(body.get("meta")).get("sender")).get("id"), "meta.sender.id",
                                what=what)
        changed = _instant(body.get("updated_at"), "updated_at", what=what)
        inbox = _inbox(body.get("inbox_id"), "inbox_id", what=what)
    except Unmappable as error:
        return _rejected(error.code, error.message, source=source, line=line, raw=raw, occurred_at=occurred_at,
                         customer=_object(_object(body.get("meta")).get("sender")).get("id"))
    milliseconds = (changed - EPOCH) // timedelta(milliseconds=1)
    event: dict[str, Any] = {
        "event_id": f"{NAME}:{account}:conversation:{conversation}:{kind}:{milliseconds}",
        "type": type_,
        "occurred_at": _to_milliseconds(changed),
        "customer_id": customer,
    }
    if kind == "handoff":
        event["category"] = "bot_handoff"
    if inbox is not None:
        event["inbox"] = inbox
    return Outcome(source=source, line=line, raw=raw, events=[event])


def _status_change(changed: object) -> tuple[object, object] | None:
    """(previous, current) status from `changed_attributes`, None when it holds no status change."""
    if not isinstance(changed, list):
        return None
    for item in changed:
        status = item.get("status") if isinstance(item, dict) else None
        if isinstance(status, dict):
            return status.get("previous_value"), status.get("current_value")
    return None


def _status_account(body: dict[str, Any], *, what: str) -> str:
    """The account of a status body: `account.id`, else `account_id`, else `messages[0].account_id`."""
    messages = body.get("messages")
    first = _object(messages[0]) if isinstance(messages, list) and messages else {}
    for value, name in ((_object(body.get("account")).get("id"), "account.id"),
                        (body.get("account_id"), "account_id"),
                        (first.get("account_id"), "messages[0].account_id")):
        if value is not None:
            return _required_id(value, name, what=what)
    raise Unmappable("missing_field", f"{what}: no account (account.id, account_id or messages[0].account_id); "
                     "add it and ingest the record again")


# --- values -------------------------------------------------------------------------------------


def _decimal_id(value: object) -> str | None:
    """A Chatwoot id written in decimal: a non-negative integer, or a string of ASCII digits without
    leading zeros; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if 0 <= value < 10**MAX_ID else None
    if isinstance(value, str) and len(value) <= MAX_ID and DECIMAL_ID.fullmatch(value):
        return value
    return None


def _chatwoot_id(value: object, field: str, *, what: str, noun: str, code: str = "bad_id") -> str:
    """A Chatwoot id in decimal (SOURCES.md 1.2's customer id rule, which every id follows here)."""
    if value is None:
        raise Unmappable("missing_field", f"{what}: {field} is missing; add it and ingest the record again")
    found = _decimal_id(value)
    if found is None:
        raise Unmappable(code, f"{what}: {field} {_shown(value)} is not a Chatwoot {noun} (a whole number, no "
                         "leading zeros); correct it and ingest the record again")
    return found


def _required_id(value: object, field: str, *, what: str) -> str:
    return _chatwoot_id(value, field, what=what, noun="id")


def _customer_id(value: object, field: str, *, what: str) -> str:
    """`customer_id`: the contact's id (SOURCES.md 1.2)."""
    return _chatwoot_id(value, field, what=what, noun="contact id", code="bad_customer_id")


def _inbox(value: object, field: str, *, what: str) -> str | None:
    """`inbox` (SOURCES.md 1.8): the inbox id in decimal, None when null or missing."""
    return None if value is None else _chatwoot_id(value, field, what=what, noun="inbox id")


def _channel(value: object, field: str, *, what: str) -> str:
    if value is None:
        raise Unmappable("missing_field", f"{what}: {field} is missing; add the inbox's channel type "
                         "(such as Channel::WebWidget) and ingest the record again")
    channel = channel_of(value) if isinstance(value, str) else None
    if channel is None:
        raise Unmappable("bad_channel", f"{what}: {field} {_shown(value)} is not a Chatwoot channel type "
                         "(Channel::Name); correct it and ingest the record again")
    return channel


def _underscore(name: str) -> str:
    """Rails' `String#underscore` without acronyms: `FooBar` → `foo_bar`, `SMSGateway` → `sms_gateway`."""
    word = name.replace("::", "/")
    word = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])|(?<=[a-z0-9])(?=[A-Z])", "_", word)
    return word.replace("-", "_").lower()


def _instant(value: object, field: str, *, what: str) -> datetime:
    """A Chatwoot time as a UTC instant to the microsecond: ISO 8601 with a zone (webhook messages),
    `2020-03-03 13:05:57 UTC` (old versions), or epoch seconds (REST messages; status bodies with a
    fraction). A time without a zone is refused: it would be read in whatever zone the reader assumed."""
    if value is None:
        raise Unmappable("missing_field", f"{what}: {field} is missing; add it and ingest the record again")
    if isinstance(value, str):
        match = TIME.fullmatch(value)
        if match and not (match[8] or match[9]):
            raise Unmappable("bad_time", f"{what}: {field} {_shown(value)} has no time zone; add one (Z for UTC) "
                             "and ingest the record again")
        found = _from_text(match) if match else None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        found = _from_epoch(value)
    else:
        found = None
    if found is None:
        raise Unmappable("bad_time", f"{what}: {field} {_shown(value)} is not a time (ISO 8601 with a zone, or "
                         "epoch seconds); correct it and ingest the record again")
    return found


def _readable(value: object) -> datetime | None:
    """The instant of a record's own time where it has a readable one."""
    try:
        return _instant(value, "", what="")
    except Unmappable:
        return None


def _from_text(match: re.Match[str]) -> datetime | None:
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    micro = int((match[7] or "0")[:6].ljust(6, "0"))
    zone = match[9] or "Z"
    offset = 0
    if zone not in ("Z", "z", "UTC"):
        hours, minutes = int(zone[1:3]), int(zone[-2:])
        if hours > 23 or minutes > 59:
            return None
        offset = (hours * 60 + minutes) * (-1 if zone[0] == "-" else 1)
    try:
        local = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
        return local - timedelta(minutes=offset)
    except (ValueError, OverflowError):
        return None


def _from_epoch(value: int | float) -> datetime | None:
    # A float's shortest decimal form is the number Chatwoot wrote (`1779358320.643821`); reading the
    # binary value instead could put 643 ms at 642.999….
    try:
        seconds = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
        whole = seconds.to_integral_value(rounding=ROUND_FLOOR)
        micro = ((seconds - whole) * 1_000_000).to_integral_value(rounding=ROUND_FLOOR)
        return EPOCH + timedelta(seconds=int(whole), microseconds=int(micro))
    except (ArithmeticError, OverflowError, ValueError):
        return None


def _to_seconds(instant: datetime) -> str:
    """A message's `occurred_at`: whole seconds, UTC (SOURCES.md 1.2: both inputs give the same)."""
    return instant.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def _to_milliseconds(instant: datetime) -> str:
    """A status change's `occurred_at`: to the millisecond, UTC (SOURCES.md 1.3)."""
    return instant.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


# --- helpers ------------------------------------------------------------------------------------


def _object(value: object) -> dict[str, Any]:
    """A JSON object, or an empty one in place of anything else, so that a path can be followed."""
    return value if isinstance(value, dict) else {}


def _loads(text: str) -> Any:
    """JSON as RFC 8259 has it: NaN and Infinity are not JSON; nesting too deep for Python is refused."""
    try:
        return json.loads(text, parse_constant=_no_constant, parse_int=_integer)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _integer(digits: str) -> int | Decimal:
    # Python refuses to read an integer of more than 4,300 digits; such a number is no id, but the
    # record around it is still JSON, and is mapped (or rejected) as such.
    return int(digits) if len(digits) < 4000 else Decimal(digits)


def _compact(value: Any) -> str:
    """A value as compact JSON, in UTF-8 where it can be (a lone surrogate from `\\ud800` cannot)."""
    written = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        written.encode("utf-8")
    except UnicodeEncodeError:
        written = json.dumps(value, separators=(",", ":"), default=str)
    return written


def _what(message: Message) -> str:
    return f"message {_shown(message.id)}"


def _missing(message: Message, key: str) -> str:
    return f"{_what(message)}: {message.fields[key]} is missing; add it and ingest the record again"


def _shown(value: object) -> str:
    """A value quoted in a reason: strings in quotes, cut to about 40 characters (`_rejected` then puts
    the whole reason on one line)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        shown = f"'{value[:SHOWN]}…'" if len(value) > SHOWN else f"'{value}'"
    else:
        try:
            shown = json.dumps(value, default=str)[:SHOWN]
        except ValueError:  # an integer too long for Python to write
            shown = "a number"
    return shown


def _rejected(code: str, message: str, *, source: str, line: int | None, raw: str,
              occurred_at: str | None = None, customer: object = None, event_id: str | None = None) -> Outcome:
    """A rejected record; `customer`, the contact id it names if it can be read, lets `forget` find it."""
    return Outcome(source=source, line=line, raw=raw, rejected=code, message=BREAKS_LINE.sub(" ", message),
                   occurred_at=occurred_at, customer_id=_decimal_id(customer) if customer is not None else None,
                   event_id=event_id)
