"""The embedded engine: derive from the DuckDB store into the DuckDB store.

What differs from another engine is only how events are read, sorted and batched and how results
are written: DuckDB sorts each partition of customers by SPEC 2.4's order, the shared kernel runs
over the sorted arrays, and the assembled tables are inserted in the same transaction that removes
the customers' old rows and their `pending` marks. Customers are split into hash partitions so that
memory stays bounded however large the store grows.
"""

from __future__ import annotations

import collections
import contextlib
import math
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from convoscope.config import BrandSettings, Config
from convoscope.derive import assemble as A
from convoscope.derive.kernel import run_kernel
from convoscope.store import DERIVED_TABLES, Store, delete_derived, stored

# Events per partition: large enough to amortise a scan, small enough to bound memory (~2 GiB).
PARTITION_EVENTS = 12_000_000
# Up to this many pending customers (a few hundred thousand events at most, as after an ingest of a
# batch) are derived in one partition without counting their events first.
FEW_CUSTOMERS = 20_000
# A partition's sorted events are derived and assembled in slices of whole customers of about this many
# events, and at most INSERTS_AHEAD assembled tables wait for the writer: so the kernel's and assembly's
# memory is a slice's, used again by the next slice rather than new memory for the whole partition.
# A table's slices are inserted together once they hold INSERT_ROWS rows (`_gathered`).
SLICE_EVENTS = 2_000_000
INSERTS_AHEAD = 3
INSERT_ROWS = 1_000_000


@dataclass
class DeriveResult:
    customers: int
    events: int
    sessions: int
    contacts: int
    conversations: int
    full: bool


def _few_sorted_events(con: duckdb.DuckDBPyConnection, where: str) -> A.SortedEvents | None:
    """`_sorted_events` for the few customers of an incremental derive, whose events are scattered
    over the whole table: their row ids are found by scanning the two key columns only, and the other
    columns are read for those rows alone (DuckDB pushes the row ids into the scan). DuckDB sorts the
    few rows by the whole of SPEC 2.4's order (event_id compared byte by byte: code point order)."""
    table = con.sql(f"""
        SELECT hash(brand, customer_id) AS h, hash(customer_id, brand) AS h2, epoch_us(occurred_at) AS ts,
               enum_code(type)::TINYINT AS kind, coalesce(enum_code(route) + 1, 0)::TINYINT AS route_code,
               event_key, {', '.join(A.STRING_COLUMNS)}
        FROM events WHERE rowid IN (SELECT events.rowid FROM events {where})
        ORDER BY h, h2, ts, kind, event_id
    """).to_arrow_table()
    if table.num_rows == 0:
        return None
    h, h2 = table.column("h").to_numpy(), table.column("h2").to_numpy()
    starts = np.concatenate(([0], np.flatnonzero((h[1:] != h[:-1]) | (h2[1:] != h2[:-1])) + 1, [table.num_rows]))
    return A.SortedEvents(
        group_starts=starts.astype(np.int64),
        ts=table.column("ts").to_numpy(), kind=table.column("kind").to_numpy(),
        route=table.column("route_code").to_numpy(),
        has_channel=pc.is_valid(table.column("channel")).to_numpy(zero_copy_only=False),
        has_ai_agent=pc.is_valid(table.column("ai_agent")).to_numpy(zero_copy_only=False),
        has_inbox=pc.is_valid(table.column("inbox")).to_numpy(zero_copy_only=False),
        keys=table.column("event_key").to_numpy(),
        customers=table.select(["brand", "customer_id"]).take(starts[:-1]),
        columns=A.EventColumns(table.select(A.STRING_COLUMNS)),
    )


# The string columns a full derive reads, each group only for the rows that carry it (rows of other
# types have none: SPEC 2.2). Channels come from the sort as codes; event_id is read for the few
# positions that need it (ties, anomalies).
_SPARSE_READS = (
    ("ai_agent, guides", "ai_agent IS NOT NULL OR guides IS NOT NULL"),
    ("category, subcategory, reason, transfer_rationale", "type = 'handoff'"),
    ("agent", "agent IS NOT NULL"),
    ("inbox", "inbox IS NOT NULL"),  # any type may carry one
    ("rating, score", "type = 'feedback'"),
)


def _customer_hash(alias: str = "") -> str:
    """SQL for the 64-bit hash that customers are sorted by; where two customers share it, a second hash
    tells them apart (a test weakens this one to make them share it)."""
    return f"hash({alias}brand, {alias}customer_id)"


def _strings(con: duckdb.DuckDBPyConnection, where: str) -> tuple[pa.Table, tuple[tuple[np.ndarray, pa.Table], ...]]:
    """The events' strings that derived tables show: each customer's brand and customer_id, in the
    order the sort puts the customers in (by both hashes), and the sparse groups of `_SPARSE_READS`,
    each with its row ids."""
    customers = con.sql(f"""
        SELECT brand, customer_id, {_customer_hash()} AS h, hash(customer_id, brand) AS h2
        FROM events {where} GROUP BY brand, customer_id ORDER BY h, h2
    """).to_arrow_table()
    sparse = []
    for columns, carried in _SPARSE_READS:
        held = con.sql(f"SELECT r, {columns} FROM (SELECT events.rowid AS r, * FROM events {where}) "
                       f"WHERE {carried}").to_arrow_table()
        sparse.append((held.column("r").to_numpy(), held.drop_columns(["r"])))
    return customers, tuple(sparse)


def _sorted_events(con: duckdb.DuckDBPyConnection, where: str, *, alone: bool = True) -> A.SortedEvents | None:
    """The events selected by `where`, in SPEC 2.4's order, as numbers plus their string columns.

    DuckDB sorts numbers only: customers by a 64-bit hash of (brand, customer_id), then time and type
    rank, the kernel's other numbers carried along; the rare ties on all of those are put in event_id
    order here. A second, differently seeded hash tells customers apart (a 128-bit identity): should
    two customers share the first hash, which the list of customers shows, the sort is redone with
    both. The strings that derived tables show are read for the rows that carry them and found by row
    id; when `where` reads no table of this connection's own (`alone`), on a cursor of their own while
    DuckDB sorts."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="convoscope-read") as reader:
        if alone:
            def read_strings() -> tuple[pa.Table, tuple[tuple[np.ndarray, pa.Table], ...]]:
                with con.cursor() as cursor:
                    return _strings(cursor, where)

            strings = reader.submit(read_strings)
        channels = pa.table({"channel": [r[0] for r in con.execute(
            f"SELECT DISTINCT channel FROM events {where} ORDER BY channel").fetchall() if r[0] is not None]})
        channels = channels.append_column("code", pa.array(np.arange(channels.num_rows, dtype=np.int32)))
        con.register("_channel_codes", channels)

        def sort(keys: str) -> dict[str, np.ndarray]:
            return con.sql(f"""
                SELECT e.r, {_customer_hash("e.")} AS h, {"hash(e.customer_id, e.brand) AS h2, " if "h2" in keys else ""}
                       epoch_us(e.occurred_at) AS ts, enum_code(e.type)::TINYINT AS kind,
                       coalesce(enum_code(e.route) + 1, 0)::TINYINT AS route, e.event_key AS key,
                       coalesce(c.code, -1) AS channel, e.ai_agent IS NOT NULL AS has_ai_agent,
                       e.inbox IS NOT NULL AS has_inbox
                FROM (SELECT events.rowid AS r, * FROM events {where}) e
                LEFT JOIN _channel_codes c ON c.channel = e.channel
                ORDER BY {keys}
            """).fetchnumpy()

        try:
            col = sort("h, ts, kind")
            customers, sparse = strings.result() if alone else _strings(con, where)
            h = customers.column("h").to_numpy()
            shared = bool((h[1:] == h[:-1]).any())
            if shared:
                col = sort("h, h2, ts, kind")  # two customers share the first hash: keep them apart
        finally:
            con.unregister("_channel_codes")
    n = col["r"].shape[0]
    if n == 0:
        return None

    def read_rows(names: list[str], rowids: np.ndarray) -> pa.Table:
        """Columns of the events with these row ids, in their order. Read from the committed events on a
        cursor of its own: the writer thread may be using the connection."""
        with con.cursor() as cursor:
            cursor.register("_wanted", pa.table({"r": rowids, "i": np.arange(rowids.shape[0])}))
            return cursor.sql(f"SELECT {', '.join(f'e.{n}' for n in names)} FROM events e "
                              "JOIN _wanted w ON e.rowid = w.r ORDER BY w.i").to_arrow_table()

    same_customer = col["h"][1:] == col["h"][:-1]
    if shared:
        same_customer &= col["h2"][1:] == col["h2"][:-1]
    tied = same_customer & (col["ts"][1:] == col["ts"][:-1]) & (col["kind"][1:] == col["kind"][:-1])
    if tied.any():  # reordering within a run keeps customers where they are
        member = np.zeros(n, dtype=bool)
        member[1:] |= tied
        member[:-1] |= tied
        positions = np.flatnonzero(member)
        run = np.cumsum(np.concatenate(([True], ~tied)))[positions]
        event_ids = read_rows(["event_id"], col["r"][positions]).column("event_id")
        within = pa.table({"run": run, "event_id": event_ids, "i": np.arange(positions.shape[0])})
        order = np.arange(n)  # event_id by code point: Arrow compares UTF-8 bytes, which orders code points
        order[positions] = positions[within.sort_by([("run", "ascending"), ("event_id", "ascending")])
                                     .column("i").to_numpy()]
        col = {name: values[order] for name, values in col.items()}
    starts = np.concatenate(([0], np.flatnonzero(~same_customer) + 1, [n])).astype(np.int64)
    first = starts[:-1]
    if not (np.array_equal(h, col["h"][first])
            and (not shared or np.array_equal(customers.column("h2").to_numpy(), col["h2"][first]))):
        raise AssertionError("the customers read do not match the sorted events")
    channel = col["channel"]
    return A.SortedEvents(
        group_starts=starts, ts=col["ts"], kind=col["kind"], route=col["route"], has_channel=channel >= 0,
        has_ai_agent=col["has_ai_agent"], has_inbox=col["has_inbox"], keys=col["key"],
        customers=customers.select(["brand", "customer_id"]),
        columns=A.EventColumns(rowids=col["r"], sparse=sparse,
                               fetch=lambda name, rowids: read_rows([name], rowids).column(name).combine_chunks(),
                               codes={"channel": (channel, channels.column("channel").combine_chunks())}),
    )


def _insert_while_assembling(con: duckdb.DuckDBPyConnection, tables: Iterator[tuple[str, pa.Table]]) -> None:
    """Insert each derived table on a writer thread while the next one is assembled: DuckDB writing
    and Arrow gathering both release the GIL, so the two overlap. The writer is the only user of the
    connection until every insert has finished, or, when assembling fails, until the running one has."""
    def insert(table: str, derived: pa.Table) -> None:
        con.register("_derived", derived)
        con.execute(f"INSERT INTO {stored(table)} SELECT * FROM _derived")
        con.unregister("_derived")

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="convoscope-insert") as writer:
        inserts: collections.deque[Future[None]] = collections.deque()
        try:
            for table, derived in _gathered(tables):
                while len(inserts) >= INSERTS_AHEAD:
                    inserts.popleft().result()  # the first insert that failed raises here
                inserts.append(writer.submit(insert, table, derived))
                del derived
        except BaseException:
            writer.shutdown(wait=True, cancel_futures=True)  # the transaction is rolled back next
            raise
        for done in inserts:
            done.result()


def _gathered(tables: Iterator[tuple[str, pa.Table]]) -> Iterator[tuple[str, pa.Table]]:
    """The slices' tables, those of one name joined until they hold INSERT_ROWS rows: DuckDB writes
    an insert's full row groups as it goes, but keeps a small insert's rows to write at commit."""
    held: dict[str, list[pa.Table]] = {}
    for name, derived in tables:
        parts = held.setdefault(name, [])
        parts.append(derived)
        if sum(part.num_rows for part in parts) >= INSERT_ROWS:
            yield name, pa.concat_tables(parts)
            parts.clear()
    for name, parts in held.items():
        if parts:
            yield name, pa.concat_tables(parts)


def sorted_customers(store: Store, brands: str, within: str = "true") -> A.SortedEvents | None:
    """The events of the customers of the brands that `brands` selects (SQL over `events`) with an event that
    `within` selects, each with all their events, sorted as a derivation reads them: what `derive_sorted` derives, as
    often as asked, each time with other settings (issue 27). Sorting does not depend on the settings, so it is done
    once however many are compared. When every event of the brands is within, the brands are read as they are, the
    strings on a cursor of their own while DuckDB sorts; else the customers are found once, into a temporary table of
    this connection, which the sort reads several times (a DISTINCT over the 10M brand each would cost 7 s)."""
    con = store.con
    outside = con.execute(f"SELECT count(*) FILTER (WHERE NOT ({within})) FROM events WHERE {brands}").fetchall()[0][0]
    if not outside:
        return _sorted_events(con, f"WHERE {brands}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _whatif_scope AS SELECT DISTINCT brand, customer_id FROM events "
                f"WHERE {brands} AND {within}")
    try:
        return _sorted_events(con, "SEMI JOIN _whatif_scope USING (brand, customer_id)", alone=False)
    finally:
        con.execute("DROP TABLE IF EXISTS _whatif_scope")


def derive_sorted(events: A.SortedEvents, settings_for: Callable[[str], BrandSettings], target: Store,
                  tables: Collection[str] = DERIVED_TABLES) -> None:
    """Derive `events` with `settings_for` into `target` (a scratch store), whose derived tables are emptied
    first; only `tables` are written (a what-if's figures read neither the messages nor the anomalies)."""
    for table in DERIVED_TABLES:
        target.con.execute(f"TRUNCATE {stored(table)}")

    def derived() -> Iterator[tuple[str, pa.Table]]:
        for piece in events.slices(SLICE_EVENTS):
            out = run_kernel(A.kernel_input(piece, settings_for))
            yield from ((name, table) for name, table in A.assemble(piece, out) if name in tables)

    _insert_while_assembling(target.con, derived())


def stale_brands(store: Store, config: Config, brands: list[str] | None = None) -> list[str]:
    """Brands (of `brands`, else every brand derived before) whose derived tables were built with other derivation
    settings (SPEC 5). Not `store.brands()` by default: listing the store's brands reads every event's brand (26 ms at
    10M events), and every page asks this."""
    recorded = dict(store.con.execute("SELECT brand, fingerprint FROM derived_settings ORDER BY brand").fetchall())
    return [b for b in (recorded if brands is None else brands)
            if b in recorded and recorded[b] != config.for_brand(b).derivation_fingerprint()]


def needs_derive(store: Store, config: Config) -> bool:
    return store.count("pending") > 0 or bool(stale_brands(store, config))


def derive(
    store: Store,
    config: Config,
    *,
    full: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DeriveResult:
    """Bring the derived tables up to date: every customer when `full`, else the pending customers
    and every customer of a brand whose derivation settings changed.

    A first transaction marks what is to be derived as `pending` (and records the settings), then each
    hash partition of the pending customers is derived and un-marked in a transaction of its own. So
    memory holds one partition, and a crash at any point leaves every customer either derived with
    the recorded settings or pending. A full rebuild that fits in one partition is one transaction
    instead, with nothing to mark: a crash leaves the tables as they were. The events are read as
    committed (partly on cursors of their own): call it after the transaction that stored them."""
    one_go = full and store.count("events") <= PARTITION_EVENTS
    with store.transaction() if one_go else contextlib.nullcontext():
        return _derive(store, config, full=full, step=contextlib.nullcontext if one_go else store.transaction,
                       progress=progress)


def _derive(store: Store, config: Config, *, full: bool, step: Callable[[], contextlib.AbstractContextManager[object]],
            progress: Callable[[int, int], None] | None) -> DeriveResult:
    """`derive`, each of whose transactions is a `step`."""
    con = store.con
    stale = [] if full else stale_brands(store, config)
    # The settings each brand was derived with: every brand's after a rebuild, else only a brand derived for the
    # first time is new (listing the store's brands reads every event's: 26 ms a derive at 10M, and a live server
    # derives every moment).
    brands = store.brands() if full or stale else [b for (b,) in con.execute(
        "SELECT DISTINCT brand FROM pending EXCEPT SELECT brand FROM derived_settings ORDER BY 1").fetchall()]
    with step():
        if full:
            for table in DERIVED_TABLES:
                con.execute(f"DELETE FROM {stored(table)}")
            con.execute("DELETE FROM pending")
            if step is not contextlib.nullcontext:  # partitions commit one by one: mark everyone first
                con.execute("INSERT INTO pending SELECT DISTINCT brand, customer_id FROM events")
        elif stale:
            con.execute(
                "INSERT INTO pending SELECT DISTINCT brand, customer_id FROM events WHERE brand IN "
                "(SELECT unnest(?::VARCHAR[])) EXCEPT SELECT brand, customer_id FROM pending",
                [stale],
            )
        if full or stale:
            con.execute("DELETE FROM derived_settings")
        if brands:
            con.executemany(
                "INSERT INTO derived_settings VALUES (?, ?)",
                [(b, config.for_brand(b).derivation_fingerprint()) for b in brands],
            )

    pending = store.count("pending")
    few = not full and pending <= FEW_CUSTOMERS  # one partition, its events read by row id
    if full:
        total = store.count("events")
    else:
        total = 0 if few else int(con.execute("SELECT count(*) FROM events SEMI JOIN pending USING (brand, customer_id)")
                                  .fetchall()[0][0])
    parts = max(1, math.ceil(total / PARTITION_EVENTS))
    customers, done = 0, 0
    counts = {"sessions": 0, "contacts": 0, "conversations": 0}
    for part in range(parts):
        in_part = f"WHERE hash(brand, customer_id) % {parts} = {part}" if parts > 1 else ""
        with step():
            if full:  # every customer is in scope and no derived row is left: no need to look them up
                scope = in_part
            else:  # a temporary table, which only this connection sees
                con.execute(f"CREATE OR REPLACE TEMP TABLE _scope AS SELECT brand, customer_id FROM pending {in_part}")
                scope = "SEMI JOIN _scope USING (brand, customer_id)"
            events = _few_sorted_events(con, scope) if few else _sorted_events(con, scope, alone=full)
            if not full:  # their old rows: a few customers' by the keys of their events
                delete_derived(con, "SELECT brand, customer_id FROM _scope",
                               event_keys=events.keys if few and events is not None else None)
            if events is not None:
                def derived(events: A.SortedEvents = events) -> Iterator[tuple[str, pa.Table]]:
                    for piece in events.slices(SLICE_EVENTS):
                        out = run_kernel(A.kernel_input(piece, config.for_brand))
                        yield from A.assemble(piece, out)
                        counts["sessions"] += out.s_first.shape[0]
                        counts["contacts"] += out.c_first.shape[0]
                        counts["conversations"] += out.v_first.shape[0]

                _insert_while_assembling(con, derived())
                customers += events.group_starts.shape[0] - 1
                done += events.ts.shape[0]
                total = max(total, done)
                del events
            con.execute(f"DELETE FROM pending {in_part}")
        if progress:
            progress(done, total)
    return DeriveResult(customers=customers, events=total, full=full, **counts)
