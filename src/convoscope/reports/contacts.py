"""The team's contacts (SPEC 4.4, 4.5): one row per contact anchored on creation, and per period of
contact end.

What can still change at the as-of time is an empty cell: a contact is `open` until its end, and its
end, end reason and duration are unknown until then; a first response is known once it has happened.
The summary counts only contacts ended by the as-of time, from the same facts as the export. Resolved First
Time and Came Back (issue 26, the handoff funnel's steps) are judged here too, for every report that shows them.
"""

from __future__ import annotations

from convoscope.config import Config
from convoscope.derive.names import CONTACT_SOURCES
from convoscope.reports.base import (
    Column,
    Params,
    Report,
    as_of,
    average,
    boolean,
    brand_window,
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
    median,
    public_url,
    q,
    seconds_between,
    summary_query,
)
from convoscope.store import id_order, stored

CONTACT_WHERE: dict[str, tuple[str, ...]] = {"channel": (), "source": CONTACT_SOURCES, "agent": (), "inbox": ()}
# Issue 28 point 2: what contact-summary's figures count by, as filters (SPEC 4's reports; Gladly's keep the above).
CONTACT_FILTERS: dict[str, tuple[str, ...]] = CONTACT_WHERE | {
    "direction": ("INBOUND", "OUTBOUND"), "status": ("open", "ended"), "responded": ("true", "false"),
}
ANCHORS = {"created": "created_at", "ended": "ended_at"}  # a contact's end is known once it has ended

EXPORT_COLUMNS = (
    *columns("id", "Contact ID", "Conversation ID", "Customer ID", "Brand"),
    Column("Channel", text=True), Column("Direction"), Column("Source"), Column("Session ID", kind="id"),
    Column("Handoff Category", text=True), *columns("time", "Created At", "First Response At", "Last Activity At",
                                                    "Ended At"),
    Column("End Reason"), Column("Agents", text=True), *columns("duration", "First Response Seconds", "Duration Seconds"),
    *columns("count", "Customer Messages", "Agent Messages"), Column("Status"), Column("Conversation Link"),
)
SUMMARY_COLUMNS = (
    Column("Period", kind="time"), *columns("count", "Contacts Ended", "Inbound", "Outbound", "From Handoff"),
    *columns("duration", "Avg First Response Seconds", "Median First Response Seconds", "Avg Duration Seconds"),
    Column("Avg Agent Messages", kind="number"),
)


# Issue 26 point 4, after every other extra column (the feedback columns of point 1 come before it): kept apart,
# so that the two lists merge as two lists.
OUTCOME_EXTRA_COLUMNS = (Column("Resolved First Time", kind="boolean"),)


def contact_facts(params: Params, config: Config | None = None) -> str:
    """Contacts with their as-of judgement and the linked session's handoff category; shared by the
    export and the summary. With `config`, also Resolved First Time and Came Back (`_with_outcomes`)."""
    facts = _contact_facts(params)
    return facts if config is None else _with_outcomes(facts, params, config)


def _with_outcomes(facts: str, params: Params, config: Config) -> str:
    """Issue 26 point 4, for a contact whose conversation is closed at the as-of time, L being that
    conversation's Last Closed At (conversation-export's). Resolved First Time: false when the same (brand,
    customer) has another contact created in [the contact's creation, L + R]; true when there is none and the
    as-of time is later than L + R; else unknown. Came Back: true when the customer has a session or a contact
    created in [L, L + D]; false when there is none and the as-of time is later than L + D; else unknown. Every
    stored interaction counts, also one created after the as-of time, as for Was Recontacted (decision 19). Both
    unknown (NULL) while the conversation is open (decision 117)."""
    at = as_of(params)
    r = brand_window(config, params, "recontact_window", "f.brand")
    d = brand_window(config, params, "durable_window", "f.brand")
    # When the customer next started another contact (after this one's creation) and a session or contact (after
    # the close), as the derive keeps them (decision 176): within the window, or not.
    further = f"f.next_contact_at <= k.closed_at + {r}"
    back = f"k.next_interaction_at <= k.closed_at + {d}"
    return f"""
        SELECT f.*,
               CASE WHEN k.closed_at IS NOT NULL THEN (CASE WHEN {further} THEN false
                                                          WHEN {at} > k.closed_at + {r} THEN true END)
                    END AS resolved_first_time,
               CASE WHEN k.closed_at IS NOT NULL THEN (CASE WHEN {back} THEN true
                                                          WHEN {at} > k.closed_at + {d} THEN false END)
                    END AS came_back
        FROM ({facts}) f
        LEFT JOIN (
            -- The conversations closed at the as-of time, at their last close by then (decision 31).
            SELECT k.conversation_key, max(k.closed_at) AS closed_at,
                   arg_max_null(k.next_interaction_at, k.closed_at) AS next_interaction_at
            FROM {stored("conversation_closes")} k JOIN {stored("conversations")} v USING (conversation_key)
            WHERE v.ended_at <= {at} AND k.closed_at <= {at} AND {in_brands(params, "v.brand")}
            GROUP BY k.conversation_key
        ) k USING (conversation_key)
    """


def _contact_facts(params: Params) -> str:
    at = as_of(params)
    conditions = [in_brands(params, "c.brand"), channel_in(params, "c.channel"), inbox_in(params, "c.inbox")]
    for key, value in params.where:
        match key:
            case "channel":
                conditions.append(f"c.channel = {q(value.lower())}")
            case "source":
                conditions.append(f"c.source = {q(value)}")
            case "agent":
                conditions.append(f"list_contains(c.agent_names, {q(value)})")
            case "inbox":
                conditions.append(inbox_is("c.inbox", value))
            case "direction":
                conditions.append(f"(c.source = 'outbound') = {value == 'OUTBOUND'}")
            case "status":
                conditions.append(f"c.ended_at {'<=' if value == 'ended' else '>'} {at}")
            case "responded":  # a first team reply by the as-of time (First Response At)
                conditions.append(f"{'' if value == 'true' else 'NOT '}coalesce(c.first_response_at <= {at}, false)")
    return f"""
        SELECT c.*, s.handoff_category,
               c.ended_at > {at} AS is_open,
               CASE WHEN c.source = 'outbound' THEN 'OUTBOUND' ELSE 'INBOUND' END AS direction,
               CASE WHEN c.first_response_at <= {at} THEN c.first_response_at END AS responded_at,
               CASE WHEN c.first_response_at <= {at} THEN {seconds_between("c.created_at", "c.first_response_at")}
                    END AS first_response_seconds,
               CASE WHEN c.ended_at <= {at} THEN {seconds_between("c.created_at", "c.ended_at")} END AS duration_seconds
        FROM contacts c
        LEFT JOIN sessions s ON s.session_key = c.session_key AND s.brand = c.brand AND s.customer_id = c.customer_id
        WHERE {" AND ".join(conditions)}
    """


def _export(report: Report, params: Params, config: Config) -> str:
    cells = [
        "contact_id", "conversation_id", "customer_id", "brand", guard("channel"), "direction", "source", "session_id",
        guard("handoff_category"), fmt_timestamp("created_at", params), fmt_timestamp("responded_at", params),
        fmt_timestamp("last_activity_at", params),
        f"CASE WHEN NOT is_open THEN {fmt_timestamp('ended_at', params)} END",
        "CASE WHEN NOT is_open THEN end_reason END", guard("agents"),
        "first_response_seconds", "duration_seconds", "customer_messages", "agent_messages",
        "CASE WHEN is_open THEN 'open' ELSE 'ended' END",
        f"{public_url(config, params)} || '/conversations/' || conversation_id",
        *([guard("inbox"), "feedback", "feedback_score"] if params.extra else []),
        *(_outcome_cells() if params.extra else []),
        *key_cell(params, "contact_key"),
    ]
    return f"""
        SELECT {", ".join(cells)}
        FROM ({contact_facts(params, config if params.extra else None)})
        WHERE {_anchored(params)} AND {in_keys(params, "contact_key")}
        ORDER BY {ANCHORS[params.anchor]}, {id_order("contact_key")}
    """


def _anchored(params: Params) -> str:
    """The export's rows by its anchor (issue 28): created in the range, or ended in it (ended contacts only), and
    in the period of `--where period=LABEL`."""
    anchor = ANCHORS[params.anchor]
    conditions = [in_range(anchor, params), *(["NOT is_open"] if params.anchor == "ended" else []),
                  *(in_period(anchor, params, value) for key, value in params.where if key == "period")]
    return " AND ".join(conditions)


def _outcome_cells() -> list[str]:
    """The cells of OUTCOME_EXTRA_COLUMNS, over `contact_facts` with outcomes."""
    return [boolean("resolved_first_time")]


def _summary(report: Report, params: Params, config: Config) -> str:
    figures = [
        "count(*)", "count(*) FILTER (WHERE direction = 'INBOUND')", "count(*) FILTER (WHERE direction = 'OUTBOUND')",
        "count(*) FILTER (WHERE source = 'handoff')", average("first_response_seconds"),
        median("first_response_seconds"), average("duration_seconds"), average("agent_messages"),
    ]
    return summary_query(params, contact_facts(params), "ended_at", f"NOT is_open AND {in_range('ended_at', params)}",
                         figures)


CONTACT_EXPORT = Report(
    name="contact-export",
    columns=EXPORT_COLUMNS,
    where=CONTACT_FILTERS | {"period": ()},
    anchors=tuple(ANCHORS),
    query=_export,
    keyed=True,
    extra_columns=(Column("Inbox", text=True), Column("Feedback"), Column("Feedback Score", kind="number"),
                   *OUTCOME_EXTRA_COLUMNS),
)
CONTACT_SUMMARY = Report(
    name="contact-summary",
    columns=SUMMARY_COLUMNS,
    where=CONTACT_FILTERS,
    query=_summary,
    takes_period=True,
    default_period="day",
)
