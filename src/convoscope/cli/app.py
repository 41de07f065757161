"""The command line's frame (SPEC 6.1): the Click group and its global options (`App`), the one-line
errors and exit codes, the progress bar, and `main`, the console script.

Every failure is one line on standard error: exit 2 for a usage error, 1 for any other failure, 3 when
an ingest rejected events. Long work shows a progress bar on a terminal and stays quiet otherwise. The
commands live in one module per family beside this one; `convoscope.cli` adds them to the group.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
import duckdb
from click.core import ParameterSource

from convoscope import __version__, service
from convoscope.config import Config, load_config
from convoscope.errors import ConvoscopeError, command_line, option_name
from convoscope.events.schema import BREAKS_LINE
from convoscope.store import Store, default_db_path

EXIT_REJECTED = 3
# Every write is a transaction: what was committed stays, the unfinished part is not stored.
INTERRUPTED = "interrupted; what had finished is kept, the unfinished part is not stored"


class App:
    """Global options, and the store and configuration opened from them on first use. `given`: the global
    options as the command line gave them (`--db PATH`), which a hint naming another command repeats."""

    def __init__(self, db: Path | None, config: Path | None, *, given: Sequence[str] = ()) -> None:
        self.db_path = db if db is not None else default_db_path()
        self.config_path = config
        self.given = tuple(given)
        self._config: Config | None = None

    def command(self, words: Sequence[str]) -> str:
        """The line that runs convoscope with `words` on the same store and configuration, quoted for a POSIX
        shell where needed: a hint that works as printed (issue 28)."""
        return command_line([*self.given, *words])

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @contextmanager
    def store(self, *, must_exist: bool = False) -> Iterator[Store]:
        """The store; commands that only read it must not create an empty one by mistake."""
        if must_exist and not self.db_path.exists():
            raise ConvoscopeError(f"no store at {self.db_path}; ingest events first "
                                  f"({self.command(['ingest', 'FILE'])}) or point --db at the store")
        with Store(self.db_path, on_wait=lambda message: click.echo(f"convoscope: {message}", err=True)) as store:
            _merge_spool(store)
            yield store


    @contextmanager
    def lake(self, folder: Path | str) -> Iterator[Store]:
        """A lake spark-derive wrote, made with this configuration's derivation settings."""
        from convoscope.derive.duckdb_engine import stale_brands

        with Store.lake(folder) as store:
            stale = stale_brands(store, self.config)
            if stale:
                raise ConvoscopeError(f"lake {folder} was derived with other settings for brand {stale[0]}; "
                                      "derive it again with this configuration",
                                      command=("spark-derive", "--events", "PATH", "--out", str(folder)))
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

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConvoscopeError as exc:  # a command it points to repeats the global options given (issue 28)
            app = ctx.obj if isinstance(ctx.obj, App) else None
            fail(exc.worded(option_name, app.command if app else None), exc.exit_code)

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
        except ConvoscopeError as exc:  # an error about a parameter names it as an option: --as-of
            fail(exc.worded(option_name), exc.exit_code)
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
@click.option("--db", type=click.Path(path_type=Path), envvar="CONVOSCOPE_DB",
              help="Store file (default ./convoscope.duckdb or $CONVOSCOPE_DB).")
@click.option("--config", "config", type=click.Path(path_type=Path), help="Configuration file (default ./convoscope.toml).")
@click.version_option(__version__, prog_name="convoscope")
@click.pass_context
def cli(ctx: click.Context, db: Path | None, config: Path | None) -> None:
    """Conversations, AI sessions and team contacts from a support operation's event log."""
    # Only what the command line said: $CONVOSCOPE_DB, or the default, is there for the next command too.
    given = [word for option, value in (("db", db), ("config", config)) if value is not None
             and ctx.get_parameter_source(option) is ParameterSource.COMMANDLINE
             for word in (f"--{option}", str(value))]
    ctx.obj = App(db, config, given=given)


pass_app = click.make_pass_decorator(App)


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
