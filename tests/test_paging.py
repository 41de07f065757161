"""Pages of a detail report read in two steps (reports/paging.py, decision 160): the keys in the page's order, then
the cells of the page's rows. The pages together are the report's rows in its own order and sorted by any column,
and the keys kept per process are never those of a store written since.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cli_helpers import Convoscope
from convoscope import accounts, reports, service
from convoscope.config import load_config
from convoscope.reports import paging
from convoscope.reports.base import Params, Report
from convoscope.store import Store, file_stamp, key_of, store_stamp
from convoscope.web.gate import StoreGate
from web_helpers import generate_brand

START, LAST = "2026-05-01", "2026-05-07"
AS_OF = "2026-05-06T12:00:00Z"  # some sessions and conversations still open: their empty cells sort too
KEYED = [name for name, report in reports.REPORTS.items() if report.keyed]
Row = tuple[str | None, ...]


@pytest.fixture(scope="module")
def brand(tmp_path_factory: pytest.TempPathFactory) -> Convoscope:
    cs = Convoscope(tmp_path_factory.mktemp("paging"))
    generate_brand(cs, customers=120, days=7, seed=11, start=START)
    return cs


@pytest.fixture
def store(brand: Convoscope) -> Iterator[Store]:
    with Store(brand.db, read_only=True) as store:
        yield store


def prepared(store: Store, cs: Convoscope, name: str, **options: object) -> tuple[Report, Params]:
    asker = service.Asker("test", "page", brands=None, messages=True)
    return service.prepare_report(store, load_config(cs.config), name, asker, brands=[], date_from=START,
                                  date_to=LAST, tz="America/New_York", as_of=AS_OF, **options)


def expected_order(report: Report, params: Params, rows: list[Row], order: reports.Order) -> list[Row]:
    """`rows` (the report's order) sorted as a page sorts them: numbers as numbers, text without case, empty cells
    last both ways, ties in the report's order (Python's sort is stable, also reversed)."""
    i = order.column
    numeric = report.output_columns(params)[i].kind in reports.NUMERIC_KINDS
    filled = [row for row in rows if row[i] is not None]
    empty = [row for row in rows if row[i] is None]
    key = (lambda row: float(row[i] or 0)) if numeric else (lambda row: (row[i] or "").lower())
    return sorted(filled, key=key, reverse=order.descending) + empty


def test_keyed_reports_are_the_detail_reports() -> None:
    assert sorted(KEYED) == ["contact-export", "conversation-export", "sessions-detail",
                             "sessions-detail-with-messages"]


@pytest.mark.parametrize("name", KEYED)
@pytest.mark.parametrize("options", [{}, {"extra": True}, {"anchor": "ended"}], ids=["plain", "extra", "ended"])
def test_every_sort_of_every_column_is_the_reports_rows_sorted(brand: Convoscope, store: Store, name: str,
                                                                options: dict[str, object]) -> None:
    if options.get("anchor") == "ended" and name == "conversation-export":
        options = {"anchor": "last_closed"}
    config = load_config(brand.config)
    report, params = prepared(store, brand, name, **options)
    _, rows = reports.report_rows(store, config, report, params)  # unpaged: the CSV's cells
    assert len(rows) > 20 and reports.count_rows(store, config, report, params) == len(rows)
    assert reports.report_rows(store, config, report, params, limit=len(rows))[1] == rows
    for column in range(len(report.output_columns(params))):
        for descending in (False, True):
            order = reports.Order(column, descending)
            got = reports.report_rows(store, config, report, params, limit=len(rows), order=order)[1]
            assert got == expected_order(report, params, rows, order), (column, descending)


@pytest.mark.parametrize("name", KEYED)
def test_the_pages_together_are_the_rows(brand: Convoscope, store: Store, name: str) -> None:
    config = load_config(brand.config)
    report, params = prepared(store, brand, name, where=["period=2026-05-03"] if name != "contact-export" else [])
    _, rows = reports.report_rows(store, config, report, params)
    order = reports.Order(5, descending=True)
    for wanted, asked in ((rows, None), (expected_order(report, params, rows, order), order)):
        pages = [reports.report_rows(store, config, report, params, limit=7, offset=start, order=asked)[1]
                 for start in range(0, len(rows) + 7, 7)]
        assert [row for page in pages for row in page] == wanted and pages[-1] == []


def page_of(db: Path, cs: Convoscope) -> tuple[int, list[Row], list[Row]]:
    """The count and first page of sessions-detail as a page reads them, and its rows read afresh."""
    with Store(db) as store:
        config = load_config(cs.config)
        report, params = prepared(store, cs, "sessions-detail")
        count = reports.count_rows(store, config, report, params)
        page = reports.report_rows(store, config, report, params, limit=20, order=reports.Order(3))[1]
        whole = reports.report_rows(store, config, report, params)[1]
        return count, page, expected_order(report, params, whole, reports.Order(3))[:20]


def test_keys_kept_are_never_those_of_a_store_written_since(tmp_path: Path) -> None:
    cs = Convoscope(tmp_path)
    generate_brand(cs, customers=30, days=3, seed=5, start=START)
    paging.KEYS.clear()
    count, page, fresh = page_of(cs.db, cs)
    assert page == fresh and len(paging.KEYS._lists) == 2  # the report's order and the sort's
    kept = dict(paging.KEYS._lists)
    assert page_of(cs.db, cs)[:2] == (count, page) and dict(paging.KEYS._lists).keys() == kept.keys()

    # The command line writes the store between two requests: more customers, in the same days.
    generate_brand(cs, customers=30, days=3, seed=6, start=START)
    later, page, fresh = page_of(cs.db, cs)
    assert later > count and page == fresh

    # A write on the very connection the pages read (the server's own: an ingest, a derivation).
    with Store(cs.db) as store:
        config = load_config(cs.config)
        report, params = prepared(store, cs, "sessions-detail")
        assert reports.count_rows(store, config, report, params) == later
        first = reports.report_rows(store, config, report, params, limit=5)[1]
        store.con.execute("DELETE FROM derived.sessions WHERE session_key = ?", [key_of(first[0][0] or "", "ses_")])
        assert reports.count_rows(store, config, report, params) == later - 1
        assert reports.report_rows(store, config, report, params, limit=4)[1] == first[1:]


def test_an_audit_entry_and_closing_the_store_keep_what_pages_keep(tmp_path: Path) -> None:
    """A page that writes an audit entry (a report with messages, a conversation) and the checkpoint of the server
    closing the store change its files but no data: the keys kept stay kept (`store.same_data`, through
    `StoreGate.recorded`). An entry written while the writer holds its lock, and a commit of data, do not."""
    cs = Convoscope(tmp_path)
    generate_brand(cs, customers=30, days=3, seed=5, start=START)
    config = load_config(cs.config)
    gate = StoreGate(cs.db, keep=0)  # closed when the last request ends, as the test reads the files then
    paging.KEYS.clear()

    def viewed(*, busy: bool = False, meanwhile: bool = False) -> tuple[tuple[object, ...] | None, tuple[object, ...]]:
        """A page of the report with messages and its audit entry, as the server serves it (`busy`: a round of the
        writer under way; `meanwhile`: one taking the writer's lock while the entry is written); the stamps the
        caches see and the files have, after the store is closed."""
        with gate.open() as store:
            report, params = prepared(store, cs, "sessions-detail-with-messages")
            reports.report_rows(store, config, report, params, limit=10)
            if busy:
                gate.writing.acquire()  # a round of the writer under way
            try:
                with gate.recorded(store):
                    if meanwhile:
                        with gate.writing:
                            pass
                    accounts.audit(store, "test", "view", report.name, {"page": 1})
            finally:
                if busy:
                    gate.writing.release()
            kept = store_stamp(store)
        return kept, file_stamp(cs.db)

    kept, files = viewed()
    listed = set(paging.KEYS._lists)
    assert len(listed) == 1
    again, later = viewed()
    assert later != files and again == kept and set(paging.KEYS._lists) == listed  # no listing again

    busy, _ = viewed(busy=True)
    assert busy != kept and len(paging.KEYS._lists) == 1
    meanwhile, _ = viewed(meanwhile=True)
    assert len(paging.KEYS._lists) == 2  # listed again: the round might have changed data
    viewed()
    assert len(paging.KEYS._lists) == 3  # and again: a writer took the lock while the entry was written
    generate_brand(cs, customers=30, days=3, seed=6, start=START)  # another process's commit, the store closed
    written, _ = viewed()
    assert written not in (kept, busy, meanwhile) and len(paging.KEYS._lists) == 4


def test_the_keys_kept_stay_within_their_bound() -> None:
    cache = paging.KeyCache(max_bytes=3 * 8 * 100)
    lists = {n: paging.np.arange(100, dtype=paging.np.int64) + n for n in range(5)}
    for n, keys in lists.items():
        cache.put((n,), keys)
    assert cache.get((0,)) is None and cache.get((1,)) is None and cache.get((4,)) is not None
    assert cache.get((2,)) is not None  # used last: kept when another comes
    cache.put((5,), lists[0])
    assert cache.get((3,)) is None and cache.get((2,)) is not None
    cache.put((6,), paging.np.arange(1000, dtype=paging.np.int64))  # larger than the bound: not kept
    assert cache.get((6,)) is None and cache.get((5,)) is not None


# the sources report counts what the server received, of which a brand ingested from a file has nothing
SUMMARIES = [name for name, report in reports.REPORTS.items() if report.rows_are_few and report.in_lakes]


@pytest.mark.parametrize("name", SUMMARIES)
def test_a_summarys_page_sorted_by_any_column_is_its_rows_sorted(brand: Convoscope, store: Store, name: str) -> None:
    """A summary's page, count and chart read its rows computed once for the page (`reports._whole`): whatever
    column it is sorted by and wherever its page starts, they are the rows the report gives."""
    config = load_config(brand.config)
    by = "channel" if "channel" in reports.REPORTS[name].by_columns else None
    report, params = prepared(store, brand, name, by=by)
    _, rows = reports.report_rows(store, config, report, replace(params, memo={}))  # unpaged: the CSV's cells
    assert len(rows) > 3 and reports.count_rows(store, config, report, params) == len(rows)
    for column in range(len(report.output_columns(params))):
        for descending in (False, True):
            order = reports.Order(column, descending)
            wanted = expected_order(report, params, rows, order)
            pages = [reports.report_rows(store, config, report, params, limit=3, offset=start, order=order)[1]
                     for start in range(0, len(rows) + 3, 3)]
            assert [row for page in pages for row in page] == wanted, (column, descending)
    assert reports.report_rows(store, config, report, params, limit=2, offset=1)[1] == rows[1:3]
    other = replace(params, period="all", by=None, memo={})  # another query of the same page: not these rows
    assert reports.report_rows(store, config, report, replace(params, period="all", by=None))[1] == \
        reports.report_rows(store, config, report, other)[1]
