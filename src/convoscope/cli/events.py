"""Events in and out of the store: `ingest` (files, standard input, or a helpdesk's records with
`--source`), `derive`, `rejects` and `forget` (SPEC 2.4, 3, 6.1, 6.5)."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

import click

from convoscope import service
from convoscope.cli.app import EXIT_REJECTED, App, fail, pass_app, progress_printer
from convoscope.cli.sources import check_brand, print_source_counts
from convoscope.config import Config
from convoscope.errors import ConvoscopeError


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]), help="Input format (default: from the extension; jsonl for -).")
@click.option("--assume-tz", metavar="ZONE", help="Time zone for timestamps without an offset.")
@click.option("--source", metavar="NAME",
              help="Read a helpdesk's records instead of events: chatwoot (captures) or gladly (export folders).")
@click.option("--brand", metavar="B", help="With --source: the brand of its events (default [sources.NAME] brand, else default).")
@click.option("--no-derive", is_flag=True,
              help="Only store; the next command that reads derived tables derives the changed customers first.")
@pass_app
def ingest(app: App, paths: tuple[str, ...], fmt: str | None, assume_tz: str | None, source: str | None,
           brand: str | None, no_derive: bool) -> None:
    """Store events from files, directories or - (standard input), then derive what changed."""
    config = app.config
    if source is not None:
        _ingest_source(app, config, source, list(paths), fmt=fmt, assume_tz=assume_tz, brand=brand,
                       derive=not no_derive)
        return
    if brand is not None:
        fail("--brand goes with --source; events of the event format carry their own brand field", 2)
    service.check_paths(list(paths), fmt)  # before the store exists: a typo must not leave an empty one behind
    with app.store() as store:
        result = service.ingest(store, config, list(paths), fmt=fmt, assume_tz=assume_tz, derive=not no_derive,
                                progress=progress_printer())
    c = result.counts
    click.echo(f"accepted {c.accepted:,}, duplicate {c.duplicate:,}, rejected {c.rejected:,}")
    if c.rejected:
        click.echo(f"convoscope: some events were rejected; list them with: {app.command(['rejects'])}", err=True)
        sys.exit(EXIT_REJECTED)


def _ingest_source(app: App, config: Config, source: str, paths: list[str], *, fmt: str | None,
                   assume_tz: str | None, brand: str | None, derive: bool) -> None:
    """`ingest --source`: a helpdesk's records (SOURCES.md), with the four counts."""
    from convoscope import sources

    if fmt is not None or assume_tz is not None:
        fail(f"--{'format' if fmt else 'assume-tz'} does not go with --source: {source}'s records say their "
             "own format and time zone", 2)
    check_brand(brand)
    try:
        mapping = sources.module(source)
    except ConvoscopeError as exc:
        fail(f"--source: {exc.message}", 2)
    mapping.inputs(paths)  # before the store exists: a typo must not leave an empty one behind
    with app.store() as store:
        result = service.ingest_source(store, config, source, paths, brand=brand, derive=derive,
                                       progress=progress_printer())
    print_source_counts(app, result.counts)


@click.command()
@pass_app
def derive(app: App) -> None:
    """Rebuild every derived table from the stored events."""
    config = app.config
    with app.store(must_exist=True) as store:
        result = service.derive(store, config, progress=progress_printer())
    click.echo(f"derived {result.events:,} events of {result.customers:,} customers: {result.sessions:,} sessions, "
               f"{result.contacts:,} contacts, {result.conversations:,} conversations")


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include rejects whose event was later stored.")
@click.option("--raw", is_flag=True, help="Print only the raw records, to fix and ingest again.")
@click.option("--source", metavar="FILE", help="Only the records of this source (as listed).")
@pass_app
def rejects(app: App, show_all: bool, raw: bool, source: str | None) -> None:
    """List rejected events with their source and reason."""
    import csv

    with app.store(must_exist=True) as store:
        found = store.con.execute(f"""
            SELECT kind, source, line, reason, raw FROM rejects
            WHERE ({'true' if show_all else 'NOT resolved'}) AND (source = $source OR $source IS NULL)
            ORDER BY source, line NULLS LAST, kind
        """, {"source": str(Path(source).resolve()) if source and Path(source).exists() else source}).fetchall()
    if raw:
        _print_raw(found)
        return
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["kind", "source", "line", "reason", "raw"])
    writer.writerows(found)
    if not found:
        click.echo("no rejected events", err=True)


def _print_raw(found: list[tuple[Any, ...]]) -> None:
    """The raw records, ready to fix and ingest again: a CSV file's records under its header, which is
    read from the file again (records of several files, CSV among them, must be printed one file at a time)."""
    from convoscope.events.readers import csv_header_line

    sources = list(dict.fromkeys(row[1] for row in found))
    csv_sources = [name for name in sources if name.lower().endswith(".csv")]
    if csv_sources and len(sources) > 1:
        fail(f"the records come from {len(sources)} sources, CSV among them, and one file cannot hold them all; "
             "print them one source at a time with --source FILE", 2)
    if csv_sources:
        header = csv_header_line(Path(csv_sources[0]))
        if header is None:
            click.echo(f"convoscope: {csv_sources[0]} is gone, and with it the CSV header; put it above these "
                       "records before ingesting them", err=True)
        else:
            click.echo(header)
    for *_, text in found:
        click.echo(text)


@click.command()
@click.option("--brand", required=True)
@click.option("--customer", required=True)
@pass_app
def forget(app: App, brand: str, customer: str) -> None:
    """Erase one customer's events and everything derived from them (the audit log records that it happened)."""
    from convoscope import accounts

    with app.store(must_exist=True) as store:
        erased = accounts.forget(store, brand, customer, by=f"cli:{getpass.getuser()}")
    click.echo(f"erased {erased:,} events of customer {customer!r} of brand {brand!r}")
