"""SPEC 2.2's rules for a field's value that the store needs as well as validation: how long it may be,
when it is blank (absent), and how a field an older convoscope kept among the unknown ones moves into its
own column when the store is brought up to date (`Store._upgrade`, decision 87). It imports nothing of
convoscope, so that the store, which `schema` builds on, can use it without a circle.
"""

from __future__ import annotations

MAX_LENGTH = {
    "event_id": 200, "customer_id": 200, "text": 100_000, "ai_agent": 200, "category": 200,
    "subcategory": 10_000, "reason": 10_000, "transfer_rationale": 10_000, "agent": 200,
    "inbox": 200,  # Appendix B: on any type, so in no ALLOWED_ON entry
}

# White space as Python's str.isspace knows it, in RE2: ASCII's, the separators (\pZ: no-break, em, ideographic
# spaces and the rest), vertical tab, the information separators and NEL.
SPACE_CLASS = "[\\s\\v\\x1c-\\x1f\\x{85}\\pZ]"


def blank_sql(col: str) -> str:
    """SQL: whether `col` is absent by SPEC 2.2 (NULL, empty, or white space only)."""
    # The regex runs only for the rare value that starts with a control character, a space or a
    # character from U+0085 up (where the other spaces are). Strings compare byte by byte, and UTF-8
    # keeps code point order, so comparing with '!' and U+0085 tests the first character without
    # decoding it (ascii() did, at twice the cost of the whole test). A CASE, not an AND: in a projection
    # DuckDB evaluates both sides of an AND for every row, and the regex then ran on every value (14 fields:
    # 1.1 s of validating 3M events).
    return (f"CASE WHEN {col} >= '!' AND {col} < chr(133) THEN false "
            f"ELSE {col} IS NULL OR regexp_full_match({col}, '{SPACE_CLASS}*') END")


def promote_sql(field: str) -> str:
    """An UPDATE of the stored events that moves `field`, kept among the unknown fields (`attributes`) by a
    convoscope that did not know it yet, into its own column, where its value passes SPEC 2.2's rule for it
    (a string of at most MAX_LENGTH characters; blank is absent): the event then is what ingesting the same
    record now stores, so that the record seen again is a duplicate, not a conflict. Any other value stays in
    `attributes` (ingested now, that record would be rejected; a stored event is never taken back)."""
    assert field in MAX_LENGTH and field.isidentifier()  # a field's name: its literals need no quoting
    value = f"(attributes ->> '$.{field}')"
    return f"""
        UPDATE events SET {field} = CASE WHEN {blank_sql(value)} THEN NULL ELSE {value} END,
                          attributes = nullif(json_merge_patch(attributes, '{{"{field}": null}}'), '{{}}')
        WHERE {field} IS NULL AND json_type(attributes, '$.{field}') = 'VARCHAR'
          AND length({value}) <= {MAX_LENGTH[field]}
    """
