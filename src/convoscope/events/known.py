"""The ids a long-running writer knows the store holds (issue 30): a sorted array of the 64-bit hashes of every stored
(brand, event_id), so that a small batch of new ids is told apart from the stored ones without scanning them.

At 10M events the duplicate check of a batch of a few hundred events is a scan of the stored ids (0.08-0.1 s), paid by
every batch whatever its size, and a live server stores a batch and a spool round every moment. DuckDB has no index that
a semi join would use, and one on the events table would slow every ingest and grow with the store; this filter costs
8 bytes an event (80 MiB at 10M), is built by one scan when the writer first needs it, and answers "none of these may be
stored" in microseconds. A hash that matches (a stored id, or another one with the same hash) sends the batch down the
exact path: the filter only ever skips work, never decides that an event is new when it is not.

It is right only while it has seen every insert: the server's writer adds the hashes of each batch it stores, and the
server's store gate drops the filter whenever another process may have written (`StoreGate`: the store file changed
while the server had it closed). An erased customer's hashes stay (a false match: the exact path).
"""

from __future__ import annotations

import threading

import duckdb
import numpy as np

MERGE_AT = 1 << 20  # hashes added since the last merge into the sorted array that make it worth sorting again


class KnownIds:
    """The hashes of the stored events' (brand, event_id), loaded on first use: a sorted array, and a set of those
    added since it was last sorted."""

    def __init__(self) -> None:
        self._sorted: np.ndarray | None = None
        self._added: set[int] = set()
        self._lock = threading.Lock()

    def may_hold(self, con: duckdb.DuckDBPyConnection, keys: str) -> bool:
        """Whether any (brand, event_id) of the query `keys` may be stored; their hashes are counted as stored from
        now on (the caller is about to store them; if it does not, they are false matches, which cost only a scan)."""
        hashes = con.execute(f"SELECT hash(brand, event_id) AS h FROM ({keys})").fetchnumpy()["h"].astype(np.uint64)
        with self._lock:
            stored = self._load(con)
            found = _in_sorted(hashes, stored) or not self._added.isdisjoint(hashes.tolist())
            self._added.update(hashes.tolist())
            if len(self._added) >= MERGE_AT:
                added = np.fromiter(self._added, dtype=np.uint64, count=len(self._added))
                self._sorted = np.sort(np.concatenate([self._sorted, added]))
                self._added = set()
        return found

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        """Build the filter now rather than at the first batch (a scan of every stored id: 3-4 s at 10M events, which
        the first round of a live server would wait for)."""
        with self._lock:
            self._load(con)

    def _load(self, con: duckdb.DuckDBPyConnection) -> np.ndarray:
        if self._sorted is None:
            self._sorted = np.sort(con.execute("SELECT hash(brand, event_id) AS h FROM events")
                                   .fetchnumpy()["h"].astype(np.uint64))
        return self._sorted


def _in_sorted(values: np.ndarray, sorted_: np.ndarray) -> bool:
    """Whether any of `values` is in `sorted_` (a binary search each: np.isin sorts both arrays, 12 s at 10M)."""
    if not sorted_.shape[0] or not values.shape[0]:
        return False
    at = np.minimum(np.searchsorted(sorted_, values), sorted_.shape[0] - 1)
    return bool((sorted_[at] == values).any())
