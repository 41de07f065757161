"""The people the log knows: its team members and its customers, read from the stored events and the derived
tables, for the answers Gladly's clients ask for when they test a connection (`GET /api/v1/agents`,
`GET /api/v1/customer-profiles/{id}`: decision 96). Nothing here is a report of SPEC 4; it lives beside the
reports because it reads the same tables in the same way, scoped to the brands the caller may see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from convoscope.reports.base import Params, in_brands
from convoscope.store import Store

# An `agent` value that is an e-mail address is the team member's address (as Gladly's sources may give it).
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class TeamMember:
    """A team member as the events name them (SPEC 2.2 `agent`), with the brands whose events do."""

    name: str
    email: str | None
    brands: list[str]


@dataclass(frozen=True)
class Customer:
    """What the log holds of one customer id across the brands asked about: the brands, the first and last
    event, and how many events, sessions, contacts and conversations."""

    customer_id: str
    brands: list[str]
    first_event_at: datetime
    last_event_at: datetime
    events: int
    sessions: int
    contacts: int
    conversations: int


def team_members(store: Store, brands: list[str]) -> list[TeamMember]:
    """Every distinct `agent` of the events of `brands` (on any type that carries one), by name."""
    where = in_brands(Params(brands=brands))
    cursor = store.con.cursor()  # requests share the store's connection
    try:
        rows = cursor.execute(f"""
            SELECT agent, list(DISTINCT brand ORDER BY brand) FROM events
            WHERE agent IS NOT NULL AND {where} GROUP BY agent ORDER BY agent
        """).fetchall()
    finally:
        cursor.close()
    return [TeamMember(name, name if EMAIL.fullmatch(name) else None, list(found)) for name, found in rows]


def customer(store: Store, customer_id: str, brands: list[str]) -> Customer | None:
    """The customer `customer_id` in `brands` (derived tables up to date), or None when none of their events
    is in those brands."""
    where = in_brands(Params(brands=brands))
    cursor = store.con.cursor()
    try:
        found = cursor.execute(f"""
            SELECT list(DISTINCT brand ORDER BY brand), min(occurred_at), max(occurred_at), count(*)
            FROM events WHERE customer_id = ? AND {where}
        """, [customer_id]).fetchone()
        if found is None or not found[3]:
            return None
        counts = cursor.execute(f"""
            SELECT (SELECT count(*) FROM sessions WHERE customer_id = $id AND {where}),
                   (SELECT count(*) FROM contacts WHERE customer_id = $id AND {where}),
                   (SELECT count(*) FROM conversations WHERE customer_id = $id AND {where})
        """, {"id": customer_id}).fetchone()
    finally:
        cursor.close()
    assert counts is not None
    return Customer(customer_id, list(found[0]), found[1], found[2], found[3], *counts)
