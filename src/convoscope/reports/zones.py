"""A report's zone as offsets from UTC over a window of instants, read from DuckDB's own ICU (decision 175).

ICU's `timezone(zone, ts)` costs about 0.2 µs a row: at 10M events, 250 ms of the 350 ms of a 30-day sessions
summary went to the range filter and the period labels. Over a window (the report's range with two days either
side), a zone has a few offsets at most, each over a span of instants: adding the span's offset is the same wall
clock ICU gives, at the cost of a comparison. The spans are ICU's own (found by asking it hour by hour, then second
by second where the offset changed), so a page shows the same labels whichever way a row was converted; an instant
outside the window is still converted by ICU.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from functools import lru_cache

import duckdb

from convoscope.store import sql_string

FIXED_UTC = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Etc/Zulu", "Universal", "Zulu", "UCT", "Etc/UCT"})
# The spans of the last ten years of a longer window: sampled hour by hour, 88k rows, once per zone and window.
MAX_WINDOW = timedelta(days=3660)
_icu = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    """A connection of this thread's own, in memory, whose naive timestamps are UTC (as the store's)."""
    con = getattr(_icu, "con", None)
    if con is None:
        con = _icu.con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
    return con


@lru_cache(maxsize=256)
def spans(zone: str, start: datetime, stop: datetime) -> tuple[tuple[datetime, datetime, int], ...]:
    """The zone's offsets over the naive UTC instants [start, stop), as (from, until, offset in microseconds),
    in order and covering the window. `start` is on a whole hour. A zone whose offset changed twice within one
    hour would show one change; tzdata has none."""
    con = _connection()
    hourly = con.execute("""
        SELECT t, epoch_us(timezone($zone, t::TIMESTAMPTZ)) - epoch_us(t)
        FROM range($start::TIMESTAMP, $stop::TIMESTAMP + INTERVAL 1 SECOND, INTERVAL 1 HOUR) AS g(t) ORDER BY t
    """, {"zone": zone, "start": start, "stop": stop}).fetchall()
    changes = []  # (the first instant of an offset, the offset)
    for (hour, before), (_, after) in zip(hourly, hourly[1:], strict=False):
        if before != after:  # the first second of the later offset within this hour
            found = con.execute("""
                SELECT min(t) FROM range($hour::TIMESTAMP, $hour::TIMESTAMP + INTERVAL 1 HOUR + INTERVAL 1 SECOND,
                                         INTERVAL 1 SECOND) AS g(t)
                WHERE epoch_us(timezone($zone, t::TIMESTAMPTZ)) - epoch_us(t) = $after
            """, {"zone": zone, "hour": hour, "after": after}).fetchone()
            first = found[0] if found else None
            if first is not None and first < stop:
                changes.append((first, after))
    bounds = [start, *(first for first, _ in changes), stop]
    offsets = [hourly[0][1], *(after for _, after in changes)]
    return tuple((a, b, offset) for a, b, offset in zip(bounds, bounds[1:], offsets, strict=False) if a < b)


def window(first: datetime, last: datetime) -> tuple[datetime, datetime]:
    """The naive UTC window around the instants expected within [first, last]: two days either side (an offset
    is under a day), on whole days so that requests share it."""
    start = first.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    stop = last.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=3)
    return start, stop


def literal(value: datetime) -> str:
    return f"TIMESTAMP '{value.isoformat(sep=' ')}'"


def wall_clock(ts: str, zone: str, within: tuple[datetime, datetime]) -> str:
    """SQL: the wall-clock time in `zone` of the naive UTC timestamp `ts`, as ICU's `timezone` gives it; by the
    offsets of the window `within`, by ICU outside it."""
    if zone in FIXED_UTC:
        return f"({ts})"
    icu = f"timezone({sql_string(zone)}, {ts}::TIMESTAMPTZ)"
    branches = " ".join(
        f"WHEN {ts} >= {literal(a)} AND {ts} < {literal(b)} THEN {ts}"
        + (f" + to_microseconds({offset})" if offset else "")
        for a, b, offset in spans(zone, max(within[0], within[1] - MAX_WINDOW), within[1]))
    return f"(CASE {branches} ELSE {icu} END)"
