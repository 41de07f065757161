"""Gladly's endpoints that convoscope does not have (issue 25 point 3, decision 95), each answered 404 with the
`errors` body saying in plain words what is missing and why, and what the API answers instead — so that a
client written for Gladly (its example scripts, tap-gladly's export-job streams) stops with a reason it can act
on. Any other path under /api/, and a known path asked with another method, gets the same 404 from the error
handlers (`errors.unknown_endpoint`). None of these routes is in the OpenAPI document: they answer nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn

from fastapi import APIRouter, Request

from convoscope.web.errors import supported
from convoscope.web.server import problem

router = APIRouter(prefix="/api/v1", include_in_schema=False)

EVERY_METHOD = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Missing:
    """Gladly's endpoints at `paths` (under /api/v1), asked with one of `methods`, and why convoscope has none."""

    paths: tuple[str, ...]
    why: str
    methods: tuple[str, ...] = EVERY_METHOD


# Paths as Gladly's REST API documents them (docs/gladly.md lists which client calls which).
MISSING = (
    Missing(("/reports/work-session-events",), "convoscope has no agent work sessions: it reports from a log of "
            "messages, not agents' states (logged in, available, away)", methods=("POST",)),
    Missing(("/export/jobs", "/export/jobs/{rest:path}", "/export/schedules", "/export/schedules/{rest:path}"),
            "convoscope has no export jobs or schedules: it answers a report at once (POST /api/v1/reports, "
            "GET /api/v1/reports/{name}), and a conversation with every event (GET /api/v1/conversations/{id})"),
    Missing(("/events",), "convoscope has no Events API to read: it keeps no stream of agents' and contacts' "
            "state changes; POST /api/v1/events sends events in", methods=("GET",)),
    Missing(("/customer-profiles",), "convoscope cannot search customers by e-mail address, phone number or "
            "external id, nor create them: its log knows a customer by id only; ask "
            "GET /api/v1/customer-profiles/{id}"),
    Missing(("/conversations/{conversation_id}/items", "/conversations/{conversation_id}/topics",
             "/conversation-items/{rest:path}"),
            "convoscope has no conversation items or topics: GET /api/v1/conversations/{id} gives a conversation "
            "with every event of its timeline"),
    Missing(("/tasks", "/tasks/{rest:path}", "/customers/{customer_id}/tasks"),
            "convoscope has no tasks: its log holds messages, handoffs and closes, not the team's to-do items"),
    Missing(("/topics", "/topics/{rest:path}"), "convoscope has no topics: a handoff's category and subcategory "
            "are in the session reports (by=handoff_category on sessions-summary)"),
    Missing(("/answers", "/answers/{rest:path}", "/audiences", "/audiences/{rest:path}"),
            "convoscope has no knowledge base (answers, audiences): the session reports list the guides each AI "
            "session used"),
    Missing(("/inboxes", "/inboxes/{rest:path}"), "convoscope has no list of inboxes: an inbox is a field of the "
            "events, and reports filter on it (where=inbox=VALUE)"),
    Missing(("/teams", "/teams/{rest:path}"), "convoscope has no teams: events name a team member, never a team; "
            "GET /api/v1/agents lists the team members"),
)


def _answer(why: str) -> Callable[[Request], Awaitable[NoReturn]]:
    async def missing(request: Request) -> NoReturn:
        raise problem(404, "not_found", f"{why}. {request.method} {request.url.path} is not in convoscope's API: "
                                        f"{supported(request)}")
    return missing


for entry in MISSING:
    for path in entry.paths:
        router.add_api_route(path, _answer(entry.why), methods=list(entry.methods), response_model=None)
