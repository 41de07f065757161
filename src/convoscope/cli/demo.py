"""A believable brand to try convoscope on: `demo` (generate, ingest, write every report, print the
headline, serve; or a Chatwoot account posting signed webhooks) and `generate` (the events alone)."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path
from typing import Any

import click

from convoscope import service
from convoscope.cli.app import fail, progress_printer
from convoscope.cli.serve import Port, check_port, port_or_default, serve_app
from convoscope.config import BrandSettings, Config, load_config
from convoscope.errors import command_line
from convoscope.store import Store, log_of


@click.command()
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
@click.option("--port", type=Port(), envvar="CONVOSCOPE_PORT", help="Port (default $CONVOSCOPE_PORT or 8000).")
def demo(out: Path, source: str | None, customers: int | None, days: int | None, seed: int, bad_rate: float,
         serving: bool, port: int | None) -> None:
    """Generate a realistic brand, ingest it, write every report, print the headline and serve the web app."""
    from datetime import date

    from convoscope import synth

    if source == "chatwoot":
        _demo_chatwoot(out, customers=customers or 300, days=days or 7, seed=seed, serving=serving, port=port)
        return
    customers, days = customers or 2000, days or 30
    port = port_or_default(port)
    if serving:  # a demo already serving keeps its store, its users and its links
        check_port("127.0.0.1", port)
    out.mkdir(parents=True, exist_ok=True)
    events_path = out / "events.jsonl"
    db_path = out / "demo.duckdb"
    for stale in (db_path, log_of(db_path)):
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
    serve_app(db_path, None, "127.0.0.1", port, config=config,
           login=f"log in as user 'demo' with password '{password}' (an Administrator)\n"
                 "the command line works on this store too: "
                 + command_line(["--db", str(db_path), "report", "sessions-summary"]))


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
    with (out / "handoff-themes.csv").open(newline="", encoding="utf-8") as themes:
        top = list(csv.DictReader(themes))[:5]
    if top:
        click.echo("why they were handed off, the largest themes (handoff-themes.csv):")
        for theme in top:
            click.echo(f"  {theme['Label']:<44} {int(theme['Handoffs']):>7,}  {float(theme['Share']) * 100:5.1f}%")


CHATWOOT_DEMO_BRAND = "demo"


def _demo_chatwoot(out: Path, *, customers: int, days: int, seed: int, serving: bool, port: int | None) -> None:
    """`demo --source chatwoot` (issue 23 point 7): a generated Chatwoot account (`synth_chatwoot`) over the
    last `days` days, posted delivery by delivery, signed as Chatwoot signs, to the webhook of a server this
    command runs with a fresh secret; the deliveries carry their generated times, the signatures now."""
    import secrets
    from datetime import UTC, datetime, timedelta

    from convoscope import accounts, synth_chatwoot
    from convoscope.spool import spool_folder

    shown_port = port_or_default(port)
    listen_port = shown_port if serving else 0  # without --serve: any free port, for as long as it posts
    if serving:
        check_port("127.0.0.1", shown_port)
    start = (datetime.now(UTC) - timedelta(days=days)).date()
    account = synth_chatwoot.generate(contacts=customers, days=days, seed=seed, start=start)
    out.mkdir(parents=True, exist_ok=True)
    db_path = out / "chatwoot.duckdb"
    for stale in (db_path, log_of(db_path)):
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
                     "the command line works on this store too: "
                     + command_line(["--db", str(db_path), "--config", str(config_path), "report", "sessions-summary"]))
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
    serve_app(db_path, config_path, "127.0.0.1", listen_port, config=config, login=login, alongside=post)
    if failed:
        fail(f"posting the webhooks failed: {failed[0]}", 1)
    if serving:
        return
    # The stopped server merged every delivery into the store; the reports read it as they would any brand.
    with Store(db_path) as store:
        click.echo(f"stored {store.count('events'):,} events of brand {CHATWOOT_DEMO_BRAND!r} -> {db_path}")
        now = datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"
        _demo_reports(store, config, out, as_of=now, created=f"created from {start} over {days} days, UTC")


@click.command()
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
