"""The organization as Gladly's API shows it (issue 25 point 3, decision 96): the installation, its team members
and its customers, as far as the log knows them — `GET /api/v1/organization`, `GET /api/v1/agents` and
`GET /api/v1/customer-profiles/{id}`, what Gladly's connectors call to test a connection before they ask for
reports. Gladly's field names where they apply (`id`, `name`, `timezone`, `emailAddress`, `createdAt`), ours
for what Gladly has no name for. Under the conversation pages' permission (SPEC 6.4), and scoped to the brands
the caller may see: a customer only in other brands is not found. The queries are `reports/people.py`'s.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from convoscope import accounts
from convoscope.reports import people
from convoscope.web.auth import require
from convoscope.web.errors import ERROR_RESPONSES, Errors
from convoscope.web.rate_limit import LIMITED_RESPONSES
from convoscope.web.server import problem, server_of, utc

router = APIRouter(prefix="/api/v1")


class BrandOut(BaseModel):
    """A brand of the installation, with the time zone its reports are rendered in by default (SPEC 5)."""

    id: str
    name: str
    timezone: str


class OrganizationOut(BaseModel):
    """The installation (Gladly's organization): its name (`[server] name`), default time zone and the brands
    the caller may see."""

    id: str = Field(description="The installation's name: convoscope serves one organization")
    name: str
    timezone: str = Field(description="The default time zone of reports (SPEC 5 `timezone`)")
    brands: list[BrandOut]


class AgentOut(BaseModel):
    """A team member seen in the log (SPEC 2.2 `agent`): the events name them, so the name is the id."""

    id: str
    name: str
    emailAddress: str | None = Field(description="The name, when it is an e-mail address; else unknown")
    brands: list[str] = Field(description="The brands whose events name this team member")


class CustomerCounts(BaseModel):
    events: int
    sessions: int
    contacts: int
    conversations: int


class CustomerProfileOut(BaseModel):
    """What the log knows of a customer id, over the brands the caller may see."""

    id: str
    createdAt: datetime = Field(description="The customer's first event (as Gladly's clients read createdAt)")
    firstActivityAt: datetime = Field(description="The customer's first event")
    lastActivityAt: datetime = Field(description="The customer's last event")
    brands: list[str]
    counts: CustomerCounts


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Errors, "description": "No such customer among your brands"}}


@router.get("/organization", response_model=OrganizationOut, responses=ERROR_RESPONSES | LIMITED_RESPONSES,
            summary="The installation: its name, default time zone and brands (Gladly's organization)")
def get_organization(request: Request) -> OrganizationOut:
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.CONVERSATIONS)
        brands = caller.user.visible_brands(store.brands(kept=True))
    config = server.config
    name = config.server.name
    return OrganizationOut(id=name, name=name, timezone=config.defaults.timezone,
                           brands=[BrandOut(id=b, name=b, timezone=config.for_brand(b).timezone) for b in brands])


@router.get("/agents", response_model=list[AgentOut], responses=ERROR_RESPONSES | LIMITED_RESPONSES,
            summary="The team members the log names, with their brands (Gladly's agents)")
def get_agents(request: Request) -> list[AgentOut]:
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.CONVERSATIONS)
        members = people.team_members(store, caller.user.visible_brands(store.brands(kept=True)))
    return [AgentOut(id=m.name, name=m.name, emailAddress=m.email, brands=m.brands) for m in members]


@router.get("/customer-profiles/{customer_id:path}", response_model=CustomerProfileOut,
            responses=ERROR_RESPONSES | LIMITED_RESPONSES | NOT_FOUND,
            summary="What the log knows of a customer: brands, first and last activity, counts")
def get_customer_profile(request: Request, customer_id: str) -> CustomerProfileOut:
    server = server_of(request)
    with server.gate.open() as store:
        caller = require(request, store, accounts.CONVERSATIONS)
        server.ensure_derived(store)
        found = people.customer(store, customer_id, caller.user.visible_brands(store.brands(kept=True)))
    if found is None:
        raise problem(404, "not_found", f"no customer {customer_id!r} among the brands you may see", "id")
    return CustomerProfileOut(
        id=found.customer_id, createdAt=utc(found.first_event_at), firstActivityAt=utc(found.first_event_at),
        lastActivityAt=utc(found.last_event_at), brands=found.brands,
        counts=CustomerCounts(events=found.events, sessions=found.sessions, contacts=found.contacts,
                              conversations=found.conversations))
