"""Input checks shared by the overfitting statistics (:mod:`optimize.overfitting`,
:mod:`optimize.cscv`): finite arrays, whole numbers, and when a series counts as flat.

Every check raises a :class:`~core.errors.ValidationError` naming the argument (``field``)
and saying what to pass instead.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from core.errors import ValidationError

__all__ = ["FLAT", "finite_array", "is_flat", "whole_number"]

FLAT = 1e-12
"""A std below this fraction of the series' scale counts as zero (a flat series)."""


def finite_array(values: ArrayLike, *, field: str, ndim: int) -> NDArray[np.float64]:
    """Return ``values`` as a float64 array of ``ndim`` dimensions, all finite, or raise.

    Raises:
        ValidationError: not numbers, another number of dimensions, or a NaN or infinite
            value (the message gives the first one's position).
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{field} must be numbers ({exc})", field=field) from None
    if arr.ndim != ndim:
        shape = "a 1-D series" if ndim == 1 else "a 2-D matrix (rows periods, columns trials)"
        raise ValidationError(f"{field} must be {shape}, got shape {arr.shape}", field=field)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        where = first[0] if ndim == 1 else first
        raise ValidationError(
            f"{field} has {int(bad.sum())} NaN or infinite value(s), first at {where}: "
            "drop or fill them (e.g. 0 for periods out of the market) first",
            field=field,
        )
    return arr


def whole_number(value: int, *, field: str, least: int) -> int:
    """Return ``value`` as an int when it is a whole number of at least ``least``, or raise.

    Raises:
        ValidationError: a bool, a non-integer, or a value below ``least``.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(f"{field} must be a whole number, got {value!r}", field=field)
    if value < least:
        raise ValidationError(f"{field} must be at least {least}, got {value}", field=field)
    return int(value)


def is_flat(std: float, scale: float) -> bool:
    """Return whether a standard deviation is zero for a series of magnitude ``scale``."""
    return std <= FLAT * scale
