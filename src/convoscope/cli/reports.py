"""Reports out: `report` (CSV from the store or a lake, through `service`'s one report path) and
`spark-derive`, which writes the lakes reports read (SPEC 4, 6.1, 7)."""

from __future__ import annotations

import csv
import getpass
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import click

from convoscope import reports, service
from convoscope.cli import running
from convoscope.cli.app import EXIT_REJECTED, App, fail, pass_app, progress_printer
from convoscope.config import check_zone
from convoscope.errors import ConvoscopeError


def reports_epilog(width: int = 76) -> str:
    """What `report --help` shows after its options: every report of `reports.REPORTS` with the `--where` keys
    and the `--by` dimensions its definition takes (issue 28 point 2), so that a user need not read the docs to
    know what is accepted. One block Click does not rewrap (`\\b`), each list wrapped under its option."""
    lines = []
    for name, report in reports.REPORTS.items():
        lines.append(name)
        keys = [f"{key}={'|'.join(values)}" if values else key for key, values in report.where.items()]
        for option, items in (("--where", keys), ("--by", list(report.by_columns))):
            if items:
                lines += textwrap.wrap(", ".join(items), width, initial_indent=f"  {option:<8}",
                                       subsequent_indent=" " * 10, break_on_hyphens=False,
                                       break_long_words=False)
        if not report.where:
            lines.append(f"  {'--where':<8}(no keys)")
    return ("Reports (NAME), each with the --where keys it takes (KEY=a|b: only these values) and its --by "
            "dimensions:\n\n\b\n" + "\n".join(lines))


@click.command(epilog=reports_epilog())
@click.argument("name")
@click.option("--from", "date_from", metavar="DATE", help="First local date (inclusive).")
@click.option("--to", "date_to", metavar="DATE", help="Last local date (inclusive).")
@click.option("--tz", metavar="ZONE", help="IANA time zone of the report.")
@click.option("--as-of", "as_of", metavar="TIMESTAMP", help="Judge open and unknown values at this instant (default now).")
@click.option("--period", help="half_hour, day, week, month, quarter or year.")
@click.option("--by", metavar="DIMENSION", help="A summary's rows per value of DIMENSION too (each report's below).")
@click.option("--where", multiple=True, metavar="KEY=VALUE",
              help="Filter; repeatable, AND-ed (each report's keys below).")
@click.option("--headers", type=click.Choice(["display", "snake"]), default="display", show_default=True)
@click.option("--anchor", metavar="TIME",
              help="Detail reports: the time --from/--to and --where period= read: created (default), ended "
                   "(sessions-detail, contact-export) or last_closed (conversation-export).")
@click.option("--extra", is_flag=True,
              help="Append the extra columns: Brand, Created At, Ended At, End Reason, Outcome, Inbox, Feedback, "
                   "Feedback Score, Durable Resolution and Resolution Class to the session reports; Inbox, Feedback, "
                   "Feedback Score and Resolved First Time to contact-export; Inbox At Created, Inbox At Last Closed "
                   "and Automated Resolution to conversation-export.")
@click.option("--brand", "brands", multiple=True, help="Only this brand; repeatable (default every brand).")
@click.option("--out", default="-", metavar="FILE|-", help="Output file (default standard output).")
@click.option("--lake", metavar="DIR|URL",
              help="Report over the Parquet tables spark-derive wrote to DIR (a folder or a file:// URL) "
                   "instead of the store.")
@click.option("--describe", is_flag=True,
              help="Also print, on standard error, the definitions that produced the report: its as-of time, time "
                   "zone and each brand's derivation settings (never inside the CSV).")
@pass_app
def report(app: App, name: str, date_from: str | None, date_to: str | None, tz: str | None, as_of: str | None,
           period: str | None, by: str | None, where: tuple[str, ...], headers: str, anchor: str | None, extra: bool,
           brands: tuple[str, ...], out: str, lake: str | None, describe: bool) -> None:
    """Write report NAME as CSV."""
    config = app.config
    if lake and not reports.get_report(name).in_lakes:
        fail(f"report {name} counts what became of a helpdesk's records, which only a store holds "
             "(spark-derive reads events); run it without --lake", 2)
    options: dict[str, Any] = {"date_from": date_from, "date_to": date_to, "tz": tz, "as_of": as_of,
                               "period": period, "by": by, "where": list(where), "headers": headers, "extra": extra,
                               "anchor": anchor}
    # What the audit records of a download with messages: every parameter given (SPEC 6.5).
    given = {key: value for key, value in {
        "from": date_from, "to": date_to, "tz": tz, "as_of": as_of, "period": period, "by": by, "where": list(where),
        "headers": None if headers == "display" else headers, "anchor": anchor, "brand": list(brands), "extra": extra or None,
        "out": out}.items() if value}
    found = None if lake else running.running(app.db_path, app.config_path)
    if found is not None and app.db_path.exists():
        try:  # decision 167: the server holding the store makes the report, rather than the command waiting
            definitions = _through_server(app, found, name, options, brands, out, given)
        except running.NotAnswering:
            pass  # a stale file, left by a server that was killed: the command opens the store itself
        else:
            if describe:
                click.echo(definitions, err=True)
            return
    asker = service.Asker(f"cli:{getpass.getuser()}", "cli", lenient_brands=True)
    with app.lake(lake) if lake else app.store(must_exist=True) as store:
        definition, params = service.prepare_report(store, config, name, asker, brands=brands, **options)
        warn_unknown_brands(store.brands(), brands)
        # A lake has no audit log, and its files can be read by any Parquet reader (decision 74).
        run_options: dict[str, Any] = {"given": given, "audited": not lake, "progress": progress_printer()}
        if out == "-":
            with tempfile.TemporaryDirectory(prefix="convoscope-") as scratch:
                written = Path(scratch) / "report.csv"
                service.run_report(store, config, definition, params, asker, to=written, **run_options)
                _copy_to_stdout(written)
        else:
            count = service.run_report(store, config, definition, params, asker, to=Path(out), **run_options).count
            click.echo(f"wrote {count:,} rows to {out}", err=True)
    if describe:  # issue 24: beside the report, never in it
        click.echo(service.describe_report(config, definition, params), err=True)


def _through_server(app: App, found: running.Running, name: str, options: dict[str, Any], brands: tuple[str, ...],
                    out: str, given: dict[str, Any]) -> str:
    """Report `name` as the server running on the store makes it (`GET /api/v1/reports/{name}` with the same
    parameters), its bytes written where the command writes its own; returns the definitions it was made with.
    The parameters are checked here first, by the same code and in the same words as when the command makes
    the report itself; the server audits a report with messages under the command line's user (decision 167)."""
    definition = reports.get_report(name)
    reports.build_params(definition, app.config, list(brands), brands=list(brands) or None, **options)
    if brands:
        warn_unknown_brands(running.brands(found), brands)
    query = [(key, str(value)) for key, value in (
        ("from", options["date_from"]), ("to", options["date_to"]), ("tz", options["tz"]),
        ("as_of", options["as_of"]), ("period", options["period"]), ("by", options["by"]),
        ("anchor", options["anchor"])) if value]
    query += [("where", item) for item in options["where"]] + [("brand", brand) for brand in brands]
    query += [("headers", "snake")] * (options["headers"] == "snake") + [("extra", "true")] * bool(options["extra"])
    definitions = ""

    def fill(path: Path) -> int:
        nonlocal definitions
        with path.open("wb") as handle:
            definitions = running.report_to(found, name, query, handle, given=given)
        return _data_rows(path)

    if out == "-":
        with tempfile.TemporaryDirectory(prefix="convoscope-") as scratch:
            fill(Path(scratch) / "report.csv")
            _copy_to_stdout(Path(scratch) / "report.csv")
    else:
        count = service.write_whole(Path(out), fill)
        click.echo(f"wrote {count:,} rows to {out} (made by the server running at {found.url})", err=True)
    return definitions


def _data_rows(path: Path) -> int:
    """The data rows of a report's CSV (its records but the header), as `run_report` counts them."""
    with path.open(newline="", encoding="utf-8") as handle:
        return max(0, sum(1 for _ in csv.reader(handle)) - 1)


def _copy_to_stdout(path: Path) -> None:
    """A whole report onto standard output: nothing of it appears there unless all of it was made."""
    sys.stdout.flush()
    with path.open("rb") as handle:
        shutil.copyfileobj(handle, sys.stdout.buffer)
    sys.stdout.buffer.flush()


def warn_unknown_brands(known: list[str], brands: tuple[str, ...]) -> None:
    """Not an error: the report is right, and empty; but a typo deserves a word. `known`: the store's brands."""
    unknown = [b for b in brands if b not in known]
    if unknown:
        click.echo(f"convoscope: the store holds no brand {', '.join(map(repr, unknown))}; "
                   f"its brands are {', '.join(known) or 'none yet'}", err=True)


@click.command("spark-derive")
@click.option("--events", "paths", multiple=True, required=True, metavar="PATH",
              help="Parquet events: a file, a folder of them, or any Hadoop-compatible URL; repeatable.")
@click.option("--out", required=True, metavar="DIR",
              help="Folder or URL of the lake: brought up to date, only the buckets of customers with new events "
                   "rewritten when it can (else replaced).")
@click.option("--master", metavar="URL", help="Spark master (default: spark-submit's, else local[*]).")
@click.option("--partitions", type=click.IntRange(min=1), help="Shuffle partitions (default Spark's).")
@click.option("--batch-rows", type=click.IntRange(min=1), help="Rows per Arrow batch given to the kernel.")
@click.option("--assume-tz", metavar="ZONE", help="Time zone for timestamps without an offset.")
@click.option("--full", is_flag=True, help="Derive every event again and replace the lake, even if it could be "
                                            "brought up to date from the new files alone.")
@click.option("--buckets", type=click.IntRange(min=1, max=65536), metavar="N",
              help="Bucket folders per customer table (default: the lake's own, 64 for a new lake). An increment "
                   "rewrites the buckets of its customers: more buckets, fewer rewritten, more files. Another "
                   "number than the lake's derives it all again.")
@pass_app
def spark_derive(app: App, paths: tuple[str, ...], out: str, master: str | None, partitions: int | None,
                 batch_rows: int | None, assume_tz: str | None, full: bool, buckets: int | None) -> None:
    """Validate and derive Parquet events on Apache Spark; write every table as Parquet to --out."""
    from convoscope.derive import spark_engine, spark_lake

    config = app.config
    if assume_tz:
        check_zone(assume_tz, param="assume_tz")
    for path in map(Path, (p for p in paths if "://" not in p)):  # local ones: Spark would say less, later
        if path.is_file() and path.suffix.lower() != ".parquet":
            fail(f"{path}: spark-derive reads Parquet; ingest JSON Lines or CSV into a store "
                 f"({app.command(['ingest', str(path)])}), or convert the file to Parquet", 2)
    spark = spark_engine.session(master, partitions=partitions, batch_rows=batch_rows)
    try:
        outcome = spark_lake.derive(spark, list(paths), out, config, assume_tz=assume_tz, full=full,
                                     buckets=buckets)
    except Exception as exc:  # Spark reports a missing path or a failed task as a Java exception
        if isinstance(exc, ConvoscopeError):
            raise
        raise ConvoscopeError(f"spark-derive failed: {str(exc).strip().splitlines()[0]}; "
                              "check --events and --out") from None
    finally:
        spark.stop()
    click.echo(f"convoscope: {outcome.how}", err=True)
    result = outcome.result
    click.echo(f"accepted {result.accepted:,}, duplicate {result.duplicate:,}, rejected {result.rejected:,}; "
               f"{result.sessions:,} sessions, {result.contacts:,} contacts, {result.conversations:,} conversations "
               f"written to {out}")
    if result.rejected:
        click.echo(f"convoscope: some events were rejected; they are in {out.rstrip('/')}/rejects", err=True)
        sys.exit(EXIT_REJECTED)


@click.command()
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE,...",
              help="A definition set: comma-separated brand settings (session_inactivity, contact_inactivity, "
                   "conversation_window, recontact_window, feedback_window, ai_channels as chat|email, "
                   "durable_window), such as session_inactivity=30m,recontact_window=72h; repeatable, one column each.")
@click.option("--from", "date_from", metavar="DATE", help="First local date (inclusive).")
@click.option("--to", "date_to", metavar="DATE", help="Last local date (inclusive).")
@click.option("--tz", metavar="ZONE", help="IANA time zone of the range.")
@click.option("--as-of", "as_of", metavar="TIMESTAMP", help="Judge open and unknown values at this instant (default now).")
@click.option("--brand", "brands", multiple=True, help="Only this brand; repeatable (default every brand).")
@click.option("--headers", type=click.Choice(["display", "snake"]), default="display", show_default=True)
@click.option("--out", metavar="FILE|-", help="Write the table as CSV to FILE (- for standard output).")
@pass_app
def compare(app: App, sets: tuple[str, ...], date_from: str | None, date_to: str | None, tz: str | None,
            as_of: str | None, brands: tuple[str, ...], headers: str, out: str | None) -> None:
    """Headline figures under the stored definitions and under each --set, side by side (derived in memory)."""
    from convoscope.reports.base import write_rows

    asker = service.Asker(f"cli:{getpass.getuser()}", "cli", lenient_brands=True)
    with app.store(must_exist=True) as store:
        warn_unknown_brands(store.brands(), brands)
        result = service.compare(store, app.config, sets, asker, brands=brands, date_from=date_from, date_to=date_to,
                                 tz=tz, as_of=as_of, progress=progress_printer())
    if out is None:
        _print_table(result.header(headers), result.rows(headers))
    else:
        write_rows(result.header(headers), result.rows(headers), sys.stdout if out == "-" else Path(out))
        if out != "-":
            click.echo(f"wrote {len(result.rows())} figures to {out}", err=True)
    click.echo(result.describe(), err=True)


def _print_table(header: list[str], rows: list[list[str | None]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for i, name in enumerate(header):  # a set's label is folded onto lines, never cut
        table.add_column(name, justify="right" if i else "left", overflow="fold")
    for row in rows:
        table.add_row(*(cell or "" for cell in row))
    Console().print(table)
    sys.stdout.flush()  # before the definitions line on standard error
