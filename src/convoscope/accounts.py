"""Who may see what (SPEC 6.4) and what they did with personal data (SPEC 6.5).

Users, their API tokens, web login sessions and the audit log live in the store next to the events.
Passwords are hashed with Argon2; API tokens and session ids are random 256-bit secrets of which only
a SHA-256 is kept, so a copy of the store gives nobody a way in.
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

from convoscope.errors import ConvoscopeError, UsageError
from convoscope.store import DERIVED_TABLES, Store

# Permissions, and the roles that have them (SPEC 6.4).
REPORTS, REPORTS_WITH_MESSAGES, CONVERSATIONS, SEND_EVENTS, ADMINISTER = (
    "reports", "reports_with_messages", "conversations", "send_events", "administer")
ROLES: dict[str, frozenset[str]] = {
    "administrator": frozenset({REPORTS, REPORTS_WITH_MESSAGES, CONVERSATIONS, SEND_EVENTS, ADMINISTER}),
    "team_manager": frozenset({REPORTS, REPORTS_WITH_MESSAGES, CONVERSATIONS}),
    "analyst": frozenset({REPORTS, REPORTS_WITH_MESSAGES, CONVERSATIONS}),
    "agent": frozenset({CONVERSATIONS}),
}
ROLE_TITLES = {"administrator": "Administrator", "team_manager": "Team Manager", "analyst": "Analyst",
               "agent": "Agent"}
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}"
SESSION_LIFETIME = timedelta(hours=12)
TOKEN_LIFETIME = timedelta(days=365)

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
        raise UsageError("--brands needs at least one brand, such as --brands acme,globex")
    return brands


def _row_user(row: tuple[Any, ...]) -> User:
    name, role, brands = row
    return User(name, role, tuple(brands) if brands is not None else None)


def get_user(con: duckdb.DuckDBPyConnection, name: str) -> User | None:
    rows = con.execute("SELECT name, role, brands FROM users WHERE name = ?", [name]).fetchall()
    return _row_user(rows[0]) if rows else None


def _existing(con: duckdb.DuckDBPyConnection, name: str) -> User:
    user = get_user(con, name)
    if user is None:
        raise ConvoscopeError(f"no user {name!r}; list them with 'convoscope users list'")
    return user


def list_users(con: duckdb.DuckDBPyConnection) -> list[tuple[User, datetime]]:
    rows = con.execute("SELECT name, role, brands, created_at FROM users ORDER BY name").fetchall()
    return [(_row_user(r[:3]), r[3]) for r in rows]


def add_user(store: Store, name: str, role: str, password: str, brands: tuple[str, ...] | None) -> User:
    if not re.fullmatch(NAME_PATTERN, name):
        raise UsageError(f"user name {name!r} must be letters, digits, _ . @ or - (at most 64)")
    check_role(role)
    if len(password) < 8:
        raise UsageError("the password must have at least 8 characters")
    with store.transaction() as con:
        if get_user(con, name) is not None:
            raise ConvoscopeError(f"user {name!r} exists; change the role with 'convoscope users set-role'")
        con.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                    [name, role, list(brands) if brands is not None else None, _hasher.hash(password), _now()])
    return User(name, role, brands)


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
    return User(name, role, keep)


def new_token(store: Store, name: str) -> str:
    """A new API token for `name`; only its hash is kept, so this is the one time it is shown."""
    token = "cvs_" + secrets.token_urlsafe(32)
    with store.transaction() as con:
        _existing(con, name)
        now = _now()
        con.execute("INSERT INTO api_tokens VALUES (?, ?, ?, ?, NULL)",
                    [_digest(token), name, now, now + TOKEN_LIFETIME])
    return token


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

def audit(store: Store, user: str | None, action: str, target: str | None, parameters: dict[str, Any]) -> None:
    with store.transaction() as con:
        con.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?)",
                    [_now(), user, action, target, json.dumps(parameters, sort_keys=True, default=str)])


def audit_entries(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> list[tuple[Any, ...]]:
    """(at, user, action, target, parameters) newest first."""
    return con.execute(f"""
        SELECT logged_at, user_name, action, target, parameters::VARCHAR FROM audit_log ORDER BY logged_at DESC, rowid DESC
        {f'LIMIT {int(limit)}' if limit else ''}
    """).fetchall()


def forget(store: Store, brand: str, customer: str, by: str | None) -> int:
    """Erase one customer's events, rejects, duplicates and derived rows (SPEC 6.5); returns the number
    of events erased. The audit log records that it happened, not what was erased."""
    with store.transaction() as con:
        erased = int(con.execute("SELECT count(*) FROM events WHERE brand = ? AND customer_id = ?",
                                 [brand, customer]).fetchall()[0][0])
        for table in ("events", "rejects", "duplicates", "pending", *DERIVED_TABLES):
            con.execute(f"DELETE FROM {table} WHERE brand = ? AND customer_id = ?", [brand, customer])
        con.execute("INSERT INTO audit_log VALUES (?, ?, 'forget', ?, ?)",
                    [_now(), by, f"a customer of brand {brand}", json.dumps({"brand": brand, "events": erased})])
    return erased
