"""Whole conversations (SPEC 4.6, 4.7): AI sessions and team contacts reported together, one row per
conversation anchored on creation, and per period of last close.

At the as-of time only closes and reopens not later than it count: a conversation is CLOSED when its
latest such close is not older than its latest such reopen (a reopen and a close at one instant are
a reopen followed by a close, SPEC 2.4's type order), and OPEN otherwise. The summary counts only
conversations closed at the as-of time, placed on their last close. Automated Resolution (issue 26, the
automation-summary's rule) is judged here too, from the sessions' Durable Resolution.
"""

from __future__ import annotations

from convoscope.config import Config
from convoscope.derive.names import HANDLED_BY
from convoscope.reports.base import (
    TRUTH,
    Column,
    Params,
    Report,
    as_of,
    average,
    boolean,
    channel_in,
    columns,
    fmt_timestamp,
    guard,
    in_brands,
    in_keys,
    in_period,
    in_range,
    inbox_in,
    inbox_is,
    key_cell,
    percent,
    public_url,
    q,
    seconds_between,
    summary_query,
    truth,
)
from convoscope.reports.sessions import session_facts
from convoscope.store import id_order, stored

CONVERSATION_WHERE: dict[str, tuple[str, ...]] = {"channel": (), "handled_by": HANDLED_BY, "inbox": ()}
# Issue 28 point 2: what conversation-summary's and automation-summary's figures count by, as filters (SPEC 4's
# reports; Gladly's keep the above), read after the facts (`conversation_filters`). Those of JUDGED need the
# outcome facts (`config`).
CONVERSATION_FILTERS: dict[str, tuple[str, ...]] = CONVERSATION_WHERE | {
    "status": ("OPEN", "CLOSED"), "multichannel": ("true", "false"), "handed_off": ("true", "false"),
    "with_ai": ("true", "false"), "automated_resolution": TRUTH, "first_channel": (), "ai_agent": (),
}
JUDGED = frozenset({"automated_resolution", "ai_agent"})
ANCHORS = {"created": "created_at", "last_closed": "last_closed_at"}  # a last close only of a closed conversation


def judged(params: Params) -> bool:
    return params.extra or any(key in JUDGED for key, _ in params.where)


def conversation_filters(params: Params) -> str:
    """The filters of CONVERSATION_FILTERS beyond CONVERSATION_WHERE, over `conversation_facts` (with outcomes for
    those of JUDGED); `period` on the anchor."""
    conditions = ["true"]
    for key, value in params.where:
        match key:
            case "status":
                conditions.append("is_closed" if value == "CLOSED" else "NOT is_closed")
            case "multichannel":
                conditions.append(f"(channel_count > 1) = {value}")
            case "handed_off":  # one of its sessions was handed off (% Handed Off)
                conditions.append(f"(sessions_handed_off > 0) = {value}")
            case "with_ai":  # it has sessions (automation-summary's With AI)
                conditions.append(f"(session_count > 0) = {value}")
            case "automated_resolution":
                conditions.append(truth(key, value))
            case "first_channel":
                conditions.append(f"first_channel = {q(value.lower())}" if value else "first_channel IS NULL")
            case "ai_agent":  # that of its first session naming one (automation-summary by ai_agent)
                conditions.append(f"first_ai_agent = {q(value)}" if value else "first_ai_agent IS NULL")
            case "period":
                conditions.append(in_period(ANCHORS[params.anchor], params, value))
    return " AND ".join(conditions)

EXPORT_COLUMNS = (
    Column("Created At", kind="time"), *columns("id", "Conversation ID", "Customer ID", "Brand"),
    Column("Conversation Link"), Column("Status"), *columns("time", "First Closed At", "Last Closed At"),
    Column("First Channel", text=True), Column("Last Channel", text=True),
    *columns("count", "Count of Channels", "Count of Sessions", "Count of Contacts", "Sessions Resolved",
             "Sessions Handed Off"),
    Column("Handled By"), *columns("count", "Times Closed", "Times Reopened"),
    *columns("duration", "Created-to-First Closed Time in seconds", "Created-to-Last Closed Time in seconds"),
)
EXTRA_COLUMNS = (Column("Inbox At Created", text=True), Column("Inbox At Last Closed", text=True))
# Issue 26 point 3, after the other extra columns: kept apart, so that other lists merge beside it.
OUTCOME_EXTRA_COLUMNS = (Column("Automated Resolution", kind="boolean"),)
SUMMARY_COLUMNS = (
    Column("Period", kind="time"), *columns("count", "Conversations Closed", "Unique Customers"),
    *columns("percent", "% Multichannel", "% AI Only", "% Handed Off"),
    *columns("number", "Avg Count of Sessions", "Avg Count of Contacts", "Avg Count of Channels", "Avg Times Closed"),
    Column("Avg Created-to-Last Closed Time in seconds", kind="duration"),
)


def conversation_facts(params: Params, anchor_in_range: str = "true", *, config: Config | None = None) -> str:
    """Conversations as they stand at the as-of time: open until their latest interaction end (SPEC 3.3),
    with the closes, reopens and session outcomes up to then.
    `anchor_in_range` narrows the conversations first (a condition on `conversations v`), so a short
    range reads the closes, reopens and sessions of its own conversations only. With `config`, also
    `automated_resolution` (`_outcomes`) and `first_ai_agent`."""
    at = as_of(params)
    conditions = [in_brands(params, "v.brand"), anchor_in_range, channel_in(params, "v.channels", listed=True),
                  _has_any_inbox(params)]
    for key, value in params.where:
        match key:
            case "channel":
                conditions.append(f"list_contains(v.channels, {q(value.lower())})")
            case "handled_by":
                conditions.append(f"v.handled_by = {q(value)}")
            case "inbox":
                conditions.append(_has_inbox(value))
    # The closes, reopens and sessions of the picked conversations only, when something narrows them: their tables
    # are joined to `picked` anyway, so this only spares work, and over every conversation of every brand it costs a
    # semi join of each table for nothing (0.16 of conversation-summary's 0.8 s at 10M events).
    narrowed = not params.every_brand or any(condition != "true" for condition in conditions[1:])
    picked = "conversation_key IN (SELECT conversation_key FROM picked)" if narrowed else "true"
    facts = f"""
        WITH picked AS (SELECT * FROM conversations v WHERE {" AND ".join(conditions)})
        SELECT v.*, k.first_closed_at, k.last_closed_at, k.last_closed_inbox,
               coalesce(k.times_closed, 0) AS times_closed_by,
               coalesce(r.reopens, 0) AS times_reopened_by,
               v.ended_at <= {at} AS is_closed,
               coalesce(s.resolved, 0) AS sessions_resolved, coalesce(s.handed_off, 0) AS sessions_handed_off
               {", s.resolved_came_back, s.resolved_unknown, s.first_ai_agent" if config else ""}
        FROM picked v
        LEFT JOIN (
            SELECT conversation_key, min(closed_at) FILTER (WHERE counted) AS first_closed_at,
                   max(closed_at) AS last_closed_at, count(*) FILTER (WHERE counted) AS times_closed,
                   -- Closes at one instant share their inbox (the last interaction to start by then).
                   arg_max_null(inbox, closed_at) AS last_closed_inbox
            FROM {stored("conversation_closes")} WHERE closed_at <= {at} AND {picked} GROUP BY conversation_key
        ) k USING (conversation_key)
        LEFT JOIN (
            SELECT conversation_key, count(*) AS reopens
            FROM {stored("conversation_reopens")} WHERE reopened_at <= {at} AND {picked} GROUP BY conversation_key
        ) r USING (conversation_key)
        LEFT JOIN (
            SELECT conversation_key, count(*) FILTER (WHERE was_resolved) AS resolved,
                   count(*) FILTER (WHERE was_handed_off) AS handed_off{_session_outcomes() if config else ""}
            FROM ({session_facts(params, config)}) WHERE {picked} GROUP BY conversation_key
        ) s USING (conversation_key)
    """
    return facts if config is None else _outcomes(facts)


def _session_outcomes() -> str:
    """Per conversation, over its sessions' facts with outcomes: resolved sessions that came back and those
    whose Durable Resolution is still unknown, and its AI agent (that of its first session that names one)."""
    return f""",
                   count(*) FILTER (WHERE durable_resolution = false) AS resolved_came_back,
                   count(*) FILTER (WHERE was_resolved AND durable_resolution IS NULL) AS resolved_unknown,
                   arg_min(ai_agent, (created_at, {id_order("session_key")})) FILTER (WHERE ai_agent IS NOT NULL)
                       AS first_ai_agent"""


def _outcomes(facts: str) -> str:
    """Issue 26 point 3: Automated Resolution of a conversation closed at the as-of time (empty while it is
    open) — false when it has a contact, no resolved session, or a resolved session that came back (Durable
    Resolution false); else true when every resolved session's Durable Resolution is true; else unknown (NULL):
    pending, decision 116."""
    return f"""
        SELECT *, CASE WHEN NOT is_closed THEN NULL
                       WHEN contact_count > 0 OR sessions_resolved = 0 OR resolved_came_back > 0
                            THEN false
                       WHEN resolved_unknown > 0 THEN NULL
                       ELSE true END AS automated_resolution
        FROM ({facts})
    """


def _among(table: str, condition: str) -> str:
    """One of the conversation's sessions or contacts (`table`) meets `condition` (on `i`)."""
    return (f"EXISTS (SELECT 1 FROM {stored(table)} i WHERE i.conversation_key = v.conversation_key "
            f"AND i.brand = v.brand AND i.customer_id = v.customer_id AND {condition})")


def _has_inbox(value: str) -> str:
    """`--where inbox=VALUE` on conversations (decision 89): one of its sessions or contacts has that inbox,
    as `channel` takes any channel of the conversation; so it selects the conversations of the rows that
    sessions-detail and contact-export select with the same filter. Empty: none of them has an inbox."""
    if value:
        return f"({_among('sessions', inbox_is('i.inbox', value))} OR {_among('contacts', inbox_is('i.inbox', value))})"
    return f"NOT {_among('sessions', 'i.inbox IS NOT NULL')} AND NOT {_among('contacts', 'i.inbox IS NOT NULL')}"


def _has_any_inbox(params: Params) -> str:
    """Gladly's `filters.inboxes` on conversations: as `--where inbox` (decision 89), any listed inbox."""
    if not params.inboxes:
        return "true"
    return f"({_among('sessions', inbox_in(params, 'i.inbox'))} OR {_among('contacts', inbox_in(params, 'i.inbox'))})"


def _export(report: Report, params: Params, config: Config) -> str:
    cells = [
        fmt_timestamp("created_at", params), "conversation_id", "customer_id", "brand",
        f"{public_url(config, params)} || '/conversations/' || conversation_id",
        "CASE WHEN is_closed THEN 'CLOSED' ELSE 'OPEN' END",
        fmt_timestamp("first_closed_at", params), fmt_timestamp("last_closed_at", params),
        guard("first_channel"), guard("last_channel"), "channel_count", "session_count", "contact_count",
        "sessions_resolved", "sessions_handed_off", "handled_by", "times_closed_by", "times_reopened_by",
        seconds_between("created_at", "first_closed_at"), seconds_between("created_at", "last_closed_at"),
        *([guard("inbox_at_created"), guard("last_closed_inbox")] if params.extra else []),
        *([boolean("automated_resolution")] if params.extra else []),
        *key_cell(params, "conversation_key"),
    ]
    created = params.anchor == "created"
    # The page's keys narrow the conversations first, so that their closes, reopens and sessions are read for those
    # rows only (`conversation_facts`).
    narrowed = f"{in_range('v.created_at', params) if created else 'true'} AND {in_keys(params, 'v.conversation_key')}"
    facts = conversation_facts(params, narrowed, config=config if judged(params) else None)
    anchored = "true" if created else f"is_closed AND {in_range('last_closed_at', params)}"
    return f"""
        SELECT {", ".join(cells)}
        FROM ({facts})
        WHERE {anchored} AND {conversation_filters(params)}
        ORDER BY {ANCHORS[params.anchor]}, {id_order("conversation_key")}
    """


def _summary(report: Report, params: Params, config: Config) -> str:
    closed = "count(*)"
    figures = [
        closed, "count(DISTINCT (brand, customer_id))",
        percent("count(*) FILTER (WHERE channel_count > 1)", closed),
        percent("count(*) FILTER (WHERE handled_by = 'ai_only')", closed),
        percent("count(*) FILTER (WHERE sessions_handed_off > 0)", closed),
        average("session_count"), average("contact_count"), average("channel_count"), average("times_closed_by"),
        average(seconds_between("created_at", "last_closed_at")),
    ]
    return summary_query(params, conversation_facts(params, config=config if judged(params) else None),
                         "last_closed_at",
                         f"is_closed AND {in_range('last_closed_at', params)} AND {conversation_filters(params)}",
                         figures)


CONVERSATION_EXPORT = Report(
    name="conversation-export",
    columns=EXPORT_COLUMNS,
    where=CONVERSATION_FILTERS | {"period": ()},
    anchors=tuple(ANCHORS),
    query=_export,
    keyed=True,
    extra_columns=EXTRA_COLUMNS + OUTCOME_EXTRA_COLUMNS,
    extra_judged_with=("durable_window",),
)
CONVERSATION_SUMMARY = Report(
    name="conversation-summary",
    columns=SUMMARY_COLUMNS,
    where=CONVERSATION_FILTERS,
    query=_summary,
    takes_period=True,
    default_period="day",
)
