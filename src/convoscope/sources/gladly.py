"""Gladly: an export job's directory turned into SPEC 2 events, as SOURCES.md section 2 maps them.

An export job leaves `conversation_items.jsonl` (one conversation item a line), `agents.jsonl`,
`customers.jsonl` and `topics.jsonl`; the handoffs come from a second download, the AI Sessions Detail
report (seeds/000), saved beside them as a CSV. Items map one by one (SOURCES.md 2.2), except for what
needs a whole AI session: the route of a customer message, the AI agent and guides of an AI reply and
the time of a handoff (2.3). So the items file is read twice: once for a small summary per session key,
once to say what each line became. Nothing here touches the store.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

from convoscope.config import SourceSettings
from convoscope.errors import IngestError
from convoscope.sources import Outcome, cut_text

ITEMS_FILE = "conversation_items.jsonl"
AGENTS_FILE = "agents.jsonl"
SIDEKICK = "SIDEKICK_V2"  # the initiator id Gladly AI writes under, with type SYSTEM (SOURCES.md 2.1)
NO_CATEGORY = "unspecified"  # a handed-off row's empty Handoff Category (SOURCES.md 2.3)

# Message items: content.type → (channel, the content field holding the text).
MESSAGE_TYPES: dict[str, tuple[str, str]] = {
    "CHAT_MESSAGE": ("chat", "content"),
    "SMS": ("sms", "content"),
    "WHATSAPP": ("whatsapp", "content"),
    "FACEBOOK_MESSAGE": ("facebook", "content"),
    "INSTAGRAM_DIRECT": ("instagram", "content"),
    "TWITTER": ("twitter", "content"),
    "EMAIL": ("email", "content"),  # the subject is dropped
    "VOICE_AI_MESSAGE": ("voice", "body"),
}
IGNORED_TYPES = {  # content.type → the reason it is ignored
    "CONVERSATION_NOTE": "note",
    "TOPIC_CHANGE": "topic_change",
    "CUSTOMER_ACTIVITY": "customer_activity",
    "TASK": "task",
}
# The initiator types Gladly's API documents (item `responder`); others are unknown to this version.
INITIATOR_TYPES = ("AGENT", "API", "AUTOMATION", "CUSTOMER", "INTERNAL", "EXTERNAL", "SYSTEM")

# The AI Sessions Detail columns read; the rest (outcomes, Created Date, links) are convoscope's to derive.
SESSION_ID, HANDOFF_CATEGORY = "Session ID", "Handoff Category"
AI_AGENT, GUIDES, HANDED_OFF = "Gladly Agent", "Guides Used", "Was Handed Off"
SUBCATEGORY, REASON, RATIONALE = "Handoff Subcategory", "Handoff Reason", "Transfer Rationale"
CUSTOMER_ID = "Customer ID"  # read only to name a rejected row's customer, for `forget`

# RFC 3339, as SPEC 2.2 reads it, with the offset required: the export writes UTC with a `Z`.
_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
                   r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))?")
# What a message quoting a value shows as a space: control characters and every line break (SPEC 2.4).
_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SHOWN = 40
_CSV_FIELD_LIMIT = 2**31 - 1  # a Message History cell (the "with Messages" download) can pass csv's 128 KiB


INPUTS = "Gladly export job folders (conversation_items.jsonl and the AI Sessions Detail CSV)"


def inputs(paths: list[str]) -> list[Path]:
    """The export folders `paths` name, each checked as `read_export` will read it."""
    return [_export_folder(Path(text)) for text in paths]


def read(path: Path, settings: SourceSettings) -> Iterator[Outcome]:
    """What every record of one export folder became (`read_export`)."""
    return read_export(path, ai_api_users=settings.ai_api_users)


def read_export(path: Path, *, ai_api_users: tuple[str, ...] | None = None) -> Iterator[Outcome]:
    """What every record of the Gladly export job in directory `path` became (SOURCES.md 2): one Outcome
    per line of conversation_items.jsonl, in file order, then one per data row of each AI Sessions Detail
    CSV in the directory (files by name). `ai_api_users`, when given, are the only API initiator ids
    whose messages are AI replies (`[sources.gladly] ai_api_users`). Raises IngestError at once when the
    directory or its items file cannot be read."""
    folder = _export_folder(path)
    items = (folder / ITEMS_FILE).resolve()
    agents = _agent_names(folder / AGENTS_FILE)
    reports = _session_reports(folder)
    return _outcomes(items, agents, reports, ai_api_users)


def _export_folder(path: Path) -> Path:
    """The export directory, checked: it exists, can be listed and holds a readable items file."""
    if not path.exists():
        raise _failure(f"{path} does not exist: give the directory of a Gladly export job "
                          f"(the one holding {ITEMS_FILE})")
    if not path.is_dir():
        raise _failure(f"{path} is not a directory: give the directory of the Gladly export job that holds "
                          f"it, with {ITEMS_FILE} and the AI Sessions Detail CSV")
    try:
        names = {child.name for child in path.iterdir()}
    except OSError as exc:
        raise _failure(f"cannot read directory {path} ({exc.strerror or exc}): check its permissions") from exc
    if ITEMS_FILE not in names:
        raise _failure(f"{path} has no {ITEMS_FILE}: give the directory where the Gladly export job's "
                          "files were unpacked")
    with _open(path / ITEMS_FILE):
        pass
    return path


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise _failure(f"cannot read {path} ({exc.strerror or exc}): check that it is a readable file") from exc


def _one_line(text: str) -> str:
    return _BREAKS.sub(" ", text)


def _failure(message: str) -> IngestError:
    """The error for an export that cannot be read at all, on one line whatever its path holds."""
    return IngestError(_one_line(message))


def _shown(value: object) -> str:
    """A value quoted in a message: cut to about 40 characters, on one line."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > _SHOWN:
        text = text[:_SHOWN] + "…"
    return "'" + _one_line(text) + "'"


def _read_lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """The physical lines of a JSON Lines file: (line from 1, text without its line end, whether it was
    UTF-8). Only `\\n` ends a line: a JSON string may hold U+2028 and the like."""
    with _open(path) as stream:
        for number, data in enumerate(stream, start=1):
            if data.endswith(b"\n"):
                data = data[:-1]
            if data.endswith(b"\r"):
                data = data[:-1]
            if number == 1 and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            try:
                yield number, data.decode("utf-8"), True
            except UnicodeDecodeError:
                yield number, data.decode("utf-8", errors="replace"), False


def _agent_names(path: Path) -> dict[str, str]:
    """Team member names by Gladly agent id, from agents.jsonl (a lookup: lines that do not hold an `id`
    and a `name` are skipped; the raw id then stands for the agent)."""
    names: dict[str, str] = {}
    if not path.is_file():
        return names
    for _number, text, utf8 in _read_lines(path):
        if not utf8 or not text.strip():
            continue
        try:
            agent = json.loads(text)
        except ValueError:
            continue
        if isinstance(agent, dict):
            agent_id, name = agent.get("id"), agent.get("name")
            if isinstance(agent_id, str) and isinstance(name, str) and name.strip():
                names[agent_id] = name
    return names


# --- Times -------------------------------------------------------------------------------------------


def _instant(value: object) -> tuple[datetime | None, str]:
    """An item's time as a UTC instant, truncated below microseconds as the store keeps it (SPEC 2.2),
    so that routing compares what derivation will compare; or None and what is wrong with it."""
    if not isinstance(value, str):
        return None, "is not a string"
    match = _TIME.fullmatch(value)
    if match is None:
        return None, "is not an RFC 3339 time"
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if zulu is None and sign is None:
        return None, "has no time zone"
    try:
        if zulu is not None:
            zone = UTC
        else:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            if int(off_m) > 59 or offset >= timedelta(hours=24):
                raise ValueError
            zone = timezone(-offset if sign == "-" else offset)
        micro = int((fraction or "").ljust(6, "0")[:6])
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro,
                        zone).astimezone(UTC), ""
    except (ValueError, OverflowError):
        return None, "is not a valid time"


# --- Items -------------------------------------------------------------------------------------------


@dataclass
class _Item:
    """What one item line maps to before the fields that need its whole AI session (SOURCES.md 2.3)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    ignored: str | None = None
    rejected: str | None = None
    message: str | None = None
    occurred_at: str | None = None  # the item's `timestamp` when valid
    truncated: int = 0
    item_id: str = ""
    instant: datetime | None = None
    key: tuple[str, str] | None = None  # (customerId, session): the item's session key K
    customer: str | None = None  # its customerId, where readable: a rejected item's, for `forget`
    raw_id: str | None = None  # its `id`, where readable: a rejected item's event id names it
    routed: bool = False  # events[0] is a customer_message whose route its session decides


def _reject(item: _Item, reason: str, message: str) -> _Item:
    item.events, item.rejected, item.message = [], reason, _one_line(message)
    return item


def _ignore(item: _Item, reason: str) -> _Item:
    item.events, item.ignored = [], reason
    return item


def _session_part(obj: dict[str, Any], content: dict[str, Any]) -> str | None:
    """The session of K: the top-level `sessionId`, else `content.sessionId`, else `conversationId`."""
    for value in (obj.get("sessionId"), content.get("sessionId"), obj.get("conversationId")):
        if isinstance(value, str) and value != "":
            return value
    return None


def _agent(party: object, agents: dict[str, str]) -> str | None:
    """A team member's name from agents.jsonl, else the raw id; None without an id."""
    agent_id = party.get("id") if isinstance(party, dict) else None
    if not isinstance(agent_id, str) or agent_id == "":
        return None
    return agents.get(agent_id, agent_id)


def _map_item(text: str, utf8: bool, agents: dict[str, str], ai_api_users: tuple[str, ...] | None) -> _Item:
    """One line of conversation_items.jsonl, mapped by SOURCES.md 2.2 (first matching row wins)."""
    item = _Item()
    if not utf8:
        return _reject(item, "not_json", "the line is not UTF-8 text: re-export the conversation items")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return _reject(item, "not_json", f"the line is not JSON ({exc.msg} at character {exc.pos + 1}): "
                       f"each line of {ITEMS_FILE} must be one conversation item object")
    except (ValueError, RecursionError):  # a number too long to read, or nesting deeper than Python's stack
        return _reject(item, "not_json", "the line is not JSON this reader can read (nested too deeply or a "
                       f"number too long): each line of {ITEMS_FILE} must be one conversation item object")
    if not isinstance(obj, dict):
        return _reject(item, "not_json", f"the line is JSON but not an object: each line of {ITEMS_FILE} "
                       "must be one conversation item object")
    content = obj.get("content")
    content = content if isinstance(content, dict) else {}
    if isinstance(obj.get("customerId"), str) and obj["customerId"]:
        item.customer = obj["customerId"]
    if isinstance(obj.get("id"), str) and obj["id"]:
        item.raw_id = obj["id"]
    stamp = obj.get("timestamp")
    if stamp is not None:
        item.instant, problem = _instant(stamp)
        if item.instant is None:
            return _reject(item, "bad_time", f"`timestamp` {_shown(stamp)} {problem}: give it as RFC 3339 with "
                           "its offset (2026-05-21T10:00:00.010Z), as Gladly exports it")
        item.occurred_at = stamp
    for name, value in (("id", obj.get("id")), ("customerId", obj.get("customerId")), ("timestamp", stamp),
                        ("content.type", content.get("type"))):
        if not isinstance(value, str) or value == "":
            what = "is missing" if value is None else f"is {_shown(value)}, not a non-empty string"
            return _reject(item, "missing_field", f"`{name}` {what}: every conversation item needs `id`, "
                           "`customerId`, `timestamp` and `content.type`; re-export or fix the line")
    item.item_id, customer, kind = obj["id"], obj["customerId"], content["type"]
    session = _session_part(obj, content)
    item.key = (customer, session) if session is not None else None
    base = {"event_id": f"gladly:{item.item_id}", "occurred_at": stamp, "customer_id": customer}

    if kind in IGNORED_TYPES:
        return _ignore(item, IGNORED_TYPES[kind])
    if kind == "CONVERSATION_STATUS_CHANGE":
        return _status_change(item, obj, content, base, agents)
    if kind == "VOICEMAIL":
        item.events = [{**base, "type": "customer_message", "channel": "voice", "route": "team"}]
        return item
    if kind != "PHONE_CALL" and kind not in MESSAGE_TYPES:
        return _reject(item, "unknown_type", f"`content.type` {_shown(kind)} is not an item type this version "
                       "maps: remove the line, or ask for the type to be mapped")

    initiator = obj.get("initiator")
    initiator = initiator if isinstance(initiator, dict) else {}
    who, who_id = initiator.get("type"), initiator.get("id")
    if not isinstance(who, str) or who == "":
        return _reject(item, "no_initiator", f"this {kind} item has no `initiator.type`: who wrote it decides its "
                       "event; re-export the item with its initiator")
    if kind == "PHONE_CALL":
        return _phone_call(item, obj, content, base, who, agents)

    channel, text_field = MESSAGE_TYPES[kind]
    if who == "CUSTOMER":
        event = {**base, "type": "customer_message", "channel": channel}
        item.routed = True
    elif who == "AGENT":
        event = {**base, "type": "agent_message", "channel": channel}
        agent = _agent(initiator, agents)
        if agent is not None:
            event["agent"] = agent
    elif (who == "SYSTEM" and who_id == SIDEKICK) or (
            who == "API" and (ai_api_users is None or who_id in ai_api_users)):
        event = {**base, "type": "ai_message", "channel": channel}
    elif who == "API":
        return _ignore(item, "api_not_ai")
    elif who == "AUTOMATION":
        return _ignore(item, "automation")
    elif who in ("INTERNAL", "EXTERNAL"):
        return _ignore(item, "other_initiator")
    elif who == "SYSTEM":
        return _ignore(item, "system_other")
    else:
        return _reject(item, "unknown_initiator", f"`initiator.type` {_shown(who)} is not one Gladly documents "
                       f"({', '.join(INITIATOR_TYPES)}): fix the line, or ask for the type to be mapped")
    if item.key is None and (item.routed or event["type"] == "ai_message"):
        return _reject(item, "no_session", "the item has no `sessionId`, `content.sessionId` or `conversationId`, "
                       "so its AI session is unknown: re-export the item with its conversation")
    message_text, cut = cut_text(content.get(text_field))
    if message_text is not None:
        event["text"] = message_text
    item.truncated = int(cut)
    item.events = [event]
    return item


def _phone_call(item: _Item, obj: dict[str, Any], content: dict[str, Any], base: dict[str, Any], who: str,
                agents: dict[str, str]) -> _Item:
    """PHONE_CALL (SOURCES.md 2.2): an inbound call goes to the team, and its answer is a team member's
    message at `answeredAt`; an outbound call is a team member's message."""
    if who == "AGENT":
        event = {**base, "type": "agent_message", "channel": "voice"}
        agent = _agent(obj.get("initiator"), agents)
        if agent is not None:
            event["agent"] = agent
        item.events = [event]
        return item
    if who != "CUSTOMER":
        return _ignore(item, "other_initiator")
    item.events = [{**base, "type": "customer_message", "channel": "voice", "route": "team"}]
    answered, responder = content.get("answeredAt"), obj.get("responder")
    if answered is not None and isinstance(responder, dict) and responder.get("type") == "AGENT":
        instant, problem = _instant(answered)
        if instant is None:
            return _reject(item, "bad_time", f"`content.answeredAt` {_shown(answered)} {problem}: give it as "
                           "RFC 3339 with its offset, as Gladly exports it")
        answer = {"event_id": f"gladly:{item.item_id}:answered", "occurred_at": answered,
                  "customer_id": base["customer_id"], "type": "agent_message", "channel": "voice"}
        agent = _agent(responder, agents)
        if agent is not None:
            answer["agent"] = agent
        item.events.append(answer)
    return item


def _status_change(item: _Item, obj: dict[str, Any], content: dict[str, Any], base: dict[str, Any],
                   agents: dict[str, str]) -> _Item:
    """CONVERSATION_STATUS_CHANGE (SOURCES.md 2.2): CLOSED closes; OPEN by a team member reopens."""
    status = content.get("status")
    if not isinstance(status, str) or status == "":
        return _reject(item, "missing_field", f"`content.status` {'is missing' if status is None else 'is ' + _shown(status)}: "
                       "a status change needs its status (OPEN, WAITING, CLOSED); re-export or fix the line")
    initiator = obj.get("initiator")
    by_agent = isinstance(initiator, dict) and initiator.get("type") == "AGENT"
    if status == "CLOSED":
        event = {**base, "type": "conversation_close"}
    elif status == "OPEN" and by_agent:
        event = {**base, "type": "conversation_reopen"}
    else:
        return _ignore(item, "status_other")
    agent = _agent(initiator, agents) if by_agent else None
    if agent is not None:
        event["agent"] = agent
    item.events = [event]
    return item


# --- AI Sessions Detail rows -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Meaning:
    """What a row says that the mapping reads: two rows of a session that mean the same count once."""

    ai_agent: str | None
    guides: tuple[str, ...]
    handed_off: bool
    category: str | None = None
    subcategory: str | None = None
    reason: str | None = None
    transfer_rationale: str | None = None


@dataclass(slots=True)
class _Row:
    """One data row of an AI Sessions Detail CSV, as the first read leaves it (its raw text is read again
    when its Outcome is given, so that a download with messages is not held in memory)."""

    line: int
    session: str = ""
    meaning: _Meaning | None = None
    rejected: str | None = None
    message: str | None = None
    ignored: str | None = None
    handoff: tuple[str, str] | None = None  # (customer id, handoff time as written) of the row's handoff
    at: str | None = None  # its session's start (first AI reply or customer message), for the sources report
    customer: str | None = None  # its session's customer (of the items, else the row's Customer ID), for forget

    def events(self) -> list[dict[str, Any]]:
        """The handoff this row carries (SOURCES.md 2.3), if any."""
        if self.handoff is None or self.meaning is None:
            return []
        event: dict[str, Any] = {"event_id": f"gladly:handoff:{self.session}", "type": "handoff",
                                 "occurred_at": self.handoff[1], "customer_id": self.handoff[0],
                                 "category": self.meaning.category}
        for name in ("ai_agent", "subcategory", "reason", "transfer_rationale"):
            value = getattr(self.meaning, name)
            if value is not None:
                event[name] = value
        return [event]


@dataclass
class _Report:
    path: Path  # resolved
    columns: dict[str, int]  # column name → index of its first cell
    width: int  # cells in the header
    rows: list[_Row] = field(default_factory=list)


def _csv_records(path: Path) -> Iterator[tuple[int, str, list[str] | None, str]]:
    """The records of a CSV file: (first physical line, raw text without the line end, cells or None
    when unreadable, what is wrong). Blank lines are no records; a quoted value may span lines."""
    pending: list[bytes] = []
    bad: list[str] = []

    def lines(stream: BinaryIO) -> Iterator[str]:
        # Physical lines end at \r\n, \n or a bare \r, as csv expects of a file opened with newline="".
        for number, chunk in enumerate(stream, start=1):
            if number == 1 and chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
            for data in chunk.splitlines(keepends=True):
                pending.append(data)
                try:
                    yield data.decode("utf-8")
                except UnicodeDecodeError:
                    bad.append("it is not UTF-8 text")
                    yield data.decode("utf-8", errors="replace")

    with _open(path) as stream:
        reader = csv.reader(lines(stream), strict=False)
        first = 1
        while True:
            problem = ""
            try:
                cells: list[str] | None = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                cells, problem = None, f"it is not valid CSV ({_one_line(str(exc))})"
            raw = b"".join(pending).decode("utf-8", errors="replace")
            pending.clear()
            if bad:
                cells, problem = None, bad[0]
                bad.clear()
            line, first = first, reader.line_num + 1
            raw = raw[:-2] if raw.endswith("\r\n") else raw[:-1] if raw.endswith(("\n", "\r")) else raw
            if cells is not None and not any(cell.strip() for cell in cells):
                continue  # a blank line (or a row of empty cells) is no record
            yield line, raw, cells, problem


def _session_reports(folder: Path) -> list[_Report]:
    """Every AI Sessions Detail CSV in the folder (a `*.csv` whose header has Session ID and Handoff
    Category), by file name, with what the mapping reads from each row; other CSV files are not ours."""
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    reports: list[_Report] = []
    names = sorted(child for child in folder.iterdir()
                   if child.suffix.lower() == ".csv" and not child.name.startswith(".") and child.is_file())
    for path in names:
        records = _csv_records(path)
        header = next(records, None)
        if header is None or header[2] is None:
            continue
        columns: dict[str, int] = {}
        for index, name in enumerate(header[2]):
            columns.setdefault(name.strip(), index)
        if SESSION_ID not in columns or HANDOFF_CATEGORY not in columns:
            continue
        report = _Report(path.resolve(), columns, len(header[2]))
        for line, _raw, cells, problem in records:
            report.rows.append(_read_row(line, cells, problem, report))
        reports.append(report)
    return reports


def _read_row(line: int, cells: list[str] | None, problem: str, report: _Report) -> _Row:
    """What the mapping reads from one data row (SOURCES.md 2.3), or why it cannot be read."""
    row, columns = _Row(line), report.columns
    if cells is None:
        row.rejected, row.message = "bad_row", f"the row cannot be read: {problem}; fix it or download the report again"
        return row
    if len(cells) != report.width:
        row.rejected = "bad_row"
        row.message = (f"the row has {len(cells)} cells where the header has {report.width}: "
                       "download the AI Sessions Detail report again")
        return row

    def cell(name: str) -> str | None:
        index = columns.get(name)
        value = cells[index] if index is not None and index < len(cells) else ""
        return value if value.strip() else None

    row.session = (cell(SESSION_ID) or "").strip()
    row.customer = (cell(CUSTOMER_ID) or "").strip() or None
    if not row.session:
        row.rejected = "no_session"
        row.message = "the row has no Session ID: download the AI Sessions Detail report again"
        return row
    guides = tuple(g for g in (cell(GUIDES) or "").split(", ") if g.strip())
    handed_off = (cell(HANDED_OFF) or "").strip().lower() == "true"
    if handed_off:
        row.meaning = _Meaning(cell(AI_AGENT), guides, True, cell(HANDOFF_CATEGORY) or NO_CATEGORY,
                               cell(SUBCATEGORY), cell(REASON), cell(RATIONALE))
    else:
        row.meaning = _Meaning(cell(AI_AGENT), guides, False)
    return row


# --- Sessions ----------------------------------------------------------------------------------------


Key = tuple[str, str]  # a session key K: (customerId, session)


@dataclass(slots=True)
class _Track:
    """What the first pass keeps of a session key that a CSV row names (SOURCES.md 2.3)."""

    first_ai: tuple[datetime, str] | None = None  # (instant, id) of its first ai_message: it carries the guides
    last_ai: tuple[datetime, str, str] | None = None  # (instant, id, time as written): the handoff time
    first_customer: tuple[datetime, str, str] | None = None  # the handoff time when the AI never replied


@dataclass(slots=True)
class _Session:
    """What a session key's AI Sessions Detail row says about its items (SOURCES.md 2.3)."""

    ai_agent: str | None
    guides: tuple[str, ...]
    first_ai: tuple[datetime, str] | None  # the reply that carries the guides
    handoff_at: datetime | None  # T, when the session was handed off


@dataclass
class _Summary:
    """The first pass over the items, kept small: a million items hold some hundred thousand keys.
    `ai_keys`: the keys that hold an ai_message; the rest only for the sessions the CSV rows name."""

    ai_keys: set[Key] = field(default_factory=set)
    tracks: dict[Key, _Track] = field(default_factory=dict)
    customers: dict[str, str] = field(default_factory=dict)  # session → the customer of its items
    shared: dict[str, set[str]] = field(default_factory=dict)  # session → its customers, when several


def _summarise(items: Path, agents: dict[str, str], ai_api_users: tuple[str, ...] | None,
               wanted: set[str]) -> _Summary:
    summary = _Summary()
    for _number, text, utf8 in _read_lines(items):
        if not text.strip():
            continue
        item = _map_item(text, utf8, agents, ai_api_users)
        if item.rejected is not None or item.key is None or item.instant is None:
            continue
        kind = item.events[0]["type"] if item.events else None
        if kind == "ai_message":
            summary.ai_keys.add(item.key)
        if item.key[1] not in wanted:
            continue
        customer = summary.customers.setdefault(item.key[1], item.key[0])
        if customer != item.key[0]:
            summary.shared.setdefault(item.key[1], {customer}).add(item.key[0])
        track = summary.tracks.get(item.key)
        if track is None:
            track = summary.tracks[item.key] = _Track()
        here, spelled = (item.instant, item.item_id), (item.instant, item.item_id, str(item.occurred_at))
        if kind == "ai_message":
            if track.first_ai is None or here < track.first_ai:
                track.first_ai = here
            if track.last_ai is None or spelled > track.last_ai:
                track.last_ai = spelled
        elif kind == "customer_message" and (track.first_customer is None or spelled < track.first_customer):
            track.first_customer = spelled
    return summary


def _settle_rows(reports: list[_Report], summary: _Summary) -> dict[Key, _Session]:
    """Decide every CSV row (SOURCES.md 2.3) and return what each used row says about its session key.
    Rows are grouped by Session ID over all the files: rows that mean the same count once (a repeat gives
    what the first gives: a handoff the ingest then counts as a duplicate, or `not_handed_off`); rows that
    differ are all rejected, so that the result never depends on the order of files or rows."""
    groups: dict[str, list[_Row]] = {}
    for report in reports:
        for row in report.rows:
            if row.rejected is None:
                groups.setdefault(row.session, []).append(row)
    sessions: dict[Key, _Session] = {}
    for session_id, rows in groups.items():
        customer = summary.customers.get(session_id)
        shared = summary.shared.get(session_id, ())
        meaning = rows[0].meaning
        assert meaning is not None
        problem: tuple[str, str] | None = None
        handoff_at: tuple[datetime, str, str] | None = None
        if any(row.meaning != meaning for row in rows):
            problem = ("conflicting_rows", f"Session ID {_shown(session_id)} has {len(rows)} rows that differ: keep "
                       "one row per session (the latest download) and ingest again")
        elif customer is None:
            problem = ("no_items", f"no conversation item has session {_shown(session_id)}: ingest the CSV with the "
                       "export job of the same period")
        elif shared:
            problem = ("ambiguous_session", f"items of {len(shared)} customers have session {_shown(session_id)}: "
                       "ingest exports from before and after a customer merge separately")
        else:
            key = (customer, session_id)
            track = summary.tracks[key]
            starts = [t[0] for t in (track.first_ai, track.first_customer) if t is not None]
            for row in rows:
                row.at = min(starts).isoformat() if starts else None
            if meaning.handed_off:
                handoff_at = track.last_ai or track.first_customer
                if handoff_at is None:
                    problem = ("no_handoff_time", f"session {_shown(session_id)} was handed off but has no AI reply "
                               "and no customer message in the items, so its handoff time is unknown: ingest the "
                               "CSV with the export job of the same period")
        if problem is not None:
            for row in rows:
                row.rejected, row.message = problem
                row.customer = customer or row.customer
            continue
        sessions[key] = _Session(meaning.ai_agent, meaning.guides, track.first_ai,
                                 handoff_at[0] if handoff_at else None)
        for row in rows:  # a repeated row gives what the first gives: its handoff is a duplicate once stored
            if handoff_at is None:
                row.ignored = "not_handed_off"
            else:
                row.handoff = (key[0], handoff_at[2])
    summary.tracks.clear()
    summary.customers.clear()
    return sessions


# --- Outcomes ----------------------------------------------------------------------------------------


def _outcomes(items: Path, agents: dict[str, str], reports: list[_Report],
              ai_api_users: tuple[str, ...] | None) -> Iterator[Outcome]:
    wanted = {row.session for report in reports for row in report.rows if row.rejected is None}
    summary = _summarise(items, agents, ai_api_users, wanted)
    sessions = _settle_rows(reports, summary)
    yield from _item_outcomes(items, agents, ai_api_users, summary, sessions)
    for report in reports:
        yield from _row_outcomes(report)


def _item_outcomes(items: Path, agents: dict[str, str], ai_api_users: tuple[str, ...] | None,
                   summary: _Summary, sessions: dict[tuple[str, str], _Session]) -> Iterator[Outcome]:
    source = str(items)
    for number, text, utf8 in _read_lines(items):
        if not text.strip():
            continue  # a blank line is no record
        item = _map_item(text, utf8, agents, ai_api_users)
        outcome = Outcome(source=source, line=number, raw=text, events=item.events, ignored=item.ignored,
                          rejected=item.rejected, message=item.message, truncated=item.truncated,
                          occurred_at=None if item.events else item.occurred_at,
                          customer_id=item.customer if item.rejected else None,
                          event_id=f"gladly:{item.raw_id}" if item.rejected and item.raw_id else None)
        if item.events and item.key is not None:
            _complete(item, summary, sessions)
        yield outcome


def _complete(item: _Item, summary: _Summary, sessions: dict[tuple[str, str], _Session]) -> None:
    """The fields an item's AI session decides (SOURCES.md 2.3): a customer message's route, an AI
    reply's AI agent and, on the session's first reply, its guides."""
    assert item.key is not None and item.instant is not None
    event, session = item.events[0], sessions.get(item.key)
    if item.routed:
        ai_session = session is not None or item.key in summary.ai_keys
        handoff_at = session.handoff_at if session is not None else None
        event["route"] = "ai" if ai_session and (handoff_at is None or item.instant <= handoff_at) else "team"
    elif event["type"] == "ai_message" and session is not None:
        if session.ai_agent is not None:
            event["ai_agent"] = session.ai_agent
        if session.guides and session.first_ai == (item.instant, item.item_id):
            event["guides"] = list(session.guides)


def _row_outcomes(report: _Report) -> Iterator[Outcome]:
    source = str(report.path)
    records = _csv_records(report.path)
    next(records, None)  # the header
    rows = iter(report.rows)
    for line, raw, _cells, _problem in records:
        row = next(rows, None)
        if row is None or row.line != line:
            raise _failure(f"{source} changed while it was being read: ingest the export again")
        events = row.events()
        yield Outcome(source=source, line=line, raw=raw, events=events, ignored=row.ignored, rejected=row.rejected,
                      message=row.message, occurred_at=None if events else row.at,
                      customer_id=row.customer if row.rejected else None,
                      event_id=f"gladly:handoff:{row.session}" if row.rejected and row.session else None)
