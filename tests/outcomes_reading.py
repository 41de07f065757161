"""Issue 26's outcome rules read again in plain Python from the rows a user downloads, written from the issue and
docs/reports.md, not from the SQL: the per-row facts (Durable Resolution, Resolution Class, Automated Resolution,
Resolved First Time, Came Back) from sessions-detail, contact-export and conversation-export `--extra`, and the four
new reports (outcomes-summary, automation-summary, handoff-funnel, guide-effectiveness) from those rows.

Times in the rows are truncated to seconds: the stores these tests read hold whole-second events, so the rows'
times are exact and every boundary ([end, end + D], "as-of later than end + D") is judged as the store judges it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from test_summaries import grouped, median, period_label, rate

Row = dict[str, str]
Span = tuple[str, str] | None


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def within(instant: datetime, start: datetime, end: datetime) -> bool:
    """The closed interval of issue 26: [start, end], both ends included."""
    return start <= instant <= end


def in_span(timestamp: str, span: Span) -> bool:
    """SPEC 4: `from` and `to` are inclusive local dates of the row's own time."""
    if span is None:
        return True
    day = at(timestamp).date()
    return date.fromisoformat(span[0]) <= day <= date.fromisoformat(span[1])


def feedback_of(row: Row) -> str:
    """The session's Feedback (issue 26 point 1, an extra column the feedback derivation adds to sessions-detail):
    without that column no session has feedback yet. The tests of the feedback store read `row["Feedback"]`."""
    return row.get("Feedback", "")


@dataclass
class Rows:
    """The three detail reports of one store, every row (no range), with `--extra`, in one time zone, and the
    brand settings the rules read (D per brand; R per brand)."""

    sessions: list[Row]
    contacts: list[Row]
    conversations: list[Row]
    as_of: datetime
    durable: dict[str, timedelta] = field(default_factory=dict)  # brand -> D (default 7d)
    recontact: dict[str, timedelta] = field(default_factory=dict)  # brand -> R (default 24h)

    def __post_init__(self) -> None:
        self.created: dict[tuple[str, str], list[tuple[datetime, str]]] = defaultdict(list)
        for kind, rows in (("Session ID", self.sessions), ("Contact ID", self.contacts)):
            for row in rows:
                self.created[row["Brand"], row["Customer ID"]].append((at(row["Created At"]), row[kind]))
        self.contact_created: dict[tuple[str, str], list[tuple[datetime, str]]] = defaultdict(list)
        for row in self.contacts:
            self.contact_created[row["Brand"], row["Customer ID"]].append((at(row["Created At"]), row["Contact ID"]))
        self.conversation = {row["Conversation ID"]: row for row in self.conversations}
        self.sessions_of: dict[str, list[Row]] = defaultdict(list)
        for row in self.sessions:
            self.sessions_of[row["Conversation ID"]].append(row)
        self.contact_of_session = {row["Session ID"]: row for row in self.contacts if row["Session ID"]}

    def d(self, brand: str) -> timedelta:
        return self.durable.get(brand, timedelta(days=7))

    def r(self, brand: str) -> timedelta:
        return self.recontact.get(brand, timedelta(hours=24))

    # --- per-row facts --------------------------------------------------------------------------------------

    def durable_resolution(self, session: Row) -> str:
        """Issue 26 point 2: for a resolved session, false when the same customer has another session or a contact
        created in [end, end + D]; true once the as-of time is later than end + D with none; else empty."""
        if session["Was Resolved"] != "true":
            return ""
        end, window = at(session["Ended At"]), self.d(session["Brand"])
        others = self.created[session["Brand"], session["Customer ID"]]
        if any(within(created, end, end + window) for created, key in others if key != session["Session ID"]):
            return "false"
        return "true" if self.as_of > end + window else ""

    def resolution_class(self, session: Row) -> str:
        if session["Was Resolved"] != "true":
            return ""
        durable = self.durable_resolution(session)
        return {"positive": "confirmed", "negative": "disputed"}.get(feedback_of(session)) or {
            "false": "came_back", "true": "durable"}.get(durable, "pending")

    def automated_resolution(self, conversation: Row) -> str:
        """Issue 26 point 3 (decision 116): empty while OPEN; false with a contact, no resolved session, or a resolved
        session that came back; true when every resolved session is durable; else empty (pending)."""
        if conversation["Status"] != "CLOSED":
            return ""
        resolved = [s for s in self.sessions_of[conversation["Conversation ID"]] if s["Was Resolved"] == "true"]
        assert len(resolved) == int(conversation["Sessions Resolved"])
        if int(conversation["Count of Contacts"]) > 0 or not resolved:
            return "false"
        durable = [self.durable_resolution(s) for s in resolved]
        if "false" in durable:
            return "false"
        return "true" if all(value == "true" for value in durable) else ""

    def closed_at(self, contact: Row) -> datetime | None:
        """L: the contact's conversation's Last Closed At, when it is CLOSED at the as-of time."""
        conversation = self.conversation[contact["Conversation ID"]]
        return at(conversation["Last Closed At"]) if conversation["Status"] == "CLOSED" else None

    def resolved_first_time(self, contact: Row) -> str:
        """Issue 26 point 4 (decision 117): the conversation closed, and no other contact of the customer was created
        from this one's creation to L + R."""
        closed = self.closed_at(contact)
        if closed is None:
            return ""
        start, end = at(contact["Created At"]), closed + self.r(contact["Brand"])
        others = self.contact_created[contact["Brand"], contact["Customer ID"]]
        if any(within(created, start, end) for created, key in others if key != contact["Contact ID"]):
            return "false"
        return "true" if self.as_of > end else ""

    def came_back(self, contact: Row) -> str:
        """The funnel's last step: a session or a contact of the customer created in [L, L + D]."""
        closed = self.closed_at(contact)
        if closed is None:
            return ""
        end = closed + self.d(contact["Brand"])
        if any(within(created, closed, end) for created, _ in self.created[contact["Brand"], contact["Customer ID"]]):
            return "true"
        return "false" if self.as_of > end else ""

    def first_ai_agent(self, conversation: Row) -> str:
        """automation-summary by ai_agent: the Gladly Agent of the conversation's first session (by creation, then
        id) that names one."""
        named = sorted((at(s["Created At"]), s["Session ID"], s["Gladly Agent"])
                       for s in self.sessions_of[conversation["Conversation ID"]] if s["Gladly Agent"])
        return named[0][2] if named else ""


# --- the reports ------------------------------------------------------------------------------------------------

def guides_of(session: Row) -> list[str]:
    return session["Guides Used"].split(", ") if session["Guides Used"] else [""]


SESSION_DIMENSION: dict[str, Callable[[Row], list[str]]] = {
    "channel": lambda s: [s["Channel"]],
    "ai_agent": lambda s: [s["Gladly Agent"]],
    "guide": guides_of,
    "handoff_category": lambda s: [s["Handoff Category"]],
}


def outcomes_summary(rows: Rows, sessions: list[Row], period: str, by: str | None) -> list[list[str]]:
    def keys(s: Row) -> list[tuple[str, ...]]:
        label = period_label(s["Created At"], period)
        return [(label,)] if by is None else [(label, value) for value in SESSION_DIMENSION[by](s)]

    table = []
    for key, group in grouped(sessions, keys):
        classes = Counter(rows.resolution_class(s) for s in group)
        durable = [rows.durable_resolution(s) for s in group]
        feedback = [feedback_of(s) for s in group if feedback_of(s)]
        table.append([
            *key, str(sum(s["Was Resolved"] == "true" for s in group)),
            *(str(classes[name]) for name in ("confirmed", "disputed", "came_back", "durable", "pending")),
            rate(durable.count("true"), durable.count("true") + durable.count("false")),
            str(len(feedback)), rate(feedback.count("negative"), len(feedback)),
        ])
    return table


def guide_effectiveness(rows: Rows, sessions: list[Row]) -> list[list[str]]:
    table = []
    for (guide,), group in grouped(sessions, lambda s: [(g,) for g in guides_of(s)]):
        resolved = sum(s["Was Resolved"] == "true" for s in group)
        handed = [s for s in group if s["Was Handed Off"] == "true"]
        responded_handed = sum(s["Was Responded To"] == "true" for s in handed)
        closed = sum(s["Was Handed Off"] != "" for s in group)
        durable = [rows.durable_resolution(s) for s in group]
        categories = Counter(s["Handoff Category"] for s in handed if s["Handoff Category"])
        top = sorted(categories.items(), key=lambda item: (-item[1], item[0]))[:3]
        feedback = [feedback_of(s) for s in group if feedback_of(s)]
        recontact = [s["Was Recontacted Resolution - 24 Hours"] for s in group]
        table.append([
            guide, str(len(group)), rate(resolved, resolved + responded_handed),
            rate(durable.count("true"), durable.count("true") + durable.count("false")),
            rate(len(handed), closed), ", ".join(f"{name} ({n})" for name, n in top),
            rate(feedback.count("negative"), len(feedback)),
            rate(recontact.count("true"), recontact.count("true") + recontact.count("false")),
        ])
    return table


CONVERSATION_DIMENSION: dict[str, Callable[[Rows, Row], str]] = {
    "channel": lambda rows, c: c["First Channel"],
    "ai_agent": lambda rows, c: rows.first_ai_agent(c),
    "brand": lambda rows, c: c["Brand"],
}


def automation_summary(rows: Rows, conversations: list[Row], period: str, by: str | None) -> list[list[str]]:
    closed = [c for c in conversations if c["Status"] == "CLOSED"]

    def keys(c: Row) -> list[tuple[str, ...]]:
        label = period_label(c["Created At"], period)
        return [(label,)] if by is None else [(label, CONVERSATION_DIMENSION[by](rows, c))]

    table = []
    for key, group in grouped(closed, keys):
        automated = [rows.automated_resolution(c) for c in group]
        pending = automated.count("")
        with_ai = sum(int(c["Count of Sessions"]) > 0 for c in group)
        table.append([
            *key, str(len(group)), str(with_ai), str(sum(c["Handled By"] == "team_only" for c in group)),
            str(sum(c["Handled By"] == "ai_then_team" for c in group)), str(automated.count("true")), str(pending),
            rate(automated.count("true"), len(group) - pending), rate(with_ai - pending, len(group) - pending),
        ])
    return table


def handoff_funnel(rows: Rows, sessions: list[Row], period: str) -> list[list[str]]:
    handed = [s for s in sessions if s["Was Handed Off"] == "true"]
    table = []
    for key, group in grouped(handed, lambda s: [(period_label(s["Created At"], period), s["Handoff Category"])]):
        contacts = [rows.contact_of_session[s["Session ID"]] for s in group if s["Session ID"] in rows.contact_of_session]
        answered = [c for c in contacts if c["First Response Seconds"]]
        first_time = [c for c in answered if c["Resolved First Time"] == "true"]
        table.append([
            *key, str(len(group)), str(len(contacts)), str(len(answered)),
            median([int(c["First Response Seconds"]) for c in answered]), str(len(first_time)),
            str(sum(rows.came_back(c) == "true" for c in first_time)),
        ])
    return table
