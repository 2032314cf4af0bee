"""The package's checks of plain values: :func:`is_int` (an int that is not a bool) and
:func:`is_number` (a finite int or float that is not a bool).

A flat model-side module: it imports the standard library only.
"""

from __future__ import annotations

import math


def is_int(value) -> bool:
    """An int that is not a bool (the package's one integer check)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
