"""Who may see what (SPEC 6.4) and what they did with personal data (SPEC 6.5).

Users, their API tokens, web login sessions and the audit log live in the store next to the events.
Passwords are hashed with Argon2; API tokens and session ids are random 256-bit secrets of which only
a SHA-256 is kept, so a copy of the store gives nobody a way in.

Failed logins are throttled from the audit log itself: it records every failure (who was tried, from
which address) anyway, so the limit survives a restart of the server and needs no table of its own.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from convoscope.errors import ConvoscopeError, ParameterError, UsageError
from convoscope.store import Store, delete_derived, sql_string

# Permissions, and the roles that have them (SPEC 6.4; scheduling reports, issue 29: decision 156).
REPORTS, REPORTS_WITH_MESSAGES, CONVERSATIONS, SEND_EVENTS, ADMINISTER, SCHEDULE = (
    "reports", "reports_with_messages", "conversations", "send_events", "administer", "schedule")
ROLES: dict[str, frozenset[str]] = {
    "administrator": frozenset({REPORTS, REPORTS_WITH_MESSAGES, CONVERSATIONS, SEND_EVENTS, ADMINISTER, SCHEDULE}),
    "team_manager": frozenset({REPORTS, REPORTS_WITH_MESSAGES, CONVERSATIONS, SCHEDULE}),
    "analyst": frozenset({REPORTS, REPORTS_WITH_MESSAGES, CONVERSATIONS}),
    "agent": frozenset({CONVERSATIONS}),
}
ROLE_TITLES = {"administrator": "Administrator", "team_manager": "Team Manager", "analyst": "Analyst",
               "agent": "Agent"}
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}"
# An e-mail address as scheduled reports are sent to it: one local part and a domain with a dot, no spaces
# or angle brackets (a display name is not kept), at most 254 characters (RFC 5321's path limit).
EMAIL_PATTERN = r"[^@\s<>,;\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
SESSION_LIFETIME = timedelta(hours=12)
TOKEN_LIFETIME = timedelta(days=365)  # the default, and the longest `users token --expires-in` gives
# Failed logins (form, or HTTP Basic with a wrong token) allowed within LOGIN_WINDOW before further
# attempts are refused, even with the right secret: per user name, and per client address.
LOGIN_WINDOW = timedelta(minutes=15)
FAILURES_PER_NAME = 5
FAILURES_PER_CLIENT = 30

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this when the user does not exist keeps the answer's timing the same."""
    return _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class User:
    name: str
    role: str
    brands: tuple[str, ...] | None  # None: every brand
    email: str | None = None  # where scheduled reports reach them (issue 29)

    def can(self, permission: str) -> bool:
        return permission in ROLES[self.role]

    @property
    def role_title(self) -> str:
        return ROLE_TITLES[self.role]

    def visible_brands(self, store_brands: list[str]) -> list[str]:
        return list(store_brands) if self.brands is None else [b for b in store_brands if b in self.brands]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def parse_brands(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    brands = tuple(b.strip() for b in text.split(",") if b.strip())
    if not brands:
        raise ParameterError("brands", lambda n: f"{n('brands')} needs at least one brand, such as {n('brands')} acme,globex")
    return brands


def _row_user(row: tuple[Any, ...]) -> User:
    name, role, brands, *email = row
    return User(name, role, tuple(brands) if brands is not None else None, *email)


def check_email(address: str) -> str:
    """`address` when it is an e-mail address convoscope sends to (EMAIL_PATTERN), else a ParameterError."""
    if len(address) > 254 or not re.fullmatch(EMAIL_PATTERN, address):
        raise ParameterError("email", lambda n: f"{n('email')} {address!r} is not an e-mail address; use one such as "
                                                "ana@example.com")
    return address


def get_user(con: duckdb.DuckDBPyConnection, name: str) -> User | None:
    rows = con.execute("SELECT name, role, brands, email FROM users WHERE name = ?", [name]).fetchall()
    return _row_user(rows[0]) if rows else None


def _existing(con: duckdb.DuckDBPyConnection, name: str) -> User:
    user = get_user(con, name)
    if user is None:
        raise ConvoscopeError(f"no user {name!r}; list them with", command=("users", "list"))
    return user


def list_users(con: duckdb.DuckDBPyConnection, brands: tuple[str, ...] | None = None) -> list[tuple[User, datetime]]:
    """Every user; with `brands`, only those limited to some of these brands (a user of every brand, or
    of another brand, would show brands outside the list)."""
    rows = con.execute("SELECT name, role, brands, email, created_at FROM users ORDER BY name").fetchall()
    users = [(_row_user(r[:4]), r[4]) for r in rows]
    if brands is None:
        return users
    return [(u, at) for u, at in users if u.brands is not None and set(u.brands) <= set(brands)]


def add_user(store: Store, name: str, role: str, password: str, brands: tuple[str, ...] | None, *,
             email: str | None = None) -> User:
    if not re.fullmatch(NAME_PATTERN, name):
        raise UsageError(f"user name {name!r} must be letters, digits, _ . @ or - (at most 64)")
    check_role(role)
    if email is not None:
        check_email(email)
    if len(password) < 8:
        raise UsageError("the password must have at least 8 characters")
    with store.transaction() as con:
        if get_user(con, name) is not None:
            raise ConvoscopeError(f"user {name!r} exists; change the role with",
                                  command=("users", "set-role", name, "ROLE"))
        con.execute("INSERT INTO users (name, role, brands, password_hash, created_at, email) VALUES (?, ?, ?, ?, ?, ?)",
                    [name, role, list(brands) if brands is not None else None, _hasher.hash(password), _now(), email])
    return User(name, role, brands, email)


def set_email(store: Store, name: str, email: str | None) -> User:
    """Give user `name` the e-mail address scheduled reports are sent to (None: none)."""
    if email is not None:
        check_email(email)
    with store.transaction() as con:
        user = _existing(con, name)
        con.execute("UPDATE users SET email = ? WHERE name = ?", [email, name])
    return User(user.name, user.role, user.brands, email)


def remove_user(store: Store, name: str) -> None:
    with store.transaction() as con:
        _existing(con, name)
        for table in ("api_tokens", "web_sessions"):
            con.execute(f"DELETE FROM {table} WHERE user_name = ?", [name])
        con.execute("DELETE FROM users WHERE name = ?", [name])


def set_role(store: Store, name: str, role: str, brands: tuple[str, ...] | None = None,
             every_brand: bool = False) -> User:
    check_role(role)
    with store.transaction() as con:
        user = _existing(con, name)
        keep = None if every_brand else (brands if brands is not None else user.brands)
        con.execute("UPDATE users SET role = ?, brands = ? WHERE name = ?",
                    [role, list(keep) if keep is not None else None, name])
        con.execute("DELETE FROM web_sessions WHERE user_name = ?", [name])  # log in again under the new role
    return User(name, role, keep, user.email)


def new_token(store: Store, name: str, *, lifetime: timedelta = TOKEN_LIFETIME) -> tuple[str, datetime]:
    """A new API token for `name` and when it expires (UTC); only its hash is kept, so this is the one
    time it is shown."""
    if not timedelta(0) < lifetime <= TOKEN_LIFETIME:
        raise ParameterError("expires_in", lambda n: f"a token lives at most {TOKEN_LIFETIME.days}d; choose a shorter "
                                                     f"{n('expires_in')}, such as 30d")
    token = "cvs_" + secrets.token_urlsafe(32)
    with store.transaction() as con:
        _existing(con, name)
        now = _now()
        con.execute("INSERT INTO api_tokens VALUES (?, ?, ?, ?, NULL)",
                    [_digest(token), name, now, now + lifetime])
    return token, now + lifetime


TOKEN_ID_LENGTH = 12


@dataclass(frozen=True)
class TokenInfo:
    """One API token as `users tokens` lists it: an id (the start of its hash, which tells nothing of
    the token) and its dates."""

    id: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at is not None and self.expires_at <= now else "active"


def list_tokens(con: duckdb.DuckDBPyConnection, name: str) -> list[TokenInfo]:
    _existing(con, name)
    rows = con.execute("""
        SELECT left(token_hash, ?), created_at, expires_at, revoked_at FROM api_tokens WHERE user_name = ?
        ORDER BY created_at, token_hash
    """, [TOKEN_ID_LENGTH, name]).fetchall()
    return [TokenInfo(*row) for row in rows]


def revoke_tokens(store: Store, name: str, token: str | None) -> int:
    """Revoke one of `name`'s tokens — the token itself, or the id `users tokens` lists — or, with None,
    every one of them and the user's web logins too. Returns how many tokens it revoked."""
    with store.transaction() as con:
        _existing(con, name)
        now = _now()
        if token is None:
            revoked = con.execute("UPDATE api_tokens SET revoked_at = ? WHERE user_name = ? AND revoked_at IS NULL",
                                  [now, name]).fetchall()[0][0]  # DuckDB answers an UPDATE with its row count
            con.execute("DELETE FROM web_sessions WHERE user_name = ?", [name])
            return int(revoked)
        if re.fullmatch(r"[0-9a-f]{8,64}", token):
            found = con.execute("SELECT token_hash, revoked_at FROM api_tokens WHERE user_name = ? AND "
                                "starts_with(token_hash, ?)", [name, token]).fetchall()
        else:
            found = con.execute("SELECT token_hash, revoked_at FROM api_tokens WHERE user_name = ? AND token_hash = ?",
                                [name, _digest(token)]).fetchall()
        if len(found) != 1:
            raise ConvoscopeError(f"{name} has {'no' if not found else 'more than one'} token with that id; "
                                  "list them with", command=("users", "tokens", name))
        if found[0][1] is not None:
            return 0
        con.execute("UPDATE api_tokens SET revoked_at = ? WHERE token_hash = ?", [now, found[0][0]])
        return 1


def verify_password(con: duckdb.DuckDBPyConnection, name: str, password: str) -> User | None:
    rows = con.execute("SELECT password_hash FROM users WHERE name = ?", [name]).fetchall()
    try:
        _hasher.verify(rows[0][0] if rows else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    return get_user(con, name) if rows else None


def user_of_token(con: duckdb.DuckDBPyConnection, token: str, name: str | None = None) -> User | None:
    """The user an API token belongs to (and, with HTTP Basic, whose name was given with it)."""
    rows = con.execute("""
        SELECT u.name, u.role, u.brands FROM api_tokens t JOIN users u ON u.name = t.user_name
        WHERE t.token_hash = ? AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?)
    """, [_digest(token), _now()]).fetchall()
    if not rows or (name is not None and rows[0][0] != name):
        return None
    return _row_user(rows[0])


def token_refusal(con: duckdb.DuckDBPyConnection, token: str) -> tuple[str, str] | None:
    """(owner, "revoked" or "expired") of a token that once worked, for the audit log; None for a token
    that never existed. Never for the caller's eyes: their answer is the same either way."""
    rows = con.execute("SELECT user_name, revoked_at FROM api_tokens WHERE token_hash = ?", [_digest(token)]).fetchall()
    if not rows:
        return None
    return rows[0][0], ("revoked" if rows[0][1] is not None else "expired")


def login_wait(con: duckdb.DuckDBPyConnection, name: str | None, client: str | None) -> timedelta | None:
    """How long logins as `name`, or from `client`, are refused: None while fewer than FAILURES_PER_NAME
    logins as that name failed within LOGIN_WINDOW (since its last successful form login) and fewer
    than FAILURES_PER_CLIENT from that address. The refusals themselves do not count, so the wait ends
    LOGIN_WINDOW after the failure that reached the limit whatever is tried meanwhile."""
    now = _now()
    waits = []
    by_name = [] if name is None else con.execute("""
        SELECT logged_at FROM audit_log
        WHERE action = 'login_failed' AND user_name = ? AND logged_at > ?
          AND logged_at > coalesce((SELECT max(logged_at) FROM audit_log WHERE action = 'login' AND user_name = ?),
                                   ?)
        ORDER BY logged_at DESC LIMIT 1 OFFSET ?
    """, [name, now - LOGIN_WINDOW, name, now - LOGIN_WINDOW, FAILURES_PER_NAME - 1]).fetchall()
    if by_name:
        waits.append(by_name[0][0] + LOGIN_WINDOW - now)
    if client is not None:
        by_client = con.execute("""
            SELECT logged_at FROM audit_log
            WHERE action = 'login_failed' AND logged_at > ? AND parameters->>'client' = ?
            ORDER BY logged_at DESC LIMIT 1 OFFSET ?
        """, [now - LOGIN_WINDOW, client, FAILURES_PER_CLIENT - 1]).fetchall()
        if by_client:
            waits.append(by_client[0][0] + LOGIN_WINDOW - now)
    return max(waits) if waits else None


def start_session(store: Store, user: User) -> tuple[str, str]:
    """A new web login: (session id for the cookie, CSRF token for the forms)."""
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = _now()
    with store.transaction() as con:
        con.execute("DELETE FROM web_sessions WHERE expires_at <= ?", [now])
        con.execute("INSERT INTO web_sessions VALUES (?, ?, ?, ?, ?)",
                    [_digest(session_id), user.name, csrf, now, now + SESSION_LIFETIME])
    return session_id, csrf


def session_user(con: duckdb.DuckDBPyConnection, session_id: str) -> tuple[User, str] | None:
    """The user and CSRF token of a live web login."""
    rows = con.execute("""
        SELECT u.name, u.role, u.brands, s.csrf_token FROM web_sessions s JOIN users u ON u.name = s.user_name
        WHERE s.id_hash = ? AND s.expires_at > ?
    """, [_digest(session_id), _now()]).fetchall()
    return (_row_user(rows[0][:3]), rows[0][3]) if rows else None


def end_session(store: Store, session_id: str) -> None:
    with store.transaction() as con:
        con.execute("DELETE FROM web_sessions WHERE id_hash = ?", [_digest(session_id)])


# --- audit (SPEC 6.5) --------------------------------------------------------------------------------

_AUDIT_INSERT = "INSERT INTO audit_log (logged_at, user_name, action, target, parameters, brands) VALUES (?, ?, ?, ?, ?, ?)"


def audit(store: Store, user: str | None, action: str, target: str | None, parameters: dict[str, Any],
          brands: list[str] | None = None) -> None:
    """Record an entry; `brands` are those whose data it concerns (None: no brand's, or every brand's)."""
    with store.transaction() as con:
        con.execute(_AUDIT_INSERT, [_now(), user, action, target, json.dumps(parameters, sort_keys=True, default=str),
                                    sorted(brands) if brands is not None else None])


def audit_entries(con: duckdb.DuckDBPyConnection, limit: int | None = None,
                  brands: tuple[str, ...] | None = None) -> list[tuple[Any, ...]]:
    """(at, user, action, target, parameters) newest first; with `brands`, only the entries that concern
    some of these brands and no other (SPEC 6.4: a user never sees data of a brand outside their list)."""
    only = "WHERE len(brands) > 0 AND list_has_all(?::VARCHAR[], brands)" if brands is not None else ""
    return con.execute(f"""
        SELECT logged_at, user_name, action, target, parameters::VARCHAR FROM audit_log {only}
        ORDER BY logged_at DESC, rowid DESC {f'LIMIT {int(limit)}' if limit else ''}
    """, [list(brands)] if brands is not None else []).fetchall()


def forget(store: Store, brand: str, customer: str, by: str | None) -> int:
    """Erase one customer's events, rejects, duplicates and derived rows (SPEC 6.5); returns the number
    of events erased. The audit log records that it happened, not what was erased, and forgets the ids
    of what was erased. Their words leave the search index first, and it is told when the erasure is done."""
    from convoscope import search

    search.forget(store, brand, customer)
    with store.transaction() as con:
        keys = con.execute("SELECT event_key FROM events WHERE brand = ? AND customer_id = ?",
                           [brand, customer]).fetchnumpy()["event_key"]
        erased = int(keys.shape[0])
        # Earlier views of the customer's conversations, sessions and contacts stay in the audit log (who
        # read what, when), but the ids, made from the customer's (SPEC 3.5), are blanked.
        con.execute("""
            UPDATE audit_log SET target = split_part(target, '/', 1) || '/(erased)'
            WHERE target IN (SELECT 'conversation/' || conversation_id FROM conversations WHERE brand = $1 AND customer_id = $2
                             UNION ALL SELECT 'session/' || session_id FROM sessions WHERE brand = $1 AND customer_id = $2
                             UNION ALL SELECT 'contact/' || contact_id FROM contacts WHERE brand = $1 AND customer_id = $2)
        """, [brand, customer])
        delete_derived(con, f"SELECT {sql_string(brand)} AS brand, {sql_string(customer)} AS customer_id", event_keys=keys)
        for table in ("events", "rejects", "duplicates", "pending"):
            con.execute(f"DELETE FROM {table} WHERE brand = ? AND customer_id = ?", [brand, customer])
        con.execute(_AUDIT_INSERT, [_now(), by, "forget", f"a customer of brand {brand}",
                                    json.dumps({"brand": brand, "events": erased}), [brand]])
    search.forgotten(store, brand, customer)
    return erased
