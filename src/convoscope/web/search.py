"""Search (issue 29): `GET /api/v1/search` and the search page behind the box of every page's menu.

An id — customer, conversation, session or contact, whole or its start — needs the conversation pages'
permission; the words of messages need the with-messages permission too (SPEC 6.4: they are the
with-messages report's personal data), and each search of words is audited as one (SPEC 6.5). A user
finds only their brands. Each search first brings the index up to date with the store (`search.catch_up`);
when that is a long build (the index file deleted, a large ingest), a thread builds it and the page says
how far it got, the API answers 503 with `Retry-After`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from convoscope import accounts, search
from convoscope.store import Store
from convoscope.web.auth import require
from convoscope.web.errors import ERROR_RESPONSES, Errors
from convoscope.web.rate_limit import LIMITED_RESPONSES
from convoscope.web.server import Caller, Server, blank, clock, iso, problem, server_of

router = APIRouter()

BACKGROUND = 200_000  # messages to index above which a thread builds, and the request does not wait
LAST_PAGE = 10_000  # the highest page a search is asked for (the API's `page` and the page's alike)
SNIPPET = 240  # characters of a message shown around its first matching word
SPEAKERS = {"customer_message": "customer", "ai_message": "ai", "agent_message": "agent"}


@dataclass
class Building:
    """A build of the index running in a thread: how far it got."""

    done: int = 0
    total: int = 0
    thread: threading.Thread | None = None


_locks: dict[Path, threading.Lock] = {}
_builds: dict[Path, Building] = {}
_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _guard:
        return _locks.setdefault(path, threading.Lock())


def _build_in_background(server: Server, path: Path, total: int) -> Building:
    with _guard:
        building = _builds.get(path)
        if building is not None and building.thread is not None and building.thread.is_alive():
            return building
        building = _builds[path] = Building(total=total)

    def run() -> None:
        def progress(done: int, of: int) -> None:
            building.done, building.total = done, of

        with server.gate.open() as store, _lock_for(path):
            search.catch_up(store, progress=progress)

    building.thread = threading.Thread(target=run, name="convoscope-search-index", daemon=True)
    building.thread.start()
    return building


def _up_to_date(server: Server, store: Store) -> Building | None:
    """Index what the store holds that the index lacks; a long build goes to a thread, whose progress is
    returned (None: the index is up to date)."""
    path = store.path
    building = _builds.get(path)
    if building is not None and building.thread is not None and building.thread.is_alive():
        return building
    with _lock_for(path):
        waiting = search.pending(store)
        if waiting <= BACKGROUND:
            search.catch_up(store)
            return None
    return _build_in_background(server, path, waiting)


def _snippet(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """The message around its first matching word, cut to SNIPPET characters, as (piece, matched) parts;
    `spans` are where its words are (`search.marks`)."""
    if not spans:
        return [(text[:SNIPPET] + ("…" if len(text) > SNIPPET else ""), False)]
    start = max(0, spans[0][0] - SNIPPET // 3)
    end = min(len(text), start + SNIPPET)
    parts: list[tuple[str, bool]] = [("…", False)] if start else []
    position = start
    for low, high in spans:
        low, high = max(low, position), min(high, end)
        if low >= high:
            continue
        parts += [(text[position:low], False), (text[low:high], True)]
        position = high
    parts.append((text[position:end] + ("…" if end < len(text) else ""), False))
    return [p for p in parts if p[0]]


def _run(request: Request, q: str, page: int, via: str) -> tuple[Caller, dict[str, Any] | Building]:
    """Search for `q` as the caller may: what it found (conversations by id, then messages), or the
    build of the index in progress."""
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.CONVERSATIONS)
        server.ensure_derived(store)
        visible = caller.user.visible_brands(store.brands(kept=True))
        words = caller.user.can(accounts.REPORTS_WITH_MESSAGES)
        if words and search.fts_query(q) is not None:
            building = _up_to_date(server, store)
            if building is not None:
                return caller, building
        every_brand = caller.user.brands is None
        found = search.search(store, q, visible, every_brand=every_brand, words=words, page=page)
        if words and search.fts_query(q) is not None:
            # The brands searched are in the parameters, which the log shows, as well as in the entry's
            # brands, which decide the administrators who see it (and are not shown).
            server.audit(store, caller, "search", "messages",
                         {"q": q, "page": page, "via": via, "messages": len(found.messages), "brands": sorted(visible)},
                         visible)
    conversations = []
    for row in found.ids:
        zone = server.config.for_brand(row["brand"]).timezone
        conversations.append({"conversation_id": row["conversation_id"], "brand": row["brand"],
                              "customer_id": row["customer_id"], "matched": row["matched"],
                              "created_at": iso(row["created_at"]),
                              "created_local": clock(row["created_at"], ZoneInfo(zone)), "time_zone": zone,
                              "session_count": row["session_count"], "contact_count": row["contact_count"]})
    messages = []
    for row in found.messages:
        zone = server.config.for_brand(row["brand"]).timezone
        messages.append({"conversation_id": row["conversation_id"], "brand": row["brand"],
                         "customer_id": row["customer_id"], "event_id": row["event_id"],
                         "anchor": search.anchor(row["event_key"]), "speaker": SPEAKERS[row["type"]],
                         "agent": row["agent"] if row["type"] == "agent_message" else None,
                         "ai_agent": row["ai_agent"] if row["type"] == "ai_message" else None,
                         "channel": row["channel"], "occurred_at": iso(row["occurred_at"]),
                         "occurred_local": clock(row["occurred_at"], ZoneInfo(zone)), "time_zone": zone,
                         "text": row["text"], "parts": _snippet(row["text"], search.marks(row["text"], q))})
    return caller, {"query": q, "page": page, "per_page": search.PER_PAGE, "words_searched": words,
                    "conversations": conversations, "messages": messages,
                    "next_page": page + 1 if found.more else None}


class FoundConversation(BaseModel):
    """A conversation an id named: `matched` says which (customer_id, conversation_id, session_id, contact_id)."""

    conversation_id: str
    brand: str
    customer_id: str
    matched: str
    created_at: str
    created_local: str = Field(description="Created, in the brand's time zone")
    time_zone: str
    session_count: int
    contact_count: int


class FoundMessage(BaseModel):
    """A message holding the words, with its conversation (open it at `/conversations/{conversation_id}#{anchor}`)."""

    conversation_id: str | None
    brand: str
    customer_id: str
    event_id: str
    anchor: str
    speaker: str = Field(description="customer, ai or agent (a team member)")
    agent: str | None
    ai_agent: str | None
    channel: str | None
    occurred_at: str
    occurred_local: str = Field(description="When, in the brand's time zone")
    time_zone: str
    text: str


class SearchOut(BaseModel):
    """One page: conversations an id named first, then messages holding every word, newest first."""

    query: str
    page: int
    per_page: int
    words_searched: bool = Field(description="false: your role may not read messages, so only ids were searched")
    conversations: list[FoundConversation]
    messages: list[FoundMessage]
    next_page: int | None


BUILDING: dict[int | str, dict[str, Any]] = {
    503: {"model": Errors, "description": "The search index is being built; wait the seconds Retry-After gives"}}


def _query(q: str | None) -> str:
    text = blank(q)
    if text is None:
        raise problem(400, "required", "give q, the words or the id to look for, such as q=refund", "q")
    if len(text) > 500:
        raise problem(400, "too_long", f"q has {len(text):,} characters; search with at most 500", "q")
    return text


@router.get("/api/v1/search", response_model=SearchOut, summary="Find conversations by id and messages by their words",
            responses=ERROR_RESPONSES | LIMITED_RESPONSES | BUILDING)
def search_api(request: Request,
               q: Annotated[str | None, Query(description="An id (customer, conversation, session, contact: whole or "
                                                           "its start) or words; \"quoted words\" as a phrase, word* by its start")] = None,
               page: Annotated[int, Query(ge=1, le=LAST_PAGE, description="Page, from 1")] = 1) -> Any:
    _, found = _run(request, _query(q), page, "api")
    if isinstance(found, Building):
        raise problem(503, "index_building", f"the search index is being built ({found.done:,} of {found.total:,} "
                      "messages); send the request again in a few seconds", headers={"Retry-After": "5"})
    return found


@router.get("/search", response_class=HTMLResponse, include_in_schema=False)
def search_page(request: Request, q: Annotated[str | None, Query()] = None,
                page: Annotated[str | None, Query()] = None) -> Response:
    server = server_of(request)
    text = blank(q)
    given = blank(page)
    number = int(given) if given is not None and re.fullmatch(r"[0-9]{1,5}", given) else None
    error = None
    if given is not None and (number is None or not 0 < number <= LAST_PAGE):
        error = f"page {given!r} is not a page number; use 1 to {LAST_PAGE:,}"  # as the API refuses it (400)
    if text is None or error is not None:  # the form alone, saying what is wrong
        with server.gate.open() as store:
            caller = require(request, store, accounts.CONVERSATIONS)
        return server.page(request, "search.html", caller, status=400 if error and text else 200, q=text or "",
                           found=None, building=None, error=error if text else None)
    caller, found = _run(request, _query(text), number or 1, "page")
    if isinstance(found, Building):
        return server.page(request, "search.html", caller, q=text, found=None, building=found)
    return server.page(request, "search.html", caller, q=text, found=found, building=None,
                       may_read=caller.user.can(accounts.REPORTS_WITH_MESSAGES))
