"""Gladly's Conversation Timestamps report (issue 25): one row per conversation event the derived tables
hold — created, each counted close, each reopen (SPEC 3.3) — in Gladly's header row, anchored on the
event's time. It is what tap-gladly asks for (`ConversationTimestampsReport`); the Gladly dialect serves it.

Who started or closed a conversation is read from the log (decision 99): the first event of the
interaction that created or reopened it (a customer message: CUSTOMER; a team member's message: AGENT; the
AI agent's message or handoff: SYSTEM), and for a close what ended its last interaction (a `contact_end`:
AGENT; a `conversation_close`: AGENT when it names a team member, else SYSTEM; inactivity: SYSTEM). Gladly's
other event types (topics, assignments, notes, merges) are facts the log does not hold, and so are the
columns only they fill (decision 100).
"""

from __future__ import annotations

from convoscope.config import Config
from convoscope.reports.base import (
    Column,
    Params,
    Report,
    as_of,
    channel_in,
    guard,
    in_brands,
    in_range,
    local,
    q,
)
from convoscope.store import id_order, stored

# Verbatim and in order from tap-gladly's schema, itself generated from a real Gladly CSV:
# harrystech/tap-gladly@3cee1844c626ff17389e185a37e2c24578ecf4a9, tap_gladly/schemas/
# reports__conversation_timestamps_report.json (Gladly's help page "Conversation Timestamps" lists the same
# columns in the same order from Timestamp on).
COLUMNS = tuple(Column(name) for name in (
    "Timezone Filter", "Timestamp", "Event Type", "Conversation ID", "Customer ID", "Initiator Type",
    "Initiator ID", "Initiator Agent Name", "Assigned Inbox ID", "Assigned Inbox Name", "Assigned Agent ID",
    "Assigned Agent Name", "Topic ID", "Topic Name", "Newly Assigned Inbox ID", "Newly Assigned Inbox Name",
    "Newly Assigned Agent ID", "Newly Assigned Agent Name", "Assignment Update Reason", "Merged Customer ID",
    "Merged Conversation ID",
))

# Events in the order they happen at one instant of one conversation: an end and a start at the same
# instant do not close it (SPEC 3.3), so a close is never followed by a reopen or a creation at its instant.
# What the log fills (decisions 99-101); docs/gladly.md lists these as filled and the rest as empty.
FILLED_COLUMNS = frozenset({"Timezone Filter", "Timestamp", "Event Type", "Conversation ID", "Customer ID",
                            "Initiator Type", "Assigned Inbox Name"})
EVENT_TYPES = ("CONVERSATION/CREATED", "CONVERSATION/REOPENED", "CONVERSATION/CLOSED")


def moment(ts: str, params: Params) -> str:
    """`YYYY-MM-DD HH:MM:SS`, the wall clock of UTC timestamp `ts` in the report's zone (decision 91), as every
    Gladly report writes a timestamp."""
    return f"strftime({local(ts, params)}, '%Y-%m-%d %H:%M:%S')"


def initiator(event_type: str) -> str:
    """Gladly's initiator type of the event that started an interaction (decision 99): a customer's message
    CUSTOMER, a team member's AGENT, any other (the AI's message or handoff) SYSTEM; empty without one."""
    return (f"CASE WHEN {event_type} = 'customer_message' THEN 'CUSTOMER' WHEN {event_type} = 'agent_message' "
            f"THEN 'AGENT' WHEN {event_type} IS NOT NULL THEN 'SYSTEM' END")


def _rows(report: Report, params: Params, config: Config) -> str:
    at = as_of(params)
    picked = "conversation_key IN (SELECT conversation_key FROM picked)"
    filled = {
        "Timezone Filter": q(params.tz),
        "Timestamp": moment("h.at", params),  # decision 101
        "Event Type": f"[{', '.join(q(name) for name in EVENT_TYPES)}][h.kind + 1]",
        "Conversation ID": "v.conversation_id",
        "Customer ID": "v.customer_id",
        "Initiator Type": "h.initiator",
        "Assigned Inbox Name": guard("h.inbox"),
    }
    assert filled.keys() == FILLED_COLUMNS
    cells = [filled.get(c.display, "NULL") for c in COLUMNS]  # the others are empty: decision 100
    return f"""
        WITH picked AS (
            SELECT * FROM conversations v
            WHERE {in_brands(params, "v.brand")} AND {channel_in(params, "v.channels", listed=True)}
        ),
        -- Every interaction of those conversations with its first event (its key is that event's, SPEC 3.5):
        -- when it started, who started it, and where it stands in SPEC 2.4's order (a lone handoff's session
        -- before the contact it starts: decision 88).
        started AS (
            SELECT i.conversation_key, i.created_at, i.inbox, e.type AS first_type,
                   {{'type': e.type, 'event_id': e.event_id, 'kind': i.kind}} AS place
            FROM (SELECT brand, customer_id, conversation_key, session_key AS key, created_at, inbox, 0 AS kind
                  FROM {stored("sessions")}
                  UNION ALL
                  SELECT brand, customer_id, conversation_key, contact_key, created_at, inbox, 1
                  FROM {stored("contacts")}) i
            JOIN events e ON e.event_key = i.key AND e.brand = i.brand AND e.customer_id = i.customer_id
            WHERE i.{picked} AND {in_range("i.created_at", params)}
        ),
        ended AS (
            SELECT conversation_key, ended_at, end_reason FROM {stored("sessions")}
            WHERE {picked} AND {in_range("ended_at", params)}
            UNION ALL
            SELECT conversation_key, ended_at, end_reason FROM {stored("contacts")}
            WHERE {picked} AND {in_range("ended_at", params)}
        ),
        -- Whether the first conversation_close of a customer's instant names a team member.
        closers AS (
            SELECT e.brand, e.customer_id, e.occurred_at, arg_min(e.agent IS NOT NULL, e.event_id) AS by_agent
            FROM events e SEMI JOIN picked v ON e.brand = v.brand AND e.customer_id = v.customer_id
            WHERE e.type = 'conversation_close' AND {in_range("e.occurred_at", params)}
            GROUP BY ALL
        ),
        -- Each event, anchored on its own time (decision 101): a range narrows every part of it.
        happened AS (
            -- Created: its first interaction's start; the inbox Inbox At Created shows (decision 88).
            SELECT v.conversation_key, v.created_at AS at, 0 AS kind, {initiator("min(s.first_type)")} AS initiator,
                   any_value(v.inbox_at_created) AS inbox
            FROM picked v JOIN started s ON s.conversation_key = v.conversation_key AND s.created_at = v.created_at
            WHERE {in_range("v.created_at", params)}
            GROUP BY v.conversation_key, v.created_at
            UNION ALL
            -- Reopened: the interaction that joined it started then; its inbox is that of the last
            -- interaction to start at that instant, as a close takes (decision 88).
            SELECT r.conversation_key, r.reopened_at, 1, {initiator("min(s.first_type)")},
                   arg_max_null(s.inbox, s.place)
            FROM {stored("conversation_reopens")} r
            JOIN started s ON s.conversation_key = r.conversation_key AND s.created_at = r.reopened_at
            WHERE r.reopened_at <= {at} AND r.{picked} AND {in_range("r.reopened_at", params)}
            GROUP BY r.conversation_key, r.reopened_at
            UNION ALL
            -- Closed, each counted close that has happened by the as-of time (an expected close has not).
            SELECT k.conversation_key, k.closed_at, 2,
                   CASE WHEN bool_or(x.end_reason = 'conversation_close')
                        THEN CASE WHEN bool_or(c.by_agent) THEN 'AGENT' ELSE 'SYSTEM' END
                        WHEN bool_or(x.end_reason = 'contact_end') THEN 'AGENT' ELSE 'SYSTEM' END,
                   any_value(k.inbox)
            FROM {stored("conversation_closes")} k
            JOIN picked v ON v.conversation_key = k.conversation_key
            LEFT JOIN ended x ON x.conversation_key = k.conversation_key AND x.ended_at = k.closed_at
            LEFT JOIN closers c ON c.brand = v.brand AND c.customer_id = v.customer_id AND c.occurred_at = k.closed_at
            WHERE k.counted AND k.closed_at <= {at} AND {in_range("k.closed_at", params)}
            GROUP BY k.conversation_key, k.closed_at
        )
        SELECT {", ".join(cells)}
        FROM happened h JOIN picked v USING (conversation_key)
        ORDER BY h.at, {id_order("h.conversation_key")}, h.kind
    """


CONVERSATION_TIMESTAMPS = Report(
    name="ConversationTimestampsReport",
    columns=COLUMNS,
    where={},
    query=_rows,
)
