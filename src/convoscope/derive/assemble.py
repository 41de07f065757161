"""From kernel numbers to derived tables: engine-independent.

An engine hands over the events of whole customers in SPEC 2.4's order as numbers (`SortedEvents`)
and their string columns behind `EventColumns`, which gathers values by sorted position — from a
table already in that order, or from one in storage order through an index. `kernel_input` builds the
kernel's arrays; `assemble` turns the kernel's output into the derived tables of the store schema,
gathering only the strings an entity needs and hashing each id once (SPEC 3.5). Both the embedded
and the Spark engine call these functions, so they cannot disagree.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from convoscope.config import BrandSettings
from convoscope.derive import kernel as K
from convoscope.derive import names

# String columns assemble reads (besides the numbers of SortedEvents).
STRING_COLUMNS = ("brand", "customer_id", "event_id", "channel", "ai_agent", "guides", "category", "subcategory",
                  "reason", "transfer_rationale", "agent")


class EventColumns:
    """The events' string columns, addressed by sorted position.

    `table` holds the columns; `index[p]` is the row of `table` for sorted position p (None when the
    table is already sorted)."""

    def __init__(self, table: pa.Table, index: np.ndarray | None = None) -> None:
        self._table = table
        self._index = index
        self._combined: dict[str, pa.Array] = {}
        self._codes: dict[str, tuple[np.ndarray, pa.Array]] = {}
        self._lists: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, pa.Array]] = {}

    def column(self, name: str) -> pa.Array:
        if name not in self._combined:
            self._combined[name] = self._table.column(name).combine_chunks()
        return self._combined[name]

    def rows(self, positions: np.ndarray) -> pa.Array:
        """Take indices into `table` for positions (NONE or negative → null)."""
        absent = positions < 0
        safe = np.where(absent, 0, positions)
        rows = safe if self._index is None else self._index[safe]
        return pa.array(rows, type=pa.int64(), mask=absent if absent.any() else None)

    def take(self, name: str, positions: np.ndarray) -> pa.Array:
        return self.column(name).take(self.rows(positions))

    def list_codes(self, name: str, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, pa.Array]:
        """The values of list column `name` at sorted positions as dictionary codes: (offsets into
        codes per position, codes, dictionary). The column is encoded once, as stored, and its codes
        gathered: gathering the lists themselves copied every string (0.57 s for 3.1M AI replies)."""
        if name not in self._lists:
            lists = self.column(name)
            offsets = np.asarray(lists.offsets.to_numpy(), dtype=np.int64)
            lengths = np.where(pc.is_valid(lists).to_numpy(zero_copy_only=False), np.diff(offsets), 0)
            self._lists[name] = (offsets[:-1], lengths, *_encoded(lists.values))
        starts, lengths, codes, dictionary = self._lists[name]
        rows = positions if self._index is None else self._index[positions]
        counts = lengths[rows]
        ends = np.cumsum(counts)
        gather = np.repeat(starts[rows] - (ends - counts), counts) + np.arange(ends[-1] if ends.shape[0] else 0)
        return np.concatenate(([0], ends)).astype(np.int64), codes[gather], dictionary

    def coded(self, name: str, positions: np.ndarray) -> pa.Array:
        """`take` of a column with few distinct values (a channel) through its `codes`: each value is
        then copied from the small dictionary rather than gathered from the column's scattered rows."""
        codes, dictionary = self.codes(name)
        absent = positions < 0
        at = codes[np.where(absent, 0, positions)]
        absent |= at < 0
        return dictionary.take(pa.array(at, type=pa.int64(), mask=absent if absent.any() else None))

    def codes(self, name: str) -> tuple[np.ndarray, pa.Array]:
        """Dictionary codes of a column by sorted position (-1 for null), and the dictionary."""
        if name not in self._codes:
            indices, dictionary = _encoded(self.column(name))
            self._codes[name] = (indices if self._index is None else indices[self._index]), dictionary
        return self._codes[name]


def _encoded(values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Dictionary codes of `values` (-1 for null) and the dictionary."""
    encoded = pc.dictionary_encode(values)
    return encoded.indices.fill_null(-1).to_numpy().astype(np.int64), encoded.dictionary


@dataclass
class SortedEvents:
    """The numbers of whole customers' events in SPEC 2.4's order; `group_starts` ends with n."""

    group_starts: np.ndarray
    ts: np.ndarray  # int64 µs since the epoch, UTC
    kind: np.ndarray  # type rank
    route: np.ndarray
    has_channel: np.ndarray
    has_ai_agent: np.ndarray
    columns: EventColumns


def _micros(value: timedelta) -> int:
    return int(value.total_seconds() * 1_000_000)


def kernel_input(events: SortedEvents, settings_for: Callable[[str], BrandSettings]) -> K.KernelInput:
    """The kernel's arrays: the events' numbers and each customer group's brand settings."""
    starts = events.group_starts
    per_group = {}
    encoded = pc.dictionary_encode(events.columns.take("brand", starts[:-1]))  # each group's brand, not each event's
    brands = [settings_for(b) for b in encoded.dictionary.to_pylist()]
    group_brand = encoded.indices.to_numpy()
    for key in ("session_inactivity", "contact_inactivity", "conversation_window", "recontact_window"):
        values = np.array([_micros(getattr(b, key)) for b in brands], dtype=np.int64)
        per_group[key] = values[group_brand] if values.shape[0] else np.zeros(0, dtype=np.int64)
    # SPEC 3.4: is the event's channel one of its brand's ai_channels? One lookup per (brand, channel).
    channel_codes, channel_names = events.columns.codes("channel")
    channels = channel_names.to_pylist()
    to_ai = np.array([[("*" in b.ai_channels) or c in b.ai_channels for c in channels] + ["*" in b.ai_channels]
                      for b in brands], dtype=bool).reshape(len(brands), len(channels) + 1)
    return K.KernelInput(
        group_starts=starts, ts=events.ts, kind=events.kind, route=events.route,
        to_ai=to_ai[np.repeat(group_brand, np.diff(starts)), channel_codes] if brands else np.zeros(0, dtype=bool),
        has_channel=events.has_channel, has_ai_agent=events.has_ai_agent, **per_group,
    )


def _times(values: np.ndarray) -> pa.Array:
    absent = values == K.NONE
    return pa.array(values, type=pa.int64(), mask=absent if absent.any() else None).cast(pa.timestamp("us"))


def _codes(values: np.ndarray, names: tuple[str, ...]) -> pa.DictionaryArray:
    """Labels by code (null below 0) as a dictionary array: the store and the lake turn it into text as
    they write, which costs nothing for a few labels (casting 6.3M speakers to strings took 0.36 s)."""
    mask = values < 0
    indices = np.where(mask, 0, values).astype(np.int8)
    return pa.DictionaryArray.from_arrays(pa.array(indices, mask=mask if mask.any() else None), pa.array(names))


def _entity_ids(prefix: str, brand: pa.Array, customer: pa.Array, event_id: pa.Array) -> pa.Array:
    """SPEC 3.5 ids of entities whose first events are given, in the same order (DuckDB's sha256)."""
    con = _hashing_database().cursor()  # preserves insertion order by default, so no sort is needed
    con.register("_ids", pa.table({"b": brand, "c": customer, "e": event_id}))
    ids = con.sql(f"SELECT '{prefix}' || left(sha256(b || chr(10) || c || chr(10) || e), 16) AS id FROM _ids")
    result = ids.to_arrow_table().column("id").combine_chunks()
    con.close()
    return result


@functools.cache
def _hashing_database() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per process for `_entity_ids`: opening a database costs ~20 ms, which an
    incremental derive of a few customers would pay three times; a cursor of it costs nothing and
    keeps threads apart."""
    return duckdb.connect()


def _lists_by_owner(n_owner: int, owner: np.ndarray, code: np.ndarray, dictionary: pa.Array) -> pa.Array:
    """A list per owner (null when it has none) from (owner, code) pairs grouped by owner."""
    counts = np.bincount(owner, minlength=n_owner) if owner.shape[0] else np.zeros(n_owner, dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), dictionary.take(pa.array(code)),
                                    mask=pa.array(counts == 0))


def _distinct_strings(columns: EventColumns, name: str, rows: np.ndarray, owner: np.ndarray,
                      n_owner: int) -> pa.Array:
    """Per owner, the distinct values of column `name` over `rows`, in order of first appearance."""
    if pa.types.is_list(columns.column(name).type):
        offsets, codes, dictionary = columns.list_codes(name, rows)
    else:
        codes, dictionary = _encoded(columns.take(name, rows))
        offsets = np.arange(codes.shape[0] + 1, dtype=np.int64)
    pair_owner, pair_code = K.distinct_in_order(owner, offsets, codes, len(dictionary))
    return _lists_by_owner(n_owner, pair_owner, pair_code, dictionary)


def assemble(events: SortedEvents, out: K.KernelOutput) -> Iterator[tuple[str, pa.Table]]:
    """The derived tables (store schema, column order included) as Arrow tables, each with its name,
    one at a time: an engine can write one while the next is being built. Each entity's ids are made
    just before its first table, so that the first is ready, and writing starts, early."""
    cols = events.columns
    kind = events.kind
    n_ses, n_ctc, n_conv = out.s_first.shape[0], out.c_first.shape[0], out.v_first.shape[0]

    def ref(values: pa.Array, indices: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
        """values[indices], gathered here: DuckDB inserts a dictionary column more slowly than the
        gathered strings (it decodes the whole dictionary, however few rows refer to it)."""
        return values.take(pa.array(indices, type=pa.int64(), mask=mask))

    # Brand and customer once per customer: an entity's are then gathered from these small arrays in
    # customer order (nearly sequential), not from the events' columns at scattered rows.
    group_brand = cols.take("brand", events.group_starts[:-1])
    group_customer = cols.take("customer_id", events.group_starts[:-1])

    def first_event(first: np.ndarray, prefix: str) -> tuple[pa.Array, pa.Array, pa.Array]:
        """(brand, customer_id, id) of entities from their first events; read once, used everywhere."""
        group = np.searchsorted(events.group_starts, first, side="right") - 1
        brand, customer = ref(group_brand, group), ref(group_customer, group)
        return brand, customer, _entity_ids(prefix, brand, customer, cols.take("event_id", first))

    v_brand, v_customer, cnv_ids = first_event(out.v_first, "cnv_")

    def of_conversation(conv: np.ndarray) -> dict[str, pa.Array]:
        return {"brand": ref(v_brand, conv), "customer_id": ref(v_customer, conv), "conversation_id": ref(cnv_ids, conv)}

    # Conversations (SPEC 3.3, 4.6): channels over every event of their interactions, in event order.
    channel_codes, channel_names = cols.codes("channel")
    first_channel, last_channel, pair_owner, pair_code = K.conversation_channels(
        out.ev_conversation, channel_codes, n_conv, len(channel_names))
    handled = np.where(out.v_sessions == 0, 0, np.where(out.v_contacts == 0, 1, np.where(out.v_linked, 2, 3)))
    yield "conversations", pa.table({
        "brand": v_brand, "customer_id": v_customer, "conversation_id": cnv_ids,
        "created_at": _times(out.v_created),
        "ended_at": _times(out.v_end),
        "times_reopened": out.v_reopens.astype(np.int32),
        "first_channel": cols.coded("channel", first_channel),
        "last_channel": cols.coded("channel", last_channel),
        "channel_count": np.bincount(pair_owner, minlength=n_conv).astype(np.int32),
        "channels": _lists_by_owner(n_conv, pair_owner, pair_code, channel_names),
        "session_count": out.v_sessions.astype(np.int32),
        "contact_count": out.v_contacts.astype(np.int32),
        "handled_by": _codes(handled, names.HANDLED_BY),
    })
    yield "conversation_closes", pa.table({**of_conversation(out.close_conversation),
                                           "closed_at": _times(out.close_at), "counted": out.close_counted})
    yield "conversation_reopens", pa.table({**of_conversation(out.reopen_conversation),
                                            "reopened_at": _times(out.reopen_at)})

    s_brand, s_customer, ses_ids = first_event(out.s_first, "ses_")

    # A session's messages: its customer and AI messages in event order (SPEC 4.2 Message History).
    msg = np.flatnonzero((out.ev_session >= 0) & ((kind == K.CUSTOMER) | (kind == K.AI)))
    ses_of_msg = out.ev_session[msg]
    if (ses_of_msg[1:] < ses_of_msg[:-1]).any():  # sessions are numbered in event order and never overlap
        order = np.argsort(ses_of_msg, kind="stable")
        msg, ses_of_msg = msg[order], ses_of_msg[order]
    yield "session_messages", pa.table({
        "brand": ref(s_brand, ses_of_msg), "customer_id": ref(s_customer, ses_of_msg),
        "session_id": ref(ses_ids, ses_of_msg), "seq": K.positions_in_runs(ses_of_msg),
        "event_id": cols.take("event_id", msg), "occurred_at": _times(events.ts[msg]),
        "speaker": _codes((kind[msg] != K.CUSTOMER).astype(np.int8), ("customer", "ai")),
    })

    # Sessions (SPEC 3.6).
    handoff = np.where(out.s_end_reason == 0, out.s_handoff, K.NONE)
    takeover = out.s_end_reason == 1
    guide_rows = np.flatnonzero((out.ev_session >= 0) & (kind == K.AI))
    guides = _distinct_strings(cols, "guides", guide_rows, out.ev_session[guide_rows], n_ses)
    yield "sessions", pa.table({
        "brand": s_brand,
        "customer_id": s_customer,
        "session_id": ses_ids,
        "conversation_id": ref(cnv_ids, out.s_conversation),
        "created_at": _times(events.ts[out.s_first]),
        "last_activity_at": _times(out.s_last_activity),
        "ended_at": _times(out.s_end),
        "end_reason": _codes(out.s_end_reason, names.SESSION_END_REASONS),
        "channel": cols.coded("channel", out.s_channel),
        "ai_agent": cols.take("ai_agent", out.s_ai_agent),
        "guides_used": pc.binary_join(guides, ", "),
        "guides": guides,
        "responded": out.s_first_ai != K.NONE,
        "first_response_at": _times(out.s_first_ai),
        "handed_off": (out.s_end_reason == 0) | takeover,
        "handoff_category": pc.if_else(takeover, pa.scalar("team_takeover"), cols.take("category", handoff)),
        "handoff_subcategory": pc.if_else(
            takeover,
            _codes(np.where(takeover, out.s_takeover_source.astype(np.int64), -1), names.CONTACT_SOURCES).cast(pa.string()),
            cols.take("subcategory", handoff)),
        "handoff_reason": cols.take("reason", handoff),
        "transfer_rationale": cols.take("transfer_rationale", handoff),
        "recontacted": out.s_recontacted,
        "recontact_known_at": _times(out.s_recontact_known),
    })

    c_brand, c_customer, ctc_ids = first_event(out.c_first, "ctc_")

    # Contacts (SPEC 3.2, 4.4).
    linked = out.c_session >= 0
    agent_rows = np.flatnonzero((out.ev_contact >= 0) & (kind == K.AGENT))
    agents = _distinct_strings(cols, "agent", agent_rows, out.ev_contact[agent_rows], n_ctc)
    yield "contacts", pa.table({
        "brand": c_brand,
        "customer_id": c_customer,
        "contact_id": ctc_ids,
        "conversation_id": ref(cnv_ids, out.c_conversation),
        "session_id": ref(ses_ids, np.where(linked, out.c_session, 0), ~linked),
        "source": _codes(out.c_source, names.CONTACT_SOURCES),
        "channel": cols.coded("channel", out.c_channel),
        "created_at": _times(events.ts[out.c_first]),
        "first_response_at": _times(out.c_first_response),
        "last_activity_at": _times(out.c_last_activity),
        "ended_at": _times(out.c_end),
        "end_reason": _codes(out.c_end_reason, names.CONTACT_END_REASONS),
        "agents": pc.binary_join(agents, ", "),
        "agent_names": agents,
        "customer_messages": out.c_customer_messages.astype(np.int32),
        "agent_messages": out.c_agent_messages.astype(np.int32),
    })

    yield "anomalies", pa.table({
        "brand": cols.take("brand", out.anomaly_pos), "customer_id": cols.take("customer_id", out.anomaly_pos),
        "event_id": cols.take("event_id", out.anomaly_pos),
        "kind": _codes(out.anomaly_kind.astype(np.int64), names.ANOMALY_KINDS),
        "occurred_at": _times(events.ts[out.anomaly_pos]),
    })
