"""From kernel numbers to derived tables: engine-independent.

An engine hands over the events of whole customers in SPEC 2.4's order as numbers (`SortedEvents`,
each event's key among them) and their string columns behind `EventColumns`, which gathers values by
sorted position — from a table already in that order, or from tables of the rows that carry a value,
found by row id.
`kernel_input` builds the kernel's arrays; `assemble` turns the kernel's output into the derived tables
of the store's `derived` schema. An entity's id is the key of its first event (SPEC 3.5, computed when
the event was stored), so ids and references are numbers gathered from numbers; the only strings
gathered are the labels and texts the reports show. Both the embedded and the Spark engine call these
functions, so they cannot disagree.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from convoscope.config import BrandSettings
from convoscope.derive import kernel as K
from convoscope.derive import names

# Columns assemble reads (besides the numbers of SortedEvents): strings, and a feedback's score.
STRING_COLUMNS = ("brand", "customer_id", "event_id", "channel", "ai_agent", "guides", "category", "subcategory",
                  "reason", "transfer_rationale", "agent", "inbox", "rating", "score")


class EventColumns:
    """The events' string columns, addressed by sorted position.

    A column is held by `table`, which is in sorted order (Spark's partitions, the few customers of an
    incremental derive), or by one of `sparse`: tables of only the rows that have a value, in any order,
    each with its row ids, found through `rowids` (the row id of each sorted position). That is how the
    embedded engine reads them: once, unsorted, the rows that matter. An engine may also hand over a
    column's dictionary codes by sorted position (`codes`), and a way to read any other column for a few
    positions (`fetch`: name and row ids → values in that order)."""

    def __init__(self, table: pa.Table | None = None, *, rowids: np.ndarray | None = None,
                 sparse: tuple[tuple[np.ndarray, pa.Table], ...] = (),
                 codes: dict[str, tuple[np.ndarray, pa.Array]] | None = None,
                 fetch: Callable[[str, np.ndarray], pa.Array] | None = None) -> None:
        self._sources: dict[str, tuple[pa.Table, np.ndarray | None]] = {}
        for ids, held in sparse:
            self._sources |= {name: (held, ids) for name in held.column_names}
        self._row_maps: dict[int, np.ndarray] = {}  # per sparse table: its row of each row id, or -1
        if table is not None:
            self._sources |= {name: (table, None) for name in table.column_names}
        self._rowids = rowids
        self._rowid_end = 0 if rowids is None or rowids.shape[0] == 0 else int(rowids.max()) + 1
        self._fetch = fetch
        self._combined: dict[str, pa.Array] = {}
        self._codes: dict[str, tuple[np.ndarray, pa.Array]] = dict(codes or {})
        self._held: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray, pa.Array]] = {}

    def slice(self, start: int, stop: int) -> EventColumns:
        """The columns of sorted positions `start` to `stop`, renumbered from 0. Of columns found by row
        id, what is read or encoded once for all positions (the sparse tables, their row maps and
        encodings) is shared with this object, not made again per slice; columns held in sorted order
        are sliced, and what was made from them is made again from the slice."""
        part = copy.copy(self)  # the caches are the same dicts: filled by one slice, used by the next
        part._codes = {name: (codes[start:stop], dictionary) for name, (codes, dictionary) in self._codes.items()}
        if self._rowids is None:
            part._sources = {name: (table.slice(start, stop - start), None) for name, (table, _) in self._sources.items()}
            part._combined, part._held = {}, {}
        else:
            part._rowids = self._rowids[start:stop]
        return part

    def column(self, name: str) -> pa.Array:
        """The column as its table holds it (see `rows`)."""
        if name not in self._combined:
            self._combined[name] = self._sources[name][0].column(name).combine_chunks()
        return self._combined[name]

    def rows(self, name: str, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of `name`'s table for sorted positions, and where there is none (a negative position, or
        a row a sparse table does not hold: the value is absent)."""
        absent = positions < 0
        safe = np.where(absent, 0, positions)
        table, ids = self._sources[name]
        if ids is None:
            return safe, absent
        assert self._rowids is not None
        if id(table) not in self._row_maps:  # a map, not a binary search: 0.26 s per column for 1.6M rows
            row_of = np.full(self._rowid_end, -1, dtype=np.int32)
            row_of[ids] = np.arange(ids.shape[0], dtype=np.int32)
            self._row_maps[id(table)] = row_of
        rows = self._row_maps[id(table)][self._rowids[safe]]
        return np.maximum(rows, 0), absent | (rows < 0)

    def take(self, name: str, positions: np.ndarray) -> pa.Array:
        if name in self._sources:
            rows, absent = self.rows(name, positions)
            return self.column(name).take(pa.array(rows, type=pa.int64(), mask=absent if absent.any() else None))
        if name in self._codes:
            return self.coded(name, positions)
        if self._fetch is None or self._rowids is None or (positions < 0).any():
            raise KeyError(name)
        return self._fetch(name, self._rowids[positions])

    def held_codes(self, name: str, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, pa.Array]:
        """Column `name` as dictionary codes, encoded once as held: the held row of each position (-1:
        none), each held row's first code and end (`bounds`, n + 1: one code for a plain column, a list's
        several), the codes and the dictionary. Gathering codes, not values, spares copying strings
        (0.57 s for the guides of 3.1M AI replies)."""
        if name not in self._held:
            values = self.column(name)
            if pa.types.is_list(values.type):
                bounds = np.asarray(values.offsets.to_numpy(), dtype=np.int64)
                valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
                values = values.values
            else:
                bounds, valid = np.arange(len(values) + 1, dtype=np.int64), None
            self._held[name] = (bounds, valid, *_encoded(values))
        bounds, valid, codes, dictionary = self._held[name]
        rows, absent = self.rows(name, positions)
        if valid is not None:
            absent |= ~valid[rows] if valid.shape[0] else True
        return np.where(absent, -1, rows), bounds, codes, dictionary

    def labels(self, name: str, positions: np.ndarray, extra: pa.Array | None = None,
               instead: np.ndarray | None = None) -> pa.DictionaryArray:
        """`take` of a column of labels (an AI agent, a category) as a dictionary array: its codes are
        gathered, not its strings. With `extra`, positions where `instead` is not negative take label
        `extra[instead]` (a team takeover's category and subcategory)."""
        held, _, codes, dictionary = self.held_codes(name, positions)
        at = np.where(held < 0, -1, codes[np.maximum(held, 0)] if codes.shape[0] else -1)
        if extra is not None and instead is not None:
            at = np.where(instead >= 0, len(dictionary) + instead, at)
            dictionary = pa.concat_arrays([dictionary, extra.cast(dictionary.type)])
        absent = at < 0
        return pa.DictionaryArray.from_arrays(pa.array(np.maximum(at, 0).astype(np.int32),
                                                       mask=absent if absent.any() else None), dictionary)

    def coded(self, name: str, positions: np.ndarray) -> pa.Array:
        """`take` of a column with few distinct values (a channel) through its `codes`: each value is
        then copied from the small dictionary rather than gathered from the column's scattered rows."""
        codes, dictionary = self.codes(name)
        absent = positions < 0
        at = codes[np.where(absent, 0, positions)]
        absent |= at < 0
        return dictionary.take(pa.array(at, type=pa.int64(), mask=absent if absent.any() else None))

    def codes(self, name: str) -> tuple[np.ndarray, pa.Array]:
        """Dictionary codes of a column by sorted position (-1 for null), and the dictionary; of a
        column held in sorted order unless the engine handed them over."""
        if name not in self._codes:
            if self._sources[name][1] is not None:
                raise KeyError(f"{name}: codes of a sparse column")
            self._codes[name] = _encoded(self.column(name))
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
    has_inbox: np.ndarray
    keys: np.ndarray  # int64 event_key (SPEC 3.5)
    customers: pa.Table  # brand and customer_id of each customer group
    columns: EventColumns

    def slices(self, size: int) -> Iterator[SortedEvents]:
        """These events in parts of about `size` events (more when one customer has more), each of whole
        customers: the kernel derives customers independently, so parts can be derived one after the
        other in the memory one part takes."""
        starts = self.group_starts
        n, groups = int(starts[-1]), starts.shape[0] - 1
        if n <= size:
            yield self
            return
        first = 0
        while first < groups:
            last = max(first + 1, int(np.searchsorted(starts, starts[first] + size, side="right")) - 1)
            start, stop = int(starts[first]), int(starts[last])
            yield SortedEvents(
                group_starts=starts[first:last + 1] - start,
                ts=self.ts[start:stop], kind=self.kind[start:stop], route=self.route[start:stop],
                has_channel=self.has_channel[start:stop], has_ai_agent=self.has_ai_agent[start:stop],
                has_inbox=self.has_inbox[start:stop],
                keys=self.keys[start:stop], customers=self.customers.slice(first, last - first),
                columns=self.columns.slice(start, stop),
            )
            first = last


def _micros(value: timedelta) -> int:
    return int(value.total_seconds() * 1_000_000)


def kernel_input(events: SortedEvents, settings_for: Callable[[str], BrandSettings]) -> K.KernelInput:
    """The kernel's arrays: the events' numbers and each customer group's brand settings."""
    starts = events.group_starts
    per_group = {}
    encoded = pc.dictionary_encode(events.customers.column("brand").combine_chunks())  # per group, not per event
    brands = [settings_for(b) for b in encoded.dictionary.to_pylist()]
    group_brand = encoded.indices.to_numpy()
    for key in ("session_inactivity", "contact_inactivity", "conversation_window", "recontact_window",
                "feedback_window"):
        values = np.array([_micros(getattr(b, key)) for b in brands], dtype=np.int64)
        per_group[key] = values[group_brand] if values.shape[0] else np.zeros(0, dtype=np.int64)
    n = events.ts.shape[0]
    if all("*" in b.ai_channels for b in brands):  # every channel goes to the AI (the default)
        to_ai = np.ones(n, dtype=bool)
    else:  # SPEC 3.4: is the event's channel one of its brand's ai_channels? One lookup per (brand, channel).
        channel_codes, channel_names = events.columns.codes("channel")
        channels = channel_names.to_pylist()
        table = np.array([[("*" in b.ai_channels) or c in b.ai_channels for c in channels] + ["*" in b.ai_channels]
                          for b in brands], dtype=bool).reshape(len(brands), len(channels) + 1)
        to_ai = table[np.repeat(group_brand, np.diff(starts)), channel_codes]
    return K.KernelInput(
        group_starts=starts, ts=events.ts, kind=events.kind, route=events.route, to_ai=to_ai,
        has_channel=events.has_channel, has_ai_agent=events.has_ai_agent, has_inbox=events.has_inbox, **per_group,
    )


def _times(values: np.ndarray) -> pa.Array:
    absent = values == K.NONE
    return pa.array(values, type=pa.int64(), mask=absent if absent.any() else None).cast(pa.timestamp("us"))


def _codes(values: np.ndarray, names: tuple[str, ...]) -> pa.DictionaryArray:
    """Labels by code (null below 0) as a dictionary array: the store and the lake turn it into text as
    they write, which costs nothing for a few labels (casting 6.3M labels to strings took 0.36 s)."""
    mask = values < 0
    indices = np.where(mask, 0, values).astype(np.int8)
    return pa.DictionaryArray.from_arrays(pa.array(indices, mask=mask if mask.any() else None), pa.array(names))


def _lists_by_owner(n_owner: int, owner: np.ndarray, code: np.ndarray, dictionary: pa.Array) -> pa.Array:
    """A list per owner (null when it has none) from (owner, code) pairs grouped by owner."""
    counts = np.bincount(owner, minlength=n_owner) if owner.shape[0] else np.zeros(n_owner, dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), dictionary.take(pa.array(code)),
                                    mask=pa.array(counts == 0))


def _distinct_strings(columns: EventColumns, name: str, rows: np.ndarray, owner: np.ndarray,
                      n_owner: int) -> pa.Array:
    """Per owner, the distinct values of column `name` (a list or a plain column) over `rows`, in order of
    first appearance."""
    held, bounds, codes, dictionary = columns.held_codes(name, rows)
    pair_owner, pair_code = K.distinct_in_order(owner, held, bounds, codes, len(dictionary))
    return _lists_by_owner(n_owner, pair_owner, pair_code, dictionary)


def _feedback(cols: EventColumns, positions: np.ndarray) -> dict[str, pa.Array]:
    """An interaction's feedback columns from the position of the last feedback attached to it: its rating
    and its score, both from that one feedback (an earlier score does not fill in: docs/outcomes.md)."""
    return {"feedback": cols.labels("rating", positions), "feedback_score": cols.take("score", positions)}


def assemble(events: SortedEvents, out: K.KernelOutput) -> Iterator[tuple[str, pa.Table]]:
    """The derived tables (the `derived` schema's, column order included) as Arrow tables, each with its
    name, one at a time: an engine can write one while the next is being built."""
    cols = events.columns
    kind, keys = events.kind, events.keys
    n_ses, n_ctc, n_conv = out.s_first.shape[0], out.c_first.shape[0], out.v_first.shape[0]

    # Brand and customer once per customer: an entity's are gathered from these small arrays in customer
    # order (nearly sequential), not from the events' columns at scattered rows.
    group_brand = events.customers.column("brand").combine_chunks()
    group_customer = events.customers.column("customer_id").combine_chunks()

    def customer_of(first: np.ndarray) -> np.ndarray:
        """The customer group of entities (or events), from their first events."""
        return np.searchsorted(events.group_starts, first, side="right") - 1

    def owner(first: np.ndarray, group: np.ndarray | None = None) -> dict[str, pa.Array]:
        """brand and customer_id of entities (or events), from their first events or their customer groups."""
        taken = pa.array(customer_of(first) if group is None else group)
        return {"brand": group_brand.take(taken), "customer_id": group_customer.take(taken)}

    cnv_keys, ses_keys, ctc_keys = keys[out.v_first], keys[out.s_first], keys[out.c_first]

    # When the customer next started a session or a contact, after a session's end, a contact's creation or a
    # close (decision 176): outcomes a report judges with its own window and as-of time.
    ses_customer, ctc_customer = customer_of(out.s_first), customer_of(out.c_first)
    ses_created, ctc_created = events.ts[out.s_first], events.ts[out.c_first]

    def next_interaction(group: np.ndarray, after: np.ndarray, own_session: np.ndarray | None = None) -> pa.Array:
        """The first session (other than `own_session`) or contact of the customer created at or after `after`."""
        none = np.full(group.shape[0], -1)
        return _times(K.earliest(
            K.first_created(group, after, none if own_session is None else own_session, ses_customer, ses_created),
            K.first_created(group, after, none, ctc_customer, ctc_created)))

    # Conversations (SPEC 3.3, 4.6): channels over every event of their interactions, in event order.
    channel_codes, channel_names = cols.codes("channel")
    first_channel, last_channel, pair_owner, pair_code = K.conversation_channels(
        out.ev_conversation, channel_codes, n_conv, len(channel_names))
    handled = np.where(out.v_sessions == 0, 0, np.where(out.v_contacts == 0, 1, np.where(out.v_linked, 2, 3)))
    yield "conversations", pa.table({
        **owner(out.v_first), "conversation_key": cnv_keys,
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
        "inbox_at_created": cols.labels("inbox", out.v_inbox),
    })
    close_customer = customer_of(out.v_first[out.close_conversation])
    yield "conversation_closes", pa.table({"conversation_key": cnv_keys[out.close_conversation],
                                           "closed_at": _times(out.close_at), "counted": out.close_counted,
                                           "inbox": cols.labels("inbox", out.close_inbox),
                                           "next_interaction_at": next_interaction(close_customer, out.close_at)})
    yield "conversation_reopens", pa.table({"conversation_key": cnv_keys[out.reopen_conversation],
                                            "reopened_at": _times(out.reopen_at)})

    # A session's messages: its customer and AI messages in event order (SPEC 4.2 Message History), by
    # key; their time, speaker and text are the events'.
    msg = np.flatnonzero((out.ev_session >= 0) & ((kind == K.CUSTOMER) | (kind == K.AI)))
    ses_of_msg = out.ev_session[msg]
    if (ses_of_msg[1:] < ses_of_msg[:-1]).any():  # sessions are numbered in event order and never overlap
        order = np.argsort(ses_of_msg, kind="stable")
        msg, ses_of_msg = msg[order], ses_of_msg[order]
    yield "session_messages", pa.table({
        "session_key": ses_keys[ses_of_msg], "seq": K.positions_in_runs(ses_of_msg), "event_key": keys[msg],
    })

    # Sessions (SPEC 3.6).
    handoff = np.where(out.s_end_reason == 0, out.s_handoff, K.NONE)
    takeover = out.s_end_reason == 1
    guide_rows = np.flatnonzero((out.ev_session >= 0) & (kind == K.AI))
    guides = _distinct_strings(cols, "guides", guide_rows, out.ev_session[guide_rows], n_ses)
    yield "sessions", pa.table({
        **owner(out.s_first, ses_customer), "session_key": ses_keys, "conversation_key": cnv_keys[out.s_conversation],
        "created_at": _times(events.ts[out.s_first]),
        "last_activity_at": _times(out.s_last_activity),
        "ended_at": _times(out.s_end),
        "end_reason": _codes(out.s_end_reason, names.SESSION_END_REASONS),
        "channel": cols.coded("channel", out.s_channel),
        "ai_agent": cols.labels("ai_agent", out.s_ai_agent),
        "guides_used": pc.binary_join(guides, ", "),
        "guides": guides,
        "responded": out.s_first_ai != K.NONE,
        "first_response_at": _times(out.s_first_ai),
        "handed_off": (out.s_end_reason == 0) | takeover,
        "handoff_category": cols.labels("category", handoff, pa.array(["team_takeover"]),
                                        np.where(takeover, 0, -1)),
        "handoff_subcategory": cols.labels("subcategory", handoff, pa.array(names.CONTACT_SOURCES),
                                           np.where(takeover, out.s_takeover_source.astype(np.int64), -1)),
        "handoff_reason": cols.take("reason", handoff),
        "transfer_rationale": cols.take("transfer_rationale", handoff),
        "recontacted": out.s_recontacted,
        "recontact_known_at": _times(out.s_recontact_known),
        "inbox": cols.labels("inbox", out.s_inbox),
        **_feedback(cols, out.s_feedback),
        "next_interaction_at": next_interaction(ses_customer, out.s_end, np.arange(n_ses)),
    })

    # Contacts (SPEC 3.2, 4.4).
    linked = out.c_session >= 0
    agent_rows = np.flatnonzero((out.ev_contact >= 0) & (kind == K.AGENT))
    agents = _distinct_strings(cols, "agent", agent_rows, out.ev_contact[agent_rows], n_ctc)
    yield "contacts", pa.table({
        **owner(out.c_first, ctc_customer), "contact_key": ctc_keys, "conversation_key": cnv_keys[out.c_conversation],
        "session_key": pa.array(ses_keys[np.where(linked, out.c_session, 0)] if n_ses else np.zeros(n_ctc, np.int64),
                                mask=~linked),
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
        "inbox": cols.labels("inbox", out.c_inbox),
        **_feedback(cols, out.c_feedback),
        # Another contact's, created at or after this one's (Resolved First Time: decision 176).
        "next_contact_at": _times(K.first_created(ctc_customer, ctc_created, np.arange(n_ctc), ctc_customer,
                                                  ctc_created)),
    })

    yield "anomalies", pa.table({
        **owner(out.anomaly_pos), "event_id": cols.take("event_id", out.anomaly_pos),
        "kind": _codes(out.anomaly_kind.astype(np.int64), names.ANOMALY_KINDS),
        "occurred_at": _times(events.ts[out.anomaly_pos]),
    })
