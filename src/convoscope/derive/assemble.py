"""From kernel numbers to derived tables: engine-independent.

`kernel_input` turns sorted events (an Arrow table) into the kernel's numeric arrays; `assemble`
turns the kernel's output back into the derived tables of the store schema, taking strings from the
sorted events by position and computing ids (SPEC 3.5) with DuckDB's vectorised sha256. Both the
embedded and the Spark engine call these two functions, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from convoscope.config import BrandSettings
from convoscope.derive import kernel as K

# Columns the sorted events must carry, in this order, for kernel_input and assemble.
SORTED_COLUMNS = (
    "brand", "customer_id", "event_id", "occurred_at", "kind", "route_code", "to_ai", "channel", "ai_agent",
    "guides", "category", "subcategory", "reason", "transfer_rationale", "agent", "text",
)

_US = 1_000_000


def _micros(value: object) -> int:
    from datetime import timedelta

    assert isinstance(value, timedelta)
    return int(value.total_seconds() * _US)


def group_starts(events: pa.Table) -> np.ndarray:
    """Positions where a new (brand, customer) begins, plus the end position."""
    n = events.num_rows
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    brand = events.column("brand")
    customer = events.column("customer_id")
    changed = pc.or_(
        pc.not_equal(brand.slice(1), brand.slice(0, n - 1)),
        pc.not_equal(customer.slice(1), customer.slice(0, n - 1)),
    )
    starts = np.flatnonzero(np.asarray(changed.to_numpy(zero_copy_only=False))) + 1
    return np.concatenate(([0], starts, [n])).astype(np.int64)


def kernel_input(events: pa.Table, settings_for: Callable[[str], BrandSettings]) -> K.KernelInput:
    """The kernel's numeric view of sorted events (SORTED_COLUMNS)."""
    starts = group_starts(events)
    n_groups = starts.shape[0] - 1
    brands = events.column("brand").take(pa.array(starts[:-1])) if n_groups else pa.array([], pa.string())
    encoded = pc.dictionary_encode(brands).combine_chunks() if n_groups else None
    per_group = {}
    for key in ("session_inactivity", "contact_inactivity", "conversation_window", "recontact_window"):
        if encoded is None:
            per_group[key] = np.zeros(0, dtype=np.int64)
            continue
        values = np.array([_micros(getattr(settings_for(b), key)) for b in encoded.dictionary.to_pylist()])
        per_group[key] = values[encoded.indices.to_numpy()]

    def column(name: str, dtype: type) -> np.ndarray:
        return np.asarray(events.column(name).to_numpy(), dtype=dtype)

    return K.KernelInput(
        group_starts=starts,
        ts=pc.cast(events.column("occurred_at"), pa.int64()).to_numpy(),
        kind=column("kind", np.int8),
        route=column("route_code", np.int8),
        to_ai=column("to_ai", np.bool_),
        has_channel=pc.is_valid(events.column("channel")).to_numpy(),
        has_ai_agent=pc.is_valid(events.column("ai_agent")).to_numpy(),
        **per_group,
    )


def _positions(values: np.ndarray) -> pa.Array:
    """Kernel positions as Arrow take indices, NONE becoming null."""
    return pa.array(values, type=pa.int64(), mask=values == K.NONE)


def _times(values: np.ndarray) -> pa.Array:
    return pa.array(values, type=pa.int64(), mask=values == K.NONE).cast(pa.timestamp("us"))


def _codes(values: np.ndarray, names: tuple[str, ...]) -> pa.Array:
    mask = values < 0
    return pa.DictionaryArray.from_arrays(
        pa.array(np.where(mask, 0, values).astype(np.int32), mask=mask), pa.array(names)
    ).cast(pa.string())


def _ids(prefix: str) -> str:
    return f"'{prefix}' || left(sha256(brand || chr(10) || customer_id || chr(10) || {{col}}), 16)"


def assemble(
    events: pa.Table, out: K.KernelOutput, con: duckdb.DuckDBPyConnection
) -> dict[str, duckdb.DuckDBPyRelation]:
    """The derived tables (store schema, column order included) as DuckDB relations over Arrow data."""
    take = events.take
    ev = events.select(["brand", "customer_id", "event_id"])

    def at(name: str, positions: np.ndarray) -> pa.ChunkedArray | pa.Array:
        return events.column(name).take(_positions(positions))

    # Conversations first: sessions and contacts carry their conversation's first event id.
    v_first_event = ev.column("event_id").take(pa.array(out.v_first))
    sessions = pa.table({
        "idx": np.arange(out.s_first.shape[0]),
        "brand": at("brand", out.s_first),
        "customer_id": at("customer_id", out.s_first),
        "first_event_id": at("event_id", out.s_first),
        "conv_event_id": v_first_event.take(pa.array(out.s_conversation)),
        "created_at": at("occurred_at", out.s_first),
        "last_activity_at": _times(out.s_last_activity),
        "ended_at": _times(out.s_end),
        "end_reason": _codes(out.s_end_reason, K.SESSION_END_REASONS),
        "channel": at("channel", out.s_channel),
        "ai_agent": at("ai_agent", out.s_ai_agent),
        "first_response_at": _times(out.s_first_ai),
        "handoff_pos_category": at("category", out.s_handoff),
        "handoff_subcategory": at("subcategory", out.s_handoff),
        "handoff_reason": at("reason", out.s_handoff),
        "transfer_rationale": at("transfer_rationale", out.s_handoff),
        "takeover_source": _codes(out.s_takeover_source.astype(np.int64), K.CONTACT_SOURCES),
        "recontacted": out.s_recontacted,
        "recontact_known_at": _times(out.s_recontact_known),
    })
    contacts = pa.table({
        "idx": np.arange(out.c_first.shape[0]),
        "brand": at("brand", out.c_first),
        "customer_id": at("customer_id", out.c_first),
        "first_event_id": at("event_id", out.c_first),
        "conv_event_id": v_first_event.take(pa.array(out.c_conversation)),
        "session_event_id": at("event_id", np.where(out.c_session >= 0, out.s_first[out.c_session], K.NONE)
                               if out.s_first.shape[0] else np.full(out.c_first.shape[0], K.NONE)),
        "source": _codes(out.c_source, K.CONTACT_SOURCES),
        "channel": at("channel", out.c_channel),
        "created_at": at("occurred_at", out.c_first),
        "first_response_at": _times(out.c_first_response),
        "last_activity_at": _times(out.c_last_activity),
        "ended_at": _times(out.c_end),
        "end_reason": _codes(out.c_end_reason, K.CONTACT_END_REASONS),
        "customer_messages": out.c_customer_messages.astype(np.int32),
        "agent_messages": out.c_agent_messages.astype(np.int32),
    })
    handled = np.where(
        out.v_sessions == 0, 0, np.where(out.v_contacts == 0, 1, np.where(out.v_linked, 2, 3))
    )
    conversations = pa.table({
        "idx": np.arange(out.v_first.shape[0]),
        "brand": at("brand", out.v_first),
        "customer_id": at("customer_id", out.v_first),
        "first_event_id": v_first_event,
        "created_at": _times(out.v_created),
        "ended_at": _times(out.v_end),
        "times_reopened": out.v_reopens.astype(np.int32),
        "session_count": out.v_sessions.astype(np.int32),
        "contact_count": out.v_contacts.astype(np.int32),
        "handled_by": _codes(handled, K.HANDLED_BY),
    })

    def by_conversation(conv: np.ndarray) -> dict[str, pa.Array]:
        first = out.v_first[conv] if conv.shape[0] else conv
        return {
            "brand": ev.column("brand").take(pa.array(first)),
            "customer_id": ev.column("customer_id").take(pa.array(first)),
            "conv_event_id": v_first_event.take(pa.array(conv)),
        }

    closes = pa.table({**by_conversation(out.close_conversation), "closed_at": _times(out.close_at),
                       "counted": out.close_counted})
    reopens = pa.table({**by_conversation(out.reopen_conversation), "reopened_at": _times(out.reopen_at)})
    anomalies = take(pa.array(out.anomaly_pos)).select(["brand", "customer_id", "event_id", "occurred_at"])
    anomalies = anomalies.append_column("kind", _codes(out.anomaly_kind.astype(np.int64), K.ANOMALY_KINDS))

    # Per-event facts for the string aggregations: which entity each event belongs to.
    kind = np.asarray(events.column("kind").to_numpy())
    msg = np.flatnonzero((out.ev_session >= 0) & ((kind == K.CUSTOMER) | (kind == K.AI)))
    order = np.argsort(out.ev_session[msg], kind="stable")
    msg = msg[order]
    ses_of_msg = out.ev_session[msg]
    boundaries = np.flatnonzero(np.diff(ses_of_msg, prepend=-1)) if msg.shape[0] else msg
    seq = np.arange(msg.shape[0]) - np.repeat(boundaries, np.diff(np.append(boundaries, msg.shape[0])))
    session_messages = take(pa.array(msg)).select(["brand", "customer_id", "event_id", "occurred_at", "kind", "text"])
    session_messages = session_messages.append_column("session_event_id", at("event_id", out.s_first[ses_of_msg]))
    session_messages = session_messages.append_column("seq", pa.array(seq.astype(np.int32)))

    guide_rows = np.flatnonzero((out.ev_session >= 0) & (kind == K.AI))
    guide_events = pa.table({
        "idx": out.ev_session[guide_rows], "pos": guide_rows,
        "guides": events.column("guides").take(pa.array(guide_rows)),
    })
    agent_rows = np.flatnonzero((out.ev_contact >= 0) & (kind == K.AGENT))
    agent_events = pa.table({
        "idx": out.ev_contact[agent_rows], "pos": agent_rows,
        "agent": events.column("agent").take(pa.array(agent_rows)),
    })
    chan_rows = np.flatnonzero(out.ev_conversation >= 0)
    channel_events = pa.table({
        "idx": out.ev_conversation[chan_rows], "pos": chan_rows,
        "channel": events.column("channel").take(pa.array(chan_rows)),
    })

    for name, table in {
        "_k_sessions": sessions, "_k_contacts": contacts, "_k_conversations": conversations,
        "_k_closes": closes, "_k_reopens": reopens, "_k_anomalies": anomalies,
        "_k_messages": session_messages, "_k_guides": guide_events, "_k_agents": agent_events,
        "_k_channels": channel_events,
    }.items():
        con.register(name, table)

    ses_id = _ids("ses_").format(col="first_event_id")
    cnv_id = _ids("cnv_").format(col="conv_event_id")
    return {
        "sessions": con.sql(f"""
            WITH used AS (
                SELECT idx, guide, min(pos * 65536 + n) AS first_use
                FROM (SELECT idx, pos, unnest(guides) AS guide, generate_subscripts(guides, 1) AS n FROM _k_guides)
                GROUP BY idx, guide
            ), agg AS (
                SELECT idx, string_agg(guide, ', ' ORDER BY first_use) AS guides_used,
                       list(guide ORDER BY first_use) AS guides
                FROM used GROUP BY idx
            )
            SELECT brand, customer_id, {ses_id} AS session_id, {cnv_id} AS conversation_id,
                   created_at, last_activity_at, ended_at, end_reason, channel, ai_agent,
                   agg.guides_used, agg.guides, first_response_at IS NOT NULL AS responded, first_response_at,
                   end_reason IN ('handoff', 'team_takeover') AS handed_off,
                   CASE end_reason WHEN 'handoff' THEN handoff_pos_category WHEN 'team_takeover' THEN 'team_takeover' END,
                   CASE end_reason WHEN 'handoff' THEN handoff_subcategory WHEN 'team_takeover' THEN takeover_source END,
                   CASE end_reason WHEN 'handoff' THEN handoff_reason END,
                   CASE end_reason WHEN 'handoff' THEN transfer_rationale END,
                   recontacted, recontact_known_at
            FROM _k_sessions LEFT JOIN agg USING (idx)
        """),
        "contacts": con.sql(f"""
            WITH firsts AS (SELECT idx, agent, min(pos) AS first_pos FROM _k_agents GROUP BY idx, agent),
                 agg AS (SELECT idx, string_agg(agent, ', ' ORDER BY first_pos) AS agents FROM firsts GROUP BY idx)
            SELECT brand, customer_id, {_ids("ctc_").format(col="first_event_id")} AS contact_id, {cnv_id},
                   CASE WHEN session_event_id IS NOT NULL THEN {_ids("ses_").format(col="session_event_id")} END,
                   source, channel, created_at, first_response_at, last_activity_at, ended_at, end_reason,
                   agg.agents, customer_messages, agent_messages
            FROM _k_contacts LEFT JOIN agg USING (idx)
        """),
        "conversations": con.sql(f"""
            WITH agg AS (
                SELECT idx, arg_min(channel, pos) AS first_channel, arg_max(channel, pos) AS last_channel,
                       count(DISTINCT channel) AS channel_count
                FROM _k_channels WHERE channel IS NOT NULL GROUP BY idx
            )
            SELECT brand, customer_id, {_ids("cnv_").format(col="first_event_id")}, created_at, ended_at,
                   times_reopened, agg.first_channel, agg.last_channel, coalesce(agg.channel_count, 0)::INTEGER,
                   session_count, contact_count, handled_by
            FROM _k_conversations LEFT JOIN agg USING (idx)
        """),
        "conversation_closes": con.sql(
            f"SELECT brand, customer_id, {cnv_id}, closed_at, counted FROM _k_closes"),
        "conversation_reopens": con.sql(
            f"SELECT brand, customer_id, {cnv_id}, reopened_at FROM _k_reopens"),
        "anomalies": con.sql("SELECT brand, customer_id, event_id, kind, occurred_at FROM _k_anomalies"),
        "session_messages": con.sql(f"""
            SELECT brand, customer_id, {_ids("ses_").format(col="session_event_id")}, seq, event_id, occurred_at,
                   CASE kind WHEN {K.CUSTOMER} THEN 'customer' ELSE 'ai' END, text
            FROM _k_messages
        """),
    }


def unregister(con: duckdb.DuckDBPyConnection) -> None:
    for name in ("_k_sessions", "_k_contacts", "_k_conversations", "_k_closes", "_k_reopens", "_k_anomalies",
                 "_k_messages", "_k_guides", "_k_agents", "_k_channels"):
        con.unregister(name)
