"""The product's `feedback` (issue 26 point 1) against the reference reading, on random streams.

feedback_streams places feedback events inside interactions, at their exact ends, at end + F and one
second either side, at closes, several to one interaction and for customers without any. The compiled
kernel (through the DuckDB store) must give every table the reference gives, with the new columns
`sessions.feedback`, `sessions.feedback_score`, `contacts.feedback`, `contacts.feedback_score` and the
anomaly kind `feedback_without_interaction`, per brand with its own `feedback_window`; and ingesting the
same events in any split and order (JSON Lines and CSV, with `rating` and `score`) gives the same tables.

tests/engine.py runs the product on these streams as on those of tests/test_properties.py, whose streams carry
no feedback: there the reference's new columns are empty, which is what the product gives.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convoscope.derive.duckdb_engine import derive
from convoscope.store import Store
from engine import assert_tables_equal, config_for, ingest_in_parts, load_events, tables
from feedback_streams import FIELDS, feedback_streams
from reference import Settings, derive_reference

Stream = tuple[list[dict], Settings, Settings]


def _settings_for(stream: Stream) -> Callable[[str], Settings]:
    _, default, acme = stream
    return lambda brand: acme if brand == "acme" else default


def _assert_with_feedback_columns(got: dict[str, list[dict]], want: dict[str, list[dict]]) -> None:
    # assert_tables_equal reads a missing key as None; these columns must really be there.
    for table in ("sessions", "contacts"):
        assert all({"feedback", "feedback_score"} <= row.keys() for row in got[table]), table
    assert_tables_equal(got, want)


@settings(max_examples=250, deadline=None)
@given(feedback_streams())
def test_kernel_agrees_with_the_reference_on_feedback(stream: Stream) -> None:
    events = stream[0]
    settings_for = _settings_for(stream)
    with Store(":memory:") as store:
        load_events(store, events)
        derive(store, config_for(events, settings_for), full=True)
        got = tables(store)
    _assert_with_feedback_columns(got, derive_reference(events, settings_for))


@settings(max_examples=40, deadline=None)
@given(feedback_streams())
def test_deriving_again_and_incrementally_keeps_feedback(stream: Stream) -> None:
    events = stream[0]
    config = config_for(events, _settings_for(stream))
    with Store(":memory:") as store:
        load_events(store, events)
        derive(store, config, full=True)
        first = tables(store)
        store.con.execute("INSERT INTO pending SELECT DISTINCT brand, customer_id FROM events")
        derive(store, config)
        assert tables(store) == first


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(feedback_streams(max_events=20), st.integers(1, 4), st.randoms(use_true_random=False))
def test_ingesting_feedback_in_any_split_and_order_gives_the_reference_tables(
    stream: Stream, parts: int, rnd: random.Random
) -> None:
    events = stream[0]
    settings_for = _settings_for(stream)
    config = config_for(events, settings_for)
    with Store(":memory:") as store:
        ingest_in_parts(store, config, events, parts, rnd, FIELDS)
        got = tables(store)
    _assert_with_feedback_columns(got, derive_reference(events, settings_for))
