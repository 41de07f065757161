"""Who may log in and what they did: `users` (add, list, remove, set-role, set-email, token, tokens,
revoke-token) and `audit` (SPEC 6.4, 6.5)."""

from __future__ import annotations

import sys

import click

from convoscope.accounts import ROLES
from convoscope.cli.app import App, fail, pass_app
from convoscope.store import Store


@click.group()
def users() -> None:
    """Manage who may log in and what they may see (roles: administrator, team_manager, analyst, agent)."""


def _read_password(password_stdin: bool) -> str:
    if not password_stdin and not sys.stdin.isatty():
        fail("no terminal to ask for the password on; pipe it in with --password-stdin", 2)
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(list(ROLES)))
@click.option("--brands", metavar="B1,B2", help="Only these brands (default every brand).")
@click.option("--email", metavar="ADDRESS", help="Where scheduled reports reach the user (optional).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@pass_app
def users_add(app: App, name: str, role: str, brands: str | None, email: str | None, password_stdin: bool) -> None:
    """Add user NAME with ROLE; the password comes from a prompt or standard input."""
    from convoscope import accounts

    if email is not None:
        accounts.check_email(email)  # before the password is asked for
    password = _read_password(password_stdin)
    with app.store() as store:
        user = accounts.add_user(store, name, role, password, accounts.parse_brands(brands), email=email)
        _warn_unknown_brands(store, user.brands)
    click.echo(f"added {user.name} ({user.role_title}; {_brands_text(user.brands)})")


def _brands_text(brands: tuple[str, ...] | None) -> str:
    return "every brand" if brands is None else "brands " + ", ".join(brands)


def _warn_unknown_brands(store: Store, brands: tuple[str, ...] | None) -> None:
    """A brand no event names yet may be a typo: the user would see nothing, and nobody would say why."""
    known = store.brands()
    unknown = [b for b in brands or () if b not in known]
    if unknown:
        click.echo(f"note: the store holds no events of brand {', '.join(map(repr, unknown))} yet; "
                   "check the spelling if it should", err=True)


@users.command("list")
@pass_app
def users_list(app: App) -> None:
    """List users with their role and brands."""
    from convoscope import accounts

    with app.store(must_exist=True) as store:
        found = accounts.list_users(store.con)
    if not found:
        click.echo(f"no users; add one with: {app.command(['users', 'add', 'NAME', '--role', 'administrator'])}",
                   err=True)
        return
    for user, created in found:
        click.echo(f"{user.name}\t{user.role}\t{','.join(user.brands) if user.brands is not None else '*'}\t"
                   f"{created:%Y-%m-%dT%H:%M:%SZ}\t{user.email or ''}")


@users.command("remove")
@click.argument("name")
@pass_app
def users_remove(app: App, name: str) -> None:
    """Remove user NAME, their API tokens and their logins."""
    from convoscope import accounts

    with app.store() as store:
        accounts.remove_user(store, name)
    click.echo(f"removed {name}")


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(list(ROLES)))
@click.option("--brands", metavar="B1,B2", help="Also limit the user to these brands.")
@click.option("--every-brand", is_flag=True, help="Also lift any brand limit.")
@pass_app
def users_set_role(app: App, name: str, role: str, brands: str | None, every_brand: bool) -> None:
    """Give user NAME another ROLE (their web logins end)."""
    from convoscope import accounts

    if brands and every_brand:
        fail("use --brands or --every-brand, not both", 2)
    with app.store() as store:
        given = accounts.parse_brands(brands)
        user = accounts.set_role(store, name, role, given, every_brand)
        _warn_unknown_brands(store, given)  # the brands given now, not those kept from before
    click.echo(f"{user.name} is now {user.role_title} ({_brands_text(user.brands)})", err=True)


@users.command("set-email")
@click.argument("name")
@click.argument("address", required=False)
@click.option("--none", "clear", is_flag=True, help="Remove the user's address.")
@pass_app
def users_set_email(app: App, name: str, address: str | None, clear: bool) -> None:
    """Give user NAME the e-mail ADDRESS scheduled reports are sent to (or --none)."""
    from convoscope import accounts
    from convoscope.errors import ParameterError, option_name

    if address is not None and clear:
        fail(f"give the ADDRESS {address!r} or --none, not both", 2)
    if address is None and not clear:
        fail(f"give user {name}'s ADDRESS, or --none to remove their address", 2)
    try:
        with app.store() as store:
            user = accounts.set_email(store, name, address)
    except ParameterError as exc:  # the address is this command's argument ADDRESS, not `users add`'s --email
        fail(exc.worded(lambda param: "ADDRESS" if param == "email" else option_name(param)), exc.exit_code)
    click.echo(f"{user.name}'s address is now {user.email}" if user.email else f"{user.name} has no address now",
               err=True)


@users.command("token")
@click.argument("name")
@click.option("--expires-in", metavar="DURATION", help="Lifetime such as 30d, 12h or 90m (default and longest 365d).")
@pass_app
def users_token(app: App, name: str, expires_in: str | None) -> None:
    """Print a new API token for NAME, alone on standard output (only its hash is stored)."""
    from convoscope import accounts
    from convoscope.config import parse_duration

    lifetime = accounts.TOKEN_LIFETIME
    if expires_in is not None:
        try:
            lifetime = parse_duration(expires_in)
        except ValueError:
            fail(f"--expires-in {expires_in!r} is not a duration; use one such as 30d, 12h or 90m", 2)
    with app.store() as store:
        token, expires = accounts.new_token(store, name, lifetime=lifetime)
    click.echo(token)
    if expires_in is not None:
        click.echo(f"expires {expires:%Y-%m-%dT%H:%M:%SZ}", err=True)


@users.command("tokens")
@click.argument("name")
@pass_app
def users_tokens(app: App, name: str) -> None:
    """List NAME's API tokens: id, created, expires (UTC) and state (active, expired or revoked)."""
    from datetime import UTC, datetime

    from convoscope import accounts

    with app.store(must_exist=True) as store:
        found = accounts.list_tokens(store.con, name)
    if not found:
        click.echo(f"{name} has no tokens; make one with: {app.command(['users', 'token', name])}", err=True)
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    for token in found:
        expires = f"{token.expires_at:%Y-%m-%dT%H:%M:%SZ}" if token.expires_at is not None else "never"
        click.echo(f"{token.id}\t{token.created_at:%Y-%m-%dT%H:%M:%SZ}\t{expires}\t{token.state(now)}")


@users.command("revoke-token")
@click.argument("name")
@click.argument("token", required=False, metavar="[TOKEN|ID]")
@click.option("--all", "every", is_flag=True, help="Revoke every token of NAME and end their web logins.")
@pass_app
def users_revoke_token(app: App, name: str, token: str | None, every: bool) -> None:
    """Revoke one API token of NAME (the token, or its id from 'users tokens'), or --all of them."""
    from convoscope import accounts

    if (token is None) == (not every):
        fail(f"name one token (or its id, which {app.command(['users', 'tokens', name])} lists) or give --all, "
             "not both", 2)
    with app.store() as store:
        revoked = accounts.revoke_tokens(store, name, None if every else token)
    if every:
        click.echo(f"revoked {revoked} token{'s' if revoked != 1 else ''} of {name} and ended their web logins",
                   err=True)
    else:
        click.echo(f"revoked the token of {name}" if revoked else f"that token of {name} was already revoked",
                   err=True)


@click.command()
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@pass_app
def audit(app: App, limit: int) -> None:
    """Show the audit log, newest first: downloads of reports with messages, conversation views, searches of
    messages' words, logins, refused tokens, erasures."""
    import csv

    from convoscope import accounts

    with app.store(must_exist=True) as store:
        entries = accounts.audit_entries(store.con, limit)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["at", "user", "action", "target", "parameters"])
    for at, user, action, target, parameters in entries:
        writer.writerow([f"{at:%Y-%m-%dT%H:%M:%SZ}", user, action, target, parameters])
