"""The conversation pages of SPEC 6.3: the start page that opens a conversation by any id it holds, and a
conversation's timeline — sessions and contacts as blocks, every message with speaker and local time —
the target of every Conversation Link. Each view is audited (SPEC 6.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from convoscope import accounts, timeline
from convoscope.config import is_zone
from convoscope.derive.names import ANOMALIES
from convoscope.search import anchor
from convoscope.web.auth import require
from convoscope.web.server import blank, clock, iso, problem, server_of, utc, value_name, zones

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, None)
    if caller.user.can(accounts.REPORTS):
        return RedirectResponse("/dashboard", status_code=303)
    return server.page(request, "home.html", caller)


EVENT_NAMES = {"customer_message": "Customer message", "ai_message": "AI reply", "handoff": "Handoff",
               "agent_message": "Team message", "contact_end": "Contact ended",
               "conversation_close": "Conversation closed", "conversation_reopen": "Conversation reopened",
               "feedback": "Feedback"}
MESSAGES = ("customer_message", "ai_message", "agent_message")
LONG_TEXT = 2_000  # characters of a message shown before "Show all" (a pasted log can hold 100,000)


@dataclass
class EventView:
    """One event as the timeline shows it: who spoke, when on the chosen zone's clock."""

    event: dict[str, Any]
    who: str
    local: str
    utc: str
    message: bool
    name: str
    anchor: str  # the element's id, `#event-…`, where a search hit opens the page (issue 29)


@dataclass
class TimelineItem:
    """A session or contact block with its events, or an event of the conversation itself."""

    kind: str  # session, contact, event, or mark (a close or reopen no event shows)
    at: datetime
    record: dict[str, Any]
    events: list[EventView]


def _who(event: dict[str, Any]) -> str:
    """The event's actor (SPEC 2.3): a handoff is the AI's; a contact's end or a reopen a team member's; a
    close a team member's, or the system's when it names nobody; a feedback the customer's (Appendix B)."""
    match event["type"]:
        case "customer_message" | "feedback":
            return "Customer"
        case "ai_message" | "handoff":
            return "AI"
        case "agent_message" | "contact_end" | "conversation_reopen":
            return str(event["agent"] or "Team member")
    return str(event["agent"] or "System")


def _event_view(event: dict[str, Any], zone: ZoneInfo) -> EventView:
    at = utc(event["occurred_at"])
    return EventView(event, _who(event), clock(at, zone), iso(at),
                     event["type"] in MESSAGES, EVENT_NAMES.get(event["type"], event["type"]), anchor(event["event_key"]))


def _timeline(found: dict[str, Any], zone: ZoneInfo) -> list[TimelineItem]:
    """Sessions and contacts as blocks holding their events, and the other events, closes and reopens
    between them, in time order."""
    blocks = {("session", s["session_id"]): TimelineItem("session", utc(s["created_at"]), s, [])
              for s in found["sessions"]}
    blocks |= {("contact", c["contact_id"]): TimelineItem("contact", utc(c["created_at"]), c, [])
               for c in found["contacts"]}
    items = list(blocks.values())
    for event in found["events"]:
        view = _event_view(event, zone)
        block = blocks.get(("session", event["session_id"])) or blocks.get(("contact", event["contact_id"]))
        if block is not None:
            block.events.append(view)
        else:
            items.append(TimelineItem("event", utc(event["occurred_at"]), event, [view]))
    # Closes and reopens (SPEC 3.3) as marks between the blocks: a reopen is always an interaction's
    # doing; a close shows only when no conversation_close event at that instant already shows it.
    closing_events = {utc(event["occurred_at"]) for event in found["events"] if event["type"] == "conversation_close"}
    marks = [("reopened", at) for at in map(utc, found["reopens"])]
    marks += [("closed", at) for at in map(utc, found["closes"]) if at not in closing_events]
    items += [TimelineItem("mark", at, {"what": what, "local": clock(at, zone), "utc": iso(at)}, [])
              for what, at in marks]

    def order(item: TimelineItem) -> tuple[datetime, int]:
        """At one instant: a reopen, events (a handoff before the contact it led to), blocks, a close."""
        if item.kind == "mark":
            return item.at, 0 if item.record["what"] == "reopened" else 2
        return item.at, 0 if item.kind == "event" else 1

    return sorted(items, key=order)


def _zone(asked: str | None, default: str) -> tuple[str, str | None]:
    """The zone to show times in, and why an asked-for one was not used."""
    if asked is None:
        return default, None
    if not is_zone(asked):
        return default, f"tz {asked!r} is not an IANA time zone; showing {default}, the brand's zone"
    return asked, None


def _named_id(text: str) -> str:
    """The id in what was typed or pasted: a Conversation Link (`https://…/conversations/cnv_…?tz=…`)
    names its conversation; anything else is taken as it is, without surrounding spaces."""
    text = text.strip()
    path = urlsplit(text).path if "://" in text else text
    if "/conversations/" in path:
        return unquote(path.rsplit("/conversations/", 1)[1].strip("/"))
    return text


@router.get("/conversations", response_class=HTMLResponse)
def open_conversation(request: Request, id_: Annotated[str | None, Query(alias="id")] = None) -> Response:
    """`/conversations?id=…` opens the conversation that a conversation, session, contact or customer id
    (or a pasted Conversation Link) names, or lists them when a customer has several; without an id,
    the form that asks for one."""
    server = server_of(request)
    wanted = blank(id_)
    with server.gate.open() as store:
        caller = require(request, store, accounts.CONVERSATIONS)
        if wanted is None:
            return server.page(request, "home.html", caller)
        wanted = _named_id(wanted)
        server.ensure_derived(store)
        found = timeline.find(store.con, wanted, caller.user.visible_brands(store.brands(kept=True)))
    if len(found) == 1:
        return RedirectResponse(f"/conversations/{quote(found[0]['conversation_id'], safe='')}", status_code=303)
    for row in found:  # each in its brand's zone, as its page shows it
        zone = server.config.for_brand(row["brand"]).timezone
        row["started"] = f"{clock(row['created_at'], ZoneInfo(zone))} ({zone})"
    return server.page(request, "home.html", caller, status=200 if found else 404, asked=wanted, found=found,
                       at_most=timeline.FOUND_AT_MOST)


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
def conversation_page(request: Request, conversation_id: str,
                      tz: Annotated[str | None, Query()] = None) -> Response:
    """The conversation's timeline (SPEC 6.3), the target of every Conversation Link; each view is
    audited (SPEC 6.5)."""
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.CONVERSATIONS)
        server.ensure_derived(store)
        brands = caller.user.visible_brands(store.brands(kept=True))
        found = timeline.conversation(store.con, conversation_id, brands)
        if found is None:
            raise problem(404, "not_found", f"no conversation {conversation_id!r}", "id")
        server.audit(store, caller, "view", f"conversation/{conversation_id}", {"via": "page"}, [found["brand"]])
    brand_zone = server.config.for_brand(found["brand"]).timezone
    zone_name, zone_error = _zone(blank(tz), brand_zone)
    zone = ZoneInfo(zone_name)
    return server.page(
        request, "conversation.html", caller, conversation=found, items=_timeline(found, zone), zone=zone_name,
        brand_zone=brand_zone, zone_error=zone_error, zones=zones(server.config, [found["brand"]]),
        clock=lambda value: clock(value, zone), iso=iso, value_name=value_name, anomalies=ANOMALIES,
        long_text=LONG_TEXT,
    )
