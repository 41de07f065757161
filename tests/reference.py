"""Plain-Python reference reading of SPEC 3 (derivation), written from the spec alone.

This is the deliberate second reading of SPEC 3 that the production kernel is checked against. It
favours clarity over speed: one small state machine per (brand, customer), walked over that
customer's events in the SPEC 2.4 order, keeping at most one open session, one open contact and one
current conversation. Expected (inactivity) ends are processed lazily, in time order, before the next
event is looked at, so that every interaction has an end without consulting an as-of time.

Ambiguities in SPEC 3 and how this reading settles them (the most literal reading each time):

 1. "An end and the start of the next interaction at the very same instant do not close it" (3.3).
    When the last open interaction ends at T, the conversation close is *pending*; it is committed
    as soon as an event later than T is looked at, a ``contact_end`` or ``conversation_close`` at T is
    processed, or the input ends. Only an interaction *starting* at exactly T cancels it: then the
    conversation never closed (no close row, no reopen counted). This covers inactivity ends at T
    (gap of exactly S), a handoff (session ends and contact starts at t), a team takeover, and the
    one-event handoff session.
 2. A ``conversation_reopen`` at T while such a close is pending sees the conversation as still open
    (no effect). The outcome is identical either way: a close at T gives a window to T + W anyway.
 3. An interaction that joins a closed conversation only thanks to a ``conversation_reopen``
    extension counts as a reopen (Times Reopened + 1): 3.3 says every interaction joining a closed
    conversation reopens it; "is not counted as a reopen" is read as "the reopen *event* itself adds
    nothing". A reopen after the normal window has passed still extends it to t + W; a reopen never
    shortens a window (window end = max(current window end, t + W)).
 4. ``conversation_close`` anomalies: ``close_without_conversation`` when the customer has no
    conversation yet at all; ``close_after_window`` when the latest conversation is closed and
    t >= its window end (the window is strict, as for a new interaction; a reopen extension counts).
 5. An uncounted ``conversation_close`` (closed conversation, window open at t) moves the last close
    time to t, so the reopen window is then measured from t. It is emitted as a
    ``conversation_closes`` row with counted=False. In the worked example the ``contact_end`` at 17:25
    closes the conversation (counted) and the ``conversation_close`` at 17:25 is such an uncounted
    move, giving Times Closed 2. It does not change the conversation's ``ended_at`` (the latest end of
    its interactions).
 6. A ``handoff`` with no open session while a contact is open still makes a one-event session (3.1)
    that ends by handoff (handed off, not responded), besides the ``handoff_while_contact_open``
    anomaly; it starts no contact and is not contact activity.
 7. A handoff contact's channel is its session's channel, even when that is None (a one-event handoff
    session has no channel); there is no fallback to the contact's own events.
 8. A session's events (for channel, ai_agent, created_at) are the customer_messages routed to it,
    its ai_messages and its handoff. ``last_activity_at`` is the last of those; a team takeover or a
    ``conversation_close`` ends the session without being session activity.
 9. Contact activity is its starting event (including a handoff), its customer_messages,
    agent_messages and ``contact_end``. A ``conversation_close`` ends it without being activity. A
    ``contact_end`` at exactly last activity + C finds no open contact: an anomaly.
10. ``recontacted`` is computed for every session whatever its outcome (reports restrict it to
    resolved sessions and to the as-of time); "another session" excludes the session itself; the
    interval [ended_at, ended_at + R] is closed at both ends.
11. At the end of the input every still-open interaction gets its expected end (last activity + S or
    + C) and the conversation close bookkeeping runs for it, producing counted close rows at those
    expected times (reports judge them against the as-of time).
12. ``ai_channels`` membership is exact and case-sensitive on the (already lower-cased) channel; "*"
    matches every channel, including a missing one.
13. Conversation channels come from every event of its interactions that carries a channel; only
    message events carry one, and each belongs to exactly one interaction.
14. ``first_response_at`` is the first agent_message of a handoff or inbound contact, None for an
    outbound contact even when later agent messages follow.
15. Empty or whitespace-only guide names, ``ai_agent`` or ``agent`` values are skipped as absent.
16. ``inbox`` (Appendix B: "sessions and contacts take it from their first event that has one"): the
    events of reading 8 for a session, of reading 9 for a contact, so a handoff contact's own handoff
    comes first and its session's inbox is not inherited (4.4 says that of the channel only). A
    conversation's inbox at creation is its first interaction's (by start, then event order); each
    close row records the inbox of the conversation's last interaction to start at or before the
    close time (by start, then event order), computed at the end from those start times. An
    interaction without an inbox gives None: no fallback to another one.
17. ``feedback`` (issue 26 point 1, Appendix B), read in ``feedback_target`` and ``_on_feedback``:
    handled after every other event at its instant (rank 7), it attaches to the interaction open at
    t (started at or before t, end later than t — an expected end counts), the one that started last
    if both are; else to the one that ended last at or before t if t - end <= F (closed window); else
    it is the anomaly ``feedback_without_interaction``. The last one attached (SPEC 2.4 order) gives
    the interaction's ``feedback`` and ``feedback_score``. It is not activity: it never opens, extends
    or reopens anything, is not a session message, adds no channel and is no interaction's inbox.
    Where the issue leaves room (ties between a session and a contact, a missing score on the last
    feedback) the choice is a field of ``FeedbackReading``, so it can be aligned in one place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

TYPE_RANK = {
    "conversation_reopen": 0,
    "customer_message": 1,
    "ai_message": 2,
    "handoff": 3,
    "agent_message": 4,
    "contact_end": 5,
    "conversation_close": 6,
    "feedback": 7,  # issue 26: after every other type at one instant
}


@dataclass(frozen=True)
class FeedbackReading:
    """Where issue 26 point 1 leaves room, the reading this reference takes — in one place, so that it
    can be aligned with the product's documented rule (see /work/research/feedback_reading.md).

    Settled by the issue and SPEC 3 themselves, so not options here: an interaction is open at t when
    it started at or before t and its end (known, or expected: last activity + S or + C, even when
    that lies after t) is later than t; one whose end equals t is not open at t but ended at t; the
    window is closed ("at most F earlier": end + F exactly attaches); a ``conversation_close`` at the
    feedback's instant sorts before it, so the interactions it ended have ended at t.
    """

    # Both a session and a contact open, started at the same instant: "started last" is the one whose
    # start came later in the sorted event order ("start_order"), or always "session" / "contact".
    open_tie: str = "start_order"
    # Several interactions ended at the same latest instant: "end_order" — the one whose end came later
    # in the sorted event order (an inactivity end at t comes before every event at t), and for ends at
    # one step (one conversation_close, or two inactivity ends at one instant) the one that started last
    # (as open_tie); "started_last" — ignore the end order, the one that started last.
    ended_tie: str = "end_order"
    # "last": the last feedback gives both rating and score, an absent score empties Feedback Score;
    # "last_with_score": the score of the last feedback that had one.
    score_from: str = "last"


FEEDBACK_READING = FeedbackReading()


@dataclass(frozen=True)
class Settings:
    session_inactivity: timedelta = timedelta(hours=2)  # S
    contact_inactivity: timedelta = timedelta(hours=24)  # C
    conversation_window: timedelta = timedelta(hours=24)  # W
    recontact_window: timedelta = timedelta(hours=24)  # R
    ai_channels: tuple[str, ...] = ("*",)  # "*" = every channel
    feedback_window: timedelta = timedelta(hours=24)  # F (issue 26, brand key feedback_window)


def make_id(prefix: str, brand: str, customer_id: str, event_id: str) -> str:
    """SPEC 3.5: prefix + first 16 hex chars of sha256(brand \\n customer \\n event_id)."""
    digest = hashlib.sha256(f"{brand}\n{customer_id}\n{event_id}".encode()).hexdigest()
    return prefix + digest[:16]


def sort_key(event: dict) -> tuple:
    """SPEC 2.4: occurred_at, type rank, event_id by code point (Python str order)."""
    return (event["occurred_at"], TYPE_RANK[event["type"]], event["event_id"])


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


# --------------------------------------------------------------------------------------------------
# Working state
# --------------------------------------------------------------------------------------------------


@dataclass
class _Conversation:
    id: str
    created_at: datetime
    open: bool = True
    window_end: datetime | None = None  # meaningful only while closed
    times_reopened: int = 0
    channels: list[str] = field(default_factory=list)
    sessions: list[_Session] = field(default_factory=list)
    contacts: list[_Contact] = field(default_factory=list)
    closes: list[tuple[datetime, bool]] = field(default_factory=list)
    interactions: list[_Session | _Contact] = field(default_factory=list)  # in the order they started


@dataclass
class _Session:
    id: str
    conversation: _Conversation
    created_at: datetime
    last_activity_at: datetime
    ended_at: datetime | None = None
    end_reason: str | None = None
    channel: str | None = None
    ai_agent: str | None = None
    guides: list[str] = field(default_factory=list)
    responded: bool = False
    handed_off: bool = False
    handoff_category: str | None = None
    handoff_subcategory: str | None = None
    handoff_reason: str | None = None
    transfer_rationale: str | None = None
    messages: list[dict] = field(default_factory=list)
    inbox: str | None = None
    start_seq: int = 0  # order of starts among the customer's interactions
    end_step: int = -1  # sorted index of the event that ended it; -1 for an inactivity end
    feedback: str | None = None
    feedback_score: int | None = None


@dataclass
class _Contact:
    id: str
    conversation: _Conversation
    source: str
    session: _Session | None
    created_at: datetime
    last_activity_at: datetime
    channel: str | None = None
    first_response_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    agents: list[str] = field(default_factory=list)
    customer_messages: int = 0
    agent_messages: int = 0
    inbox: str | None = None
    start_seq: int = 0
    end_step: int = -1
    feedback: str | None = None
    feedback_score: int | None = None


class _CustomerTrack:
    """The SPEC 3 state machine for one (brand, customer)."""

    def __init__(
        self, brand: str, customer_id: str, settings: Settings, reading: FeedbackReading = FEEDBACK_READING
    ) -> None:
        self.reading = reading
        self.step = -1  # index, in sorted order, of the event being handled
        self.starts = 0
        self.brand = brand
        self.customer_id = customer_id
        self.s = settings
        self.session: _Session | None = None
        self.contact: _Contact | None = None
        self.conversation: _Conversation | None = None  # the latest one
        self.pending_close: datetime | None = None  # see ambiguity 1
        self.conversations: list[_Conversation] = []
        self.sessions: list[_Session] = []
        self.contacts: list[_Contact] = []
        self.anomalies: list[dict] = []

    # ---- driving -------------------------------------------------------------------------------

    def run(self, events: list[dict]) -> None:
        for step, event in enumerate(sorted(events, key=sort_key)):
            self.step = -1  # ends found while advancing are inactivity ends
            self._advance_to(event["occurred_at"])
            self.step = step
            getattr(self, "_on_" + event["type"])(event)
        self.step = -1
        self._advance_to(None)

    def _advance_to(self, t: datetime | None) -> None:
        """Process, in time order, every expected end at or before t (all of them when t is None),
        committing pending conversation closes that lie strictly before t."""
        while True:
            due: list[tuple[datetime, str]] = []
            if self.session is not None:
                due.append((self.session.last_activity_at + self.s.session_inactivity, "session"))
            if self.contact is not None:
                due.append((self.contact.last_activity_at + self.s.contact_inactivity, "contact"))
            due = [d for d in due if t is None or d[0] <= t]
            if not due:
                break
            at, which = min(due)
            self._commit_pending_before(at)
            if which == "session":
                self._end_session(at, "inactivity")
            else:
                self._end_contact(at, "inactivity")
        if t is None:
            self._commit_pending()
        else:
            self._commit_pending_before(t)

    # ---- conversation bookkeeping (SPEC 3.3) ---------------------------------------------------

    def _commit_pending_before(self, t: datetime) -> None:
        if self.pending_close is not None and self.pending_close < t:
            self._commit_pending()

    def _commit_pending(self) -> None:
        if self.pending_close is None:
            return
        at, self.pending_close = self.pending_close, None
        conv = self.conversation
        assert conv is not None and conv.open
        conv.open = False
        conv.window_end = at + self.s.conversation_window
        conv.closes.append((at, True))

    def _interaction_ended(self, at: datetime) -> None:
        if self.session is None and self.contact is None:
            self.pending_close = at

    def _conversation_for_new_interaction(self, t: datetime, first_event: dict) -> _Conversation:
        conv = self.conversation
        if self.pending_close is not None:
            if self.pending_close == t:
                # An end and a start at the same instant: the conversation never closed.
                self.pending_close = None
                assert conv is not None
                return conv
            self._commit_pending()
        if conv is not None and conv.open:
            return conv
        if conv is not None and conv.window_end is not None and t < conv.window_end:
            conv.open = True
            conv.times_reopened += 1
            return conv
        conv = _Conversation(
            id=make_id("cnv_", self.brand, self.customer_id, first_event["event_id"]), created_at=t
        )
        self.conversations.append(conv)
        self.conversation = conv
        return conv

    def _next_start(self) -> int:
        self.starts += 1
        return self.starts

    def _anomaly(self, event: dict, kind: str) -> None:
        self.anomalies.append(
            {
                "brand": self.brand,
                "customer_id": self.customer_id,
                "event_id": event["event_id"],
                "kind": kind,
                "occurred_at": event["occurred_at"],
            }
        )

    # ---- sessions (SPEC 3.1, 3.6) --------------------------------------------------------------

    def _start_session(self, event: dict) -> _Session:
        t = event["occurred_at"]
        conv = self._conversation_for_new_interaction(t, event)
        session = _Session(
            id=make_id("ses_", self.brand, self.customer_id, event["event_id"]),
            conversation=conv,
            created_at=t,
            last_activity_at=t,
            start_seq=self._next_start(),
        )
        conv.sessions.append(session)
        conv.interactions.append(session)
        self.sessions.append(session)
        self.session = session
        return session

    def _session_activity(self, session: _Session, event: dict) -> None:
        session.last_activity_at = event["occurred_at"]
        if session.channel is None and _present(event.get("channel")):
            session.channel = event["channel"]
        if session.ai_agent is None and _present(event.get("ai_agent")):
            session.ai_agent = event["ai_agent"]
        if session.inbox is None and _present(event.get("inbox")):
            session.inbox = event["inbox"]
        if _present(event.get("channel")):
            session.conversation.channels.append(event["channel"])

    def _end_session(self, at: datetime, reason: str) -> None:
        session = self.session
        assert session is not None
        session.ended_at = at
        session.end_reason = reason
        session.end_step = -1 if reason == "inactivity" else self.step
        self.session = None
        self._interaction_ended(at)

    def _add_message(self, session: _Session, event: dict, speaker: str) -> None:
        session.messages.append(
            {
                "event_id": event["event_id"],
                "occurred_at": event["occurred_at"],
                "speaker": speaker,
                "text": event.get("text"),
            }
        )

    # ---- contacts (SPEC 3.2) -------------------------------------------------------------------

    def _start_contact(self, event: dict, source: str, linked: _Session | None) -> _Contact:
        """Start a contact at event; a session still open then is taken over (team_takeover)."""
        t = event["occurred_at"]
        if self.session is not None:
            # Team takeover: the open session ends now, handed off, and the contact is linked to it.
            linked = self.session
            linked.handed_off = True
            linked.handoff_category = "team_takeover"
            linked.handoff_subcategory = source
            self._end_session(t, "team_takeover")
        conv = self._conversation_for_new_interaction(t, event)
        contact = _Contact(
            id=make_id("ctc_", self.brand, self.customer_id, event["event_id"]),
            conversation=conv,
            source=source,
            session=linked,
            created_at=t,
            last_activity_at=t,
            start_seq=self._next_start(),
        )
        if source == "handoff":
            assert linked is not None
            contact.channel = linked.channel
            # The handoff is the contact's starting event, hence its activity (3.2), though it is
            # handled as the session's above: its inbox is the contact's first candidate too.
            if _present(event.get("inbox")):
                contact.inbox = event["inbox"]
        conv.contacts.append(contact)
        conv.interactions.append(contact)
        self.contacts.append(contact)
        self.contact = contact
        return contact

    def _contact_activity(self, contact: _Contact, event: dict) -> None:
        contact.last_activity_at = event["occurred_at"]
        if contact.inbox is None and _present(event.get("inbox")):
            contact.inbox = event["inbox"]
        if _present(event.get("channel")):
            if contact.channel is None and contact.source != "handoff":
                contact.channel = event["channel"]
            contact.conversation.channels.append(event["channel"])
        if event["type"] == "customer_message":
            contact.customer_messages += 1
        elif event["type"] == "agent_message":
            contact.agent_messages += 1
            if contact.first_response_at is None and contact.source != "outbound":
                contact.first_response_at = event["occurred_at"]
            agent: str | None = event.get("agent")
            if agent is not None and _present(agent) and agent not in contact.agents:
                contact.agents.append(agent)

    def _end_contact(self, at: datetime, reason: str) -> None:
        contact = self.contact
        assert contact is not None
        contact.ended_at = at
        contact.end_reason = reason
        contact.end_step = -1 if reason == "inactivity" else self.step
        self.contact = None
        self._interaction_ended(at)

    # ---- event handlers ------------------------------------------------------------------------

    def _routes_to_ai(self, event: dict) -> bool:
        """SPEC 3.4, the last two steps: route ai, or no route and the channel is an AI channel."""
        if event.get("route") == "ai":
            return True
        if event.get("route") is None:
            return "*" in self.s.ai_channels or event.get("channel") in self.s.ai_channels
        return False

    def _on_customer_message(self, event: dict) -> None:
        if self.contact is not None:
            self._contact_activity(self.contact, event)
        elif self.session is not None and event.get("route") != "team":
            self._session_activity(self.session, event)
            self._add_message(self.session, event, "customer")
        elif self.session is None and self._routes_to_ai(event):
            session = self._start_session(event)
            self._session_activity(session, event)
            self._add_message(session, event, "customer")
        else:
            contact = self._start_contact(event, "inbound", None)
            self._contact_activity(contact, event)

    def _on_ai_message(self, event: dict) -> None:
        session = self.session if self.session is not None else self._start_session(event)
        self._session_activity(session, event)
        self._add_message(session, event, "ai")
        session.responded = True
        for guide in event.get("guides") or []:
            if _present(guide) and guide not in session.guides:
                session.guides.append(guide)

    def _on_handoff(self, event: dict) -> None:
        session = self.session if self.session is not None else self._start_session(event)
        self._session_activity(session, event)
        session.handed_off = True
        session.handoff_category = event.get("category")
        session.handoff_subcategory = event.get("subcategory")
        session.handoff_reason = event.get("reason")
        session.transfer_rationale = event.get("transfer_rationale")
        self._end_session(event["occurred_at"], "handoff")
        if self.contact is not None:
            self._anomaly(event, "handoff_while_contact_open")
        else:
            self._start_contact(event, "handoff", session)

    def _on_agent_message(self, event: dict) -> None:
        contact = self.contact if self.contact is not None else self._start_contact(event, "outbound", None)
        self._contact_activity(contact, event)

    def _on_contact_end(self, event: dict) -> None:
        if self.contact is None:
            self._anomaly(event, "contact_end_without_open_contact")
            return
        self._contact_activity(self.contact, event)
        self._end_contact(event["occurred_at"], "contact_end")

    def _on_conversation_close(self, event: dict) -> None:
        t = event["occurred_at"]
        self._commit_pending()  # nothing can start at t after a conversation_close (rank order)
        conv = self.conversation
        if self.session is not None or self.contact is not None:
            if self.session is not None:
                self._end_session(t, "conversation_close")
            if self.contact is not None:
                self._end_contact(t, "conversation_close")
            self._commit_pending()
        elif conv is None:
            self._anomaly(event, "close_without_conversation")
        elif conv.window_end is not None and t < conv.window_end:
            conv.window_end = max(conv.window_end, t + self.s.conversation_window)
            conv.closes.append((t, False))
        else:
            self._anomaly(event, "close_after_window")

    # ---- feedback (issue 26 point 1) -------------------------------------------------------------

    def _started_last_key(self, i: _Session | _Contact) -> tuple:
        """Later is larger: the start time, then (a tie) as FeedbackReading.open_tie says."""
        tie = self.reading.open_tie
        if tie == "start_order":
            return (i.created_at, i.start_seq)
        if tie in ("session", "contact"):
            preferred = isinstance(i, _Session) == (tie == "session")
            return (i.created_at, preferred, i.start_seq)
        raise ValueError(f"open_tie {tie!r}")

    def _ended_last_key(self, i: _Session | _Contact) -> tuple:
        assert i.ended_at is not None
        tie = self.reading.ended_tie
        if tie == "end_order":
            return (i.ended_at, i.end_step, *self._started_last_key(i))
        if tie == "started_last":
            return (i.ended_at, *self._started_last_key(i))
        raise ValueError(f"ended_tie {tie!r}")

    def feedback_target(self, t: datetime) -> _Session | _Contact | None:
        """The interaction a feedback at t attaches to, once every event before it has been handled:
        the open one (the one that started last if both are), else the one that ended last if that
        end is at most F before t, else None."""
        open_now = [i for i in (self.session, self.contact) if i is not None]
        if open_now:
            return max(open_now, key=self._started_last_key)
        ended = [i for i in (*self.sessions, *self.contacts) if i.ended_at is not None]
        assert all(i.ended_at <= t for i in ended)  # type: ignore[operator]
        if not ended:
            return None
        last = max(ended, key=self._ended_last_key)
        assert last.ended_at is not None
        return last if t - last.ended_at <= self.s.feedback_window else None

    def _on_feedback(self, event: dict) -> None:
        """Not activity: nothing starts, ends, extends or reopens. The last feedback (in sort order)
        attached to an interaction gives its rating and (FeedbackReading.score_from) its score."""
        target = self.feedback_target(event["occurred_at"])
        if target is None:
            self._anomaly(event, "feedback_without_interaction")
            return
        target.feedback = event.get("rating")  # required on input (issue 26); get: hand-made events
        score = event.get("score")
        if self.reading.score_from == "last" or score is not None:
            target.feedback_score = score

    def _on_conversation_reopen(self, event: dict) -> None:
        conv = self.conversation
        if conv is None:
            self._anomaly(event, "reopen_without_conversation")
        elif not conv.open:
            assert conv.window_end is not None
            conv.window_end = max(conv.window_end, event["occurred_at"] + self.s.conversation_window)


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------


def _session_rows(track: _CustomerTrack) -> list[dict]:
    rows = []
    for session in track.sessions:
        assert session.ended_at is not None
        end = session.ended_at
        until = end + track.s.recontact_window
        recontacted = any(
            other is not session and end <= other.created_at <= until for other in track.sessions
        )
        handed_off = session.handed_off
        rows.append(
            {
                "brand": track.brand,
                "customer_id": track.customer_id,
                "session_id": session.id,
                "conversation_id": session.conversation.id,
                "created_at": session.created_at,
                "last_activity_at": session.last_activity_at,
                "ended_at": end,
                "end_reason": session.end_reason,
                "channel": session.channel,
                "ai_agent": session.ai_agent,
                "guides_used": ", ".join(session.guides) if session.guides else None,
                "responded": session.responded,
                "handed_off": handed_off,
                "handoff_category": session.handoff_category if handed_off else None,
                "handoff_subcategory": session.handoff_subcategory if handed_off else None,
                "handoff_reason": session.handoff_reason if handed_off else None,
                "transfer_rationale": session.transfer_rationale if handed_off else None,
                "recontacted": recontacted,
                "recontact_known_at": until,
                "inbox": session.inbox,
                "feedback": session.feedback,
                "feedback_score": session.feedback_score,
            }
        )
    return rows


def _contact_rows(track: _CustomerTrack) -> list[dict]:
    return [
        {
            "brand": track.brand,
            "customer_id": track.customer_id,
            "contact_id": contact.id,
            "conversation_id": contact.conversation.id,
            "session_id": contact.session.id if contact.session is not None else None,
            "source": contact.source,
            "channel": contact.channel,
            "created_at": contact.created_at,
            "first_response_at": contact.first_response_at,
            "last_activity_at": contact.last_activity_at,
            "ended_at": contact.ended_at,
            "end_reason": contact.end_reason,
            "agents": ", ".join(contact.agents) if contact.agents else None,
            "agent_names": list(contact.agents) or None,
            "customer_messages": contact.customer_messages,
            "agent_messages": contact.agent_messages,
            "inbox": contact.inbox,
            "feedback": contact.feedback,
            "feedback_score": contact.feedback_score,
        }
        for contact in track.contacts
    ]


def _handled_by(conv: _Conversation) -> str:
    """SPEC 4.6 Handled By."""
    if not conv.sessions:
        return "team_only"
    if not conv.contacts:
        return "ai_only"
    own = {id(s) for s in conv.sessions}
    if any(c.session is not None and id(c.session) in own for c in conv.contacts):
        return "ai_then_team"
    return "ai_and_team"


def _conversation_rows(track: _CustomerTrack) -> list[dict]:
    rows = []
    for conv in track.conversations:
        ends = [s.ended_at for s in conv.sessions] + [c.ended_at for c in conv.contacts]
        rows.append(
            {
                "brand": track.brand,
                "customer_id": track.customer_id,
                "conversation_id": conv.id,
                "created_at": conv.created_at,
                "ended_at": max(e for e in ends if e is not None),
                "times_reopened": conv.times_reopened,
                "first_channel": conv.channels[0] if conv.channels else None,
                "last_channel": conv.channels[-1] if conv.channels else None,
                "channel_count": len(set(conv.channels)),
                "channels": list(dict.fromkeys(conv.channels)) or None,
                "session_count": len(conv.sessions),
                "contact_count": len(conv.contacts),
                "handled_by": _handled_by(conv),
                "inbox_at_created": conv.interactions[0].inbox,
            }
        )
    return rows


def _inbox_by(conv: _Conversation, at: datetime) -> str | None:
    """The inbox of the conversation's last interaction to start at or before `at`: the latest start,
    and of several at that instant the last to start in event order (reading 16)."""
    started = [(i.created_at, order) for order, i in enumerate(conv.interactions) if i.created_at <= at]
    return conv.interactions[max(started)[1]].inbox if started else None


def derive_reference(
    events: list[dict],
    settings_for: Callable[[str], Settings] = lambda brand: Settings(),
    reading: FeedbackReading = FEEDBACK_READING,
) -> dict[str, list[dict]]:
    """SPEC 3: derive sessions, contacts, conversations, their closes, anomalies and session
    messages from validated, normalised events. A pure function of (events, settings)."""
    by_customer: dict[tuple[str, str], list[dict]] = {}
    for event in events:
        by_customer.setdefault((event["brand"], event["customer_id"]), []).append(event)

    tables: dict[str, list[dict]] = {
        "sessions": [],
        "contacts": [],
        "conversations": [],
        "conversation_closes": [],
        "anomalies": [],
        "session_messages": [],
    }
    for (brand, customer_id), customer_events in by_customer.items():
        track = _CustomerTrack(brand, customer_id, settings_for(brand), reading)
        track.run(customer_events)
        tables["sessions"] += _session_rows(track)
        tables["contacts"] += _contact_rows(track)
        tables["conversations"] += _conversation_rows(track)
        tables["anomalies"] += track.anomalies
        for conv in track.conversations:
            tables["conversation_closes"] += [
                {"brand": brand, "conversation_id": conv.id, "closed_at": at, "counted": counted,
                 "inbox": _inbox_by(conv, at)}
                for at, counted in conv.closes
            ]
        for session in track.sessions:
            tables["session_messages"] += [
                {"brand": brand, "session_id": session.id, "seq": seq, **message}
                for seq, message in enumerate(session.messages)
            ]

    tables["sessions"].sort(key=lambda r: r["session_id"])
    tables["contacts"].sort(key=lambda r: r["contact_id"])
    tables["conversations"].sort(key=lambda r: r["conversation_id"])
    tables["conversation_closes"].sort(key=lambda r: (r["conversation_id"], r["closed_at"], r["counted"]))
    tables["anomalies"].sort(key=lambda r: (r["brand"], r["event_id"], r["kind"]))
    tables["session_messages"].sort(key=lambda r: (r["session_id"], r["seq"]))
    return tables
