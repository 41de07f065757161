"""The input contract (SPEC 2.2–2.3) as data, and the one SQL query that validates staged records.

Every reader stages its records into the same shape (`STAGE_COLUMNS`); `validation_sql` then checks
every rule of SPEC 2.2 in one vectorised pass and yields, per record, either the normalised event or a
one-line reason saying what is wrong and how to fix it.
"""

from __future__ import annotations

from typing import NamedTuple

from convoscope.events.fields import MAX_LENGTH, blank_sql
from convoscope.store import BRAND_PATTERN, EVENT_TYPES, event_key_sql, sql_string

FIELDS = (
    "event_id", "type", "occurred_at", "customer_id", "brand", "channel", "text", "route", "ai_agent",
    "guides", "category", "subcategory", "reason", "transfer_rationale", "agent", "inbox", "rating", "score",
)
# `score` is a number (a feedback's, docs/outcomes.md): staged as the text of that number, it is read by
# the one rule below, and the readers check that it came as a number where the format has types.
NUMBER_FIELDS = ("score",)
STRING_FIELDS = tuple(f for f in FIELDS if f != "guides" and f not in NUMBER_FIELDS)

# Staging shape: where the record came from, its raw text, whether it could be parsed into fields at
# all, any problem the reader found (bad JSON, a value of the wrong type), the 18 fields as text (guides
# as a list; score as the text of its number) and the unknown fields.
STAGE_COLUMNS = ("source", "line", "raw", "parsed", "problem", *FIELDS, "attributes")

MESSAGE_TYPES = ("customer_message", "ai_message", "agent_message")
ALLOWED_ON = {  # fields the table ties to some types (SPEC 2.2)
    "route": ("customer_message",),
    "ai_agent": ("ai_message", "handoff"),
    "guides": ("ai_message",),
    "category": ("handoff",),
    "subcategory": ("handoff",),
    "reason": ("handoff",),
    "transfer_rationale": ("handoff",),
    "agent": ("agent_message", "contact_end", "conversation_close", "conversation_reopen"),
    "rating": ("feedback",),
    "score": ("feedback",),
}
RATINGS = ("positive", "negative")
SCORES = (1, 5)  # a feedback's score: a whole number from 1 to 5
# The text of a number, as JSON writes one and a CSV cell may: DuckDB's own casts also take `4_0`, `inf`
# and `0x4`, which are no numbers a user means.
NUMBER_PATTERN = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
CHANNEL_PATTERN = "^[a-z0-9][a-z0-9_-]{0,31}$"
TIMESTAMP_PATTERN = r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$"
CONTROL = "[\\x00-\\x1f\\x7f-\\x9f]"
# What a message quoting a value shows as a space: the control characters and the two line separators,
# which SPEC 4.2 counts as line breaks too. So a reason stays one line (SPEC 2.4).
BREAKS_LINE = "[\\x00-\\x1f\\x7f-\\x9f\u2028\u2029]"


def _in(col: str, values: tuple[str, ...]) -> str:
    # OR-ed equalities: DuckDB plans a long IN list as a join, which costs a pass over the chunk each.
    return "(" + " OR ".join(f"{col} = {sql_string(v)}" for v in values) + ")"


def _is_blank(col: str) -> str:
    """Inside the validation query, the blank test of a staged field, computed once per record."""
    return f"_b_{col}" if col in STRING_FIELDS else blank_sql(col)


def _score(col: str) -> str:
    """SQL: the staged text of a score as its INTEGER, or NULL when it is no whole number from 1 to 5
    (`4`, `4.0`, `4e0` are 4)."""
    number = f"TRY_CAST({col} AS DOUBLE)"
    return (f"CASE WHEN regexp_matches({col}, '{NUMBER_PATTERN}') AND {number} BETWEEN {SCORES[0]} AND {SCORES[1]} "
            f"AND {number} = floor({number}) THEN {number}::INTEGER END")


def _longer(col: str, size: int) -> str:
    """SQL: whether `col` has more than `size` characters (false when NULL). Counting characters reads the
    whole string; its length in bytes, never fewer, is stored: only a string of more bytes is counted."""
    return f"CASE WHEN strlen({col}) > {size} THEN length({col}) > {size} ELSE false END"


def _shown(col: str) -> str:
    """A value quoted for a message, cut short so that the reason stays one readable line: line breaks
    and control characters (NUL, escape sequences a terminal would obey) are shown as spaces."""
    return (f"'''' || regexp_replace(CASE WHEN length({col}) > 40 THEN left({col}, 40) || '…' ELSE {col} END, "
            f"'{BREAKS_LINE}', ' ', 'g') || ''''")


class Check(NamedTuple):
    """A rule: SQL that a record breaks it and SQL for the message naming the field. `alone` is the
    rule's own condition, without the earlier rules of its field that `condition` waits for (whether a
    record is bad at all needs only these: the first of a field's rules it breaks is one of them)."""

    condition: str
    message: str
    alone: str = ""

    @property
    def broken(self) -> str:
        return f"coalesce({self.alone or self.condition}, false)"


def _chain(*checks: tuple[str, str]) -> list[Check]:
    """Checks of one field, each reported only when the ones before it passed."""
    out: list[Check] = []
    before: list[str] = []
    for condition, message in checks:
        bad = f"coalesce({condition}, false)"
        out.append(Check(" AND ".join([*(f"NOT {b}" for b in before), bad]), message, bad))
        before.append(bad)
    return out


def _required_then_valid(f: str, types: tuple[str, ...], valid: str, must_be: str) -> list[Check]:
    """The checks of a field required on some types (`'f is required on ' || type`), then, where present on
    any type, of its value: `valid` SQL, else `'f <value> must be <must_be>'`."""
    return _chain(
        (f"{_is_blank(f)} AND {_in('type', types)}", f"'{f} is required on ' || type"),
        (f"NOT {_is_blank(f)} AND NOT {valid}", f"'{f} ' || {_shown(f)} || ' must be {must_be}'"),
    )


# Columns the validation query computes once per record, each read by several rules: the local time
# and UTC instant of `occurred_at`, and whether `type` is one of the event types.
LOCAL, INSTANT, KNOWN_TYPE = "_local", "_instant", "_known_type"


def _timestamp_sql(assume_tz: str | None) -> tuple[str, str, list[Check]]:
    """SQL for the local time of `occurred_at` (from its parts `_ts`; below µs: truncated), for its UTC
    instant (from column LOCAL), and its checks (SPEC 2.2), which read columns LOCAL and INSTANT."""
    local_sql = "try_cast(_ts.d || ' ' || _ts.t || left(_ts.f, 7) AS TIMESTAMP)"
    local = LOCAL
    offset_ok = ("(_ts.o = '' OR upper(_ts.o) = 'Z' OR (try_cast(substr(_ts.o, 2, 2) AS INT) < 24 "
                 "AND try_cast(substr(_ts.o, 5, 2) AS INT) < 60))")
    offset_minutes = ("CASE WHEN upper(_ts.o) = 'Z' THEN 0 ELSE (CASE WHEN left(_ts.o, 1) = '-' THEN -1 ELSE 1 END) * "
                      "(try_cast(substr(_ts.o, 2, 2) AS INT) * 60 + try_cast(substr(_ts.o, 5, 2) AS INT)) END")
    with_offset = f"{local} - to_minutes({offset_minutes})"
    if assume_tz:
        z = sql_string(assume_tz)
        # ICU reads an ambiguous local time as the later instant; SPEC 2.2 wants the earlier one.
        later = f"timezone({z}, {local})"
        earlier = f"({local} - (timezone({z}, {later} - INTERVAL 1 DAY) - ({later} - INTERVAL 1 DAY)::TIMESTAMP))"
        naive = (f"CASE WHEN timezone({z}, {earlier}::TIMESTAMPTZ) = {local} AND {earlier} < {later}::TIMESTAMP "
                 f"THEN {earlier} ELSE {later}::TIMESTAMP END")
        gap = f"timezone({z}, {later}) <> {local}"
    else:
        naive, gap = "NULL", "false"
    instant = f"CASE WHEN _ts.o = '' THEN {naive} ELSE {with_offset} END"
    shown = _shown("occurred_at")
    checks = _chain(
        (_is_blank("occurred_at"), "'occurred_at is missing'"),
        ("_ts.d = ''", f"'occurred_at ' || {shown} || ' is not an RFC 3339 timestamp such as 2026-05-21T10:00:00Z'"),
        # DuckDB reads 24:00:00 as the next midnight; RFC 3339 has hours 00 to 23.
        (f"{local} IS NULL OR _ts.t >= '24' OR NOT {offset_ok}",
         f"'occurred_at ' || {shown} || ' is not a valid date, time and offset'"),
        (f"_ts.o = '' AND {'false' if assume_tz else 'true'}",
         f"'occurred_at ' || {shown} || ' has no UTC offset; add one (Z or +02:00) or ingest with --assume-tz ZONE'"),
        (f"_ts.o = '' AND {gap}",
         f"'occurred_at ' || {shown} || ' does not exist in {assume_tz} (a daylight-saving gap); correct the time'"),
        # Python, Spark and Parquet readers hold years 1 to 9999 only; year 0000 is 1 BC to DuckDB.
        (f"NOT year({INSTANT}) BETWEEN 1 AND 9999",
         f"'occurred_at ' || {shown} || ' is outside the years 0001 to 9999 in UTC'"),
    )
    return local_sql, instant, checks


def checks(timestamp_checks: list[Check]) -> list[Check]:
    """Every rule of SPEC 2.2–2.3 as (condition that a staged record breaks it, message)."""
    checks: list[Check] = [Check("problem IS NOT NULL", "problem")]
    for f in ("event_id", "customer_id"):
        checks += _chain(
            (_is_blank(f), f"'{f} is missing'"),
            (_longer(f, 200), f"'{f} is longer than 200 characters'"),
            (f"regexp_matches({f}, '{CONTROL}')", f"'{f} contains control characters'"),
        )
    checks += _chain(
        (_is_blank("type"), "'type is missing'"),
        (f"NOT {KNOWN_TYPE}",
         f"'type ' || {_shown('type')} || ' is not one of {', '.join(EVENT_TYPES)}'"),
    )
    checks += timestamp_checks
    checks.append(Check(f"NOT {_is_blank('brand')} AND NOT regexp_full_match(brand, '{BRAND_PATTERN}')",
                         f"'brand ' || {_shown('brand')} || ' must be lower-case letters, digits, _ or - (at most 64)'"))
    checks += _required_then_valid("channel", MESSAGE_TYPES, f"regexp_full_match(lower(channel), '{CHANNEL_PATTERN}')",
                                   "letters, digits, _ or - (at most 32)")
    checks.append(Check(f"NOT {_is_blank('route')} AND NOT (route = 'ai' OR route = 'team')",
                         f"'route ' || {_shown('route')} || ' must be ai or team'"))
    for f, size in MAX_LENGTH.items():
        if f not in ("event_id", "customer_id"):
            checks.append(Check(_longer(f, size), f"'{f} is longer than {size:,} characters'"))
    checks.append(Check("guides IS NOT NULL AND list_bool_or(list_transform(guides, lambda g: length(g) > 200))",
                         "'a guide name is longer than 200 characters'"))
    checks.append(Check(f"type = 'handoff' AND {_is_blank('category')}", "'category is required on handoff'"))
    checks += _required_then_valid("rating", ("feedback",), _in("rating", RATINGS), " or ".join(RATINGS))
    # Not quoted: the JSON Lines readers may give one number as 7 or 7.0 (decision 107).
    checks.append(Check(f"NOT {_is_blank('score')} AND {_score('score')} IS NULL",
                         f"'score must be a whole number from {SCORES[0]} to {SCORES[1]}'"))
    for f, types in ALLOWED_ON.items():
        present = "len(guides_n) > 0" if f == "guides" else f"NOT {_is_blank(f)}"
        where = " and ".join(types) if len(types) < 3 else ", ".join(types)
        checks.append(Check(f"{present} AND {KNOWN_TYPE} AND NOT {_in('type', types)}",
                             f"'{f} is only allowed on {where}, not on ' || type"))
    return checks


def validation_sql(assume_tz: str | None, *, raw: bool = False, record: str = "line", told_brand: bool = False) -> str:
    """One query over `_stage` giving the normalised event, its key (SPEC 3.5, `event_key_sql`) and
    `reject_reason` (NULL when valid).

    Raw text is needed for rejected records only, and building it (a JSON object or a CSV line per
    record) costs a pass over every value: the ingester looks it up afterwards for the few lines that
    need it (`Chunk.raw_of`), so `raw` stays NULL here unless asked for (Spark's tasks, which cannot).

    Every check is a cheap condition; the message of a failed check is built only for bad records.
    `record` is the staged column that tells records apart (`ingest.merge_stage`), passed through.
    `told_brand`: the stage's `brand` was given by the ingest (a helpdesk's records), not read from the
    record, so a record that could not be read still belongs to it."""
    local, instant, timestamp_checks = _timestamp_sql(assume_tz)
    all_checks = checks(timestamp_checks)

    # A rejected record keeps its time when the time itself was fine (the data-quality report shows it).
    timestamp_bad = " OR ".join(check.broken for check in timestamp_checks)
    any_bad = " OR ".join(check.broken for check in all_checks)
    messages = ", ".join(f"CASE WHEN {check.condition} THEN {check.message} END" for check in all_checks)
    brand = f"CASE WHEN NOT parsed THEN {'brand' if told_brand else 'NULL'} WHEN {_is_blank('brand')} THEN 'default' ELSE brand END"
    normalised = {
        f: f"CASE WHEN {_is_blank(f)} THEN NULL ELSE {f} END" for f in STRING_FIELDS
        if f not in ("event_id", "customer_id", "type", "occurred_at", "brand", "channel")
    }
    return f"""
        WITH s AS (
            SELECT *, regexp_extract(occurred_at, '{TIMESTAMP_PATTERN}', ['d', 't', 'f', 'o']) AS _ts,
                   {", ".join(f"{blank_sql(f)} AS _b_{f}" for f in STRING_FIELDS)},
                   CASE WHEN guides IS NOT NULL THEN list_filter(guides, lambda g: NOT {blank_sql("g")}) END AS guides_n,
                   {_in("type", EVENT_TYPES)} AS {KNOWN_TYPE}
            FROM _stage
        ), local AS (  -- each layer's values are computed once and read by the next: not once per use
            SELECT *, {local} AS {LOCAL} FROM s
        ), timed AS (
            SELECT *, {instant} AS {INSTANT} FROM local
        ), checked AS (
            SELECT *, CASE WHEN NOT parsed THEN problem
                           WHEN {any_bad} THEN concat_ws('; ', {messages}) END AS reject_reason
            FROM timed
        )
        SELECT source, line, {"" if record == "line" else f"{record}, "}{"CASE WHEN reject_reason IS NOT NULL THEN raw END" if raw else "NULL::VARCHAR"} AS raw,
               reject_reason,
               {brand} AS brand,
               event_id, CASE WHEN reject_reason IS NULL THEN type END AS type,
               CASE WHEN reject_reason IS NULL OR NOT ({timestamp_bad}) THEN {INSTANT} END AS occurred_at, customer_id,
               CASE WHEN {_is_blank("channel")} THEN NULL ELSE lower(channel) END AS channel,
               {", ".join(f"{expr} AS {f}" for f, expr in normalised.items())},
               CASE WHEN len(guides_n) > 0 THEN guides_n END AS guides,
               {", ".join(f"{_score(f)} AS {f}" for f in NUMBER_FIELDS)}, attributes,
               CASE WHEN reject_reason IS NULL THEN {event_key_sql(brand, "customer_id", "event_id")} END AS event_key
        FROM checked
    """
