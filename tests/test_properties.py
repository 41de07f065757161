"""Property-based tests of derivation and ingestion on random event streams (hypothesis).

Streams mix brands, customers, every event type, routes and channels, on a coarse time grid so that
ties and gaps of exactly S, C, W and R are common. The compiled kernel must agree with the
plain-Python reference on every stream, and the SPEC's invariants must hold.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convoscope import service
from convoscope.derive import duckdb_engine
from convoscope.derive.duckdb_engine import derive
from convoscope.store import Store
from engine import (
    assert_tables_equal,
    config_for,
    derive_engine,
    ingest_in_parts,
    load_events,
    tables,
    write_events,
)
from reference import Settings, derive_reference

DAY = datetime(2026, 5, 21)
TYPES = ["customer_message", "ai_message", "handoff", "agent_message", "contact_end", "conversation_close",
         "conversation_reopen"]
FIELDS = ["event_id", "type", "occurred_at", "customer_id", "brand", "channel", "text", "route", "ai_agent", "guides",
          "category", "subcategory", "reason", "transfer_rationale", "agent", "inbox"]
HOUR = timedelta(hours=1)


@st.composite
def event_streams(draw: st.DrawFn, max_events: int = 40) -> list[dict]:
    count = draw(st.integers(min_value=0, max_value=max_events))
    events = []
    for i in range(count):
        type_ = draw(st.sampled_from(TYPES))
        event = dict.fromkeys(FIELDS)
        event.update(
            event_id=f"e{draw(st.integers(0, 9))}{i:02d}",
            type=type_,
            # Half-hour steps over four days: ties and exact-boundary gaps are frequent.
            occurred_at=DAY + timedelta(minutes=30 * draw(st.integers(0, 190))),
            customer_id=draw(st.sampled_from(["c1", "c1", "c2", "+15551234567"])),
            brand=draw(st.sampled_from(["default", "default", "acme"])),
        )
        if type_ in ("customer_message", "ai_message", "agent_message"):
            event["channel"] = draw(st.sampled_from(["chat", "email", "voice"]))
            event["text"] = draw(st.sampled_from([None, "hi", "=1+2", "line\nbreak"]))
        if type_ == "customer_message":
            event["route"] = draw(st.sampled_from([None, None, "ai", "team"]))
        if type_ in ("ai_message", "handoff"):
            event["ai_agent"] = draw(st.sampled_from([None, "Care Agent", "Orders Agent"]))
        if type_ == "ai_message":
            event["guides"] = draw(st.sampled_from([None, ["Refunds"], ["Order Status", "Refunds"], ["B", "A"]]))
        if type_ == "handoff":
            event["category"] = draw(st.sampled_from(["handoff_manual", "handoff_qc"]))
            event["reason"] = draw(st.sampled_from([None, "asked for a human"]))
        if type_ in ("agent_message", "contact_end", "conversation_close", "conversation_reopen"):
            event["agent"] = draw(st.sampled_from([None, "sam", "kim"]))
        # Appendix B: on any type, and often absent, so that "the first event with one" is not the first.
        event["inbox"] = draw(st.sampled_from([None, None, "1", "2", "=3"]))
        events.append(event)
    return events


configurations = st.builds(
    Settings,
    session_inactivity=st.sampled_from([HOUR / 2, HOUR, 2 * HOUR]),
    contact_inactivity=st.sampled_from([HOUR, 3 * HOUR, 24 * HOUR]),
    conversation_window=st.sampled_from([HOUR, 5 * HOUR, 24 * HOUR]),
    recontact_window=st.sampled_from([HOUR, 24 * HOUR]),
    ai_channels=st.sampled_from([("*",), ("chat",), ("chat", "email")]),
)


@settings(max_examples=250, deadline=None)
@given(event_streams(), configurations, configurations)
def test_kernel_agrees_with_the_reference_reading(events: list[dict], default: Settings, acme: Settings) -> None:
    def settings_for(brand: str) -> Settings:
        return acme if brand == "acme" else default

    assert_tables_equal(derive_engine(events, settings_for), derive_reference(events, settings_for))


@settings(max_examples=60, deadline=None)
@given(event_streams(), configurations)
def test_customers_that_share_the_sort_hash_are_still_told_apart(events: list[dict], conf: Settings) -> None:
    """The embedded engine sorts customers by a 64-bit hash and tells apart, by a second one, two that
    share it. A real collision is too rare to meet, so the first hash is weakened to one bit."""
    with patch.object(duckdb_engine, "_customer_hash", lambda alias="": f"(hash({alias}brand, {alias}customer_id) % 2)"):
        got = derive_engine(events, lambda brand: conf)
    assert_tables_equal(got, derive_reference(events, lambda brand: conf))


@settings(max_examples=150, deadline=None)
@given(event_streams(), configurations)
def test_invariants_of_derived_tables(events: list[dict], conf: Settings) -> None:
    t = derive_engine(events, lambda brand: conf)
    kinds = Counter(e["type"] for e in events)

    # Every session-activity event lies in exactly one session; every message in exactly one interaction.
    speakers = Counter(m["speaker"] for m in t["session_messages"])
    assert speakers["ai"] == kinds["ai_message"]
    assert speakers["customer"] + sum(c["customer_messages"] for c in t["contacts"]) == kinds["customer_message"]
    assert sum(s["end_reason"] == "handoff" for s in t["sessions"]) == kinds["handoff"]
    assert sum(c["agent_messages"] for c in t["contacts"]) == kinds["agent_message"]

    # Sessions of one customer never overlap.
    by_customer: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for s in t["sessions"]:
        by_customer[(s["brand"], s["customer_id"])].append(s)
    for sessions in by_customer.values():
        sessions.sort(key=lambda s: s["created_at"])
        for before, after in zip(sessions, sessions[1:], strict=False):
            assert before["ended_at"] <= after["created_at"]

    # A session never spans two conversations: it lies within its conversation, and no counted close of
    # that conversation falls strictly inside it.
    conversations = {c["conversation_id"]: c for c in t["conversations"]}
    closes = defaultdict(list)
    for row in t["conversation_closes"]:
        if row["counted"]:
            closes[row["conversation_id"]].append(row["closed_at"])
    for s in t["sessions"]:
        conv = conversations[s["conversation_id"]]
        assert conv["created_at"] <= s["created_at"] and s["ended_at"] <= conv["ended_at"]
        assert not any(s["created_at"] < c < s["ended_at"] for c in closes[s["conversation_id"]])


@settings(max_examples=60, deadline=None)
@given(event_streams(), configurations)
def test_deriving_twice_and_incrementally_gives_identical_tables(events: list[dict], conf: Settings) -> None:
    config = config_for(events, lambda brand: conf)
    with Store(":memory:") as store:
        load_events(store, events)
        derive(store, config, full=True)
        first = tables(store)
        derive(store, config, full=True)
        assert tables(store) == first
        # Marking every customer pending and deriving incrementally replaces their rows identically.
        store.con.execute("INSERT INTO pending SELECT DISTINCT brand, customer_id FROM events")
        derive(store, config)
        assert tables(store) == first


def _unique_ids(events: list[dict]) -> list[dict]:
    seen = set()
    out = []
    for e in events:
        if (e["brand"], e["event_id"]) not in seen:
            seen.add((e["brand"], e["event_id"]))
            out.append(e)
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams(max_events=30), st.integers(1, 5), st.randoms(use_true_random=False))
def test_ingesting_in_any_split_and_order_gives_identical_tables(
    events: list[dict], parts: int, rnd: random.Random
) -> None:
    events = _unique_ids(events)  # equal ids with different content would make arrival order matter
    config = config_for(events, lambda b: Settings())
    with tempfile.TemporaryDirectory() as tmp:
        whole = Path(tmp) / "all.jsonl"
        write_events(whole, events, FIELDS)
        with Store(":memory:") as one:
            service.ingest(one, config, [str(whole)])
            expected = tables(one)
    with Store(":memory:") as many:
        ingest_in_parts(many, config, events, parts, rnd, FIELDS)
        assert_tables_equal(tables(many), expected)
