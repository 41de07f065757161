"""Random event streams with `feedback` events (issue 26 point 1) at the instants where its rule can go
wrong: inside interactions, at their exact ends, at end + F exactly and one second either side of those,
at the instant of a close, and several to one interaction. Pure Python (hypothesis and the reference
only), shared by the reference's own tests and the reference-versus-product comparison.

The streams are denser than test_properties' (two customers, two days, two brands), so that sessions
and contacts overlap, end together and follow each other closely. Feedback events are placed *after*
deriving the base stream with the reference: feedback is not activity, so the interactions, their
starts and ends do not move when it is added, and the instants picked stay interesting.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import strategies as st

from reference import Settings, derive_reference

DAY = datetime(2026, 5, 21)
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)
BASE_TYPES = ["customer_message", "customer_message", "ai_message", "ai_message", "handoff", "agent_message",
              "contact_end", "conversation_close", "conversation_reopen"]
FIELDS = ["event_id", "type", "occurred_at", "customer_id", "brand", "channel", "text", "route", "ai_agent", "guides",
          "category", "subcategory", "reason", "transfer_rationale", "agent", "inbox", "rating", "score"]
CUSTOMERS = ["c1", "c1", "c2"]
BRANDS = ["default", "default", "acme"]


def _event(**fields: object) -> dict:
    event: dict = dict.fromkeys(FIELDS)
    event.update(fields)
    return event


@st.composite
def base_streams(draw: st.DrawFn, max_events: int = 30) -> list[dict]:
    """Every type but feedback, on a half-hour grid over two days: ties and exact gaps are common."""
    events = []
    for i in range(draw(st.integers(min_value=0, max_value=max_events))):
        type_ = draw(st.sampled_from(BASE_TYPES))
        event = _event(
            event_id=f"e{draw(st.integers(0, 9))}{i:02d}", type=type_,
            occurred_at=DAY + timedelta(minutes=30 * draw(st.integers(0, 96))),
            customer_id=draw(st.sampled_from(CUSTOMERS)), brand=draw(st.sampled_from(BRANDS)),
        )
        if type_ in ("customer_message", "ai_message", "agent_message"):
            event["channel"] = draw(st.sampled_from(["chat", "email"]))
        if type_ == "customer_message":
            event["route"] = draw(st.sampled_from([None, None, "ai", "team"]))
        if type_ == "handoff":
            event["category"] = "handoff_manual"
        if type_ in ("agent_message", "contact_end", "conversation_close", "conversation_reopen"):
            event["agent"] = draw(st.sampled_from([None, "sam"]))
        events.append(event)
    # Now and then a contact with the AI re-engaging inside it (both open), ended together or in turn:
    # the only ways to the ties of feedback_reading.md rows 1-2, rare in purely random streams.
    for j in range(draw(st.integers(0, 2))):
        who = {"customer_id": draw(st.sampled_from(CUSTOMERS)), "brand": draw(st.sampled_from(BRANDS))}
        start = DAY + timedelta(minutes=30 * draw(st.integers(0, 90)))
        ai_at = start + timedelta(minutes=30 * draw(st.integers(0, 2)))
        end = ai_at + timedelta(minutes=30 * draw(st.integers(0, 4)))
        block = [_event(event_id=f"t{j}a", type="customer_message", occurred_at=start, route="team",
                        channel="chat", **who),
                 _event(event_id=f"t{j}b", type="ai_message", occurred_at=ai_at, channel="chat", **who)]
        for k, type_ in enumerate(draw(st.sampled_from([[], ["conversation_close"], ["contact_end"],
                                                        ["handoff", "contact_end"], ["agent_message"]]))):
            extra = {"category": "handoff_manual"} if type_ == "handoff" else {}
            if type_ == "agent_message":
                extra = {"channel": "chat"}
            block.append(_event(event_id=f"t{j}c{k}", type=type_, occurred_at=end, **who, **extra))
        events += block
    return events


configurations = st.builds(
    Settings,
    session_inactivity=st.sampled_from([HOUR / 2, HOUR, 2 * HOUR]),
    contact_inactivity=st.sampled_from([HOUR, 2 * HOUR, 24 * HOUR]),
    conversation_window=st.sampled_from([HOUR, 24 * HOUR]),
    recontact_window=st.just(24 * HOUR),
    ai_channels=st.sampled_from([("*",), ("chat",)]),
    # F on the same grid as S and C, so that end + F often meets another interaction's start or end.
    feedback_window=st.sampled_from([HOUR / 2, HOUR, 2 * HOUR, 24 * HOUR]),
)


def interesting_instants(base: list[dict], derived: dict[str, list[dict]], brand: str, customer: str,
                         window: timedelta) -> list[datetime]:
    """Where a feedback of (brand, customer) tests the rule: every start and end of the customer's
    interactions, end ± 1 s, end + F and ± 1 s, the middle of each interaction, and every close."""
    out: list[datetime] = []
    mine = [r for table in ("sessions", "contacts") for r in derived[table]
            if (r["brand"], r["customer_id"]) == (brand, customer)]
    for row in mine:
        start, end = row["created_at"], row["ended_at"]
        out += [start, start + (end - start) / 2, end, end - SECOND, end + SECOND,
                end + window, end + window - SECOND, end + window + SECOND]
    conversations = {r["conversation_id"] for r in mine}
    out += [r["closed_at"] for r in derived["conversation_closes"] if r["conversation_id"] in conversations]
    out += [e["occurred_at"] for e in base
            if (e["brand"], e["customer_id"]) == (brand, customer) and e["type"] == "conversation_close"]
    return out


@st.composite
def feedback_streams(draw: st.DrawFn, max_events: int = 30, max_feedback: int = 8
                     ) -> tuple[list[dict], Settings, Settings]:
    """(events, settings of brand default, settings of brand acme): a base stream and feedback events."""
    base = draw(base_streams(max_events))
    default, acme = draw(configurations), draw(configurations)

    def settings_for(brand: str) -> Settings:
        return acme if brand == "acme" else default

    derived = derive_reference(base, settings_for)
    feedback: list[dict] = []
    for i in range(draw(st.integers(0, max_feedback))):
        known = sorted({(r["brand"], r["customer_id"]) for r in derived["sessions"] + derived["contacts"]})
        if known and draw(st.integers(0, 4)):  # mostly a customer who has interactions
            brand, customer = draw(st.sampled_from(known))
        else:
            brand, customer = draw(st.sampled_from(BRANDS)), draw(st.sampled_from([*CUSTOMERS, "c3"]))
        instants = interesting_instants(base, derived, brand, customer, settings_for(brand).feedback_window)
        instants += [f["occurred_at"] for f in feedback if (f["brand"], f["customer_id"]) == (brand, customer)]
        grid = DAY + timedelta(minutes=30 * draw(st.integers(0, 150)))
        at = draw(st.sampled_from(instants)) if instants and draw(st.integers(0, 4)) else grid
        feedback.append(_event(
            event_id=f"f{draw(st.integers(0, 9))}{i:02d}", type="feedback", occurred_at=at,
            customer_id=customer, brand=brand,
            rating=draw(st.sampled_from(["positive", "negative"])),
            score=draw(st.sampled_from([None, 1, 3, 5])),
            text=draw(st.sampled_from([None, "thanks", "=useless"])),
            # Appendix B allows inbox on any type; feedback is not one of an interaction's events,
            # so it must not become the interaction's inbox (feedback_reading.md).
            inbox=draw(st.sampled_from([None, None, "9"])),
        ))
    events = base + feedback
    order = draw(st.permutations(range(len(events))))  # arrival order must not matter
    return [events[i] for i in order], default, acme
