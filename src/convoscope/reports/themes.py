"""Why handoffs happen (issue 27 point 2): `handoff-themes`, the handoffs of a period grouped into themes by their
reason, transfer rationale and the customer's last message before the handoff (`reports/clusters.py`), one row per
theme; `handoff-themes-with-examples`, the same with three example texts each, personal data (SPEC 6.5); and
`handoff-theme-sessions`, the sessions behind the themes, one row each, which a theme's Sessions Link opens.

The grouping runs in Python before the query (`Report.inputs`): it reads the handed-off sessions of the period and of
the period of equal length before it, groups the period's texts, assigns the earlier period's to the nearest theme
for the trend, and hands the query each session's theme. Everything else is SQL over `session_facts`, as every
session report: so a theme's count is a count of sessions-detail rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date, timedelta
from urllib.parse import urlencode

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from convoscope.config import Config
from convoscope.errors import ParameterError
from convoscope.reports import clusters
from convoscope.reports.base import (
    Column,
    Params,
    Report,
    columns,
    decimal,
    guard,
    period_label,
    public_url,
    rate,
)
from convoscope.reports.sessions import session_facts, session_filters
from convoscope.store import Kept, id_order, stored
from convoscope.store import sql_string as q

THEME_WHERE: dict[str, tuple[str, ...]] = {"channel": (), "ai_agent": (), "guide": (), "handoff_category": (),
                                           "inbox": ()}
EXAMPLES = 3
# An example's text: reason, transfer rationale and the customer's last message, each empty when absent.
EXAMPLE_TEXT = ("coalesce(handoff_reason, '') || ' | ' || coalesce(transfer_rationale, '') || ' | ' "
                "|| coalesce(said, '')")
TOP = 3  # categories, subcategories and guides named per theme

COLUMNS = (
    Column("Theme", kind="number"), Column("Label", text=True), Column("Handoffs", kind="count"),
    Column("Share", kind="rate"), Column("Previous Handoffs", kind="count"), Column("Trend", kind="rate"),
    Column("Top Categories", text=True), Column("Top Subcategories", text=True),
    Column("Guides", text=True), *(Column(f"Example {i} Link") for i in range(1, EXAMPLES + 1)), Column("Sessions Link"),
)
EXAMPLE_COLUMNS = tuple(Column(f"Example {i} Text", text=True) for i in range(1, EXAMPLES + 1))
SESSION_COLUMNS = (
    Column("Theme", kind="number"), Column("Label", text=True), *columns("id", "Session ID", "Conversation ID"),
    Column("Created Date", kind="time"),
    Column("Handoff Category", text=True), Column("Handoff Subcategory", text=True), Column("Handoff Reason", text=True),
    Column("Transfer Rationale", text=True), Column("Guides Used", text=True), Column("Conversation Link"),
)


def previous_range(params: Params) -> tuple[date, date] | None:
    """The period of equal length just before the report's: None without a first date (the whole log has none before
    it). Without a last date the period ends on the as-of time's local date."""
    if params.date_from is None:
        return None
    last = params.date_to or _local_date(params)
    days = (last - params.date_from).days + 1
    return params.date_from - timedelta(days=days), params.date_from - timedelta(days=1)


def _local_date(params: Params) -> date:
    from zoneinfo import ZoneInfo

    return params.as_of.astimezone(ZoneInfo(params.tz)).date()


def _texts_sql(params: Params) -> str:
    """The handed-off sessions of the period (`current`) and of the one before, each with its text (reason, transfer
    rationale and the customer's last message of the session) and that message (`said`), in a canonical order: by
    session, which an integer sort gives (the grouping does not depend on the order; the digest it is kept by does)."""
    earlier = previous_range(params)
    before = replace(params, date_from=earlier[0], date_to=earlier[1]) if earlier else None
    chosen = f"({session_filters(params)})" + (f" OR ({session_filters(before)})" if before else "")
    return f"""
        WITH picked AS (
            SELECT session_key, brand, customer_id, handoff_reason, transfer_rationale,
                   {session_filters(params)} AS current
            FROM ({session_facts(params)}) WHERE was_handed_off AND ({chosen})
        ),
        said AS ({_last_said("picked")})
        SELECT p.session_key, p.current, p.brand, p.customer_id,
               concat_ws(chr(10), p.handoff_reason, p.transfer_rationale, s.text) AS text, s.text AS said
        FROM picked p LEFT JOIN said s USING (session_key)
        ORDER BY p.session_key
    """


def _last_said(sessions: str) -> str:
    """SQL: the customer's last message (`text`) of each session of the relation `sessions` (with session_key): the one
    text of a handoff the themes group and the examples show. The sessions' messages first, then which of them are
    the customer's (a key and a type), then the text of one event per session: joined the other way round, every
    customer message of the store met every message of a session (0.6 of 1.5 s at 10M events)."""
    return f"""
        SELECT l.session_key, e.text
        FROM (SELECT m.session_key, arg_max(m.event_key, m.seq) AS event_key
              FROM (SELECT * FROM {stored("session_messages")} m
                    SEMI JOIN {sessions} p ON p.session_key = m.session_key) m
              SEMI JOIN (SELECT event_key FROM events WHERE type = 'customer_message') c USING (event_key)
              GROUP BY m.session_key) l
        JOIN events e USING (event_key)
    """


def _themes(cursor: duckdb.DuckDBPyConnection, report: Report, params: Params, config: Config) -> dict[str, pa.Table]:
    """`_theme_of` (each handed-off session of the period and the one before: its theme, from 1, how typical of it
    it is, and whether it is of the period) and `_theme_labels`."""
    found = cursor.sql(_texts_sql(params)).to_arrow_table()
    keys = found.column("session_key").to_numpy()
    current = found.column("current").to_numpy(zero_copy_only=False).astype(bool)
    texts = pc.fill_null(found.column("text").combine_chunks(), "")
    said = found.column("said").combine_chunks()
    now = np.flatnonzero(current)
    grouped = _grouped(texts.take(now), _owners(found)[now])
    theme = np.zeros(len(texts), dtype=np.int32)
    typical = np.zeros(len(texts))
    theme[now], typical[now] = grouped.theme, grouped.typical
    before = np.flatnonzero(~current)
    theme[before] = grouped.assign(texts.take(before))
    if not grouped.labels:  # no handoff in the period: nothing to show, earlier ones included
        keys, theme, typical, current, said = keys[:0], theme[:0], typical[:0], current[:0], said[:0]
    return {
        "_theme_of": pa.table({"session_key": keys, "theme": theme + 1, "typical": typical, "current": current,
                               "said": said}),
        "_theme_labels": pa.table({"theme": np.arange(1, len(grouped.labels) + 1, dtype=np.int32),
                                   "label": pa.array(grouped.labels, pa.string())}),
    }


_GROUPED: Kept[bytes, clusters.Themes] = Kept(4)  # a few ranges' themes and their models, by texts and writers


def _grouped(texts: pa.Array, owners: np.ndarray) -> clusters.Themes:
    """`clusters.group` of the period's texts and their writers (numbers: equal for the same customer), kept per
    process under a digest of both: the grouping is a function of them alone, so the same handoffs asked again —
    another as-of time, a commit that changed other sessions — are not grouped again (2.4 of a 30-day page's 4.5 s
    at 10M events)."""
    digest = hashlib.blake2b(digest_size=32)
    # The offsets and the characters they span: `take` made the array, so it starts at offset 0.
    wide = pa.types.is_large_string(texts.type)
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64 if wide else np.int32, count=len(texts) + 1)
    digest.update(offsets.tobytes())
    characters = texts.buffers()[2]
    if characters is not None:
        digest.update(memoryview(characters)[:offsets[-1]])
    digest.update(np.ascontiguousarray(owners, dtype=np.int64).tobytes())
    key = digest.digest()
    grouped = _GROUPED.get(key)
    if grouped is None:
        grouped = clusters.group(texts, owners)
        _GROUPED.put(key, grouped)
    return grouped


def _owners(found: pa.Table) -> np.ndarray:
    """Each row's customer as a number, the same for the same (brand, customer_id): the pair of their places among
    the distinct brands and the distinct customer ids."""
    brands, customers = (found.column(name).combine_chunks().dictionary_encode() for name in ("brand", "customer_id"))
    return (brands.indices.to_numpy(zero_copy_only=False).astype(np.int64) * len(customers.dictionary)
            + customers.indices.to_numpy(zero_copy_only=False))


def _picked(params: Params) -> str:
    """The period's handed-off sessions with their theme (and the `theme` filter), and the one before's."""
    wanted = [value for key, value in params.where if key == "theme"]
    bad = [value for value in wanted if not (value.isascii() and value.isdigit() and int(value) > 0)]
    if bad:
        raise ParameterError("where", lambda n: f"{n('where')} theme={bad[0]!r} is not a theme's number; use the "
                                                "Theme column of handoff-themes, 1 for the largest")
    theme = "".join(f" AND t.theme = {int(value)}" for value in wanted)
    return f"""
        SELECT f.*, t.theme, t.typical, t.current, t.said, l.label
        FROM ({session_facts(params)}) f JOIN _theme_of t USING (session_key) JOIN _theme_labels l USING (theme)
        WHERE true{theme}
    """


def _top(column: str, name: str, *, listed: bool = False) -> str:
    """A CTE `name`: per theme, its TOP values of `column` over the period's sessions, with their counts."""
    value = f"unnest({column})" if listed else column
    return f"""{name} AS (
        SELECT theme, string_agg(v || ' (' || n || ')', ', ' ORDER BY place) AS top
        FROM (SELECT theme, v, count(*) AS n, row_number() OVER (PARTITION BY theme ORDER BY count(*) DESC, v) AS place
              FROM (SELECT theme, {value} AS v FROM current) WHERE v IS NOT NULL GROUP BY theme, v)
        WHERE place <= {TOP} GROUP BY theme)"""


def sessions_link(config: Config, params: Params) -> str:
    """SQL for a theme's link to the sessions behind it: the handoff-theme-sessions page with these parameters."""
    given = [("from", params.date_from), ("to", params.date_to), ("tz", params.tz),
             ("as_of", params.as_of.strftime("%Y-%m-%dT%H:%M:%SZ"))]
    query = [(k, str(v)) for k, v in given if v] + [("brand", b) for b in params.brands if not params.every_brand]
    query += [("where", f"{k}={v}") for k, v in params.where if k != "theme"]
    base = config.for_brand(params.brands[0]).public_url if len(params.brands) == 1 else config.defaults.public_url
    return q(f"{base}/reports/handoff-theme-sessions?{urlencode(query)}&run=1&where=theme%3D") + " || theme::VARCHAR"


def _summary(report: Report, params: Params, config: Config, *, examples: bool = False) -> str:
    link = f"{public_url(config, params)} || '/conversations/' || conversation_id"
    nearest = f"typical DESC, {id_order('session_key')}"  # an example: nearest the centre, ties by session id
    texts = ", ".join(f"{guard(f'example_texts[{i}]')}" for i in range(1, EXAMPLES + 1)) if examples else ""
    # The change since the period before, as a share of it, signed: `rate` takes counts that are not negative.
    trend = (f"CASE WHEN z.n >= z.previous THEN {rate('z.n - z.previous', 'z.previous')} "
             f"ELSE '-' || {rate('z.previous - z.n', 'z.previous')} END")
    earlier = previous_range(params) is not None
    return f"""
        WITH picked AS ({_picked(params)}),
        current AS (SELECT * FROM picked WHERE current),
        sizes AS (SELECT theme, any_value(label) AS label, count(*) FILTER (WHERE current) AS n,
                         count(*) FILTER (WHERE NOT current) AS previous FROM picked GROUP BY theme),
        {_top("handoff_category", "categories")},
        {_top("handoff_subcategory", "subcategories")},
        {_top("guides", "guides", listed=True)},
        examples AS (
            SELECT theme, list({link} ORDER BY {nearest}) AS links
                   {f", list({EXAMPLE_TEXT} ORDER BY {nearest}) AS example_texts" if examples else ""}
            FROM current GROUP BY theme
        )
        SELECT z.theme, {guard("z.label")}, z.n, {decimal("z.n", "(SELECT count(*) FROM current)", 4)},
               {"z.previous" if earlier else "NULL"}, {trend if earlier else "NULL"},
               {guard("c.top")}, {guard("sc.top")}, {guard("g.top")},
               {", ".join(f"x.links[{i}]" for i in range(1, EXAMPLES + 1))}, {sessions_link(config, params)}
               {", " + texts if examples else ""}
        FROM sizes z LEFT JOIN categories c USING (theme) LEFT JOIN subcategories sc USING (theme)
        LEFT JOIN guides g USING (theme) LEFT JOIN examples x USING (theme)
        WHERE z.n > 0
        ORDER BY z.theme
    """


def _sessions(report: Report, params: Params, config: Config) -> str:
    return f"""
        SELECT theme, {guard("label")}, session_id, conversation_id, {period_label("created_at", params, params.period)},
               {guard("handoff_category")}, {guard("handoff_subcategory")}, {guard("handoff_reason")},
               {guard("transfer_rationale")}, {guard("guides_used")},
               {public_url(config, params)} || '/conversations/' || conversation_id
        FROM ({_picked(params)}) WHERE current
        ORDER BY theme, created_at, {id_order("session_key")}
    """


HANDOFF_THEMES = Report(
    name="handoff-themes",
    columns=COLUMNS,
    where=THEME_WHERE,
    query=_summary,
    inputs=_themes,
    few_rows=True,
)
HANDOFF_THEMES_WITH_EXAMPLES = Report(
    name="handoff-themes-with-examples",
    columns=COLUMNS + EXAMPLE_COLUMNS,
    where=THEME_WHERE,
    query=lambda report, params, config: _summary(report, params, config, examples=True),
    inputs=_themes,
    personal_data=True,
    few_rows=True,
)
HANDOFF_THEME_SESSIONS = Report(
    name="handoff-theme-sessions",
    columns=SESSION_COLUMNS,
    where=THEME_WHERE | {"theme": ()},
    query=_sessions,
    takes_period=True,
    inputs=_themes,
)
