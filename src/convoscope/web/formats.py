"""One number format per kind on screen (issue 28): what a page shows of a report cell, by its column's kind
(`reports.base.KINDS`). The CSV and the API keep the exact cells; a page keeps each one beside what it shows (a
`data-value`), so that nothing is lost to rounding and tests and sorting read the exact value.

- a rate (a fraction, `0.6899`) and a percentage (`68.99`) as a percentage with one decimal, `68.9%`; an empty one
  (a zero denominator) as `–`;
- a count, and any other number, with thousands separators, `12,345` (decimals as the cell writes them);
- a duration in seconds as `3m 05s` (`45s`, `1h 02m 05s`, `2d 03h 04m`), an average rounded to the second;
- anything else (identifiers, times, booleans, text) as the cell says.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

EMPTY_RATE = "–"


def shown(kind: str, cell: str | None) -> str:
    """`cell` of a column of `kind` as a page shows it."""
    match kind:
        case "rate":
            return rate(cell)
        case "percent":
            return percentage(cell)
        case "count" | "number":
            return number(cell)
        case "duration":
            return duration(cell)
    return cell or ""


def rate(cell: str | int | float | None) -> str:
    """A fraction (`0.6899`, signed for a trend) as a percentage with one decimal (`68.9%`), rounded half away
    from zero from the exact cell; `–` for an empty cell."""
    return percentage(None if _empty(cell) else _decimal(cell) * 100)


def percentage(cell: str | Decimal | None) -> str:
    """A percentage 0–100 (`68.99`) with one decimal (`69.0%`); `–` for an empty cell."""
    if _empty(cell):
        return EMPTY_RATE
    value = _decimal(cell).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{value + 0:,}%"  # + 0: no "-0.0%"


def share(count: int, whole: int) -> str:
    """`count` as a percentage of `whole`, one decimal; `–` when `whole` is zero."""
    return percentage(Decimal(100 * count) / whole) if whole else EMPTY_RATE


def number(cell: str | int | None) -> str:
    """A count or another number with thousands separators (`12,345`, `1,234.50`); empty stays empty."""
    if _empty(cell):
        return ""
    text = str(cell)
    whole, dot, fraction = text.partition(".")
    try:
        return f"{int(whole):,}{dot}{fraction}" if whole not in ("", "-") else text
    except ValueError:
        return text


def duration(cell: str | int | float | None) -> str:
    """Seconds (`185`, an average `754.50`) as `3m 05s`, rounded to the second: `45s`, `1h 02m 05s`, and from a day
    `2d 03h 04m`; empty stays empty."""
    if _empty(cell):
        return ""
    seconds = int(_decimal(cell).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m {seconds:02d}s"
    if minutes:
        return f"{sign}{minutes}m {seconds:02d}s"
    return f"{sign}{seconds}s"


def _empty(cell: object) -> bool:
    """An empty cell: None, "", or what a template gives for a figure it does not have (Jinja's Undefined)."""
    return not isinstance(cell, int | float | Decimal) and not cell


def _decimal(cell: object) -> Decimal:
    try:
        return cell if isinstance(cell, Decimal) else Decimal(str(cell))
    except InvalidOperation as exc:
        raise ValueError(f"{cell!r} is not a number") from exc
