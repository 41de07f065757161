"""A detail report's pages at scale (issue 28 point 3, issue 30 point 2): read in two steps, with what a page's
queries share kept per process (decision 160).

Computing every cell of millions of rows to show a hundred of them is what made a page of the 10M brand take
seconds. A report whose rows each have a key (`Report.keyed`) is therefore paged in two steps: first the keys of
all its rows in the page's order — its own query asked for the key (and the sorted column's cell) only, which
DuckDB reads without computing the other cells — then every cell of the page's rows only, the query narrowed to
their keys (`Params.keys`). The keys give the count too. They are kept per process (`KEYS`), bounded in memory,
under the exact SQL that listed them and the state of the store's files (`store_stamp`): the next page, the count
and the same page again read only their rows, and a store written since is read again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import duckdb
import numpy as np
import pyarrow as pa

from convoscope.config import Config
from convoscope.reports.base import Column, Params, Report
from convoscope.store import Store, store_stamp

KEY = "row_key"  # the name the key column of a keyed query is read under
ORDER_TABLE = "page_report_order"  # the keys in the report's order, registered for a sort's ties

# Kinds whose cells sort as numbers (a rate's cell is the text `0.6899`, a count a whole number).
NUMERIC_KINDS = frozenset({"count", "rate", "percent", "duration", "number"})


@dataclass(frozen=True)
class Order:
    """Rows sorted by one column of the report's output (its index), as a page's table sorts them (issue 28):
    numbers as numbers, other cells as text regardless of case, empty cells last both ways, and rows that tie in
    the report's own order."""

    column: int
    descending: bool = False


def names(columns: Sequence[Column]) -> list[str]:
    """The report's columns renamed by position: its own names need not be unique."""
    return [f"c{i}" for i in range(len(columns))]


def sort_key(columns: Sequence[Column], order: Order) -> str:
    """SQL for the value rows are sorted by, over the positional names (`names`), and its direction."""
    cell = f"nullif(c{order.column}::VARCHAR, '')"
    key = f"TRY_CAST({cell} AS DOUBLE)" if columns[order.column].kind in NUMERIC_KINDS else f"lower({cell})"
    return f"{key} {'DESC' if order.descending else 'ASC'} NULLS LAST"


class KeyCache:
    """Lists of keys by what produced them, the least recently used dropped first past `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lists: OrderedDict[tuple[object, ...], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> np.ndarray | None:
        with self._lock:
            found = self._lists.get(key)
            if found is not None:
                self._lists.move_to_end(key)
            return found

    def put(self, key: tuple[object, ...], keys: np.ndarray) -> None:
        if keys.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._lists.pop(key, None)
            self._bytes -= old.nbytes if old is not None else 0
            self._lists[key] = keys
            self._bytes += keys.nbytes
            while self._bytes > self.max_bytes:
                _, dropped = self._lists.popitem(last=False)
                self._bytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._lists.clear()
            self._bytes = 0


# 256 MiB: the keys of 30 million rows (8 bytes each) — a dozen sorts of the 10M brand's conversations.
KEYS = KeyCache(256 * 2**20)


def _keys_sql(columns: Sequence[Column], query: str, order: Order | None) -> str:
    renamed = f"({query}) AS r({', '.join([*names(columns), KEY])})"
    if order is None:
        return f"SELECT {KEY} FROM {renamed}"
    # Ties keep the report's own order, numbered in Python (a window over a subquery's order is not one DuckDB
    # promises to keep).
    return f"SELECT r.{KEY} FROM {renamed} JOIN {ORDER_TABLE} o USING ({KEY}) ORDER BY {sort_key(columns, order)}, " \
           "o.report_order"


def _listed(store: Store, cursor: duckdb.DuckDBPyConnection, sql: str) -> np.ndarray:
    stamp = store_stamp(store)
    found = KEYS.get((stamp, sql)) if stamp is not None else None
    if found is None:
        found = np.asarray(cursor.execute(sql).fetchnumpy()[KEY], dtype=np.int64)
        if stamp is not None and stamp == store_stamp(store):  # nothing was written while it ran
            KEYS.put((stamp, sql), found)
    return found


def ordered_keys(store: Store, cursor: duckdb.DuckDBPyConnection, config: Config, report: Report, params: Params,
                 order: Order | None = None) -> np.ndarray:
    """The keys of every row of `report`, in its order or, with `order`, sorted by a column."""
    columns = report.output_columns(params)
    query = report.query(report, replace(params, keyed=True, keys=None, sorted_by=None), config)
    keys = _listed(store, cursor, _keys_sql(columns, query, None))
    if order is None:
        return keys
    query = report.query(report, replace(params, keyed=True, keys=None, sorted_by=order.column), config)
    cursor.register(ORDER_TABLE, pa.table({KEY: keys, "report_order": np.arange(len(keys), dtype=np.int64)}))
    try:
        return _listed(store, cursor, _keys_sql(columns, query, order))
    finally:
        cursor.unregister(ORDER_TABLE)


def count(store: Store, cursor: duckdb.DuckDBPyConnection, config: Config, report: Report, params: Params) -> int:
    return len(ordered_keys(store, cursor, config, report, params))


def page_rows(store: Store, cursor: duckdb.DuckDBPyConnection, config: Config, report: Report, params: Params, *,
              limit: int, offset: int = 0, order: Order | None = None) -> list[tuple[str | None, ...]]:
    """`limit` rows from the `offset`th as CSV cells (None for an empty cell): the keys of the page, then the
    cells of those rows only."""
    chosen = [int(k) for k in ordered_keys(store, cursor, config, report, params, order)[offset:offset + limit]]
    if not chosen:
        return []
    columns = report.output_columns(params)
    query = report.query(report, replace(params, keyed=True, keys=tuple(chosen)), config)
    cells = ", ".join(f"nullif({name}::VARCHAR, '')" for name in names(columns))
    found = cursor.execute(f"SELECT {KEY}, {cells} FROM ({query}) AS r({', '.join([*names(columns), KEY])})")
    by_key = {row[0]: row[1:] for row in found.fetchall()}
    return [by_key[k] for k in chosen if k in by_key]
