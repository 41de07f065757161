"""The derivation kernel: SPEC 3 as one compiled state machine over sorted event arrays.

Both engines call `run_kernel`. Its input is one or more customers' events, already sorted by
(brand, customer, occurred_at, type rank, event_id) and described by plain numeric arrays; its output
is numeric too — which session, contact and conversation each event belongs to, and per entity the
positions of the events that carry its strings. Engines turn positions back into strings with
columnar `take`, so the rules of SPEC 3 live here and nowhere else.

Times are int64 microseconds since the epoch (UTC). Positions index the sorted input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

NONE = np.iinfo(np.int64).min  # an absent time or position

# Type rank (SPEC 2.4, with Appendix B's feedback last) — the codes the engines pass in `kind`.
REOPEN, CUSTOMER, AI, HANDOFF, AGENT, CONTACT_END, CLOSE, FEEDBACK = range(8)
# `route` codes
ROUTE_NONE, ROUTE_AI, ROUTE_TEAM = 0, 1, 2

_S_HANDOFF, _S_TAKEOVER, _S_CLOSE, _S_INACTIVITY = 0, 1, 2, 3
_C_HANDOFF, _C_INBOUND, _C_OUTBOUND = 0, 1, 2
_CE_END, _CE_CLOSE, _CE_INACTIVITY = 0, 1, 2
_A_END, _A_CLOSE_NO_CONV, _A_CLOSE_LATE, _A_REOPEN, _A_HANDOFF, _A_FEEDBACK = 0, 1, 2, 3, 4, 5


@dataclass
class KernelInput:
    """Sorted events of whole customers. `group_starts[g]` is the first position of customer g;
    the settings arrays (microseconds) are per customer group."""

    group_starts: np.ndarray  # int64, len = groups + 1 (last = n)
    ts: np.ndarray  # int64 µs
    kind: np.ndarray  # int8 type rank
    route: np.ndarray  # int8
    to_ai: np.ndarray  # bool: the event's channel is one of its brand's ai_channels
    has_channel: np.ndarray  # bool
    has_ai_agent: np.ndarray  # bool
    has_inbox: np.ndarray  # bool
    session_inactivity: np.ndarray  # int64 per group
    contact_inactivity: np.ndarray
    conversation_window: np.ndarray
    recontact_window: np.ndarray
    feedback_window: np.ndarray  # F (docs/outcomes.md)


@dataclass
class KernelOutput:
    """Per event and per derived entity, numeric. Entity arrays are trimmed to their counts."""

    ev_session: np.ndarray  # int64 per event: session index or -1
    ev_contact: np.ndarray  # contact index or -1
    ev_conversation: np.ndarray  # conversation of the interaction the event belongs to, or -1
    # sessions
    s_first: np.ndarray
    s_conversation: np.ndarray
    s_last_activity: np.ndarray
    s_end: np.ndarray
    s_end_reason: np.ndarray
    s_handoff: np.ndarray  # position of the ending handoff, or NONE
    s_takeover_source: np.ndarray  # contact source code of a team takeover, or -1
    s_first_ai: np.ndarray  # time of the first ai_message, or NONE
    s_channel: np.ndarray  # position of its first event with a channel, or NONE
    s_ai_agent: np.ndarray  # position of its first event with an ai_agent, or NONE
    s_inbox: np.ndarray  # position of its first event with an inbox, or NONE
    s_recontacted: np.ndarray  # bool
    s_recontact_known: np.ndarray  # end + R
    s_feedback: np.ndarray  # position of the last feedback attached to it, or NONE
    # contacts
    c_first: np.ndarray
    c_conversation: np.ndarray
    c_session: np.ndarray  # linked session index, or -1
    c_source: np.ndarray
    c_channel: np.ndarray  # position, or NONE
    c_first_response: np.ndarray  # time, or NONE
    c_last_activity: np.ndarray
    c_end: np.ndarray
    c_end_reason: np.ndarray
    c_customer_messages: np.ndarray
    c_agent_messages: np.ndarray
    c_inbox: np.ndarray  # position of its first event with an inbox, or NONE
    c_feedback: np.ndarray  # position of the last feedback attached to it, or NONE
    # conversations
    v_first: np.ndarray  # position of its first interaction's first event
    v_created: np.ndarray
    v_end: np.ndarray  # latest end of its interactions
    v_reopens: np.ndarray
    v_sessions: np.ndarray
    v_contacts: np.ndarray
    v_linked: np.ndarray  # bool: a contact linked to one of its sessions
    v_inbox: np.ndarray  # position of the inbox of its first interaction, or NONE
    # closes (counted or moved), reopens, anomalies
    close_conversation: np.ndarray
    close_at: np.ndarray
    close_counted: np.ndarray
    close_inbox: np.ndarray  # position of the inbox of the last interaction started by the close, or NONE
    reopen_conversation: np.ndarray
    reopen_at: np.ndarray
    anomaly_pos: np.ndarray
    anomaly_kind: np.ndarray


@numba.njit(cache=True, nogil=True)
def _interaction(index, contact):
    """An interaction as one number: a session's or a contact's index, and which (`_inbox_of` reads it)."""
    return 2 * index + (1 if contact else 0)


def _inbox_of(interaction: np.ndarray, s_inbox: np.ndarray, c_inbox: np.ndarray) -> np.ndarray:
    """The inbox positions of interactions numbered by `_interaction` (-1, none: NONE)."""
    inbox = np.full(interaction.shape[0], NONE, dtype=np.int64)
    contact = (interaction >= 0) & ((interaction & 1) == 1)
    session = (interaction >= 0) & ((interaction & 1) == 0)
    inbox[contact] = c_inbox[interaction[contact] >> 1]
    inbox[session] = s_inbox[interaction[session] >> 1]
    return inbox


@numba.njit(cache=True, nogil=True)
def _kernel(  # noqa: C901 — one state machine, read top to bottom against SPEC 3
    group_starts, ts, kind, route, to_ai, has_channel, has_ai_agent, has_inbox, S_g, C_g, W_g, R_g, F_g,
    ev_s, ev_c, ev_v,
    s_first, s_conv, s_last, s_end, s_reason, s_handoff, s_take, s_first_ai, s_chan, s_agent, s_inbox, s_recon,
    s_known, s_fb,
    c_first, c_conv, c_ses, c_src, c_chan, c_resp, c_last, c_end, c_reason, c_cmsg, c_amsg, c_inbox, c_fb,
    v_first, v_created, v_end, v_reopens, v_ses, v_ctc, v_linked, v_ia,
    k_conv, k_at, k_counted, k_ia, r_conv, r_at, a_pos, a_kind,
):
    n_s = 0
    n_c = 0
    n_v = 0
    n_k = 0
    n_r = 0
    n_a = 0
    n_groups = group_starts.shape[0] - 1
    for g in range(n_groups):
        S = S_g[g]
        C = C_g[g]
        W = W_g[g]
        R = R_g[g]
        F = F_g[g]
        first_session = n_s
        first_contact = n_c
        open_s = -1
        open_c = -1
        conv = -1  # the customer's latest conversation
        conv_closed = False
        last_close = NONE
        reopen_until = NONE  # a conversation_reopen keeps the window open until at least this
        pending = NONE  # the conversation's close time when its last interaction ended, not yet final
        # The interaction that started last (in event order), as _interaction(): what a close's inbox is
        # read from (decision 88). Always one of the latest conversation's.
        last_started = -1
        # Where the last session and the last contact ended in SPEC 2.4's order, for a feedback that comes after
        # both (decision 108): the position of the event that ended it, or -1 for an end by inactivity, which
        # comes before every event at its instant.
        s_end_at = -1
        c_end_at = -1
        for i in range(group_starts[g], group_starts[g + 1]):
            t = ts[i]
            k = kind[i]

            # 1. Inactivity ends that fall at or before t, earliest first (SPEC 3: an event at or
            #    after an end time belongs to what comes next).
            while True:
                s_exp = s_last[open_s] + S if open_s >= 0 else NONE
                c_exp = c_last[open_c] + C if open_c >= 0 else NONE
                if open_s >= 0 and s_exp <= t and (open_c < 0 or s_exp <= c_exp):
                    s_end[open_s] = s_exp
                    s_reason[open_s] = _S_INACTIVITY
                    s_end_at = -1
                    open_s = -1
                    if open_c < 0:
                        pending = s_exp
                elif open_c >= 0 and c_exp <= t:
                    c_end[open_c] = c_exp
                    c_reason[open_c] = _CE_INACTIVITY
                    c_end_at = -1
                    open_c = -1
                    if open_s < 0:
                        pending = c_exp
                else:
                    break

            # A feedback is no activity: it attaches to an interaction, or is an anomaly, and changes
            # nothing else (docs/outcomes.md, Feedback). Every end at or before t is known by now: an
            # interaction still open is open at t, and one that ended, ended at or before t.
            if k == FEEDBACK:
                attach_s = -1
                attach_c = -1
                if open_s >= 0 and open_c >= 0:  # both open: the one that started last
                    if s_first[open_s] > c_first[open_c]:
                        attach_s = open_s
                    else:
                        attach_c = open_c
                elif open_s >= 0:
                    attach_s = open_s
                elif open_c >= 0:
                    attach_c = open_c
                else:
                    # The one that ended last: sessions, like contacts, never overlap, so it is the last
                    # session or the last contact. At one instant, the one whose end came later in SPEC 2.4's
                    # order (an end by inactivity before every event then); ended together (one close, or two
                    # inactivity ends), the one that started last (decision 108).
                    last_s = n_s - 1 if n_s > first_session else -1
                    last_c = n_c - 1 if n_c > first_contact else -1
                    if last_s >= 0 and (last_c < 0 or s_end[last_s] > c_end[last_c]
                                        or (s_end[last_s] == c_end[last_c]
                                            and (s_end_at > c_end_at
                                                 or (s_end_at == c_end_at and s_first[last_s] > c_first[last_c])))):
                        if t - s_end[last_s] <= F:
                            attach_s = last_s
                    elif last_c >= 0 and t - c_end[last_c] <= F:
                        attach_c = last_c
                if attach_s >= 0:
                    s_fb[attach_s] = i  # the last given wins: events come in SPEC 2.4's order
                elif attach_c >= 0:
                    c_fb[attach_c] = i
                else:
                    a_pos[n_a] = i
                    a_kind[n_a] = _A_FEEDBACK
                    n_a += 1
                continue

            # 2. What this event does: start a session, start a contact (with its source), or neither.
            starts_session = False
            starts_contact = -1
            if k == CUSTOMER:
                if open_c < 0 and not (open_s >= 0 and route[i] != ROUTE_TEAM):
                    if route[i] == ROUTE_AI or (route[i] == ROUTE_NONE and to_ai[i]):
                        starts_session = True
                    else:
                        starts_contact = _C_INBOUND
            elif k == AI:
                starts_session = open_s < 0
            elif k == HANDOFF:
                starts_session = open_s < 0
                if open_c < 0:
                    starts_contact = _C_HANDOFF
            elif k == AGENT:
                if open_c < 0:
                    starts_contact = _C_OUTBOUND
            starts = starts_session or starts_contact >= 0

            # 3. A pending close becomes final unless an interaction starts at that very instant
            #    (SPEC 3.3) or a reopen at that instant precedes such a start.
            if pending != NONE:
                if starts and pending == t:
                    pending = NONE
                elif not (k == REOPEN and pending == t):
                    k_conv[n_k] = conv
                    k_at[n_k] = pending
                    k_counted[n_k] = True
                    k_ia[n_k] = last_started
                    n_k += 1
                    conv_closed = True
                    last_close = pending
                    reopen_until = NONE
                    pending = NONE

            # 4. A new interaction joins the latest conversation, reopens it, or starts a new one.
            if starts and open_s < 0 and open_c < 0:
                if conv >= 0 and not conv_closed:
                    pass  # same instant as the last end: the conversation never closed
                elif conv >= 0 and (t < last_close + W or (reopen_until != NONE and t < reopen_until)):
                    conv_closed = False
                    reopen_until = NONE
                    v_reopens[conv] += 1
                    r_conv[n_r] = conv
                    r_at[n_r] = t
                    n_r += 1
                else:
                    conv = n_v
                    n_v += 1
                    v_first[conv] = i
                    v_created[conv] = t
                    v_end[conv] = t
                    v_reopens[conv] = 0
                    v_ses[conv] = 0
                    v_ctc[conv] = 0
                    v_linked[conv] = False
                    v_ia[conv] = -1
                    conv_closed = False
                    reopen_until = NONE

            if starts_session:
                open_s = n_s
                n_s += 1
                s_first[open_s] = i
                s_conv[open_s] = conv
                s_last[open_s] = t
                s_end[open_s] = NONE
                s_reason[open_s] = -1
                s_handoff[open_s] = NONE
                s_take[open_s] = -1
                s_first_ai[open_s] = NONE
                s_chan[open_s] = NONE
                s_agent[open_s] = NONE
                s_inbox[open_s] = NONE
                s_recon[open_s] = False
                s_known[open_s] = NONE
                s_fb[open_s] = NONE
                v_ses[conv] += 1
                last_started = _interaction(open_s, False)
                if v_ia[conv] < 0:
                    v_ia[conv] = last_started

            # 5. Session activity.
            if open_s >= 0 and (k == AI or k == HANDOFF or (k == CUSTOMER and open_c < 0 and starts_contact < 0)):
                s = open_s
                ev_s[i] = s
                ev_v[i] = s_conv[s]
                s_last[s] = t
                if s_chan[s] == NONE and has_channel[i]:
                    s_chan[s] = i
                if s_agent[s] == NONE and has_ai_agent[i] and (k == AI or k == HANDOFF):
                    s_agent[s] = i
                if s_inbox[s] == NONE and has_inbox[i]:
                    s_inbox[s] = i
                if k == AI and s_first_ai[s] == NONE:
                    s_first_ai[s] = t
                if k == HANDOFF:
                    s_end[s] = t
                    s_end_at = i
                    s_reason[s] = _S_HANDOFF
                    s_handoff[s] = i
                    open_s = -1
                    if open_c >= 0:
                        a_pos[n_a] = i
                        a_kind[n_a] = _A_HANDOFF
                        n_a += 1
                    else:
                        starts_contact = _C_HANDOFF
                        open_c = n_c  # linked below, the session still known as `s`
                        n_c += 1
                        c_first[open_c] = i
                        c_conv[open_c] = s_conv[s]
                        c_ses[open_c] = s
                        c_src[open_c] = _C_HANDOFF
                        c_chan[open_c] = s_chan[s]
                        c_resp[open_c] = NONE
                        c_last[open_c] = t
                        c_end[open_c] = NONE
                        c_reason[open_c] = -1
                        c_cmsg[open_c] = 0
                        c_amsg[open_c] = 0
                        c_inbox[open_c] = i if has_inbox[i] else NONE  # the handoff is its first event
                        c_fb[open_c] = NONE
                        v_ctc[s_conv[s]] += 1
                        v_linked[s_conv[s]] = True
                        last_started = _interaction(open_c, True)
                        ev_c[i] = open_c
                continue

            # 6. A contact starting from an inbound message or an outbound agent message; a team
            #    takeover when a session is open (SPEC 3.2).
            if starts_contact == _C_INBOUND or starts_contact == _C_OUTBOUND:
                c = n_c
                n_c += 1
                c_first[c] = i
                c_conv[c] = conv
                c_ses[c] = -1
                c_src[c] = starts_contact
                c_chan[c] = i if has_channel[i] else NONE
                c_resp[c] = NONE
                c_last[c] = t
                c_end[c] = NONE
                c_reason[c] = -1
                c_cmsg[c] = 0
                c_amsg[c] = 0
                c_inbox[c] = NONE  # its first event is its activity, below
                c_fb[c] = NONE
                v_ctc[conv] += 1
                last_started = _interaction(c, True)
                if v_ia[conv] < 0:
                    v_ia[conv] = last_started
                if open_s >= 0:
                    s_end[open_s] = t
                    s_end_at = i
                    s_reason[open_s] = _S_TAKEOVER
                    s_take[open_s] = starts_contact
                    c_ses[c] = open_s
                    v_linked[conv] = True
                    open_s = -1
                open_c = c

            # 7. Contact activity.
            if open_c >= 0 and (k == CUSTOMER or k == AGENT or k == CONTACT_END):
                c = open_c
                ev_c[i] = c
                ev_v[i] = c_conv[c]
                c_last[c] = t
                if c_chan[c] == NONE and has_channel[i] and c_src[c] != _C_HANDOFF:
                    c_chan[c] = i  # a handoff contact keeps its session's channel (SPEC 4.4)
                if c_inbox[c] == NONE and has_inbox[i]:
                    c_inbox[c] = i  # the inbox has no such rule: its own first event's (decision 86)
                if k == CUSTOMER:
                    c_cmsg[c] += 1
                elif k == AGENT:
                    c_amsg[c] += 1
                    if c_resp[c] == NONE and c_src[c] != _C_OUTBOUND:
                        c_resp[c] = t
                else:
                    c_end[c] = t
                    c_end_at = i
                    c_reason[c] = _CE_END
                    open_c = -1
                    if open_s < 0:
                        pending = t
                continue

            if k == CONTACT_END:
                a_pos[n_a] = i
                a_kind[n_a] = _A_END
                n_a += 1
            elif k == CLOSE:
                if open_s >= 0 or open_c >= 0:
                    if open_s >= 0:
                        s_end[open_s] = t
                        s_end_at = i
                        s_reason[open_s] = _S_CLOSE
                        open_s = -1
                    if open_c >= 0:
                        c_end[open_c] = t
                        c_end_at = i
                        c_reason[open_c] = _CE_CLOSE
                        open_c = -1
                    k_conv[n_k] = conv
                    k_at[n_k] = t
                    k_counted[n_k] = True
                    k_ia[n_k] = last_started
                    n_k += 1
                    conv_closed = True
                    last_close = t
                    reopen_until = NONE
                elif conv < 0:
                    a_pos[n_a] = i
                    a_kind[n_a] = _A_CLOSE_NO_CONV
                    n_a += 1
                elif t < last_close + W or (reopen_until != NONE and t < reopen_until):
                    k_conv[n_k] = conv
                    k_at[n_k] = t
                    k_counted[n_k] = False
                    k_ia[n_k] = last_started
                    n_k += 1
                    last_close = t
                    reopen_until = NONE
                else:
                    a_pos[n_a] = i
                    a_kind[n_a] = _A_CLOSE_LATE
                    n_a += 1
            elif k == REOPEN:
                if conv < 0:
                    a_pos[n_a] = i
                    a_kind[n_a] = _A_REOPEN
                    n_a += 1
                elif conv_closed or pending != NONE:
                    if reopen_until == NONE or t + W > reopen_until:
                        reopen_until = t + W

        # End of the customer's events: what is still open ends at its expected end, in time order.
        while open_s >= 0 or open_c >= 0:
            s_exp = s_last[open_s] + S if open_s >= 0 else NONE
            c_exp = c_last[open_c] + C if open_c >= 0 else NONE
            if open_s >= 0 and (open_c < 0 or s_exp <= c_exp):
                s_end[open_s] = s_exp
                s_reason[open_s] = _S_INACTIVITY
                open_s = -1
                if open_c < 0:
                    pending = s_exp
            else:
                c_end[open_c] = c_exp
                c_reason[open_c] = _CE_INACTIVITY
                open_c = -1
                if open_s < 0:
                    pending = c_exp
        if pending != NONE:
            k_conv[n_k] = conv
            k_at[n_k] = pending
            k_counted[n_k] = True
            k_ia[n_k] = last_started
            n_k += 1

        # Per customer: recontact (SPEC 3.6) — another session created in [end, end + R], in any
        # conversation or channel. Sessions never overlap, so that is the next one, or — when
        # sessions start and end at one instant — the previous one, created exactly at this end.
        for s in range(first_session, n_s):
            s_known[s] = s_end[s] + R
            if s + 1 < n_s:
                nxt = ts[s_first[s + 1]]
                s_recon[s] = s_end[s] <= nxt and nxt <= s_end[s] + R
            if s > first_session and ts[s_first[s - 1]] == s_end[s]:
                s_recon[s] = True

    # Conversation ends: the latest end of their interactions.
    for s in range(n_s):
        if s_end[s] > v_end[s_conv[s]]:
            v_end[s_conv[s]] = s_end[s]
    for c in range(n_c):
        if c_end[c] > v_end[c_conv[c]]:
            v_end[c_conv[c]] = c_end[c]
    return n_s, n_c, n_v, n_k, n_r, n_a


def run_kernel(inp: KernelInput) -> KernelOutput:
    """Derive the sessions, contacts and conversations of the given customers (SPEC 3)."""
    n = inp.ts.shape[0]
    i64 = np.int64

    def ints(size: int) -> np.ndarray:
        return np.empty(size, dtype=i64)

    ev_s = np.full(n, -1, dtype=i64)
    ev_c = np.full(n, -1, dtype=i64)
    ev_v = np.full(n, -1, dtype=i64)
    s_first, s_conv, s_last, s_end, s_reason, s_handoff = (ints(n) for _ in range(6))
    s_take = np.empty(n, dtype=np.int8)
    s_first_ai, s_chan, s_agent, s_inbox, s_known, s_fb = (ints(n) for _ in range(6))
    s_recon = np.zeros(n, dtype=np.bool_)
    # first, conv, session, source, channel, response, last, end, reason, msgs x2, inbox, feedback
    c = [ints(n) for _ in range(13)]
    v = [ints(n) for _ in range(6)]  # first, created, end, reopens, sessions, contacts
    v_linked = np.zeros(n, dtype=np.bool_)
    v_ia = ints(n)
    k_conv, k_at, k_ia = ints(2 * n), ints(2 * n), ints(2 * n)
    k_counted = np.zeros(2 * n, dtype=np.bool_)
    r_conv, r_at = ints(n), ints(n)
    a_pos, a_kind = ints(n), np.empty(n, dtype=np.int8)

    def typed(values: np.ndarray, dtype: type) -> np.ndarray:  # a copy only when the type differs
        return np.ascontiguousarray(values, dtype=dtype)

    counts = _kernel(  # type: ignore[call-arg]
        typed(inp.group_starts, i64), typed(inp.ts, i64), typed(inp.kind, np.int8), typed(inp.route, np.int8),
        typed(inp.to_ai, np.bool_), typed(inp.has_channel, np.bool_), typed(inp.has_ai_agent, np.bool_),
        typed(inp.has_inbox, np.bool_),
        typed(inp.session_inactivity, i64), typed(inp.contact_inactivity, i64),
        typed(inp.conversation_window, i64), typed(inp.recontact_window, i64), typed(inp.feedback_window, i64),
        ev_s, ev_c, ev_v,
        s_first, s_conv, s_last, s_end, s_reason, s_handoff, s_take, s_first_ai, s_chan, s_agent, s_inbox, s_recon,
        s_known, s_fb,
        *c, *v, v_linked, v_ia, k_conv, k_at, k_counted, k_ia, r_conv, r_at, a_pos, a_kind,
    )
    n_s, n_c, n_v, n_k, n_r, n_a = (int(x) for x in counts)
    s_inbox, c_inbox = s_inbox[:n_s], c[11][:n_c]
    return KernelOutput(
        ev_session=ev_s, ev_contact=ev_c, ev_conversation=ev_v,
        s_first=s_first[:n_s], s_conversation=s_conv[:n_s], s_last_activity=s_last[:n_s], s_end=s_end[:n_s],
        s_end_reason=s_reason[:n_s], s_handoff=s_handoff[:n_s], s_takeover_source=s_take[:n_s],
        s_first_ai=s_first_ai[:n_s], s_channel=s_chan[:n_s], s_ai_agent=s_agent[:n_s], s_inbox=s_inbox,
        s_recontacted=s_recon[:n_s], s_recontact_known=s_known[:n_s], s_feedback=s_fb[:n_s],
        c_first=c[0][:n_c], c_conversation=c[1][:n_c], c_session=c[2][:n_c], c_source=c[3][:n_c],
        c_channel=c[4][:n_c], c_first_response=c[5][:n_c], c_last_activity=c[6][:n_c], c_end=c[7][:n_c],
        c_end_reason=c[8][:n_c], c_customer_messages=c[9][:n_c], c_agent_messages=c[10][:n_c], c_inbox=c_inbox,
        c_feedback=c[12][:n_c],
        v_first=v[0][:n_v], v_created=v[1][:n_v], v_end=v[2][:n_v], v_reopens=v[3][:n_v],
        v_sessions=v[4][:n_v], v_contacts=v[5][:n_v], v_linked=v_linked[:n_v],
        v_inbox=_inbox_of(v_ia[:n_v], s_inbox, c_inbox),
        close_conversation=k_conv[:n_k], close_at=k_at[:n_k], close_counted=k_counted[:n_k],
        close_inbox=_inbox_of(k_ia[:n_k], s_inbox, c_inbox),
        reopen_conversation=r_conv[:n_r], reopen_at=r_at[:n_r],
        anomaly_pos=a_pos[:n_a], anomaly_kind=a_kind[:n_a],
    )


@numba.njit(cache=True, nogil=True)
def distinct_in_order(owner: np.ndarray, row: np.ndarray, bounds: np.ndarray, codes: np.ndarray, n_codes: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per owner, the distinct codes in order of first appearance (guides of a session's AI replies,
    team members of a contact). Item i belongs to `owner[i]` and holds codes[bounds[row[i]]:bounds[row[i] + 1]]
    (nothing when row[i] < 0). Items come in event order; an owner's items are contiguous because
    sessions, like contacts, never overlap. Returns (owner, code) pairs grouped by owner."""
    seen = np.full(max(n_codes, 1), -1, dtype=np.int64)
    m = 0
    for i in range(owner.shape[0]):
        if row[i] >= 0:
            m += bounds[row[i] + 1] - bounds[row[i]]
    out_owner = np.empty(m, dtype=np.int64)
    out_code = np.empty(m, dtype=np.int64)
    m = 0
    for i in range(owner.shape[0]):
        o = owner[i]
        r = row[i]
        if r < 0:
            continue
        for j in range(bounds[r], bounds[r + 1]):
            c = codes[j]
            if c >= 0 and seen[c] != o:
                seen[c] = o
                out_owner[m] = o
                out_code[m] = c
                m += 1
    return out_owner[:m], out_code[:m]


@numba.njit(cache=True, nogil=True)
def conversation_channels(ev_conversation: np.ndarray, channel: np.ndarray, n_conversations: int, n_codes: int
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """First and last position carrying a channel per conversation (SPEC 4.6), over the events of its
    interactions in event order, and its distinct channels in order of first appearance as
    (conversation, code) pairs grouped by conversation (a conversation's events are contiguous, as
    in `distinct_in_order`). One pass over the events, without selecting them first."""
    first = np.full(n_conversations, NONE, dtype=np.int64)
    last = np.full(n_conversations, NONE, dtype=np.int64)
    seen = np.full(max(n_codes, 1), -1, dtype=np.int64)
    pair_owner = np.empty(ev_conversation.shape[0], dtype=np.int64)
    pair_code = np.empty(ev_conversation.shape[0], dtype=np.int64)
    m = 0
    for i in range(ev_conversation.shape[0]):
        v = ev_conversation[i]
        c = channel[i]
        if v < 0 or c < 0:
            continue
        if first[v] == NONE:
            first[v] = i
        last[v] = i
        if seen[c] != v:
            seen[c] = v
            pair_owner[m] = v
            pair_code[m] = c
            m += 1
    return first, last, pair_owner[:m], pair_code[:m]


@numba.njit(cache=True, nogil=True)
def positions_in_runs(owner: np.ndarray) -> np.ndarray:
    """Each row's position (0, 1, …) within its run of equal owners (a session's message sequence)."""
    seq = np.empty(owner.shape[0], dtype=np.int32)
    for i in range(owner.shape[0]):
        seq[i] = seq[i - 1] + 1 if i > 0 and owner[i] == owner[i - 1] else 0
    return seq


@numba.njit(cache=True, nogil=True)
def first_created(q_group: np.ndarray, q_time: np.ndarray, q_self: np.ndarray, a_group: np.ndarray,
                  a_created: np.ndarray) -> np.ndarray:
    """Per query q, the creation time of the first of the interactions `a` of its customer created at or after
    `q_time[q]`, other than the one numbered `q_self[q]` (-1: none), NONE when there is none. Queries and
    interactions come in customer order (`*_group`), each customer's interactions in the order they were
    created; the query itself is one of them only when it is `q_self`."""
    n_q, n_a = q_group.shape[0], a_group.shape[0]
    found = np.full(n_q, NONE, dtype=np.int64)
    a_lo = a_hi = 0
    for q in range(n_q):
        g = q_group[q]
        if q == 0 or g != q_group[q - 1]:  # a new customer: where its interactions are
            a_lo = a_hi
            while a_lo < n_a and a_group[a_lo] < g:
                a_lo += 1
            a_hi = a_lo
            while a_hi < n_a and a_group[a_hi] == g:
                a_hi += 1
        # The first created then or later; when that is the query's own, the next one, created then or later too.
        p = a_lo + np.searchsorted(a_created[a_lo:a_hi], q_time[q])
        if p == q_self[q]:
            p += 1
        if p < a_hi:
            found[q] = a_created[p]
    return found


def earliest(*times: np.ndarray) -> np.ndarray:
    """The earliest of times given per row, NONE where every one is NONE."""
    late = np.iinfo(np.int64).max
    least = np.minimum.reduce([np.where(t == NONE, late, t) for t in times])
    return np.where(least == late, NONE, least)
