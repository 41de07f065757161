"""The embedded engine: derive from the DuckDB store into the DuckDB store.

What differs from another engine is only how events are read, sorted and batched and how results
are written: DuckDB sorts each partition of customers by SPEC 2.4's order, the shared kernel runs
over the sorted arrays, and the assembled tables are inserted in the same transaction that removes
the customers' old rows and their `pending` marks. Customers are split into hash partitions so that
memory stays bounded however large the store grows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from convoscope.config import Config
from convoscope.derive import assemble as A
from convoscope.derive.kernel import run_kernel
from convoscope.store import DERIVED_TABLES, Store

# Events per partition: large enough to amortise a scan, small enough to bound memory (~2 GiB).
PARTITION_EVENTS = 12_000_000


@dataclass
class DeriveResult:
    customers: int
    events: int
    sessions: int
    contacts: int
    conversations: int
    full: bool


def _to_ai_sql(config: Config, brands: list[str]) -> str:
    """SQL for "this event's channel is one of its brand's ai_channels" (SPEC 3.4)."""

    def expr(channels: tuple[str, ...]) -> str:
        if "*" in channels:
            return "true"
        return "coalesce(channel IN (" + ", ".join(_quote(c) for c in channels) + "), false)"

    cases = [
        f"WHEN {_quote(b)} THEN {expr(config.for_brand(b).ai_channels)}"
        for b in brands
        if config.for_brand(b).ai_channels != config.defaults.ai_channels
    ]
    default = expr(config.defaults.ai_channels)
    return f"CASE brand {' '.join(cases)} ELSE {default} END" if cases else default


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def stale_brands(store: Store, config: Config) -> list[str]:
    """Brands whose derived tables were built with other derivation settings (SPEC 5)."""
    recorded = dict(store.con.execute("SELECT brand, fingerprint FROM derived_settings").fetchall())
    return [b for b in store.brands() if b in recorded and recorded[b] != config.for_brand(b).derivation_fingerprint()]


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
    and every customer of a brand whose derivation settings changed."""
    con = store.con
    brands = store.brands()
    stale = [] if full else stale_brands(store, config)
    with store.transaction():
        if full:
            for table in DERIVED_TABLES:
                con.execute(f"DELETE FROM {table}")
            scope_filter = ""
        else:
            con.execute("CREATE OR REPLACE TEMP TABLE _scope AS SELECT DISTINCT brand, customer_id FROM pending")
            if stale:
                con.execute(
                    "INSERT INTO _scope SELECT DISTINCT brand, customer_id FROM events WHERE brand IN "
                    "(SELECT unnest(?::VARCHAR[])) EXCEPT SELECT brand, customer_id FROM _scope",
                    [stale],
                )
            for table in DERIVED_TABLES:
                con.execute(f"DELETE FROM {table} t USING _scope s WHERE t.brand = s.brand AND t.customer_id = s.customer_id")
            scope_filter = "SEMI JOIN _scope USING (brand, customer_id)"

        total_row = con.execute(f"SELECT count(*), count(DISTINCT (brand, customer_id)) FROM events {scope_filter}").fetchall()[0]
        total, customers = (int(total_row[0]), int(total_row[1])) if total_row else (0, 0)
        parts = max(1, math.ceil(total / PARTITION_EVENTS))
        to_ai = _to_ai_sql(config, brands)
        counts = {"sessions": 0, "contacts": 0, "conversations": 0}
        done = 0
        for part in range(parts):
            part_filter = f"WHERE hash(brand, customer_id) % {parts} = {part}" if parts > 1 else ""
            events = con.sql(f"""
                SELECT brand, customer_id, event_id, occurred_at, enum_code(type)::TINYINT AS kind,
                       coalesce(enum_code(route) + 1, 0)::TINYINT AS route_code, {to_ai} AS to_ai,
                       channel, ai_agent, guides, category, subcategory, reason, transfer_rationale, agent
                FROM (SELECT * FROM events {scope_filter}) {part_filter}
                ORDER BY brand, customer_id, occurred_at, type, event_id
            """).to_arrow_table()
            if events.num_rows == 0:
                continue
            out = run_kernel(A.kernel_input(events, config.for_brand))
            for table, derived in A.assemble(events, out, con).items():
                con.register("_derived", derived)
                con.execute(f"INSERT INTO {table} SELECT * FROM _derived")
                con.unregister("_derived")
            counts["sessions"] += out.s_first.shape[0]
            counts["contacts"] += out.c_first.shape[0]
            counts["conversations"] += out.v_first.shape[0]
            done += events.num_rows
            del events, out
            if progress:
                progress(done, total)

        if full:
            con.execute("DELETE FROM pending")
        else:
            con.execute("DELETE FROM pending p USING _scope s WHERE p.brand = s.brand AND p.customer_id = s.customer_id")
        con.execute("DELETE FROM derived_settings")
        if brands:
            con.executemany(
                "INSERT INTO derived_settings VALUES (?, ?)",
                [(b, config.for_brand(b).derivation_fingerprint()) for b in brands],
            )
    return DeriveResult(customers=customers, events=total, full=full, **counts)
