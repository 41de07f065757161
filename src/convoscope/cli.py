"""The command line (SPEC 6.1): parses, calls `service`, prints.

Every failure is one line on standard error: exit 2 for a usage error, 1 for any other failure, 3 when
an ingest rejected events. Long work shows a progress bar on a terminal and stays quiet otherwise.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import duckdb

from convoscope import __version__, service
from convoscope.accounts import ROLES
from convoscope.config import BrandSettings, Config, check_zone, load_config
from convoscope.errors import ConvoscopeError
from convoscope.events.schema import BREAKS_LINE
from convoscope.store import Store, default_db_path

if TYPE_CHECKING:
    from convoscope.sources import SourceCounts

EXIT_REJECTED = 3
# Every write is a transaction: what was committed stays, the unfinished part is not stored.
INTERRUPTED = "interrupted; what had finished is kept, the unfinished part is not stored"


class App:
    """Global options, and the store and configuration opened from them on first use."""

    def __init__(self, db: Path | None, config: Path | None) -> None:
        self.db_path = db if db is not None else default_db_path()
        self.config_path = config
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @contextmanager
    def store(self, *, must_exist: bool = False) -> Iterator[Store]:
        """The store; commands that only read it must not create an empty one by mistake."""
        if must_exist and not self.db_path.exists():
            raise ConvoscopeError(f"no store at {self.db_path}; ingest events first (convoscope ingest FILE) "
                                  "or point --db at the store")
        with Store(self.db_path, on_wait=lambda message: click.echo(f"convoscope: {message}", err=True)) as store:
            _merge_spool(store)
            yield store


    @contextmanager
    def lake(self, folder: Path) -> Iterator[Store]:
        """A lake spark-derive wrote, made with this configuration's derivation settings."""
        from convoscope.derive.duckdb_engine import stale_brands

        with Store.lake(folder) as store:
            stale = stale_brands(store, self.config)
            if stale:
                raise ConvoscopeError(f"lake {folder} was derived with other settings for brand {stale[0]}; "
                                      "run spark-derive again with this configuration")
            yield store


def _merge_spool(store: Store) -> None:
    """Webhook deliveries a stopped server left in the spool go into the store first: whoever opens the
    store next merges them, so a delivery answered 200 is never lost (issue 23)."""
    from convoscope.spool import Spool, spool_folder

    if Spool(spool_folder(store.path)).waiting():
        counts = service.merge_spool(store, warn=lambda message: click.echo(f"convoscope: {message}", err=True))
        click.echo(f"convoscope: merged webhook deliveries a server left behind: accepted {counts.accepted:,}, "
                   f"duplicate {counts.duplicate:,}, ignored {counts.ignored:,}, rejected {counts.rejected:,}", err=True)


def fail(message: str, code: int = 1) -> NoReturn:
    # One line, whatever the message quotes: a path may hold a line break, click lists choices on lines.
    one_line = re.sub(rf"\s*{BREAKS_LINE}+\s*", " ", message)
    click.echo(f"convoscope: error: {one_line}", err=True)
    sys.exit(code)


class OneLineGroup(click.Group):
    """Click's usage errors, and ours, as one line each with a hint (SPEC 6.1)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
            sys.exit(2)
        except click.NoSuchOption as exc:
            if exc.option_name in ("--db", "--config"):  # a global option given after the command
                fail(f"{exc.option_name} goes before the command: convoscope {exc.option_name} PATH COMMAND ...", 2)
            where = exc.ctx.command_path if exc.ctx else "convoscope"
            fail(f"{exc.format_message()} (see '{where} --help')", 2)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "convoscope"
            fail(f"{exc.format_message()} (see '{where} --help')", 2)
        except click.exceptions.Abort:  # click's word for Ctrl-C (KeyboardInterrupt) or Ctrl-D at a prompt
            fail(INTERRUPTED, 130)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except ConvoscopeError as exc:
            fail(exc.message, exc.exit_code)
        except BrokenPipeError:
            sys.exit(1)
        except OSError as exc:  # a path the system refused: a folder where a file goes, no such folder...
            fail(f"{exc.filename}: {exc.strerror or exc}; check the path" if exc.filename else
                 f"{exc.strerror or exc}; check the paths given", 1)
        except duckdb.InterruptException:  # Ctrl-C during a query
            fail(INTERRUPTED, 130)
        except RuntimeError as exc:  # Ctrl-C during a query, as DuckDB's Python client reports it from execute()
            if str(exc) != "Query interrupted":
                raise
            fail(INTERRUPTED, 130)


def progress_printer() -> Callable[[str, int, int | None], None] | None:
    """A rich progress bar on a terminal; nothing otherwise (SPEC 6.1)."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # On standard error, the terminal it was asked of: rich draws on standard output by default, where a
    # report's CSV goes, and left a line break there when that was redirected to a file.
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True)
    tasks: dict[str, Any] = {}

    def update(what: str, done: int, total: int | None) -> None:
        if not tasks:
            bar.start()
        if what not in tasks:
            names = {"ingest": "Storing events", "read": "Reading records", "pull": "Pulling conversations",
                     "derive": "Deriving"}
            tasks[what] = bar.add_task(names.get(what, what), total=total)
        bar.update(tasks[what], completed=done, total=total)
        if total is not None and done >= total:
            bar.stop()
            tasks.clear()

    return update


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", type=click.Path(path_type=Path), help="Store file (default ./convoscope.duckdb or $CONVOSCOPE_DB).")
@click.option("--config", "config", type=click.Path(path_type=Path), help="Configuration file (default ./convoscope.toml).")
@click.version_option(__version__, prog_name="convoscope")
@click.pass_context
def cli(ctx: click.Context, db: Path | None, config: Path | None) -> None:
    """Conversations, AI sessions and team contacts from a support operation's event log."""
    ctx.obj = App(db, config)


pass_app = click.make_pass_decorator(App)


@cli.command()
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
        click.echo("convoscope: some events were rejected; list them with 'convoscope rejects'", err=True)
        sys.exit(EXIT_REJECTED)


def _ingest_source(app: App, config: Config, source: str, paths: list[str], *, fmt: str | None,
                   assume_tz: str | None, brand: str | None, derive: bool) -> None:
    """`ingest --source`: a helpdesk's records (SOURCES.md), with the four counts."""
    from convoscope import sources

    if fmt is not None or assume_tz is not None:
        fail(f"--{'format' if fmt else 'assume-tz'} does not go with --source: {source}'s records say their "
             "own format and time zone", 2)
    _check_brand(brand)
    try:
        mapping = sources.module(source)
    except ConvoscopeError as exc:
        fail(f"--source: {exc.message}", 2)
    mapping.inputs(paths)  # before the store exists: a typo must not leave an empty one behind
    with app.store() as store:
        result = service.ingest_source(store, config, source, paths, brand=brand, derive=derive,
                                       progress=progress_printer())
    _print_source_counts(result.counts)


def _check_brand(brand: str | None) -> None:
    from convoscope.store import BRAND_PATTERN

    if brand is not None and not re.fullmatch(BRAND_PATTERN, brand):
        fail(f"--brand {brand!r} is not a brand name; use lower-case letters, digits, _ or - (at most 64)", 2)


def _print_source_counts(c: SourceCounts) -> None:
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
        click.echo("convoscope: some records were rejected; list them with 'convoscope rejects'", err=True)
        sys.exit(EXIT_REJECTED)


@cli.group()
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
    _check_brand(brand)
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
    _print_source_counts(result.counts)


@cli.command()
@pass_app
def derive(app: App) -> None:
    """Rebuild every derived table from the stored events."""
    config = app.config
    with app.store(must_exist=True) as store:
        result = service.derive(store, config, progress=progress_printer())
    click.echo(f"derived {result.events:,} events of {result.customers:,} customers: {result.sessions:,} sessions, "
               f"{result.contacts:,} contacts, {result.conversations:,} conversations")


@cli.command()
@click.argument("name")
@click.option("--from", "date_from", metavar="DATE", help="First local date (inclusive).")
@click.option("--to", "date_to", metavar="DATE", help="Last local date (inclusive).")
@click.option("--tz", metavar="ZONE", help="IANA time zone of the report.")
@click.option("--as-of", "as_of", metavar="TIMESTAMP", help="Judge open and unknown values at this instant (default now).")
@click.option("--period", help="half_hour, day, week, month, quarter or year.")
@click.option("--by", help="Dimension of sessions-summary.")
@click.option("--where", multiple=True, metavar="KEY=VALUE", help="Filter; repeatable, AND-ed.")
@click.option("--headers", type=click.Choice(["display", "snake"]), default="display", show_default=True)
@click.option("--extra", is_flag=True,
              help="Append the extra columns: Brand, Created At, Ended At, End Reason, Outcome and Inbox to the "
                   "session reports; Inbox to contact-export; Inbox At Created and Inbox At Last Closed to "
                   "conversation-export.")
@click.option("--brand", "brands", multiple=True, help="Only this brand; repeatable (default every brand).")
@click.option("--out", default="-", metavar="FILE|-", help="Output file (default standard output).")
@click.option("--lake", type=click.Path(path_type=Path), metavar="DIR",
              help="Report over the Parquet tables spark-derive wrote to DIR instead of the store.")
@pass_app
def report(app: App, name: str, date_from: str | None, date_to: str | None, tz: str | None, as_of: str | None,
           period: str | None, by: str | None, where: tuple[str, ...], headers: str, extra: bool,
           brands: tuple[str, ...], out: str, lake: Path | None) -> None:
    """Write report NAME as CSV."""
    from convoscope import reports

    config = app.config
    if lake and not reports.get_report(name).in_lakes:
        fail(f"report {name} counts what became of a helpdesk's records, which only a store holds "
             "(spark-derive reads events); run it without --lake", 2)
    asker = service.Asker(f"cli:{getpass.getuser()}", "cli", lenient_brands=True)
    # What the audit records of a download with messages: every parameter given (SPEC 6.5).
    given = {key: value for key, value in {
        "from": date_from, "to": date_to, "tz": tz, "as_of": as_of, "period": period, "by": by, "where": list(where),
        "headers": None if headers == "display" else headers, "brand": list(brands), "extra": extra or None,
        "out": out}.items() if value}
    with app.lake(lake) if lake else app.store(must_exist=True) as store:
        definition, params = service.prepare_report(
            store, config, name, asker, brands=brands, date_from=date_from, date_to=date_to, tz=tz, as_of=as_of,
            period=period, by=by, where=list(where), headers=headers, extra=extra)
        known = store.brands()
        unknown = [b for b in brands if b not in known]
        if unknown:  # not an error: the report is right, and empty; but a typo deserves a word
            click.echo(f"convoscope: the store holds no brand {', '.join(map(repr, unknown))}; "
                       f"its brands are {', '.join(known) or 'none yet'}", err=True)
        # A lake has no audit log, and its files can be read by any Parquet reader (decision 74).
        options: dict[str, Any] = {"given": given, "audited": not lake, "progress": progress_printer()}
        if out == "-":
            with tempfile.TemporaryDirectory(prefix="convoscope-") as scratch:
                written = Path(scratch) / "report.csv"
                service.run_report(store, config, definition, params, asker, to=written, **options)
                sys.stdout.flush()
                with written.open("rb") as handle:
                    shutil.copyfileobj(handle, sys.stdout.buffer)
                sys.stdout.buffer.flush()
        else:
            count = service.run_report(store, config, definition, params, asker, to=Path(out), **options).count
            click.echo(f"wrote {count:,} rows to {out}", err=True)


@cli.command("spark-derive")
@click.option("--events", "paths", multiple=True, required=True, metavar="PATH",
              help="Parquet events: a file, a folder of them, or any Hadoop-compatible URL; repeatable.")
@click.option("--out", required=True, metavar="DIR", help="Folder or URL to write the lake to (replaced).")
@click.option("--master", metavar="URL", help="Spark master (default: spark-submit's, else local[*]).")
@click.option("--partitions", type=click.IntRange(min=1), help="Shuffle partitions (default Spark's).")
@click.option("--batch-rows", type=click.IntRange(min=1), help="Rows per Arrow batch given to the kernel.")
@click.option("--assume-tz", metavar="ZONE", help="Time zone for timestamps without an offset.")
@pass_app
def spark_derive(app: App, paths: tuple[str, ...], out: str, master: str | None, partitions: int | None,
                 batch_rows: int | None, assume_tz: str | None) -> None:
    """Validate and derive Parquet events on Apache Spark; write every table as Parquet to --out."""
    from convoscope.derive import spark_engine

    config = app.config
    if assume_tz:
        check_zone(assume_tz, param="assume_tz")
    for path in map(Path, (p for p in paths if "://" not in p)):  # local ones: Spark would say less, later
        if path.is_file() and path.suffix.lower() != ".parquet":
            fail(f"{path}: spark-derive reads Parquet; ingest JSON Lines or CSV with 'convoscope ingest', "
                 "or convert the file to Parquet", 2)
    spark = spark_engine.session(master, partitions=partitions, batch_rows=batch_rows)
    try:
        result = spark_engine.derive(spark, list(paths), out, config, assume_tz=assume_tz)
    except Exception as exc:  # Spark reports a missing path or a failed task as a Java exception
        if isinstance(exc, ConvoscopeError):
            raise
        raise ConvoscopeError(f"spark-derive failed: {str(exc).strip().splitlines()[0]}; "
                              "check --events and --out") from None
    finally:
        spark.stop()
    click.echo(f"accepted {result.accepted:,}, duplicate {result.duplicate:,}, rejected {result.rejected:,}; "
               f"{result.sessions:,} sessions, {result.contacts:,} contacts, {result.conversations:,} conversations "
               f"written to {out}")
    if result.rejected:
        click.echo(f"convoscope: some events were rejected; they are in {out.rstrip('/')}/rejects", err=True)
        sys.exit(EXIT_REJECTED)


@cli.command()
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


@cli.command()
@click.option("--customers", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--start", metavar="DATE", default="2026-05-01", show_default=True, help="First day (UTC).")
@click.option("--brand", default="default", show_default=True)
@click.option("--bad-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Share of malformed records.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="File to write: .jsonl, .csv or .parquet.")
def generate(customers: int, days: int, seed: int, start: str, brand: str, bad_rate: float, out: Path) -> None:
    """Write the synthetic event log of a realistic brand."""
    from convoscope import synth
    from convoscope.reports import parse_date

    first_day = parse_date(start, "start")  # a usage error (exit 2) when it is not YYYY-MM-DD
    if out.suffix.lower() not in (".jsonl", ".csv", ".parquet"):
        fail(f"--out {out}: use a .jsonl, .csv or .parquet file name", 2)
    if bad_rate >= 1:
        fail("--bad-rate must be below 1", 2)
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", brand):
        fail(f"--brand {brand!r} must be lower-case letters, digits, _ or - (at most 64)", 2)
    blocks = synth.generate_blocks(customers=customers, days=days, seed=seed, start=first_day, brand=brand,
                                   bad_rate=bad_rate)
    written = synth.write(blocks, out)
    click.echo(f"wrote {written:,} records to {out}")


def _port(port: int | None) -> int:
    if port is not None:
        return port
    text = os.environ.get("CONVOSCOPE_PORT", "8000")
    if not text.isdigit() or not 0 < int(text) < 65536:
        fail(f"CONVOSCOPE_PORT {text!r} is not a port number; use one such as 8000", 2)
    return int(text)


def _check_port(host: str, port: int) -> None:
    """Fail in one line, before anything is done, when the port is taken (a server already running)."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            fail(f"cannot listen on {host}:{port} ({exc.strerror}): is convoscope already serving there? "
                 "Stop it, or choose another port with --port or CONVOSCOPE_PORT", 1)


def _serve(db_path: Path, config_path: Path | None, host: str, port: int, *, config: Config | None = None,
           login: str | None = None, alongside: Callable[[Any], None] | None = None) -> None:
    """Serve the web app until Ctrl-C (or until `alongside`, run in a thread with the uvicorn server once
    the server is up, sets its `should_exit`)."""
    import threading

    import uvicorn

    from convoscope.web.app import create_app

    app = create_app(db_path, config_path, config=config)
    _check_port(host, port)
    shown = "127.0.0.1" if host in ("127.0.0.1", "0.0.0.0", "::") else host  # as Conversation Links say it
    if port:
        click.echo(f"convoscope is serving {db_path} at http://{shown}:{port}/  (Ctrl-C stops it)")
    if login:
        click.echo(login)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    if alongside is not None:
        def run_alongside() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                alongside(server)

        threading.Thread(target=run_alongside, name="convoscope-alongside", daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: Ctrl-C is how a server is stopped
        server.run()
    if not server.started:
        fail(f"the server could not start on {host}:{port}; see the message above", 1)


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


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default $CONVOSCOPE_PORT or 8000).")
@pass_app
def serve(app: App, host: str, port: int | None) -> None:
    """Serve the web app and the HTTP API over the store."""
    config = app.config  # a bad configuration fails now, not on the first request
    with app.store():
        pass  # creates the store's tables, waiting for another process if it holds the file
    _serve(app.db_path, app.config_path, host, _port(port), config=config)


@cli.group()
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
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@pass_app
def users_add(app: App, name: str, role: str, brands: str | None, password_stdin: bool) -> None:
    """Add user NAME with ROLE; the password comes from a prompt or standard input."""
    from convoscope import accounts

    password = _read_password(password_stdin)
    with app.store() as store:
        user = accounts.add_user(store, name, role, password, accounts.parse_brands(brands))
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
        click.echo("no users; add one with 'convoscope users add NAME --role administrator'", err=True)
        return
    for user, created in found:
        click.echo(f"{user.name}\t{user.role}\t{','.join(user.brands) if user.brands is not None else '*'}\t"
                   f"{created:%Y-%m-%dT%H:%M:%SZ}")


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
        click.echo(f"{name} has no tokens; make one with 'convoscope users token {name}'", err=True)
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
        fail("name one token (or its id from 'convoscope users tokens NAME') or give --all, not both", 2)
    with app.store() as store:
        revoked = accounts.revoke_tokens(store, name, None if every else token)
    if every:
        click.echo(f"revoked {revoked} token{'s' if revoked != 1 else ''} of {name} and ended their web logins",
                   err=True)
    else:
        click.echo(f"revoked the token of {name}" if revoked else f"that token of {name} was already revoked",
                   err=True)


@cli.command()
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@pass_app
def audit(app: App, limit: int) -> None:
    """Show the audit log, newest first: downloads of reports with messages, conversation views, logins,
    refused tokens, erasures."""
    import csv

    from convoscope import accounts

    with app.store(must_exist=True) as store:
        entries = accounts.audit_entries(store.con, limit)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["at", "user", "action", "target", "parameters"])
    for at, user, action, target, parameters in entries:
        writer.writerow([f"{at:%Y-%m-%dT%H:%M:%SZ}", user, action, target, parameters])


@cli.command()
@click.option("--brand", required=True)
@click.option("--customer", required=True)
@pass_app
def forget(app: App, brand: str, customer: str) -> None:
    """Erase one customer's events and everything derived from them (the audit log records that it happened)."""
    from convoscope import accounts

    with app.store(must_exist=True) as store:
        erased = accounts.forget(store, brand, customer, by=f"cli:{getpass.getuser()}")
    click.echo(f"erased {erased:,} events of customer {customer!r} of brand {brand!r}")


@cli.command()
@click.option("--out", default="demo-out", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the generated events, the store and the reports.")
@click.option("--source", type=click.Choice(["chatwoot"]),
              help="Generate a helpdesk account instead of events: chatwoot posts signed webhooks to the demo's "
                   "own server.")
@click.option("--customers", type=click.IntRange(min=1), help="Customers [default: 2000; 300 with --source].")
@click.option("--days", type=click.IntRange(min=1), help="Days [default: 30; 7 with --source].")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--bad-rate", type=click.FloatRange(0, 0.5), default=0.002, show_default=True,
              help="Share of malformed records, as real exports have (see data-quality.csv); not with --source.")
@click.option("--serve/--no-serve", "serving", default=True, show_default=True,
              help="Serve the web app afterwards, with an Administrator 'demo' (with --source: stop once every "
                   "delivery is in, then write the reports).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default $CONVOSCOPE_PORT or 8000).")
def demo(out: Path, source: str | None, customers: int | None, days: int | None, seed: int, bad_rate: float,
         serving: bool, port: int | None) -> None:
    """Generate a realistic brand, ingest it, write every report, print the headline and serve the web app."""
    from datetime import date

    from convoscope import synth

    if source == "chatwoot":
        _demo_chatwoot(out, customers=customers or 300, days=days or 7, seed=seed, serving=serving, port=port)
        return
    customers, days = customers or 2000, days or 30
    port = _port(port)
    if serving:  # a demo already serving keeps its store, its users and its links
        _check_port("127.0.0.1", port)
    out.mkdir(parents=True, exist_ok=True)
    events_path = out / "events.jsonl"
    db_path = out / "demo.duckdb"
    for stale in (db_path, db_path.with_name(db_path.name + ".wal")):
        stale.unlink(missing_ok=True)
    start = date(2026, 5, 1)
    written = synth.write(synth.generate_blocks(customers=customers, days=days, seed=seed, start=start,
                                                          bad_rate=bad_rate), events_path)
    click.echo(f"generated {written:,} events of {customers:,} customers over {days} days -> {events_path}")
    # Conversation Links in the reports open the page this demo serves.
    config = Config(defaults=BrandSettings(public_url=f"http://127.0.0.1:{port}"))
    with Store(db_path) as store:
        result = service.ingest(store, config, [str(events_path)], progress=progress_printer())
        c = result.counts
        click.echo(f"ingested: accepted {c.accepted:,}, duplicate {c.duplicate:,}, rejected {c.rejected:,} -> {db_path}"
                   + (" (why: data-quality.csv)" if c.rejected else ""))
        as_of = f"{start.fromordinal(start.toordinal() + days + 2).isoformat()}T00:00:00Z"
        last = start.fromordinal(start.toordinal() + days - 1)
        _demo_reports(store, config, out, as_of=as_of, created=f"created {start} to {last}, UTC")
    if not serving:
        return
    import secrets

    from convoscope import accounts

    password = secrets.token_urlsafe(12)
    with Store(db_path) as store:
        accounts.add_user(store, "demo", "administrator", password, None)
    click.echo("")
    _serve(db_path, None, "127.0.0.1", port, config=config,
           login=f"log in as user 'demo' with password '{password}' (an Administrator)\n"
                 f"the command line works on this store too: convoscope --db {db_path} report sessions-summary")


def _demo_reports(store: Store, config: Config, out: Path, *, as_of: str, created: str) -> None:
    """Every report of the demo's store into `out`, then the headline numbers."""
    from convoscope import reports
    from convoscope.reports.sessions import headline

    for name, definition in reports.REPORTS.items():
        params = reports.build_params(definition, config, store.brands(), as_of=as_of)
        path = out / f"{name}.csv"
        rows = service.write_report(store, config, definition, params, path)
        click.echo(f"wrote {rows:,} rows -> {path}")
    numbers = headline(store.con, reports.build_params(reports.get_report("sessions-detail"), config,
                                                       store.brands(), as_of=as_of))

    def pct(rate: str | None) -> str:
        return "n/a" if rate is None else f"{float(rate) * 100:.1f}%"

    click.echo("")
    click.echo(f"AI sessions       {numbers['sessions']:,}  ({created}; judged as of {as_of})")
    click.echo(f"resolution rate   {pct(numbers['resolution_rate'])}  (resolved / (resolved + responded and handed off))")
    click.echo(f"handoff rate      {pct(numbers['handoff_rate'])}  (handed off / closed sessions)")
    click.echo(f"recontact rate    {pct(numbers['recontact_rate'])}  (of resolved sessions, the share whose customer came "
               "back within 24 hours)")
    click.echo(f"no response       {numbers['no_response']:,}  (left out of the resolution rate)")
    click.echo("top handoff categories:")
    total = numbers["handed_off"] or 1
    for category, count in numbers["top_handoff_categories"]:
        click.echo(f"  {category:<28} {count:>7,}  {count / total * 100:5.1f}%")


CHATWOOT_DEMO_BRAND = "demo"


def _demo_chatwoot(out: Path, *, customers: int, days: int, seed: int, serving: bool, port: int | None) -> None:
    """`demo --source chatwoot` (issue 23 point 7): a generated Chatwoot account (`synth_chatwoot`) over the
    last `days` days, posted delivery by delivery, signed as Chatwoot signs, to the webhook of a server this
    command runs with a fresh secret; the deliveries carry their generated times, the signatures now."""
    import secrets
    from datetime import UTC, datetime, timedelta

    from convoscope import accounts, synth_chatwoot
    from convoscope.spool import spool_folder

    shown_port = _port(port)
    listen_port = shown_port if serving else 0  # without --serve: any free port, for as long as it posts
    if serving:
        _check_port("127.0.0.1", shown_port)
    start = (datetime.now(UTC) - timedelta(days=days)).date()
    account = synth_chatwoot.generate(contacts=customers, days=days, seed=seed, start=start)
    out.mkdir(parents=True, exist_ok=True)
    db_path = out / "chatwoot.duckdb"
    for stale in (db_path, db_path.with_name(db_path.name + ".wal")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(spool_folder(db_path), ignore_errors=True)
    files = synth_chatwoot.write(account, out / "chatwoot")
    click.echo(f"generated a Chatwoot account: {customers:,} contacts, {len(account.records):,} conversations from "
               f"{start} over {days} days, {len(account.deliveries):,} webhook deliveries -> {files['webhooks']}")
    # The configuration a Chatwoot brand needs, in a file, so that the command line reads the store as the
    # server does (ai_channels is a derivation setting: another value would rebuild the brand).
    secret = secrets.token_hex(32)
    url = f"http://127.0.0.1:{shown_port}"
    config_path = out / "chatwoot.toml"
    channels = ", ".join(f'"{c}"' for c in synth_chatwoot.AI_CHANNELS)
    config_path.write_text(
        "# written by `convoscope demo --source chatwoot`\n"
        f'public_url = "{url}"\n\n'
        f"[brands.{CHATWOOT_DEMO_BRAND}]\n"
        f"ai_channels = [{channels}]   # the inboxes a bot answers first (SOURCES.md 1.6)\n\n"
        "[sources.chatwoot]\n"
        f'brand = "{CHATWOOT_DEMO_BRAND}"\n'
        f'webhook_secret = "{secret}"\n', encoding="utf-8")
    config = load_config(config_path)
    login = None
    with Store(db_path) as store:
        if serving:
            password = secrets.token_urlsafe(12)
            accounts.add_user(store, "demo", "administrator", password, None)
            login = (f"log in as user 'demo' with password '{password}' (an Administrator)\n"
                     f"Chatwoot's webhook: POST {url}{synth_chatwoot.WEBHOOK_PATH} with webhook_secret {secret}\n"
                     f"the command line works on this store too: convoscope --db {db_path} --config {config_path} "
                     "report sessions-summary")
    failed: list[str] = []

    def post(server: Any) -> None:
        bound = server.servers[0].sockets[0].getsockname()[1]
        bar = progress_printer()
        try:
            counts = synth_chatwoot.post_deliveries(
                account.deliveries, url=f"http://127.0.0.1:{bound}{synth_chatwoot.WEBHOOK_PATH}", secret=secret,
                progress=None if bar is None else lambda done, total: bar("Posting webhooks", done, total),
                until=lambda: bool(server.should_exit))
            click.echo(f"posted {counts['posted']:,} signed webhook deliveries: events accepted "
                       f"{counts['accepted']:,}, records ignored {counts['ignored']:,}, rejected "
                       f"{counts['rejected']:,} (brand {CHATWOOT_DEMO_BRAND!r})")
        except (OSError, RuntimeError) as error:
            failed.append(str(error))
            server.should_exit = True
        if not serving:
            server.should_exit = True

    if serving:
        click.echo("")
    _serve(db_path, config_path, "127.0.0.1", listen_port, config=config, login=login, alongside=post)
    if failed:
        fail(f"posting the webhooks failed: {failed[0]}", 1)
    if serving:
        return
    # The stopped server merged every delivery into the store; the reports read it as they would any brand.
    with Store(db_path) as store:
        click.echo(f"stored {store.count('events'):,} events of brand {CHATWOOT_DEMO_BRAND!r} -> {db_path}")
        now = datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"
        _demo_reports(store, config, out, as_of=now, created=f"created from {start} over {days} days, UTC")


def main(args: list[str] | None = None) -> None:
    _keep_arrow_memory()
    _small_pages_for_numpy()
    cli(args, prog_name="convoscope")


def _keep_arrow_memory() -> None:
    """Arrow allocates from jemalloc, which keeps freed memory for 10 s, instead of pyarrow's default
    mimalloc, which hands large blocks back to the system at once. Memory touched for the first time
    costs this machine 0.5 s per GB or more, and a derive or a JSON Lines ingest allocates and frees gigabytes
    in turn: measured from the command line on the 10M store, derive 22.9–24.0 s → 19.5–19.8 s and
    JSON Lines ingest 49.0 → 44.4 s (decision 68). ARROW_DEFAULT_MEMORY_POOL, when set, still decides."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa  # already loaded by the commands' modules

    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return
    pa.set_memory_pool(pool)
    pa.jemalloc_set_decay_ms(10_000)


def _small_pages_for_numpy() -> None:
    """numpy asks Linux for transparent huge pages for every large array. On this machine a huge page
    touched for the first time costs far more than the 512 small pages it replaces: 0.7–2.6 s per GB
    against 0.5 s, however often it is measured. So the command turns that off, as numpy's own
    NUMPY_MADVISE_HUGEPAGE=0 would: the 10M derive, alternating from the command line, took 17.1–18.2 s
    against 18.2–23.9 s (decision 69). NUMPY_MADVISE_HUGEPAGE, when set, still decides."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return
    import numpy as np  # already loaded by the commands' modules

    core: Any = getattr(np, "_core", None) or np.core  # numpy 2, or 1.26
    with contextlib.suppress(AttributeError):  # what numpy calls to apply the variable at import
        core.multiarray._set_madvise_hugepage(False)


if __name__ == "__main__":
    main()
