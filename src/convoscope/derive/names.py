"""The names derivation gives things (SPEC 3), in the order of the kernel's codes for them.

Kept apart from the kernel so that reports can validate and explain these values without loading
the compiler.
"""

from __future__ import annotations

SESSION_END_REASONS = ("handoff", "team_takeover", "conversation_close", "inactivity")
CONTACT_SOURCES = ("handoff", "inbound", "outbound")
CONTACT_END_REASONS = ("contact_end", "conversation_close", "inactivity")
HANDLED_BY = ("team_only", "ai_only", "ai_then_team", "ai_and_team")
ANOMALIES = {  # SPEC 3.3: each anomaly's name and what it means
    "contact_end_without_open_contact": "a contact_end arrived while no contact was open",
    "close_without_conversation": "a conversation_close arrived before the customer had any conversation",
    "close_after_window": "a conversation_close arrived after the conversation's reopen window had passed",
    "reopen_without_conversation": "a conversation_reopen arrived before the customer had any conversation",
    "handoff_while_contact_open": "a handoff arrived while a contact was open; it started no contact",
    # docs/outcomes.md, Feedback
    "feedback_without_interaction": "a feedback arrived when no interaction of the customer was open and none had "
                                    "ended within the feedback window before it",
}
ANOMALY_KINDS = tuple(ANOMALIES)
