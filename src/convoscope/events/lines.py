"""The one compiled pass of the JSON Lines reader (its own module so that numba, slow to import, is
loaded only when JSON Lines are read)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def scan_lines(data: np.ndarray, max_openers: int) -> tuple[np.ndarray, bool]:
    """The positions of the line breaks in `data`, and whether a line opens more than `max_openers`
    objects or lists (a bound of its nesting): two passes over the bytes, where numpy's comparisons
    made a temporary array the size of the chunk for each test (1.8 s per million events)."""
    n_breaks = 0
    for byte in data:
        if byte == 10:
            n_breaks += 1
    breaks = np.empty(n_breaks, dtype=np.int64)
    found, openers, deep = 0, 0, False
    for i in range(data.shape[0]):
        byte = data[i]
        if byte == 10:
            breaks[found] = i
            found += 1
            openers = 0
        elif byte == 123 or byte == 91:  # { or [
            openers += 1
            deep |= openers > max_openers
    return breaks, deep
