"""Reports out: the one path that runs a report for whoever asks (SPEC 4, 6.4, 6.5).

Every interface — the command line, the API (CSV and JSON), the report pages, and later schedules and the
Gladly dialect — asks here: `prepare_report` checks the parameters and scopes the brands to the asker,
`run_report` brings the derived tables up to date, runs the report (a CSV file, or rows) and writes the
audit row SPEC 6.5 asks for when the report holds messages. No interface writes that row itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from convoscope.config import Config, format_duration
from convoscope.errors import ConvoscopeError, Forbidden, ParameterError
from convoscope.service.events import Progress, ensure_derived
from convoscope.store import Store

if TYPE_CHECKING:
    from convoscope.reports import Order
    from convoscope.reports.base import Params, Report
    from convoscope.reports.stream import CsvStream


@dataclass(frozen=True)
class Asker:
    """Who runs a report, and through which interface. `name` is what the audit log records (a user's
    name, or `cli:<login>` on the command line); `brands` the brands they may see (None: every brand);
    `messages` whether they may read reports with messages (SPEC 6.4). `lenient_brands`: a brand the store
    does not hold gives an empty report rather than an error (the command line, which warns instead)."""

    name: str
    via: str  # cli, api, page (and schedule, gladly as they come)
    brands: tuple[str, ...] | None = None
    messages: bool = True
    lenient_brands: bool = False

    def visible(self, known: Sequence[str]) -> list[str]:
        """The brands of `known` this asker may see (SPEC 6.4)."""
        return list(known) if self.brands is None else [b for b in known if b in self.brands]


@dataclass
class ReportRun:
    """What running a report gave: rows written to a file (`count`), or the header and rows asked for."""

    count: int = 0
    header: list[str] = field(default_factory=list)
    rows: list[tuple[str | None, ...]] = field(default_factory=list)


def prepare_report(store: Store, config: Config, name: str, asker: Asker, *, brands: Sequence[str] = (),
                   **options: Any) -> tuple[Report, Params]:
    """Report `name` and its checked parameters (SPEC 4: `options` are `reports.build_params`'s) as `asker`
    may run it: a report with messages needs the permission (`Forbidden`), a brand outside the asker's
    list is refused (`ParameterError` on `brand`, worded alike for a brand that does not exist), and no
    brand asked for means every brand they may see."""
    from convoscope import reports

    report = reports.get_report(name)
    if report.personal_data and not asker.messages:
        raise Forbidden(f"the {name} report holds messages, which your role may not read")
    known = store.brands()
    visible = asker.visible(known)
    refused = [b for b in brands if b not in visible and not (asker.lenient_brands and asker.brands is None)]
    if refused:
        choices = ", ".join(visible) or "none"
        raise ParameterError("brand", lambda n: f"{n('brand')} {refused[0]!r} is not one you may see; "
                                                f"choose from {choices}")
    # No brand asked for covers every brand the asker may see: `visible`, not every brand the store holds
    # (a user limited to brands the store does not hold yet sees none).
    params = reports.build_params(report, config, visible, brands=list(brands) or None, **options)
    params.every_brand = asker.brands is None and not brands
    return report, params


def run_report(store: Store, config: Config, report: Report, params: Params, asker: Asker, *,
               given: dict[str, Any], to: Path | None = None, limit: int | None = None, offset: int = 0,
               order: Order | None = None, action: str = "download",
               writing: AbstractContextManager[Any] | None = None, progress: Progress | None = None,
               audited: bool = True, catch_up: Callable[[Store, Config], None] | None = None) -> ReportRun:
    """Run a prepared report: its CSV written to `to` (whole or not at all), else its rows (`limit` of them from
    the `offset`th, sorted by `order` when given: a page of a table). A report with messages writes one audit row (SPEC 6.5): `action` (a `download`, or a `view` of
    rows on a page) by `asker.name`, with the parameters as the interface was `given` them. `writing` is
    the lock a server holds around writes (the audit row's); `catch_up` how a server brings the derived tables up
    to date (its writer's way: `Server.ensure_derived`), else they are derived here under `writing`. A report over
    a lake is not `audited` (decision 74: a lake has no audit log, and any Parquet reader reads its files)."""
    from convoscope import accounts, reports

    lock = writing if writing is not None else nullcontext()
    _up_to_date(store, config, lock, catch_up, progress)
    run = ReportRun()
    if to is not None:
        run.count = _write_csv(store, config, report, params, to)
    else:
        run.header, run.rows = reports.report_rows(store, config, report, params, limit=limit, offset=offset,
                                                   order=order)
        run.count = len(run.rows)
    if report.personal_data and audited:
        with lock:
            accounts.audit(store, asker.name, action, report.name, given, audited_brands(params))
    return run


def stream_report(store: Store, config: Config, report: Report, params: Params, asker: Asker, *,
                  given: dict[str, Any], writing: AbstractContextManager[Any] | None = None,
                  catch_up: Callable[[Store, Config], None] | None = None,
                  on_done: Callable[[], None] | None = None) -> CsvStream:
    """`run_report` for a download handed over while it is written (reports/stream.py, decision 169): the derived
    tables brought up to date and, for a report with messages, the audit row written before the first byte leaves
    (a download begun is a download: SPEC 6.5); then the CSV's bytes, the very bytes `_write_csv` writes. `on_done`
    runs once `store` is no longer used; `writing` and `catch_up` are `run_report`'s."""
    from convoscope import accounts, reports

    lock = writing if writing is not None else nullcontext()
    _up_to_date(store, config, lock, catch_up)
    if report.personal_data:
        with lock:
            accounts.audit(store, asker.name, "download", report.name, given, audited_brands(params))
    return reports.stream_csv(store, config, report, params, on_done=on_done)


def _up_to_date(store: Store, config: Config, lock: AbstractContextManager[Any],
                catch_up: Callable[[Store, Config], None] | None, progress: Progress | None = None) -> None:
    """The derived tables brought up to date: a server's way (`catch_up`), else derived here under `lock`."""
    from convoscope.derive.duckdb_engine import needs_derive

    if catch_up is not None:
        catch_up(store, config)
    elif needs_derive(store, config):
        with lock:
            ensure_derived(store, config, progress=progress)


def describe_report(config: Config, report: Report, params: Params) -> str:
    """The definitions that produced a report, on one line (issue 24): the as-of time and time zone it was
    judged and rendered in, and per brand it covers the derivation settings of SPEC 5 its tables were built
    with. Shown beside a report (an HTTP header and a JSON field, a line under a page's table, `report
    --describe`), never inside its CSV."""
    settings: dict[str, list[str]] = {}
    for brand in params.brands:
        settings.setdefault(config.for_brand(brand).derivation_fingerprint(), []).append(brand)
    derived = "; ".join(f"{', '.join(brands)}: {fingerprint}" for fingerprint, brands in settings.items())
    as_of = params.as_of.strftime("%Y-%m-%dT%H:%M:%SZ")
    judged = ""
    if report.judges_with(params):  # report-time windows (decision 113): by brand, as the derivation settings
        windows: dict[str, list[str]] = {}
        for brand in params.brands:
            values = ";".join(f"{key}={format_duration(getattr(config.for_brand(brand), key))}"
                              for key in report.judges_with(params))
            windows.setdefault(values, []).append(brand)
        judged = "; judged with " + "; ".join(f"{', '.join(brands)}: {values}" for values, brands in windows.items())
    return (f"{report.name} as of {as_of}, time zone {params.tz}; derived with {derived or 'no brand'}{judged}"
            + (f"; configuration {config.path}" if config.path is not None else ""))


def audited_brands(params: Params) -> list[str] | None:
    """The brands a report's audit entry concerns: those it covered, or None when it covered every brand."""
    return None if params.every_brand else params.brands


def write_report(store: Store, config: Config, report: Report, params: Params, path: Path, *,
                 progress: Progress | None = None) -> int:
    """Bring the derived tables up to date, then write the report's CSV to `path`, whole or not at all.
    Returns the number of data rows."""
    ensure_derived(store, config, progress=progress)
    return _write_csv(store, config, report, params, path)


def _write_csv(store: Store, config: Config, report: Report, params: Params, path: Path) -> int:
    """The report's CSV written to `path`, whole or not at all, from derived tables already up to date (a
    server derives under its write lock first: deriving here again would take the store without it)."""
    from convoscope.reports import render_csv

    return write_whole(path, lambda partial: render_csv(store, config, report, params, partial))


def write_whole(path: Path, fill: Callable[[Path], int]) -> int:
    """`fill(partial)` writes a file beside `path`, which then replaces `path`: whole or not at all. Returns what
    `fill` did (a number of rows); a place that cannot be written is a one-line `ConvoscopeError`, worded alike
    whether the command line made the report or asked its running server for it (decision 167)."""
    if not path.parent.is_dir():
        raise ConvoscopeError(f"cannot write {path}: no folder {path.parent}; choose another place for it")
    partial = path.with_name(path.name + ".part")
    try:
        count = fill(partial)
        partial.replace(path)
    except (duckdb.IOException, OSError) as exc:  # OSError: `path` is a folder, say
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise ConvoscopeError(f"cannot write {path}: {reason}; choose another place for it") from None
    return count
