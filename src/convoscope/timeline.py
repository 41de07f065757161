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
from convoscope.store import id_sql, key_of, stored


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


def _sessions(params: Params, where: str, contacts: str) -> str:
    """Sessions of the visible brands that `where` picks (by key: ids are not compared as text), judged
    at the as-of time, with the contact a handoff opened. `contacts`: a condition on the contacts `c` that holds
    for those contacts (of the same conversation, SPEC 3.1-3.2: a session's contact starts while it is open), so
    that DuckDB looks them up among a few rows instead of joining every contact (0.12 s of a conversation page at
    10M)."""
    return f"""
        SELECT {SESSION_FIELDS}, (SELECT contact_id FROM contacts c WHERE {contacts} AND c.session_key = f.session_key
                                  AND c.brand = f.brand AND c.customer_id = f.customer_id) AS contact_id
        FROM ({session_facts(params)}) f WHERE {in_brands(params)} AND {where}
    """


def session(con: duckdb.DuckDBPyConnection, session_id: str, brands: list[str],
            as_of: datetime | None = None) -> dict[str, Any] | None:
    key = key_of(session_id, "ses_")
    if key is None:
        return None
    query = _sessions(_params(brands, as_of), "session_key = $key", "c.session_key = $key")
    found = _records(con.cursor().execute(query, {"key": key}))
    return found[0] if found else None


def contact(con: duckdb.DuckDBPyConnection, contact_id: str, brands: list[str],
            as_of: datetime | None = None) -> dict[str, Any] | None:
    key = key_of(contact_id, "ctc_")
    if key is None:
        return None
    params = _params(brands, as_of)
    found = _records(con.cursor().execute(
        f"SELECT {CONTACT_FIELDS} FROM ({contact_facts(params)}) WHERE contact_key = ?", [key]))
    return found[0] if found else None


def conversation(con: duckdb.DuckDBPyConnection, conversation_id: str, brands: list[str],
                 as_of: datetime | None = None) -> dict[str, Any] | None:
    """The conversation, its sessions, contacts and events; None when it does not exist or belongs to
    a brand outside `brands`."""
    key = key_of(conversation_id, "cnv_")
    if not brands or key is None:
        return None
    params = _params(brands, as_of)
    cursor = con.cursor()
    head = _records(cursor.execute(f"""
        SELECT conversation_id, brand, customer_id, created_at, ended_at, is_closed, times_closed_by AS times_closed,
               times_reopened_by AS times_reopened, first_channel, last_channel, channels, session_count,
               contact_count, handled_by, first_closed_at, last_closed_at
        FROM ({conversation_facts(params, f"v.conversation_key = {key}")})
    """))
    if not head:
        return None
    found = head[0]
    found["status"] = "CLOSED" if found.pop("is_closed") else "OPEN"
    brand, customer = found["brand"], found["customer_id"]
    found["sessions"] = _records(cursor.execute(
        f"{_sessions(params, 'conversation_key = $key', 'c.conversation_key = $key')} ORDER BY created_at, session_id",
        {"key": key}))
    found["contacts"] = _records(cursor.execute(f"""
        SELECT {CONTACT_FIELDS} FROM ({contact_facts(params)}) WHERE conversation_key = ? ORDER BY created_at, contact_id
    """, [key]))
    found["events"] = _records(cursor.execute(f"""
        WITH span AS (
            SELECT $start::TIMESTAMP AS start, (SELECT min(created_at) FROM {stored("conversations")}
                                WHERE brand = $brand AND customer_id = $customer AND created_at > $start) AS stop
        ), mine AS (
            SELECT e.* FROM events e, span
            WHERE e.brand = $brand AND e.customer_id = $customer AND e.occurred_at >= span.start
              AND (span.stop IS NULL OR e.occurred_at < span.stop)
        ), spans AS (
            SELECT contact_id, created_at, ended_at FROM contacts WHERE conversation_key = $key
        )
        SELECT m.event_id, m.event_key, m.type::VARCHAR AS type, m.occurred_at, m.channel, m.text, m.route::VARCHAR AS route,
               m.ai_agent, m.guides, m.category, m.subcategory, m.reason, m.transfer_rationale, m.agent,
               coalesce({id_sql("ses_", "sm.session_key")}, CASE WHEN m.type = 'handoff' THEN (
                   SELECT session_id FROM sessions s WHERE s.conversation_key = $key AND s.end_reason = 'handoff'
                   AND s.ended_at = m.occurred_at ORDER BY s.session_id LIMIT 1) END) AS session_id,
               CASE WHEN sm.session_key IS NULL AND m.type IN ('customer_message', 'agent_message', 'contact_end')
                    THEN (SELECT contact_id FROM spans WHERE m.occurred_at BETWEEN spans.created_at AND spans.ended_at
                          ORDER BY spans.created_at DESC LIMIT 1) END AS contact_id,
               (SELECT min(a.kind) FROM anomalies a WHERE a.brand = m.brand AND a.event_id = m.event_id) AS anomaly
        FROM mine m
        LEFT JOIN {stored("session_messages")} sm ON sm.event_key = m.event_key
        ORDER BY m.occurred_at, m.type, m.event_id
    """, {"start": found["created_at"], "brand": brand, "customer": customer, "key": key}))
    # Closes and reopens up to the as-of time, those that derivation inferred (a session's end) included.
    at = instant(params.as_of)
    found["closes"] = [r[0] for r in cursor.execute(
        f"SELECT closed_at FROM {stored('conversation_closes')} WHERE conversation_key = ? AND counted "
        f"AND closed_at <= {at} ORDER BY closed_at", [key]).fetchall()]
    found["reopens"] = [r[0] for r in cursor.execute(
        f"SELECT reopened_at FROM {stored('conversation_reopens')} WHERE conversation_key = ? AND reopened_at <= {at} "
        "ORDER BY reopened_at", [key]).fetchall()]
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
    named = ["v.customer_id = $text"]  # and, when the text is an id, the conversation it names, by key
    keys = {"cnv": key_of(text, "cnv_"), "ses": key_of(text, "ses_"), "ctc": key_of(text, "ctc_")}
    if keys["cnv"] is not None:
        named.append("v.conversation_key = $cnv")
    if keys["ses"] is not None:
        named.append(f"v.conversation_key IN (SELECT conversation_key FROM {stored('sessions')} WHERE session_key = $ses)")
    if keys["ctc"] is not None:
        named.append(f"v.conversation_key IN (SELECT conversation_key FROM {stored('contacts')} WHERE contact_key = $ctc)")
    return _records(con.cursor().execute(f"""
        SELECT conversation_id, brand, customer_id, created_at, ended_at, session_count, contact_count, handled_by
        FROM conversations v
        WHERE {in_brands(params, "v.brand")} AND ({" OR ".join(named)})
        ORDER BY created_at DESC, conversation_id
        LIMIT {FOUND_AT_MOST}
    """, {"text": text} | {name: key for name, key in keys.items() if key is not None}))
