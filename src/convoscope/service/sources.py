"""A helpdesk's records in (SOURCES.md): files through a source module, Chatwoot's REST API through
`pull_chatwoot`, webhook deliveries through the spool; each stored as `events/mapped.py` stores a batch."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convoscope.config import Config
from convoscope.errors import ConvoscopeError
from convoscope.service.events import Batch, BatchOutcome, Progress, ensure_derived, store_together
from convoscope.store import Store

if TYPE_CHECKING:
    from pathlib import Path

    from convoscope.derive.duckdb_engine import DeriveResult
    from convoscope.events.known import KnownIds
    from convoscope.sources import Outcome, SourceCounts
    from convoscope.spool import Spool


@dataclass
class SourceResult:
    counts: SourceCounts
    derived: DeriveResult | None = None


SOURCE_BATCH = 20_000  # records stored per transaction


def source_brand(config: Config, name: str, brand: str | None) -> str:
    """The brand of a source's events (SOURCES.md): `--brand`, else `[sources.NAME] brand`, else default."""
    return brand or config.for_source(name).brand or "default"


def ingest_source(store: Store, config: Config, name: str, paths: list[str], *, brand: str | None = None,
                  derive: bool = True, progress: Progress | None = None) -> SourceResult:
    """Map every record of a helpdesk's files (`sources/`, SOURCES.md), store their events as any
    others (SPEC 2.4), then derive the customers that changed."""
    from convoscope import sources

    brand = source_brand(config, name, brand)
    settings = config.for_source(name)
    counts = sources.SourceCounts()
    read = 0
    mapping = sources.module(name)
    for path in mapping.inputs(paths):
        batch: list[Outcome] = []
        for record in mapping.read(path, settings):
            batch.append(record)
            if len(batch) >= SOURCE_BATCH:
                counts.add(store_records(store, batch, system=name, via="file", brand=brand))
                read += len(batch)
                batch = []
                if progress:
                    progress("read", read, None)
        if batch:
            counts.add(store_records(store, batch, system=name, via="file", brand=brand))
            read += len(batch)
            if progress:
                progress("read", read, None)
    result = SourceResult(counts)
    if derive:
        result.derived = ensure_derived(store, config, progress=progress)
    return result


def store_records(store: Store, records: list[Outcome], *, system: str, via: str, brand: str) -> SourceCounts:
    """Store what a batch of a source's records became, in one transaction."""
    from convoscope.events.mapped import merge_outcomes

    with store.transaction() as con:
        return merge_outcomes(con, records, system=system, via=via, brand=brand)


@dataclass
class PullResult:
    """What a pull did: the four counts of its messages, and what became of the conversations listed."""

    counts: SourceCounts
    listed: int | None = None  # the conversations the list holds (its all_count), when Chatwoot says
    pulled: int = 0  # fetched and stored by this run
    unchanged: int = 0  # stored by an earlier run, with no activity since: not fetched again
    gone: int = 0  # deleted between the list and their messages
    unlisted: int = 0  # counted by the list but never on its pages (it changed while it was paged)
    derived: DeriveResult | None = None


PULL_BATCH = 5_000  # pulled records stored per transaction, at most
PULL_BATCH_SECONDS = 2.0  # and conversations fetched for at most this long before they are stored


def pull_chatwoot(open_store: Callable[[], AbstractContextManager[Store]], config: Config, *, url: str, account: int,
                  token: str, since: int | None = None, brand: str | None = None, derive: bool = True,
                  progress: Progress | None = None, warn: Callable[[str], None] | None = None) -> PullResult:
    """Fetch a Chatwoot account's conversations and their messages through its REST API
    (`sources.chatwoot_api`), store each message as `sources.chatwoot.map_backfill` maps it (SOURCES.md 1,
    SPEC 2.4), then derive the customers that changed.

    Each conversation's events are stored in the same transaction as its row in `chatwoot_pulls` (the
    `last_activity_at` listed), a few conversations a transaction: one listed again with the same activity
    is not fetched again, so an interrupted pull run again goes on where it stopped, and a later one
    fetches only what changed. What was fetched is stored before a failure is raised. The store is opened
    (`open_store`) for each of those transactions only, not while Chatwoot is asked, so that `serve` and
    other commands can use it during a long pull. With `since` (epoch seconds), only conversations active
    since then. `warn` hears, once, that the token is not an administrator's (Chatwoot then lists only the
    conversations of the token's inboxes)."""
    from convoscope import sources
    from convoscope.sources.chatwoot_api import Chatwoot, PullError, activity_of

    brand = source_brand(config, "chatwoot", brand)
    result = PullResult(sources.SourceCounts())
    fetched: list[tuple[dict[str, Any], list[Any]]] = []
    started = time.monotonic()

    def store_fetched() -> None:
        if fetched:
            with open_store() as store:
                result.counts.add(_store_pulled(store, api.site, account, fetched, brand=brand))
            result.pulled += len(fetched)
            fetched.clear()

    with Chatwoot(url, token, account) as api:
        role = api.role()  # a wrong address, token or account fails before a store is made for it
        if role != "administrator" and warn:
            warn(f"the access token is an {role}'s of account {account}, not an administrator's: Chatwoot lists it "
                 "only the conversations of its own inboxes, so some may be missing; use an administrator's token "
                 "to pull every inbox")
        with open_store() as store:
            stored = dict(store.con.execute("SELECT conversation, last_activity_at FROM chatwoot_pulls "
                                            "WHERE site = ? AND account = ?", [api.site, account]).fetchall())
        seen: set[int] = set()
        try:
            for page in api.conversation_pages(since=since):
                if result.listed is None and since is None:
                    result.listed = page.all_count
                for conversation in page.conversations:
                    number = conversation["id"]
                    if number in seen:  # a list whose order moved while it was paged shows some twice
                        continue
                    seen.add(number)
                    activity = activity_of(conversation)
                    if activity is not None and number in stored and stored[number] == activity:
                        result.unchanged += 1
                    elif (messages := api.messages(number)) is None:
                        result.gone += 1
                    else:
                        if not fetched:
                            started = time.monotonic()
                        fetched.append((conversation, messages))
                        if (sum(len(m) for _, m in fetched) >= PULL_BATCH
                                or time.monotonic() - started >= PULL_BATCH_SECONDS):
                            store_fetched()
                    if progress:
                        total = max(result.listed, len(seen)) if result.listed is not None else None
                        progress("pull", len(seen), total)
        except (PullError, KeyboardInterrupt):
            store_fetched()  # whole conversations: a run again need not fetch them
            raise
        store_fetched()
        if result.listed is not None:
            result.unlisted = max(0, result.listed - len(seen))
    if derive:
        with open_store() as store:
            result.derived = ensure_derived(store, config, progress=progress)
    return result


def _store_pulled(store: Store, site: str, account: int, fetched: list[tuple[dict[str, Any], list[Any]]], *,
                  brand: str) -> SourceCounts:
    """Pulled conversations' messages and their `chatwoot_pulls` rows, in one transaction. Each message is
    its own record: source `pull:chatwoot:<account>:<conversation>`, line its message id."""
    from convoscope.events.mapped import merge_outcomes
    from convoscope.sources.chatwoot import map_backfill
    from convoscope.sources.chatwoot_api import activity_of

    records: list[Outcome] = []
    numbers, activities = [], []
    for conversation, messages in fetched:
        number = conversation["id"]
        source = f"pull:chatwoot:{account}:{number}"
        for message in messages:
            line = message.get("id") if isinstance(message, dict) else None
            records += map_backfill(conversation, [message], source=source, line=line if type(line) is int else None)
        numbers.append(number)
        activities.append(activity_of(conversation))
    with store.transaction() as con:
        counts = merge_outcomes(con, records, system="chatwoot", via="pull", brand=brand)
        con.execute("DELETE FROM chatwoot_pulls WHERE site = ? AND account = ? AND list_contains(?, conversation)",
                    [site, account, numbers])
        con.execute("INSERT INTO chatwoot_pulls SELECT ?, ?, unnest(?::BIGINT[]), unnest(?::BIGINT[]), "
                    "now()::TIMESTAMP", [site, account, numbers, activities])
    return counts


SPOOL_BATCH = 5_000  # deliveries merged per transaction


def merge_spool(store: Store, *, batch: int = SPOOL_BATCH, waiting: list[Path] | None = None,
                settle: Callable[[], object] | None = None, known: KnownIds | None = None,
                warn: Callable[[str], None] = lambda message: None) -> SourceCounts:
    """Move the webhook deliveries spooled when it is called (`spool.py`), or those `waiting` names, into the
    store, `batch` at a time, each batch in one transaction and removed from the spool once it committed and
    `settle` (a server's derive of the customers it changed) returned: a spool that is empty is then in the
    reports. Without `settle`, derivation is left to whoever reads next (the customers stay `pending`). A
    delivery that cannot be read is set aside, and `warn` told. Deliveries that come meanwhile wait for the next
    call: while a helpdesk keeps sending, merging until the spool is empty would hold the store, and keep the
    merged customers underived, for as long as it sends. `known`: `merge_stage`'s."""
    from convoscope import sources
    from convoscope.events.mapped import merge_outcomes
    from convoscope.spool import Spool, spool_folder

    spool = Spool(spool_folder(store.path))
    counts = sources.SourceCounts()
    waiting = spool.waiting() if waiting is None else waiting
    for first in range(0, len(waiting), batch):
        groups, paths = _read_spool(spool, waiting[first:first + batch], warn)
        with store.transaction() as con:
            for (system, brand), records in groups.items():
                counts.add(merge_outcomes(con, records, system=system, via="webhook", brand=brand, known=known))
        if settle is not None:
            settle()
        spool.remove(paths)
    spool.clear_partial()
    return counts


def store_round(store: Store, batches: Sequence[Batch], waiting: list[Path], *,
                mapped: dict[tuple[Path, int], tuple[str, str, Outcome]] | None = None,
                known: KnownIds | None = None,
                warn: Callable[[str], None] = lambda message: None) -> tuple[list[BatchOutcome], list[Path], int]:
    """A server's round (web/writer.py): `batches` and the deliveries of the spool's files `waiting` stored in one
    transaction, as one chunk (`store_together`); returns the batches' outcomes, the files merged, which the caller
    removes from the spool once it has derived them, and how many deliveries they held. `mapped`: deliveries mapped
    already, by their file and place in it (system, brand, record: a server's handler mapped each for its answer),
    taken as they are. A file that cannot be read is set aside, and `warn` told."""
    from convoscope.spool import Spool, spool_folder

    groups, paths = _read_spool(Spool(spool_folder(store.path)), waiting, warn, mapped)
    outcomes, _ = store_together(store, batches, [(system, brand, records) for (system, brand), records in groups.items()],
                                 via="webhook", known=known)
    return outcomes, paths, sum(len(records) for records in groups.values())


def _read_spool(spool: Spool, waiting: list[Path], warn: Callable[[str], None],
                mapped: dict[tuple[Path, int], tuple[str, str, Outcome]] | None = None,
                ) -> tuple[dict[tuple[str, str], list[Outcome]], list[Path]]:
    """The deliveries of the files `waiting` read and mapped, by (system, brand), and the paths of the files read;
    one that cannot be read is set aside, and `warn` told; one gone meanwhile (merged by another process) is
    skipped. `mapped`: deliveries mapped already, by file and place in it, taken as they are."""
    from convoscope import sources

    groups: dict[tuple[str, str], list[Outcome]] = {}
    paths = []
    mapped = mapped if mapped is not None else {}
    for path in waiting:
        try:
            records = [mapped.pop((path, place)) if (path, place) in mapped
                       else (delivery.system, delivery.brand,
                             sources.map_delivery(delivery.system, delivery.body, source=delivery.source))
                       for place, delivery in enumerate(spool.read(path))]
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, ConvoscopeError) as exc:
            aside = spool.set_aside(path)
            warn(f"{path.name} in the webhook spool cannot be read ({exc}); it was moved to {aside}")
            continue
        for system, brand, record in records:
            groups.setdefault((system, brand), []).append(record)
        paths.append(path)
    return groups, paths
