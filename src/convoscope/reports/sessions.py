"""AI Sessions Detail, with and without messages (SPEC 4.2): one row per session, anchored on creation.

What can still change at the as-of time is an empty cell (SPEC 3.6): while a session is open, Was
Handed Off, Was Resolved and the handoff cells; Was Responded To unless an AI reply already came;
Was Recontacted until the recontact window has passed, unless a session created within it is known
(derivation uses every stored event, so also one created after the as-of time: decision 19).
Durable Resolution and Resolution Class (issue 26) are judged here too, with the brand's `durable_window`,
for every report that shows them (decisions 113-115).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import duckdb

from convoscope.config import Config
from convoscope.reports.base import (
    TRUTH,
    Column,
    Params,
    Report,
    as_of,
    boolean,
    brand_window,
    cell_needed,
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
    local,
    period_label,
    public_url,
    q,
    rate,
    summary_query,
    truth,
)
from convoscope.store import id_order, stored

DETAIL_COLUMNS = (
    *columns("id", "Session ID", "Customer ID", "Conversation ID"), Column("Channel", text=True),
    Column("Gladly Agent", text=True), Column("Guides Used", text=True), Column("Created Date", kind="time"),
    *columns("boolean", "Was Handed Off", "Was Resolved", "Was Recontacted Resolution - 24 Hours", "Was Responded To"),
    Column("Handoff Category", text=True), Column("Handoff Subcategory", text=True),
    Column("Handoff Reason", text=True), Column("Transfer Rationale", text=True), Column("Conversation Link"),
)
EXTRA_COLUMNS = (Column("Brand", kind="id"), *columns("time", "Created At", "Ended At"), Column("End Reason"),
                 Column("Outcome"), Column("Inbox", text=True), Column("Feedback"),
                 Column("Feedback Score", kind="number"))
# Issue 26 point 2, after every other extra column (the feedback columns of point 1 come before these): kept
# apart, with their cells in `_outcome_cells`, so that the two lists merge as two lists.
OUTCOME_EXTRA_COLUMNS = (Column("Durable Resolution", kind="boolean"), Column("Resolution Class"))
RESOLUTION_CLASSES = ("confirmed", "disputed", "came_back", "durable", "pending")
OUTCOMES = ("open", "no_response", "handed_off", "resolved")
SESSION_WHERE: dict[str, tuple[str, ...]] = {  # SPEC 4's, and Gladly's dialect's
    "channel": (), "ai_agent": (), "guide": (), "handoff_category": (), "outcome": OUTCOMES, "inbox": (),
}
# The handoff funnel's steps after Handed Off (reports/funnel.py): `--where handoff_step=STEP` keeps the sessions whose
# linked contact reached that step.
HANDOFF_STEPS = ("contact", "first_response", "resolved_first_time", "came_back")
# Issue 28 point 2: every column a summary's figure counts by is a filter too, so that each figure's rows can be
# listed (web/drill.py); a boolean takes TRUTH's values. Those of `JUDGED` need the outcome facts (`_with_outcomes`).
SESSION_FILTERS: dict[str, tuple[str, ...]] = SESSION_WHERE | {
    "handoff_subcategory": (), "handed_off": TRUTH, "resolved": TRUTH, "responded": TRUTH, "recontacted": TRUTH,
    "closed": ("true", "false"), "durable_resolution": TRUTH, "resolution_class": (*RESOLUTION_CLASSES, "none"),
    "feedback": ("positive", "negative", "given", "none"), "handoff_step": HANDOFF_STEPS,
}
JUDGED = frozenset({"durable_resolution", "resolution_class", "handoff_step"})
DETAIL_WHERE = SESSION_FILTERS | {"period": ()}  # the detail's rows of one period's label, read on the anchor
ANCHORS = {"created": "created_at", "ended": "ended_at"}  # a session's end is known once it is closed


def judged(params: Params) -> bool:
    """The report's rows need the outcome facts: shown (`--extra`) or filtered by."""
    return params.extra or any(key in JUDGED for key, _ in params.where)


def session_facts(params: Params, config: Config | None = None) -> str:
    """Sessions with their as-of judgement (SPEC 3.6): open, outcome, and the cells that may be unknown.
    Shared by every session report, so the summary counts what the detail shows. With `config`, also each
    session's Durable Resolution and Resolution Class (issue 26), judged with its brand's `durable_window`."""
    at = as_of(params)
    facts = f"""
        SELECT s.*,
               ended_at > {at} AS is_open,
               CASE WHEN ended_at > {at} THEN NULL ELSE handed_off END AS was_handed_off,
               CASE WHEN ended_at > {at} THEN NULL ELSE responded AND NOT handed_off END AS was_resolved,
               CASE WHEN ended_at > {at} THEN (CASE WHEN first_response_at <= {at} THEN true END)
                    ELSE responded END AS was_responded_to,
               CASE WHEN ended_at <= {at} AND responded AND NOT handed_off THEN
                    (CASE WHEN recontacted THEN true WHEN {at} > recontact_known_at THEN false END) END AS was_recontacted,
               CASE WHEN ended_at > {at} THEN 'open' WHEN NOT responded THEN 'no_response'
                    WHEN handed_off THEN 'handed_off' ELSE 'resolved' END AS outcome
        FROM sessions s
    """
    return facts if config is None else _with_outcomes(facts, params, config)


def _with_outcomes(facts: str, params: Params, config: Config) -> str:
    """Issue 26 point 2 over the session facts. Durable Resolution, for resolved sessions only: false when the
    same (brand, customer) has another session or a contact created in [end, end + D] (any conversation or
    channel; like Was Recontacted, one created after the as-of time counts: decision 114), true when there is
    none and the as-of time is later than end + D, unknown (NULL) before. Resolution Class, for resolved sessions
    only, the first that applies: confirmed (positive feedback), disputed (negative), came_back (Durable
    Resolution false), durable (true), pending."""
    at = as_of(params)
    window = brand_window(config, params, "durable_window", "f.brand")
    # When the customer next started a session or a contact, at or after the end, as the derive keeps it
    # (decision 176): they came back when that is within the window.
    back = f"f.next_interaction_at <= f.ended_at + {window}"
    return f"""
        SELECT *, CASE WHEN was_resolved THEN (CASE WHEN feedback = 'positive' THEN 'confirmed'
                                                  WHEN feedback = 'negative' THEN 'disputed'
                                                  WHEN NOT durable_resolution THEN 'came_back'
                                                  WHEN durable_resolution THEN 'durable' ELSE 'pending' END)
                  END AS resolution_class
        FROM (SELECT f.*, CASE WHEN f.was_resolved THEN (CASE WHEN {back} THEN false
                                                         WHEN {at} > f.ended_at + {window} THEN true END)
                          END AS durable_resolution
              FROM ({facts}) f)
    """


def session_filters(params: Params, config: Config | None = None) -> str:
    """The sessions the report's parameters select, over `session_facts` (with outcomes for a filter of `JUDGED`,
    whose `handoff_step` needs `config`). The range reads the anchor: created, or ended (closed sessions only)."""
    anchor = ANCHORS[params.anchor]
    conditions = [in_brands(params), in_range(anchor, params), channel_in(params, "channel"),
                  inbox_in(params, "inbox")]
    if params.anchor != "created":
        conditions.append("NOT is_open")
    for key, value in params.where:
        match key:
            # An empty value selects the sessions without one: the row a summary by that dimension shows
            # under an empty value.
            case "channel":
                conditions.append(f"channel = {q(value.lower())}" if value else "channel IS NULL")
            case "ai_agent":
                conditions.append(f"ai_agent = {q(value)}" if value else "ai_agent IS NULL")
            case "guide":
                conditions.append(f"list_contains(guides, {q(value)})" if value else "guides IS NULL")
            case "handoff_category" | "handoff_subcategory":
                conditions.append(f"was_handed_off AND {key} = {q(value)}" if value
                                  else f"({DIMENSIONS[key][1]}) IS NULL")
            case "outcome":
                conditions.append(f"outcome = {q(value)}")
            case "inbox":
                conditions.append(inbox_is("inbox", value))
            case "handed_off" | "resolved" | "responded" | "recontacted":
                conditions.append(truth(f"was_{key}" + ("_to" if key == "responded" else ""), value))
            case "durable_resolution":
                conditions.append(truth(key, value))
            case "closed":
                conditions.append("NOT is_open" if value == "true" else "is_open")
            case "resolution_class":
                conditions.append(f"resolution_class = {q(value)}" if value != "none" else "resolution_class IS NULL")
            case "feedback":
                conditions.append({"given": "feedback IS NOT NULL", "none": "feedback IS NULL"}.get(
                    value, f"feedback = {q(value)}"))
            case "handoff_step":
                conditions.append(_reached(params, config, value))
            case "period":
                conditions.append(in_period(anchor, params, value))
    return " AND ".join(conditions)


def _reached(params: Params, config: Config | None, step: str) -> str:
    """The session was handed off and its linked contact reached `step` of the handoff funnel, as
    reports/funnel.py counts it: a contact, a first team reply, resolved first time (with a reply), and the
    customer came back anyway."""
    from convoscope.reports.contacts import contact_facts

    if config is None:
        raise ValueError("handoff_step needs the brand settings: pass config to session_filters")
    steps = {"contact": "true", "first_response": "first_response_seconds IS NOT NULL",
             "resolved_first_time": "first_response_seconds IS NOT NULL AND resolved_first_time IS TRUE"}
    steps["came_back"] = f"{steps['resolved_first_time']} AND came_back IS TRUE"
    contacts = contact_facts(replace(params, where=[], channels=None, inboxes=None, date_from=None, date_to=None,
                                     start_at=None, end_at=None, anchor="created"), config)
    return (f"was_handed_off AND session_key IN (SELECT session_key FROM ({contacts}) "
            f"WHERE session_key IS NOT NULL AND {steps[step]})")


def detail_query(params: Params, config: Config, *, messages: bool, channel: str | None = None,
                 created: str | None = None) -> str:
    """SPEC 4.2's rows; a dialect may give its own cells for Channel and Created Date (SQL over the session)."""
    handed = "was_handed_off"
    cells = [
        "session_id", "customer_id", "conversation_id", channel or guard("channel"), guard("ai_agent"),
        guard("guides_used"), created or period_label("created_at", params, params.period),
        boolean("was_handed_off"), boolean("was_resolved"), boolean("was_recontacted"), boolean("was_responded_to"),
        *(f"CASE WHEN {handed} THEN {guard(c)} END"
          for c in ("handoff_category", "handoff_subcategory", "handoff_reason", "transfer_rationale")),
        f"{public_url(config, params)} || '/conversations/' || conversation_id",
    ]
    joins = ""
    if messages and not cell_needed(params, len(cells)):
        cells.append("NULL")  # a page listing its keys: no session's messages read
    elif messages:
        line_break = r"'\r\n|[\r\n\x{2028}\x{2029}\x{85}\x0b\x0c]'"
        cells.append(guard("history"))
        joins = f"""
            LEFT JOIN (
                -- The lines gathered unordered and sorted per session: DuckDB's ordered string_agg
                -- took 9.2 s of the 10M brand's 15 s, this 7.3 s.
                SELECT m.session_key, array_to_string(list_transform(list_sort(list(struct_pack(
                    seq := m.seq,
                    line := '[' || strftime({local("e.occurred_at", params)}, '%Y-%m-%d %H:%M:%S') || '] '
                            || CASE e.type WHEN 'customer_message' THEN 'Customer' ELSE 'AI' END || ': '
                            || coalesce(regexp_replace(e.text, {line_break}, ' ', 'g'), '')
                ))), lambda message: message.line), chr(10)) AS history
                FROM {stored("session_messages")} m
                JOIN picked p ON p.session_key = m.session_key
                JOIN events e ON e.event_key = m.event_key AND e.brand = p.brand AND e.customer_id = p.customer_id
                GROUP BY m.session_key
            ) h USING (session_key)
        """
    if params.extra:
        cells += [
            "brand", fmt_timestamp("created_at", params),
            f"CASE WHEN NOT is_open THEN {fmt_timestamp('ended_at', params)} END",
            "CASE WHEN NOT is_open THEN end_reason END", "outcome", guard("inbox"),
            # The last feedback attached, whatever the as-of time (decision 110).
            "feedback", "feedback_score",
        ]
    if params.extra:
        cells += _outcome_cells()
    cells += key_cell(params, "session_key")
    return f"""
        WITH picked AS (SELECT * FROM ({session_facts(params, config if judged(params) else None)})
                        WHERE {session_filters(params, config)} AND {in_keys(params, "session_key")})
        SELECT {", ".join(cells)}
        FROM picked {joins}
        ORDER BY {ANCHORS[params.anchor]}, {id_order("session_key")}
    """


def _outcome_cells() -> list[str]:
    """The cells of OUTCOME_EXTRA_COLUMNS, over `session_facts` with outcomes."""
    return [boolean("durable_resolution"), "resolution_class"]


def _detail(report: Report, params: Params, config: Config) -> str:
    return detail_query(params, config, messages=False)


def _with_messages(report: Report, params: Params, config: Config) -> str:
    return detail_query(params, config, messages=True)


SESSIONS_DETAIL = Report(
    name="sessions-detail",
    columns=DETAIL_COLUMNS,
    where=DETAIL_WHERE,
    anchors=tuple(ANCHORS),
    query=_detail,
    takes_period=True,
    keyed=True,
    extra_columns=EXTRA_COLUMNS + OUTCOME_EXTRA_COLUMNS,
    extra_judged_with=("durable_window",),
)
SESSIONS_DETAIL_WITH_MESSAGES = Report(
    name="sessions-detail-with-messages",
    columns=(*DETAIL_COLUMNS, Column("Message History", text=True)),
    where=DETAIL_WHERE,
    anchors=tuple(ANCHORS),
    query=_with_messages,
    takes_period=True,
    keyed=True,
    extra_columns=EXTRA_COLUMNS + OUTCOME_EXTRA_COLUMNS,
    extra_judged_with=("durable_window",),
    personal_data=True,
)


SUMMARY_COLUMNS = (
    Column("Period", kind="time"),
    *columns("count", "Sessions", "Responded", "Resolved", "Handed Off", "No Response", "Open"),
    *columns("rate", "Resolution Rate", "Handoff Rate", "Recontact Rate"),
)
DIMENSIONS = {  # --by: the dimension column and each session's value(s) of it
    "channel": (Column("Channel", text=True), "channel"),
    "ai_agent": (Column("AI Agent", text=True), "ai_agent"),
    "guide": (Column("Guide", text=True), "unnest(CASE WHEN guides IS NULL THEN [NULL::VARCHAR] ELSE guides END)"),
    "handoff_category": (Column("Handoff Category", text=True), "CASE WHEN was_handed_off THEN handoff_category END"),
    "handoff_subcategory": (Column("Handoff Subcategory", text=True),
                            "CASE WHEN was_handed_off THEN handoff_subcategory END"),
    "inbox": (Column("Inbox", text=True), "inbox"),
}


def _figures() -> dict[str, str]:
    """SPEC 4.3's figures as aggregates over session facts, by snake header: one definition for the
    summary, the headline and every chart."""
    resolved = "count(*) FILTER (WHERE was_resolved)"
    handed = "count(*) FILTER (WHERE was_handed_off)"
    return {
        "sessions": "count(*)",
        "responded": "count(*) FILTER (WHERE was_responded_to)",
        "resolved": resolved,
        "handed_off": handed,
        "no_response": "count(*) FILTER (WHERE outcome = 'no_response')",
        "open": "count(*) FILTER (WHERE is_open)",
        "resolution_rate": rate(resolved, f"{resolved} + count(*) FILTER (WHERE was_handed_off AND was_responded_to)"),
        "handoff_rate": rate(handed, "count(*) FILTER (WHERE NOT is_open)"),
        "recontact_rate": rate("count(*) FILTER (WHERE was_recontacted)", "count(was_recontacted)"),
    }


FIGURES = _figures()


def _summary(report: Report, params: Params, config: Config) -> str:
    """SPEC 4.3: the counts of the detail rows created in each period (× dimension value)."""
    return summary_query(params, session_facts(params, config if judged(params) else None), "created_at",
                         session_filters(params, config), [FIGURES[c.snake] for c in SUMMARY_COLUMNS[1:]],
                         DIMENSIONS[params.by][1] if params.by else None)


SESSIONS_SUMMARY = Report(
    name="sessions-summary",
    columns=SUMMARY_COLUMNS,
    where=SESSION_FILTERS,
    query=_summary,
    takes_period=True,
    default_period="day",
    by_columns={key: column for key, (column, _) in DIMENSIONS.items()},
)


def headline(con: duckdb.DuckDBPyConnection, params: Params) -> dict[str, Any]:
    """The summary's figures over the whole selection, and its top handoff categories."""
    picked = f"SELECT * FROM ({session_facts(params)}) WHERE {session_filters(params)}"
    cursor = con.execute(f"SELECT {', '.join(f'{sql} AS {name}' for name, sql in FIGURES.items())} FROM ({picked})")
    numbers: dict[str, Any] = dict(zip(FIGURES, cursor.fetchall()[0], strict=True))
    numbers["top_handoff_categories"] = con.execute(f"""
        SELECT handoff_category, count(*) AS n FROM ({picked}) WHERE was_handed_off
        GROUP BY ALL ORDER BY n DESC, handoff_category LIMIT 5
    """).fetchall()
    return numbers
