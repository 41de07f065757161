"""Sessions, contacts and conversations by id (SPEC 6.2): the entities behind the reports' ids, judged now,
a conversation with its timeline (`timeline.py`). Each answer is a view of personal data, audited (SPEC 6.5).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from convoscope import accounts, timeline
from convoscope.web.auth import require
from convoscope.web.errors import ERROR_RESPONSES, Errors
from convoscope.web.server import problem, server_of

router = APIRouter(prefix="/api/v1")

def _entity(request: Request, permission: str, kind: str, entity_id: str, audited: bool) -> dict[str, Any]:
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, permission)
        server.ensure_derived(store)
        brands = caller.user.visible_brands(store.brands(kept=True))
        found = getattr(timeline, kind)(store.con, entity_id, brands)
        if found is None:
            raise problem(404, "not_found", f"no {kind} {entity_id!r}", "id")
        if audited:
            server.audit(store, caller, "view", f"{kind}/{entity_id}", {"via": "api"}, [found["brand"]])
    return jsonable(found)


def jsonable(value: Any) -> Any:
    """Times as RFC 3339 UTC strings, nested."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat().replace("+00:00", "Z")
    return value


class SessionOut(BaseModel):
    """An AI session judged now (SPEC 3.6); outcome is open, no_response, handed_off or resolved."""

    session_id: str
    conversation_id: str
    brand: str
    customer_id: str
    created_at: datetime
    ended_at: datetime | None
    is_open: bool
    end_reason: str | None
    outcome: str
    channel: str | None
    ai_agent: str | None
    guides: list[str] | None
    first_response_at: datetime | None
    handed_off: bool | None
    resolved: bool | None
    recontacted: bool | None
    handoff_category: str | None
    handoff_subcategory: str | None
    handoff_reason: str | None
    transfer_rationale: str | None
    contact_id: str | None = Field(description="The team contact a handoff opened")


class ContactOut(BaseModel):
    """A team contact judged now (SPEC 3.2)."""

    contact_id: str
    conversation_id: str
    session_id: str | None = Field(description="The AI session whose handoff opened it")
    brand: str
    customer_id: str
    source: str
    channel: str | None
    created_at: datetime
    first_response_at: datetime | None
    ended_at: datetime | None
    is_open: bool | None
    end_reason: str | None
    agents: list[str] | None
    customer_messages: int
    agent_messages: int


class EventOut(BaseModel):
    """One event of the conversation, with the session or contact it belongs to."""

    event_id: str
    type: str
    occurred_at: datetime
    speaker: Literal["customer", "ai", "agent", "system"]
    channel: str | None
    text: str | None
    route: str | None
    ai_agent: str | None
    guides: list[str] | None
    category: str | None
    subcategory: str | None
    reason: str | None
    transfer_rationale: str | None
    agent: str | None
    session_id: str | None
    contact_id: str | None
    anomaly: str | None = Field(description="The SPEC 3.3 anomaly derivation found in this event, if any")


class ConversationOut(BaseModel):
    """A conversation judged now (SPEC 3.3, 4.6) with its timeline: sessions, contacts and events."""

    conversation_id: str
    brand: str
    customer_id: str
    created_at: datetime
    ended_at: datetime | None
    status: Literal["OPEN", "CLOSED"]
    times_closed: int
    times_reopened: int
    first_channel: str | None
    last_channel: str | None
    channels: list[str] | None
    session_count: int
    contact_count: int
    handled_by: str
    first_closed_at: datetime | None
    last_closed_at: datetime | None
    closes: list[datetime] = Field(description="Every counted close up to now, inferred ones included (SPEC 3.3)")
    reopens: list[datetime] = Field(description="Every reopen up to now, by a message or a conversation_reopen")
    sessions: list[SessionOut]
    contacts: list[ContactOut]
    events: list[EventOut]


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Errors, "description": "No such id among your brands"}}


@router.get("/sessions/{session_id}", response_model=SessionOut, responses=ERROR_RESPONSES | NOT_FOUND,
            summary="One AI session, judged now")
def get_session(request: Request, session_id: str) -> dict[str, Any]:
    return _entity(request, accounts.CONVERSATIONS, "session", session_id, audited=True)


@router.get("/contacts/{contact_id}", response_model=ContactOut, responses=ERROR_RESPONSES | NOT_FOUND,
            summary="One team contact, judged now")
def get_contact(request: Request, contact_id: str) -> dict[str, Any]:
    return _entity(request, accounts.CONVERSATIONS, "contact", contact_id, audited=True)


@router.get("/conversations/{conversation_id}", response_model=ConversationOut,
            responses=ERROR_RESPONSES | NOT_FOUND,
            summary="One conversation with its sessions, contacts and every event (its timeline)")
def get_conversation(request: Request, conversation_id: str) -> dict[str, Any]:
    return _entity(request, accounts.CONVERSATIONS, "conversation", conversation_id, audited=True)
