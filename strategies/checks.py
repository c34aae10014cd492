"""Argument checks shared by the engine, the indicators and the strategy API.

A leaf module (it imports only ``core``), so every other module of ``strategies`` may use
it without creating an import cycle.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.errors import ParameterError


def finite_number(value: Any, name: str, *, field: str | None = None) -> float:
    """Return ``value`` as a float, or raise ParameterError unless it is a finite real.

    Args:
        value: the value to check.
        name: how the message names the value.
        field: the error's ``field`` (``name`` when None).

    Raises:
        ParameterError: ``value`` is not a real number (bools and strings are not) or is
            NaN or infinite.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ParameterError(f"{name} must be a number, got {value!r}", field=field or name)
    try:
        out = float(value)
    except OverflowError:  # an int beyond float range
        out = math.inf
    if not math.isfinite(out):
        raise ParameterError(f"{name} must be finite, got {value!r}", field=field or name)
    return out
