"""Gladly's reports (issue 25 point 1; SPEC Appendix B): one `Report` per report name of Gladly's API, in
Gladly's shape — its header row (`gladly_columns`), its value spellings and formats — from the same facts
as convoscope's own reports (`contact_facts`, `conversation_facts`, the sessions' detail query), so that a
count cannot differ between the two dialects.

Every column is filled wherever the log holds its fact and empty where it cannot; `FILLED` names, per
report, the columns a rule fills, and docs/gladly.md gives each rule and each empty column's reason.
Timestamps are `YYYY-MM-DD HH:MM:SS` in the report's zone, ratios fractions and averages decimals of up to
six places (decision 91), channels and other values Gladly's spellings (decision 92), each column filled
by the rule decision 93 and docs/gladly.md give.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from convoscope.config import Config
from convoscope.reports import gladly_columns as columns
from convoscope.reports.base import Column, Params, Report, decimal, guard, in_brands, in_range, local, q
from convoscope.reports.base import public_url as public_url_of
from convoscope.reports.base import seconds_between as seconds
from convoscope.reports.contacts import CONTACT_WHERE, contact_facts
from convoscope.reports.conversations import CONVERSATION_WHERE, conversation_facts
from convoscope.reports.gladly_columns import UNSUPPORTED as UNSUPPORTED  # the API's 400 names them
from convoscope.reports.gladly_timestamps import CONVERSATION_TIMESTAMPS, FILLED_COLUMNS, initiator, moment
from convoscope.reports.sessions import SESSION_WHERE, detail_query
from convoscope.store import Store, id_order

# --- channels (decision 92) ------------------------------------------------------------------------------

# Gladly's spelling of a channel ← the channel names (SPEC 2.2, lower-cased) that mean it; every other
# channel is its name upper-cased (`email` → EMAIL, `chat` → CHAT, `voicemail` → VOICEMAIL).
SPELLED_OUT = {
    "PHONE_CALL": ("voice", "phone", "phone_call", "call"),
    "FB_MESSENGER": ("facebook", "messenger", "fb_messenger"),
    "INSTAGRAM_DIRECT": ("instagram", "instagram_direct"),
}
# Gladly's `filters.channel` values (lower-cased) → their canonical spelling and the channels they select.
REQUEST_CHANNELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "chat": ("chat", ("CHAT",)), "email": ("email", ("EMAIL",)), "fbmessenger": ("fbMessenger", ("FB_MESSENGER",)),
    "sms": ("sms", ("SMS",)), "twitter": ("twitter", ("TWITTER",)), "voice": ("voice", ("PHONE_CALL", "VOICEMAIL")),
    "whatsapp": ("whatsapp", ("WHATSAPP",)), "instagramdirect": ("instagramDirect", ("INSTAGRAM_DIRECT",)),
}


def gladly_channel(column: str) -> str:
    """SQL: Gladly's spelling of the channel in `column` — the one CASE every Gladly report uses."""
    whens = " ".join(f"WHEN {column} IN ({', '.join(q(n) for n in names)}) THEN {q(spelled)}"
                     for spelled, names in SPELLED_OUT.items())
    return f"CASE {whens} ELSE upper({column}) END"


def channels_spelled(spellings: tuple[str, ...] | list[str]) -> list[str]:
    """The channel names (SPEC 2.2) whose Gladly spelling is one of `spellings`: what `Params.channels` takes."""
    return [name for s in spellings for name in SPELLED_OUT.get(s, (s.lower(),))]


# --- formats (decision 91) ------------------------------------------------------------------------------

def bucket(ts: str, params: Params) -> str:
    """The start of the period holding `ts`, as Gladly labels a summary's row: `2026-05-21 10:30:00`."""
    loc = local(ts, params)
    if params.period == "all":  # one row over the whole selection
        return "'Total'"
    start = (f"time_bucket(INTERVAL 30 MINUTE, {loc})" if params.period == "half_hour"
             else f"date_trunc({q(params.period or 'day')}, {loc})")
    return f"strftime({start}, '%Y-%m-%d %H:%M:%S')"


def number(numerator: str, denominator: str) -> str:
    """numerator ÷ denominator as Gladly writes it: up to six decimals, no trailing zeros (`0.490909`, `1`);
    empty for a zero denominator."""
    return f"rtrim(rtrim({decimal(numerator, denominator, 6)}, '0'), '.')"


def mean(values: str) -> str:
    return number(f"sum({values})", f"count({values})")


def _filters(params: Params) -> dict[str, str]:
    """The filter columns: what the request selected, as Gladly writes it (`All Channels` when nothing)."""
    channels = ", ".join(params.channel_names or []) or "All Channels"
    inboxes = ", ".join(params.inboxes or []) or "All Inboxes"
    return {"Timezone Filter": q(params.tz), "Channel Filter": q(channels), "Inboxes Filter": q(inboxes),
            "Teams Filter": q("All Teams")}


def _select(report: Report, filled: dict[str, str]) -> str:
    """Every column of `report` in order: its rule, or an empty cell."""
    return ", ".join(filled.get(c.display, "NULL::VARCHAR") for c in report.columns)


# --- contacts ----------------------------------------------------------------------------------------------

def _contact_export(params: Params, config: Config) -> dict[str, str]:
    inbound = "direction = 'INBOUND'"
    ended = "NOT is_open"
    return _filters(params) | {
        "Queued At": f"CASE WHEN {inbound} THEN {moment('created_at', params)} END",
        "Customer ID": "customer_id", "Conversation ID": "conversation_id", "Contact ID": "contact_id",
        "Conversation Link": f"{public_url_of(config, params)} || '/conversations/' || conversation_id",
        "Channel": gladly_channel("channel"), "Direction": "direction",
        "Contact Initiator": f"CASE WHEN {inbound} THEN 'CUSTOMER' ELSE 'AGENT' END",
        "Status": f"CASE WHEN {ended} THEN 'ENDED' ELSE 'OPEN' END",
        "Inbox When Queued": f"CASE WHEN {inbound} THEN {guard('inbox')} END",
        "Agent When Ended": f"CASE WHEN {ended} THEN {guard('ended_by')} END",
        "Fulfilled At": moment("responded_at", params),
        "Ended At": f"CASE WHEN {ended} THEN {moment('ended_at', params)} END",
        "Queued-to-Fulfilled (sec)": "first_response_seconds",
        "Queued-to-Ended (sec)": f"CASE WHEN {inbound} THEN duration_seconds END",
        "Fulfilled-to-Ended (sec)": "fulfilled_to_ended",
        "Messages Total": "customer_messages + agent_messages",
        "Messages from Customer": "customer_messages", "Messages from Agent": "agent_messages",
    }


def _contact_summary(params: Params, config: Config) -> dict[str, str]:
    inbound, outbound, fulfilled = "direction = 'INBOUND'", "direction = 'OUTBOUND'", "responded_at IS NOT NULL"
    customers = "count(DISTINCT (brand, customer_id))"
    return _filters(params) | {
        "Ended At Date": "period", "Contacts Ended": "count(*)",
        "Contacts Inbound": f"count(*) FILTER (WHERE {inbound})",
        "Contacts Fulfilled": f"count(*) FILTER (WHERE {fulfilled})",
        "Contacts Fulfilled by Response": f"count(*) FILTER (WHERE {fulfilled})",
        "Avg. Queued-to-Fulfilled Time (sec)": mean("first_response_seconds"),
        "Max. Queued-to-Fulfilled Time (sec)": "max(first_response_seconds)",
        "Avg. Queued-to-Ended Time (sec)": mean(f"CASE WHEN {inbound} THEN duration_seconds END"),
        "Avg. Fulfilled-to-Ended Time (sec)": mean("fulfilled_to_ended"),
        "Contacts Outbound": f"count(*) FILTER (WHERE {outbound})",
        "Avg. Messages Total": mean("customer_messages + agent_messages"),
        "Avg. Messages from Customer": mean("customer_messages"), "Avg. Messages from Agent": mean("agent_messages"),
        "Unique Customers with Contact Fulfilled": f"{customers} FILTER (WHERE {fulfilled})",
        "Unique Customers with Contact Ended": customers,
        "Unique Customers with an Inbound Contact Ended": f"{customers} FILTER (WHERE {inbound})",
        "Unique Customers with an Outbound Contact Ended": f"{customers} FILTER (WHERE {outbound})",
    }


def _enders(picked: str) -> str:
    """Per customer's instant among those of `picked` and end type (`contact_end`, `conversation_close`), the
    `agent` of the first such event in SPEC 2.4's order: who ended a contact or closed a conversation then."""
    return f"""
        SELECT e.brand, e.customer_id, e.occurred_at, e.type::VARCHAR AS type, arg_min_null(e.agent, e.event_id) AS agent
        FROM events e SEMI JOIN {picked} p ON e.brand = p.brand AND e.customer_id = p.customer_id
        WHERE e.type IN ('contact_end', 'conversation_close') GROUP BY ALL
    """


def _contacts(params: Params, anchor: str) -> str:
    """Contact facts placed by `anchor`, with who ended each (the `agent` of the contact_end or
    conversation_close that ended it: the first at that instant in SPEC 2.4's order) and Fulfilled-to-Ended."""
    return f"""
        WITH picked AS (SELECT * FROM ({contact_facts(params)}) WHERE {in_range(anchor, params)}),
        ending AS ({_enders("picked")})
        SELECT c.*, CASE WHEN NOT c.is_open THEN x.agent END AS ended_by,
               CASE WHEN NOT c.is_open AND c.responded_at IS NOT NULL
                    THEN {seconds("c.first_response_at", "c.ended_at")} END AS fulfilled_to_ended
        FROM picked c LEFT JOIN ending x ON x.brand = c.brand AND x.customer_id = c.customer_id
             AND x.occurred_at = c.ended_at AND x.type = c.end_reason
    """


def _contact_export_query(report: Report, params: Params, config: Config) -> str:
    return f"""
        SELECT {_select(report, _contact_export(params, config))}
        FROM ({_contacts(params, "created_at")})
        ORDER BY created_at, {id_order("contact_key")}
    """


def _contact_summary_query(report: Report, params: Params, config: Config) -> str:
    return f"""
        SELECT {_select(report, _contact_summary(params, config))}
        FROM (SELECT *, {bucket("ended_at", params)} AS period FROM ({_contacts(params, "ended_at")}) WHERE NOT is_open)
        GROUP BY period ORDER BY period
    """


# --- conversations ---------------------------------------------------------------------------------------

def _conversations(params: Params, anchor_in_range: str) -> str:
    """Conversation facts, with Gladly's distinct channels in order of first use, the first event's type and
    team member (who created it), who closed it last, and its first team contact."""
    mapped = f"list_transform(channels, lambda c: {gladly_channel('c')})"
    # A close by a conversation_close: the one that ended the last interaction, or one that moved the close
    # (decision 16), when nothing ended then.
    by_close = "(g.how = 3 OR (g.how IS NULL AND k.occurred_at IS NOT NULL))"
    return f"""
        WITH picked AS (SELECT *, {mapped} AS mapped FROM ({conversation_facts(params, anchor_in_range)})),
        enders AS ({_enders("picked")}),
        -- What ended its last interaction at its last close, the strongest first (as ConversationTimestampsReport
        -- judges a close, decision 99): a conversation_close, a contact_end, else inactivity.
        ending AS (
            SELECT x.conversation_key,
                   max(CASE x.end_reason WHEN 'conversation_close' THEN 3 WHEN 'contact_end' THEN 2 ELSE 1 END) AS how
            FROM (SELECT conversation_key, ended_at, end_reason FROM sessions
                  UNION ALL SELECT conversation_key, ended_at, end_reason FROM contacts) x
            JOIN picked p ON p.conversation_key = x.conversation_key AND x.ended_at = p.last_closed_at
            GROUP BY x.conversation_key
        ),
        first_contacts AS (
            SELECT conversation_key, first(contact_id ORDER BY created_at, {id_order("contact_key")}) AS contact_id
            FROM contacts WHERE conversation_key IN (SELECT conversation_key FROM picked) GROUP BY conversation_key
        )
        SELECT v.*, list_filter(v.mapped, lambda x, i: list_position(v.mapped, x) = i) AS gladly_channels,
               f.type::VARCHAR AS first_type, f.agent AS first_agent,
               {by_close} AS closed_by_close,
               CASE WHEN {by_close} THEN k.agent WHEN g.how = 2 THEN ce.agent END AS closed_by,
               g.how = 2 AS closed_by_contact_end, c.contact_id AS first_contact_id
        FROM picked v
        LEFT JOIN events f ON f.event_key = v.conversation_key AND f.brand = v.brand
             AND f.customer_id = v.customer_id
        LEFT JOIN enders k ON k.brand = v.brand AND k.customer_id = v.customer_id AND k.occurred_at = v.last_closed_at
             AND k.type = 'conversation_close'
        LEFT JOIN ending g ON g.conversation_key = v.conversation_key
        LEFT JOIN enders ce ON ce.brand = v.brand AND ce.customer_id = v.customer_id
             AND ce.occurred_at = v.last_closed_at AND ce.type = 'contact_end'
        LEFT JOIN first_contacts c ON c.conversation_key = v.conversation_key
    """


def _conversation_export(params: Params, config: Config) -> dict[str, str]:
    created_by_agent = "first_type = 'agent_message'"
    closed = "last_closed_at IS NOT NULL"
    # Decision 99, as ConversationTimestampsReport: a conversation_close naming a team member, or a contact_end.
    closed_by_agent = f"{closed} AND ((closed_by_close AND closed_by IS NOT NULL) OR closed_by_contact_end)"
    return _filters(params) | {
        "Created At": moment("created_at", params), "Conversation ID": "conversation_id",
        "Customer ID": "customer_id",
        "Conversation Link": f"{public_url_of(config, params)} || '/conversations/' || conversation_id",
        "Status": "CASE WHEN is_closed THEN 'CLOSED' ELSE 'OPEN' END",
        "First Closed At": moment("first_closed_at", params), "Last Closed At": moment("last_closed_at", params),
        "Initiator Type - Created": initiator("first_type"),
        # An ID column is an identifier (SPEC 4.1: never altered); the Name beside it is free text, guarded.
        "Initiator Agent ID - Created": f"CASE WHEN {created_by_agent} THEN first_agent END",
        "Initiator Agent Name - Created": f"CASE WHEN {created_by_agent} THEN {guard('first_agent')} END",
        "Inbox ID - Created": "inbox_at_created", "Inbox Name - Created": guard("inbox_at_created"),
        "Initiator Type - Last Closed": f"CASE WHEN {closed_by_agent} THEN 'AGENT' WHEN {closed} THEN 'SYSTEM' END",
        "Initiator Agent ID - Last Closed": f"CASE WHEN {closed_by_agent} THEN closed_by END",
        "Initiator Agent Name - Last Closed": f"CASE WHEN {closed_by_agent} THEN {guard('closed_by')} END",
        "Inbox ID - Last Closed": "last_closed_inbox", "Inbox Name - Last Closed": guard("last_closed_inbox"),
        "First Contact ID": "first_contact_id",
        "First Channel": gladly_channel("first_channel"), "Second Channel": "gladly_channels[2]",
        "Third Channel": "gladly_channels[3]", "Last Channel": gladly_channel("last_channel"),
        "Created-to-First Closed Time in seconds": seconds("created_at", "first_closed_at"),
        "Created-to-Last Closed Time in seconds": seconds("created_at", "last_closed_at"),
        "Count of Contacts": "contact_count", "Count of Channels": "coalesce(len(gladly_channels), 0)",
        "Times Closed": "times_closed_by", "Times Reopened": "times_reopened_by",
    }


def _conversation_summary(params: Params, config: Config) -> dict[str, str]:
    channels = "coalesce(len(gladly_channels), 0)"
    return _filters(params) | {
        "Last Closed At": "period", "Conversations Closed": "count(*)",
        "Unique Customers": "count(DISTINCT (brand, customer_id))",
        "% Multichannel": number(f"count(*) FILTER (WHERE {channels} > 1)", "count(*)"),
        "Avg Count of Contacts": mean("contact_count"), "Avg Count of Channels": mean(channels),
        "Avg Times Closed": mean("times_closed_by"), "Avg Times Reopened": mean("times_reopened_by"),
        "Avg Created-to-First Closed Time in seconds": mean(seconds("created_at", "first_closed_at")),
        "Avg Created-to-Last Closed Time in seconds": mean(seconds("created_at", "last_closed_at")),
    }


def _conversation_export_query(report: Report, params: Params, config: Config) -> str:
    return f"""
        SELECT {_select(report, _conversation_export(params, config))}
        FROM ({_conversations(params, in_range("v.created_at", params))})
        ORDER BY created_at, {id_order("conversation_key")}
    """


def _conversation_summary_query(report: Report, params: Params, config: Config) -> str:
    return f"""
        SELECT {_select(report, _conversation_summary(params, config))}
        FROM (SELECT *, {bucket("last_closed_at", params)} AS period FROM ({_conversations(params, "true")})
              WHERE is_closed AND {in_range("last_closed_at", params)})
        GROUP BY period ORDER BY period
    """


# --- Gladly AI sessions ----------------------------------------------------------------------------------

def _ai_query(report: Report, params: Params, config: Config) -> str:
    """SPEC 4.2's rows, with Gladly's channel spelling and Created Date the moment the session began."""
    return detail_query(params, config, messages=report.personal_data, channel=gladly_channel("channel"),
                        created=moment("created_at", params))


# --- the reports -----------------------------------------------------------------------------------------

class _Shape(NamedTuple):
    """One of Gladly's reports: its header row, its query, the rules filling its columns (None: every
    column, SPEC 4.2's), and the `--where` keys of convoscope's report of its family (the command line)."""

    headers: tuple[str, ...]
    query: Callable[[Report, Params, Config], str]
    rules: Callable[[Params, Config], dict[str, str]] | None
    where: dict[str, tuple[str, ...]]


_SHAPES = {
    "ContactExportReport": _Shape(columns.CONTACT_EXPORT, _contact_export_query, _contact_export, CONTACT_WHERE),
    "ContactExportReportV2": _Shape(columns.CONTACT_EXPORT_V2, _contact_export_query, _contact_export, CONTACT_WHERE),
    "ContactExportReportV3": _Shape(columns.CONTACT_EXPORT_V3, _contact_export_query, _contact_export, CONTACT_WHERE),
    "ConversationExportReport": _Shape(columns.CONVERSATION_EXPORT, _conversation_export_query, _conversation_export,
                                       CONVERSATION_WHERE),
    "ContactSummaryReport": _Shape(columns.CONTACT_SUMMARY, _contact_summary_query, _contact_summary, CONTACT_WHERE),
    "ContactSummaryReportV2": _Shape(columns.CONTACT_SUMMARY_V2, _contact_summary_query, _contact_summary,
                                     CONTACT_WHERE),
    "ConversationSummaryReport": _Shape(columns.CONVERSATION_SUMMARY, _conversation_summary_query,
                                        _conversation_summary, CONVERSATION_WHERE),
    "GladlyAISessionsDetailReport": _Shape(columns.AI_SESSIONS_DETAIL, _ai_query, None, SESSION_WHERE),
    "GladlyAISessionsDetailWithMessagesReport": _Shape(columns.AI_SESSIONS_DETAIL_WITH_MESSAGES, _ai_query, None,
                                                       SESSION_WHERE),
}
SUMMARIES = ("ContactSummaryReport", "ContactSummaryReportV2", "ConversationSummaryReport")
# Free text (SPEC 4.1's spreadsheet guard applies): what a request or an event spelled.
TEXT = frozenset({"Inbox When Queued", "Agent When Ended",
                  "Initiator Agent Name - Created", "Inbox Name - Created",
                  "Initiator Agent Name - Last Closed",
                  "Inbox Name - Last Closed", "Gladly Agent", "Guides Used", "Handoff Category", "Handoff Subcategory",
                  "Handoff Reason", "Transfer Rationale", "Message History"})

# Per report, the columns a rule fills (every other column is empty): docs/gladly.md lists both.
FILLED: dict[str, frozenset[str]] = {
    name: frozenset(shape.headers) & (set(shape.headers) if shape.rules is None else shape.rules(Params(), Config()).keys())
    for name, shape in _SHAPES.items()}
GLADLY_REPORTS: dict[str, Report] = {name.lower(): Report(
    name=name, columns=tuple(Column(h, text=h in TEXT) for h in shape.headers), where=shape.where,
    query=shape.query, takes_period=name in SUMMARIES, default_period="day" if name in SUMMARIES else None,
    personal_data=name == "GladlyAISessionsDetailWithMessagesReport",
) for name, shape in _SHAPES.items()}
# Gladly's request rules per report (its OpenAPI document): which take `filters.channel`, and which take
# `startAtTime` / `endAtTime` in place of `startAt` / `endAt`. Lower-cased names.
# The Conversation Timestamps report (what tap-gladly asks for) is a module of its own, its query beside its
# rules (decisions 99-101); Gladly applies neither a channel nor an inbox filter to it.
GLADLY_REPORTS[CONVERSATION_TIMESTAMPS.name.lower()] = CONVERSATION_TIMESTAMPS
FILLED[CONVERSATION_TIMESTAMPS.name] = FILLED_COLUMNS
CHANNEL_FILTERED = frozenset(name.lower() for name in _SHAPES if not name.startswith("Conversation"))
INBOX_FILTERED = frozenset(name.lower() for name in _SHAPES)
TIME_RANGED = frozenset({"contactexportreportv3"})


def known_inboxes(store: Store, params: Params, inboxes: list[str]) -> list[str]:
    """Which of `inboxes` the events of the report's brands carry (Gladly answers 400 for another)."""
    listed = ", ".join(q(i) for i in inboxes)
    cursor = store.con.cursor()  # requests share the store's connection
    try:
        rows = cursor.execute(f"SELECT DISTINCT inbox FROM events WHERE {in_brands(params)} AND inbox IN ({listed})")
        return [inbox for (inbox,) in rows.fetchall()]
    finally:
        cursor.close()


def inbox_examples(store: Store, params: Params, *, limit: int = 10) -> list[str]:
    """A few inboxes the report's brands' events carry, for an error to suggest."""
    cursor = store.con.cursor()
    try:
        rows = cursor.execute(f"SELECT DISTINCT inbox FROM events WHERE {in_brands(params)} AND inbox IS NOT NULL "
                              f"ORDER BY inbox LIMIT {int(limit)}")
        return [inbox for (inbox,) in rows.fetchall()]
    finally:
        cursor.close()

