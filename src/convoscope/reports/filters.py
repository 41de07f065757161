"""What a report's form can suggest from the store: the values a free-text filter can match (SPEC 4 `where`), read
from the derived tables (a typo otherwise gives "0 rows"), and the instants the brands' events span (a range
beside them otherwise gives "0 rows" too: issue 28)."""

from __future__ import annotations

from datetime import UTC, datetime

from convoscope.reports.base import Params, in_brands
from convoscope.store import Store, while_unchanged

SUGGESTED = {
    "channel": "SELECT channel FROM sessions WHERE {brands} UNION SELECT channel FROM contacts WHERE {brands}",
    "ai_agent": "SELECT ai_agent FROM sessions WHERE {brands}",
    "guide": "SELECT unnest(guides) FROM sessions WHERE {brands}",
    "handoff_category": "SELECT handoff_category FROM sessions WHERE {brands}",
    "agent": "SELECT unnest(agent_names) FROM contacts WHERE {brands}",
    "inbox": "SELECT inbox FROM sessions WHERE {brands} UNION SELECT inbox FROM contacts WHERE {brands}",
}
SUGGESTED_AT_MOST = 500


def suggested_values(store: Store, keys: list[str], brands: list[str]) -> dict[str, list[str]]:
    """Per filter key of `keys` that has suggestions, the distinct values `brands` hold, in order, at most
    SUGGESTED_AT_MOST of them; kept until the store's next commit (`store.while_unchanged`)."""
    found = while_unchanged(store, ("suggested", tuple(keys), tuple(brands)), lambda: _suggested(store, keys, brands))
    return {key: list(values) for key, values in found.items()}  # the kept answer stays as it was read


def _suggested(store: Store, keys: list[str], brands: list[str]) -> dict[str, list[str]]:
    where = in_brands(Params(brands=brands), "brand")
    found = {}
    cursor = store.con.cursor()  # requests share the store's connection
    try:
        for key in keys:
            if key in SUGGESTED:
                rows = cursor.execute(
                    f"SELECT DISTINCT v FROM ({SUGGESTED[key].format(brands=where)}) t(v) WHERE v IS NOT NULL "
                    f"ORDER BY v LIMIT {SUGGESTED_AT_MOST}").fetchall()
                found[key] = [value for (value,) in rows]
    finally:
        cursor.close()
    return found


def event_span(store: Store, brands: list[str]) -> tuple[datetime, datetime] | None:
    """The first and last `occurred_at` (UTC) of the events of `brands`; None when they have none. One aggregate
    over two columns of the events, kept until the store's next commit (`store.while_unchanged`), as pages'
    `Store.brands`."""
    return while_unchanged(store, ("event_span", tuple(brands)), lambda: _span(store, brands))


def _span(store: Store, brands: list[str]) -> tuple[datetime, datetime] | None:
    cursor = store.con.cursor()
    try:
        first, last = cursor.execute(
            f"SELECT min(occurred_at), max(occurred_at) FROM events WHERE {in_brands(Params(brands=brands))}").fetchone() \
            or (None, None)
    finally:
        cursor.close()
    if first is None or last is None:
        return None
    return first.replace(tzinfo=UTC), last.replace(tzinfo=UTC)
