"""A helpdesk's records in: `pull chatwoot` (its REST API), and what `ingest --source` shares with it,
the brand check and the four counts (SOURCES.md)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from convoscope import service
from convoscope.cli.app import EXIT_REJECTED, App, fail, pass_app, progress_printer

if TYPE_CHECKING:
    from convoscope.sources import SourceCounts


def check_brand(brand: str | None) -> None:
    """`--brand` of a helpdesk's records (`ingest --source`, `pull`): a brand name, checked before the store
    is opened."""
    from convoscope.store import BRAND_PATTERN

    if brand is not None and not re.fullmatch(BRAND_PATTERN, brand):
        fail(f"--brand {brand!r} is not a brand name; use lower-case letters, digits, _ or - (at most 64)", 2)


def print_source_counts(app: App, c: SourceCounts) -> None:
    """A source's four counts on standard output, the reasons on standard error; exit 3 when any record
    was rejected."""
    click.echo(f"accepted {c.accepted:,}, duplicate {c.duplicate:,}, ignored {c.ignored:,}, rejected {c.rejected:,}")
    for outcome in ("ignored", "rejected"):
        reasons = sorted((r, n) for (o, r), n in c.reasons.items() if o == outcome)
        if reasons:
            click.echo(f"{outcome}: " + ", ".join(f"{reason} {number:,}" for reason, number in reasons), err=True)
    if c.truncated:
        click.echo(f"convoscope: {c.truncated:,} texts were longer than 100,000 characters and were cut", err=True)
    if c.rejected:
        click.echo(f"convoscope: some records were rejected; list them with: {app.command(['rejects'])}", err=True)
        sys.exit(EXIT_REJECTED)


@click.group()
def pull() -> None:
    """Fetch a helpdesk's history through its API into the store."""


@pull.command("chatwoot")
@click.option("--url", required=True, metavar="URL", help="Address of the Chatwoot installation, such as https://chat.example.com.")
@click.option("--account", required=True, type=click.IntRange(min=1), metavar="ID",
              help="The Chatwoot account's id (the number after /app/accounts/ in its pages' addresses).")
@click.option("--token-file", required=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File holding an administrator's access token (Chatwoot: Profile settings); never the token itself.")
@click.option("--since", metavar="DATE", help="Only conversations with activity since DATE (YYYY-MM-DD in UTC, or an "
              "RFC 3339 time); each is fetched whole.")
@click.option("--brand", metavar="B", help="The brand of its events (default [sources.chatwoot] brand, else default).")
@pass_app
def pull_chatwoot(app: App, url: str, account: int, token_file: Path, since: str | None, brand: str | None) -> None:
    """Fetch every conversation of a Chatwoot account and its messages through Chatwoot's API, store them
    as events, then derive what changed. Run again, it fetches only conversations with new activity, and
    goes on where an interrupted run stopped."""
    from convoscope.sources import chatwoot_api

    config = app.config
    chatwoot_api.site_of(url)  # every usage error before the store exists
    since_at = chatwoot_api.parse_since(since) if since is not None else None
    check_brand(brand)
    token = chatwoot_api.read_token(token_file)
    try:  # the store is opened for each write only: serve and other commands can use it meanwhile
        result = service.pull_chatwoot(
            app.store, config, url=url, account=account, token=token, since=since_at, brand=brand,
            progress=progress_printer(), warn=lambda message: click.echo(f"convoscope: warning: {message}", err=True))
    except KeyboardInterrupt:
        fail("interrupted; the conversations stored so far are kept: run pull again and it goes on where it stopped",
             130)
    listed = (f" of {result.listed:,} listed" if result.listed is not None else
              f" active since {since}" if since is not None else "")
    click.echo(f"convoscope: pulled {result.pulled:,} conversations{listed}; {result.unchanged:,} had no activity since "
               "the last pull", err=True)
    if result.gone:
        click.echo(f"convoscope: {result.gone:,} conversations were deleted in Chatwoot while pulling", err=True)
    if result.unlisted:
        click.echo(f"convoscope: warning: {result.unlisted:,} conversations never appeared on the list's pages (it "
                   "changed while it was read); run pull again to fetch them", err=True)
    print_source_counts(app, result.counts)
