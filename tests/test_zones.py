"""A report's wall clock by offsets over its window (reports/zones.py, decision 175) is ICU's, instant for instant.

Zones chosen for what could go wrong: clocks going forward and back (New York, London), back in winter (Dublin's
negative summer time), by half an hour (Lord Howe), at midnight (Havana, Santiago), twice a year around Ramadan
(Casablanca), with a 45-minute offset (Chatham), never (Kolkata), and a fixed zone.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb
import pytest

from convoscope.reports import zones
from convoscope.reports.base import Params, in_range

ZONES = ("America/New_York", "Europe/London", "Europe/Dublin", "Australia/Lord_Howe", "America/Havana",
         "America/Santiago", "Africa/Casablanca", "Pacific/Chatham", "Asia/Kolkata", "Etc/GMT+5", "UTC")
WINDOW = zones.window(datetime(2025, 1, 1), datetime(2026, 12, 31))


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def instants(con: duckdb.DuckDBPyConnection, zone: str) -> None:
    """Every 7 minutes over the window and a month either side (ICU's own path there), and each change of offset
    a microsecond and a second either side."""
    start, stop = WINDOW
    changes = [a for a, _, _ in zones.spans(zone, start, stop)[1:]]
    near = [c + timedelta(microseconds=d) for c in changes for d in (-1_000_000, -1, 0, 1, 1_000_000)]
    con.execute("CREATE OR REPLACE TABLE t AS SELECT t FROM range(?::TIMESTAMP, ?::TIMESTAMP, INTERVAL 7 MINUTE) g(t)",
                [start - timedelta(days=30), stop + timedelta(days=30)])
    for moment in [*near, None]:
        con.execute("INSERT INTO t VALUES (?)", [moment])


@pytest.mark.parametrize("zone", ZONES)
def test_the_wall_clock_is_icus_at_every_instant(con: duckdb.DuckDBPyConnection, zone: str) -> None:
    instants(con, zone)
    ours = zones.wall_clock("t", zone, WINDOW)
    differing = con.execute(f"""
        SELECT count(*) FILTER (WHERE ({ours}) IS DISTINCT FROM timezone('{zone}', t::TIMESTAMPTZ)), count(*) FROM t
    """).fetchone()
    assert differing[0] == 0 and differing[1] > 160_000


def test_a_zone_that_changes_has_its_changes_found_to_the_second() -> None:
    # New York in 2026: clocks forward on 8 March at 07:00 UTC, back on 1 November at 06:00 UTC.
    spans = zones.spans("America/New_York", datetime(2026, 1, 1), datetime(2027, 1, 1))
    assert [(a, offset // 3_600_000_000) for a, _, offset in spans] == [
        (datetime(2026, 1, 1), -5), (datetime(2026, 3, 8, 7), -4), (datetime(2026, 11, 1, 6), -5)]
    assert spans[-1][1] == datetime(2027, 1, 1)


@pytest.mark.parametrize("zone", ("America/New_York", "America/Havana", "Pacific/Chatham"))
def test_a_range_keeps_the_same_rows_as_icus_local_dates(con: duckdb.DuckDBPyConnection, zone: str) -> None:
    """The window's instants first, then the local dates: exactly the rows whose local date ICU puts in range."""
    instants(con, zone)
    params = Params(date_from=date(2026, 3, 8), date_to=date(2026, 11, 1), tz=zone)
    icu = f"timezone('{zone}', t::TIMESTAMPTZ)::DATE"
    kept, expected = con.execute(f"""
        SELECT count(*) FILTER (WHERE {in_range('t', params)}),
               count(*) FILTER (WHERE {icu} BETWEEN DATE '2026-03-08' AND DATE '2026-11-01') FROM t
    """).fetchone()
    assert kept == expected > 0


def test_a_range_longer_than_the_spans_keeps_every_row_in_it(con: duckdb.DuckDBPyConnection) -> None:
    """Spans cover the last ten years of a window; a range of a century still keeps a row of any year in it."""
    instants(con, "Europe/London")
    params = Params(date_from=date(2000, 1, 1), date_to=date(2099, 12, 31), tz="Europe/London")
    kept, everything = con.execute(f"SELECT count(*) FILTER (WHERE {in_range('t', params)}), count(t) FROM t").fetchone()
    assert kept == everything > 0
