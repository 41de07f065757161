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
    "guides", "category", "subcategory", "reason", "transfer_rationale", "agent",
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


def _entity_ids(con: duckdb.DuckDBPyConnection, prefix: str, brand: pa.Array, customer: pa.Array,
                event_id: pa.Array) -> pa.Array:
    """SPEC 3.5 ids of entities whose first events are given, in the same order (DuckDB's sha256)."""
    con.register("_k_ids", pa.table({"n": np.arange(len(event_id)), "b": brand, "c": customer, "e": event_id}))
    ids = con.sql(f"SELECT '{prefix}' || left(sha256(b || chr(10) || c || chr(10) || e), 16) AS id "
                  "FROM _k_ids ORDER BY n").to_arrow_table().column("id").combine_chunks()
    con.unregister("_k_ids")
    return ids


def _first_and_last(owner: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For rows sorted by position: per owner, the first and last row index and the number of
    distinct `values` (non-negative codes)."""
    owners, first = np.unique(owner, return_index=True)
    _, last_rev = np.unique(owner[::-1], return_index=True)
    last = owner.shape[0] - 1 - last_rev
    pairs = np.unique(owner.astype(np.int64) * (int(values.max(initial=0)) + 1) + values)
    distinct = np.bincount(np.searchsorted(owners, pairs // (int(values.max(initial=0)) + 1)),
                           minlength=owners.shape[0])
    return owners, first, last, distinct


def assemble(events: pa.Table, out: K.KernelOutput, con: duckdb.DuckDBPyConnection) -> dict[str, pa.Table]:
    """The derived tables (store schema, column order included) as Arrow tables.

    Strings come from the sorted events by position (`take`); each entity's id is hashed once and
    reused wherever the entity is referenced."""
    events = events.combine_chunks()
    brand, customer, event_id = (events.column(n).chunk(0) if events.column(n).num_chunks else
                                 events.column(n).combine_chunks() for n in ("brand", "customer_id", "event_id"))

    def at(name: str, positions: np.ndarray) -> pa.Array:
        column = events.column(name)
        return column.take(_positions(positions)).combine_chunks() if isinstance(column, pa.ChunkedArray) \
            else column.take(_positions(positions))

    def ids(prefix: str, first: np.ndarray) -> pa.Array:
        idx = pa.array(first)
        return _entity_ids(con, prefix, brand.take(idx), customer.take(idx), event_id.take(idx))

    cnv_ids = ids("cnv_", out.v_first)
    ses_ids = ids("ses_", out.s_first)
    ctc_ids = ids("ctc_", out.c_first)

    def of_conversation(conv: np.ndarray) -> dict[str, pa.Array]:
        idx = pa.array(out.v_first[conv] if conv.shape[0] else conv)
        return {"brand": brand.take(idx), "customer_id": customer.take(idx), "conversation_id": cnv_ids.take(pa.array(conv))}

    handed = (out.s_end_reason == 0) | (out.s_end_reason == 1)
    handoff_only = np.where(out.s_end_reason == 0, out.s_handoff, K.NONE)
    takeover = _codes(np.where(out.s_end_reason == 1, out.s_takeover_source.astype(np.int64), -1), K.CONTACT_SOURCES)
    category = at("category", handoff_only)
    sessions = pa.table({
        "brand": at("brand", out.s_first),
        "customer_id": at("customer_id", out.s_first),
        "session_id": ses_ids,
        "conversation_id": cnv_ids.take(pa.array(out.s_conversation)),
        "created_at": at("occurred_at", out.s_first),
        "last_activity_at": _times(out.s_last_activity),
        "ended_at": _times(out.s_end),
        "end_reason": _codes(out.s_end_reason, K.SESSION_END_REASONS),
        "channel": at("channel", out.s_channel),
        "ai_agent": at("ai_agent", out.s_ai_agent),
        "guides_used": pa.nulls(out.s_first.shape[0], pa.string()),
        "guides": pa.nulls(out.s_first.shape[0], pa.list_(pa.string())),
        "responded": out.s_first_ai != K.NONE,
        "first_response_at": _times(out.s_first_ai),
        "handed_off": handed,
        "handoff_category": pc.if_else(out.s_end_reason == 1, pa.scalar("team_takeover"), category),
        "handoff_subcategory": pc.if_else(out.s_end_reason == 1, takeover, at("subcategory", handoff_only)),
        "handoff_reason": at("reason", handoff_only),
        "transfer_rationale": at("transfer_rationale", handoff_only),
        "recontacted": out.s_recontacted,
        "recontact_known_at": _times(out.s_recontact_known),
    })
    linked = out.c_session >= 0
    contacts = pa.table({
        "brand": at("brand", out.c_first),
        "customer_id": at("customer_id", out.c_first),
        "contact_id": ctc_ids,
        "conversation_id": cnv_ids.take(pa.array(out.c_conversation)),
        "session_id": ses_ids.take(pa.array(np.where(linked, out.c_session, 0), mask=~linked)),
        "source": _codes(out.c_source, K.CONTACT_SOURCES),
        "channel": at("channel", out.c_channel),
        "created_at": at("occurred_at", out.c_first),
        "first_response_at": _times(out.c_first_response),
        "last_activity_at": _times(out.c_last_activity),
        "ended_at": _times(out.c_end),
        "end_reason": _codes(out.c_end_reason, K.CONTACT_END_REASONS),
        "agents": pa.nulls(out.c_first.shape[0], pa.string()),
        "customer_messages": out.c_customer_messages.astype(np.int32),
        "agent_messages": out.c_agent_messages.astype(np.int32),
    })

    # Conversation channels: over every event of its interactions that carries one, by event order.
    n_conv = out.v_first.shape[0]
    with_channel = np.flatnonzero((out.ev_conversation >= 0) & pc.is_valid(events.column("channel")).to_numpy())
    first_channel = np.full(n_conv, K.NONE)
    last_channel = np.full(n_conv, K.NONE)
    channel_count = np.zeros(n_conv, dtype=np.int32)
    if with_channel.shape[0]:
        codes = pc.dictionary_encode(events.column("channel").take(pa.array(with_channel))).combine_chunks()
        owners, first, last, distinct = _first_and_last(out.ev_conversation[with_channel],
                                                        codes.indices.to_numpy().astype(np.int64))
        first_channel[owners] = with_channel[first]
        last_channel[owners] = with_channel[last]
        channel_count[owners] = distinct
    handled = np.where(out.v_sessions == 0, 0, np.where(out.v_contacts == 0, 1, np.where(out.v_linked, 2, 3)))
    conversations = pa.table({
        **of_conversation(np.arange(n_conv)),
        "created_at": _times(out.v_created),
        "ended_at": _times(out.v_end),
        "times_reopened": out.v_reopens.astype(np.int32),
        "first_channel": at("channel", first_channel),
        "last_channel": at("channel", last_channel),
        "channel_count": channel_count,
        "session_count": out.v_sessions.astype(np.int32),
        "contact_count": out.v_contacts.astype(np.int32),
        "handled_by": _codes(handled, K.HANDLED_BY),
    })
    closes = pa.table({**of_conversation(out.close_conversation), "closed_at": _times(out.close_at),
                       "counted": out.close_counted})
    reopens = pa.table({**of_conversation(out.reopen_conversation), "reopened_at": _times(out.reopen_at)})
    anomalies = pa.table({
        "brand": at("brand", out.anomaly_pos), "customer_id": at("customer_id", out.anomaly_pos),
        "event_id": at("event_id", out.anomaly_pos),
        "kind": _codes(out.anomaly_kind.astype(np.int64), K.ANOMALY_KINDS),
        "occurred_at": at("occurred_at", out.anomaly_pos),
    })

    # A session's messages: its customer and AI messages in event order (SPEC 4.2 Message History).
    kind = np.asarray(events.column("kind").to_numpy())
    msg = np.flatnonzero((out.ev_session >= 0) & ((kind == K.CUSTOMER) | (kind == K.AI)))
    msg = msg[np.argsort(out.ev_session[msg], kind="stable")]
    ses_of_msg = out.ev_session[msg]
    starts = np.flatnonzero(np.diff(ses_of_msg, prepend=-1)) if msg.shape[0] else msg
    seq = np.arange(msg.shape[0]) - np.repeat(starts, np.diff(np.append(starts, msg.shape[0])))
    session_messages = pa.table({
        "brand": at("brand", msg), "customer_id": at("customer_id", msg),
        "session_id": ses_ids.take(pa.array(ses_of_msg)), "seq": seq.astype(np.int32),
        "event_id": at("event_id", msg), "occurred_at": at("occurred_at", msg),
        "speaker": _codes(np.where(kind[msg] == K.CUSTOMER, 0, 1).astype(np.int64), ("customer", "ai")),
    })

    sessions = _with_guides(con, sessions, events, out, kind)
    contacts = _with_agents(con, contacts, events, out, kind)
    return {"sessions": sessions, "contacts": contacts, "conversations": conversations,
            "conversation_closes": closes, "conversation_reopens": reopens, "anomalies": anomalies,
            "session_messages": session_messages}


def _with_guides(con: duckdb.DuckDBPyConnection, sessions: pa.Table, events: pa.Table, out: K.KernelOutput,
                 kind: np.ndarray) -> pa.Table:
    """SPEC 3.6 guides_used: distinct non-empty guides over its AI messages, in order of first use."""
    rows = np.flatnonzero((out.ev_session >= 0) & (kind == K.AI) & pc.is_valid(events.column("guides")).to_numpy())
    if not rows.shape[0]:
        return sessions
    con.register("_k_guides", pa.table({"idx": out.ev_session[rows], "pos": rows,
                                        "guides": events.column("guides").take(pa.array(rows))}))
    used = con.sql("""
        WITH used AS (
            SELECT idx, guide, min(pos * 65536 + n) AS first_use
            FROM (SELECT idx, pos, unnest(guides) AS guide, generate_subscripts(guides, 1) AS n FROM _k_guides)
            GROUP BY idx, guide
        )
        SELECT idx, string_agg(guide, ', ' ORDER BY first_use) AS used, list(guide ORDER BY first_use) AS guides
        FROM used GROUP BY idx ORDER BY idx
    """).to_arrow_table()
    con.unregister("_k_guides")
    idx = used.column("idx").to_numpy()
    text = np.full(sessions.num_rows, -1, dtype=np.int64)
    text[idx] = np.arange(idx.shape[0])
    where = pa.array(np.where(text >= 0, text, 0), mask=text < 0)
    sessions = sessions.set_column(sessions.schema.get_field_index("guides_used"), "guides_used",
                                   used.column("used").take(where))
    return sessions.set_column(sessions.schema.get_field_index("guides"), "guides", used.column("guides").take(where))


def _with_agents(con: duckdb.DuckDBPyConnection, contacts: pa.Table, events: pa.Table, out: K.KernelOutput,
                 kind: np.ndarray) -> pa.Table:
    """SPEC 4.4 Agents: distinct team members in order of their first message."""
    rows = np.flatnonzero((out.ev_contact >= 0) & (kind == K.AGENT) & pc.is_valid(events.column("agent")).to_numpy())
    if not rows.shape[0]:
        return contacts
    con.register("_k_agents", pa.table({"idx": out.ev_contact[rows], "pos": rows,
                                        "agent": events.column("agent").take(pa.array(rows))}))
    agents = con.sql("""
        WITH firsts AS (SELECT idx, agent, min(pos) AS first_pos FROM _k_agents GROUP BY idx, agent)
        SELECT idx, string_agg(agent, ', ' ORDER BY first_pos) AS agents FROM firsts GROUP BY idx ORDER BY idx
    """).to_arrow_table()
    con.unregister("_k_agents")
    idx = agents.column("idx").to_numpy()
    text = np.full(contacts.num_rows, -1, dtype=np.int64)
    text[idx] = np.arange(idx.shape[0])
    where = pa.array(np.where(text >= 0, text, 0), mask=text < 0)
    return contacts.set_column(contacts.schema.get_field_index("agents"), "agents", agents.column("agents").take(where))
