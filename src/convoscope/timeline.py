"""One conversation as it happened (SPEC 6.3): its sessions and contacts, and every event in order.

The conversation page and `GET /api/v1/conversations/{id}` both read this, and so do the session and
contact endpoints. Sessions and contacts are judged at the as-of time with the reports' own facts
queries, so the page shows the outcome the reports count.

Events are the customer's events from the conversation's creation until the next conversation of the
same customer begins. Customer and AI messages carry their session from the derived session messages;
team messages and a customer's messages to the team carry the contact whose span holds them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from convoscope.reports.base import Params, in_brands, instant
from convoscope.reports.contacts import contact_facts
from convoscope.reports.conversations import conversation_facts
from convoscope.reports.sessions import session_facts
from convoscope.store import sql_string as q


def _records(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _params(brands: list[str], as_of: datetime | None) -> Params:
    params = Params(brands=brands, every_brand=False)
    if as_of is not None:
        params.as_of = as_of
    return params


SESSION_FIELDS = """session_id, conversation_id, brand, customer_id, created_at, ended_at, is_open, end_reason, outcome,
    channel, ai_agent, guides, first_response_at, was_handed_off AS handed_off, was_resolved AS resolved,
    was_recontacted AS recontacted, CASE WHEN was_handed_off THEN handoff_category END AS handoff_category,
    CASE WHEN was_handed_off THEN handoff_subcategory END AS handoff_subcategory,
    CASE WHEN was_handed_off THEN handoff_reason END AS handoff_reason,
    CASE WHEN was_handed_off THEN transfer_rationale END AS transfer_rationale"""
CONTACT_FIELDS = """contact_id, conversation_id, session_id, brand, customer_id, source, channel, created_at,
    first_response_at, ended_at, is_open, end_reason, agent_names AS agents, customer_messages, agent_messages"""


def _sessions(params: Params) -> str:
    """Sessions of the visible brands judged at the as-of time, with the contact a handoff opened."""
    return f"""
        SELECT {SESSION_FIELDS}, (SELECT contact_id FROM contacts c WHERE c.session_id = f.session_id
                                  AND c.brand = f.brand AND c.customer_id = f.customer_id) AS contact_id
        FROM ({session_facts(params)}) f WHERE {in_brands(params)}
    """


def session(con: duckdb.DuckDBPyConnection, session_id: str, brands: list[str],
            as_of: datetime | None = None) -> dict[str, Any] | None:
    cursor = con.cursor()
    found = _records(cursor.execute(f"SELECT * FROM ({_sessions(_params(brands, as_of))}) WHERE session_id = ?",
                                    [session_id]))
    return found[0] if found else None


def contact(con: duckdb.DuckDBPyConnection, contact_id: str, brands: list[str],
            as_of: datetime | None = None) -> dict[str, Any] | None:
    params = _params(brands, as_of)
    cursor = con.cursor()
    found = _records(cursor.execute(f"SELECT {CONTACT_FIELDS} FROM ({contact_facts(params)}) WHERE contact_id = ?",
                                    [contact_id]))
    return found[0] if found else None


def conversation(con: duckdb.DuckDBPyConnection, conversation_id: str, brands: list[str],
                 as_of: datetime | None = None) -> dict[str, Any] | None:
    """The conversation, its sessions, contacts and events; None when it does not exist or belongs to
    a brand outside `brands`."""
    if not brands:
        return None
    params = _params(brands, as_of)
    cursor = con.cursor()
    head = _records(cursor.execute(f"""
        SELECT conversation_id, brand, customer_id, created_at, ended_at, is_closed, times_closed_by AS times_closed,
               times_reopened_by AS times_reopened, first_channel, last_channel, channels, session_count,
               contact_count, handled_by, first_closed_at, last_closed_at
        FROM ({conversation_facts(params, f"v.conversation_id = {q(conversation_id)}")})
    """))
    if not head:
        return None
    found = head[0]
    found["status"] = "CLOSED" if found.pop("is_closed") else "OPEN"
    brand, customer = found["brand"], found["customer_id"]
    found["sessions"] = _records(cursor.execute(
        f"SELECT * FROM ({_sessions(params)}) WHERE conversation_id = ? ORDER BY created_at, session_id",
        [conversation_id]))
    found["contacts"] = _records(cursor.execute(f"""
        SELECT {CONTACT_FIELDS} FROM ({contact_facts(params)}) WHERE conversation_id = ? ORDER BY created_at, contact_id
    """, [conversation_id]))
    found["events"] = _records(cursor.execute("""
        WITH span AS (
            SELECT ? AS start, (SELECT min(created_at) FROM conversations
                                WHERE brand = ? AND customer_id = ? AND created_at > ?) AS stop
        ), mine AS (
            SELECT e.* FROM events e, span
            WHERE e.brand = ? AND e.customer_id = ? AND e.occurred_at >= span.start
              AND (span.stop IS NULL OR e.occurred_at < span.stop)
        ), spans AS (
            SELECT contact_id, created_at, ended_at FROM contacts WHERE conversation_id = ?
        )
        SELECT m.event_id, m.type::VARCHAR AS type, m.occurred_at, m.channel, m.text, m.route::VARCHAR AS route,
               m.ai_agent, m.guides, m.category, m.subcategory, m.reason, m.transfer_rationale, m.agent,
               coalesce(sm.session_id, CASE WHEN m.type = 'handoff' THEN (
                   SELECT session_id FROM sessions s WHERE s.conversation_id = ? AND s.end_reason = 'handoff'
                   AND s.ended_at = m.occurred_at ORDER BY s.session_id LIMIT 1) END) AS session_id,
               CASE WHEN sm.session_id IS NULL AND m.type IN ('customer_message', 'agent_message', 'contact_end')
                    THEN (SELECT contact_id FROM spans WHERE m.occurred_at BETWEEN spans.created_at AND spans.ended_at
                          ORDER BY spans.created_at DESC LIMIT 1) END AS contact_id,
               (SELECT min(a.kind) FROM anomalies a WHERE a.brand = m.brand AND a.event_id = m.event_id) AS anomaly
        FROM mine m
        LEFT JOIN session_messages sm ON sm.brand = m.brand AND sm.event_id = m.event_id
        ORDER BY m.occurred_at, m.type, m.event_id
    """, [found["created_at"], brand, customer, found["created_at"], brand, customer, conversation_id,
          conversation_id]))
    # Closes and reopens up to the as-of time, those that derivation inferred (a session's end) included.
    at = instant(params.as_of)
    found["closes"] = [r[0] for r in cursor.execute(
        f"SELECT closed_at FROM conversation_closes WHERE conversation_id = ? AND counted AND closed_at <= {at} "
        "ORDER BY closed_at", [conversation_id]).fetchall()]
    found["reopens"] = [r[0] for r in cursor.execute(
        f"SELECT reopened_at FROM conversation_reopens WHERE conversation_id = ? AND reopened_at <= {at} "
        "ORDER BY reopened_at", [conversation_id]).fetchall()]
    for event in found["events"]:
        event["speaker"] = {"customer_message": "customer", "ai_message": "ai", "agent_message": "agent"}.get(
            event["type"], "system")
    return found


FOUND_AT_MOST = 200


def find(con: duckdb.DuckDBPyConnection, text: str, brands: list[str]) -> list[dict[str, Any]]:
    """Conversations of `brands` that `text` names: as their own id, the id of one of their sessions or
    contacts, or their customer's id (every conversation of that customer, newest first)."""
    if not brands:
        return []
    params = _params(brands, None)
    return _records(con.cursor().execute(f"""
        SELECT conversation_id, brand, customer_id, created_at, ended_at, session_count, contact_count, handled_by
        FROM conversations v
        WHERE {in_brands(params, "v.brand")}
          AND (v.conversation_id = $text OR v.customer_id = $text
               OR v.conversation_id IN (SELECT conversation_id FROM sessions WHERE session_id = $text)
               OR v.conversation_id IN (SELECT conversation_id FROM contacts WHERE contact_id = $text))
        ORDER BY created_at DESC, conversation_id
        LIMIT {FOUND_AT_MOST}
    """, {"text": text}))
