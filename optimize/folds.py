"""Walk-forward folds: cut a bar index into in-sample windows each followed by its
out-of-sample window, by bar counts or by calendar durations.

:func:`fold_windows` does the cutting; :class:`Windows` holds its arguments.
:mod:`optimize.walkforward` re-exports both with :class:`Fold`.

Example:
    >>> import pandas as pd
    >>> [(f.is_start, f.is_end, f.oos_end) for f in fold_windows(pd.RangeIndex(14),
    ...                                                          in_sample=8, out_of_sample=3)]
    [(0, 8, 11), (3, 11, 14)]
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ValidationError

__all__ = ["Fold", "Span", "Windows", "fold_windows"]

Span = int | str | timedelta | pd.offsets.BaseOffset
"""A window's size: a bar count, or a duration ('2Y', '6M', a timedelta, a pandas offset)."""
_UNITS = {"Y": "years", "M": "months", "W": "weeks", "D": "days", "h": "hours", "min": "minutes"}
_SPAN = re.compile(r"\s*(\d+)\s*(Y|M|W|D|h|min)\s*")


@dataclass(frozen=True, slots=True, kw_only=True)
class Fold:
    """One fold as bar positions: IS bars ``[is_start, is_end)``, OOS ``[oos_start, oos_end)``."""

    number: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Windows:
    """How to cut bars into folds; the arguments of :func:`fold_windows`."""

    in_sample: Span
    out_of_sample: Span
    step: Span | None = None
    anchored: bool = False
    partial: bool = False

    def folds(self, index: pd.Index) -> tuple[Fold, ...]:
        """Return the folds over ``index`` (see :func:`fold_windows`)."""
        return fold_windows(
            index,
            in_sample=self.in_sample,
            out_of_sample=self.out_of_sample,
            step=self.step,
            anchored=self.anchored,
            partial=self.partial,
        )


def fold_windows(
    index: pd.Index,
    *,
    in_sample: Span,
    out_of_sample: Span,
    step: Span | None = None,
    anchored: bool = False,
    partial: bool = False,
) -> tuple[Fold, ...]:
    """Cut a bar index into walk-forward folds.

    Sizes are all bar counts (``504``) or all durations: a string of a whole number and
    ``Y`` (years), ``M`` (months), ``W``, ``D``, ``h`` or ``min`` (``"2Y"``, ``"6M"``), a
    ``timedelta`` or a pandas offset. Fold ``k``'s OOS window starts ``k`` steps after the
    end of the first IS window (``in_sample`` bars, or ``index[0] + in_sample``) and lasts
    ``out_of_sample``; a duration window holds the bars with ``start <= t < start + size``.
    The IS window ends where the OOS one starts and lasts ``in_sample`` (rolling) or starts
    at the first bar (``anchored``). Duration folds whose IS window has fewer than 2 bars or
    whose OOS window has none (a gap in the data) are left out.

    Args:
        index: the bars' timestamps (strictly increasing; a DatetimeIndex for durations).
        in_sample: the IS window's length (the first one's, when ``anchored``).
        out_of_sample: the OOS window's length.
        step: how far each fold moves; ``out_of_sample`` when None, never less (the OOS
            windows may not overlap, as the walk-forward chains them).
        anchored: every IS window starts at the first bar (and grows) instead of rolling.
        partial: keep a last fold whose OOS window the data does not reach to its end (cut
            at the last bar). A duration window counts as reached only when some bar lies
            at or after its end.

    Raises:
        ValidationError: naming the field: a size that is not positive or not understood,
            bar counts mixed with durations, ``step`` below ``out_of_sample``, an index that
            is not strictly increasing, or too few bars for a single fold.
    """
    is_, oos = _span(in_sample, "in_sample", least=2), _span(out_of_sample, "out_of_sample")
    stride = oos if step is None else _span(step, "step")
    for name, flag in (("anchored", anchored), ("partial", partial)):
        if not isinstance(flag, bool):
            raise ValidationError(f"{name} must be True or False, got {flag!r}", field=name)
    counts = [isinstance(s, int) for s in (is_, oos, stride)]
    if len(set(counts)) > 1:
        bad = "out_of_sample" if counts[0] != counts[1] else "step"
        raise ValidationError(
            f"in_sample, out_of_sample and step must all be bar counts or all durations; "
            f"{bad} is not like in_sample={in_sample!r}",
            field=bad,
        )
    _check_index(index, durations=not counts[0])
    raw = (
        _bar_folds(len(index), is_, oos, stride)
        if counts[0]
        else _time_folds(index, is_, oos, stride)
    )
    folds: list[Fold] = []
    for is_start, oos_start, oos_end, complete in raw:
        if not complete and not partial:
            break
        start = 0 if anchored else is_start
        if oos_end > oos_start and oos_start - start >= 2:
            folds.append(Fold(number=len(folds), is_start=start, is_end=oos_start,
                              oos_start=oos_start, oos_end=oos_end))  # fmt: skip
    if not folds:
        raise ValidationError(
            f"{len(index)} bars are too few for one fold of in_sample={in_sample!r} followed "
            f"by out_of_sample={out_of_sample!r}; load more bars or shorten the windows"
            + ("" if partial else " (or pass partial=True to keep a cut-short last window)"),
            field="in_sample",
        )
    return tuple(folds)


def _span(value: Any, name: str, least: int = 1) -> int | pd.Timedelta | pd.offsets.BaseOffset:
    """Return a size as a bar count (>= ``least``), Timedelta or offset, or raise."""
    hint = "a number of bars (e.g. 504) or a duration such as '2Y', '6M', '13W', '90D'"
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        if value < least:
            raise ValidationError(
                f"{name} must be at least {least} bar{'s' * (least > 1)}, got {value}", field=name
            )
        return int(value)
    if isinstance(value, str):
        match = _SPAN.fullmatch(value)
        if match is None or int(match[1]) < 1:
            raise ValidationError(
                f"{name}={value!r} is not a size: give {hint} (Y years, M months, W weeks, "
                f"D days, h hours, min minutes)",
                field=name,
            )
        unit: dict[str, Any] = {_UNITS[match[2]]: int(match[1])}
        return pd.DateOffset(**unit)
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ValidationError(f"{name} must be positive, got {value!r}", field=name)
        return pd.Timedelta(value)
    if isinstance(value, pd.offsets.BaseOffset):
        return value  # its sign is checked against the index
    raise ValidationError(f"{name} must be {hint}, got {value!r}", field=name)


def _check_index(index: Any, *, durations: bool) -> None:
    if not isinstance(index, pd.Index) or not index.is_monotonic_increasing or index.has_duplicates:
        raise ValidationError("the bar index must be strictly increasing", field="index")
    if durations and not isinstance(index, pd.DatetimeIndex):
        raise ValidationError(
            "durations need a DatetimeIndex; give the sizes as bar counts instead",
            field="in_sample",
        )


def _bar_folds(n: int, is_: Any, oos: Any, step: Any) -> list[tuple[int, int, int, bool]]:
    """(IS start, OOS start, OOS end, complete) per fold, in bars."""
    if step < oos:
        raise ValidationError(_overlap(step, oos), field="step")
    return [(b - is_, b, min(b + oos, n), b + oos <= n) for b in range(is_, n, step)]


def _time_folds(index: pd.Index, is_: Any, oos: Any, step: Any) -> list[Any]:
    """(IS start, OOS start, OOS end, complete) per fold, by timestamps."""
    t0, n = index[0], len(index)
    first = t0 + is_
    if first <= t0 or first + oos <= first:
        bad = "in_sample" if first <= t0 else "out_of_sample"
        raise ValidationError(f"{bad} must be a positive duration", field=bad)
    if first + step < first + oos:
        raise ValidationError(_overlap(step, oos), field="step")
    out = []
    for k in itertools.count():  # boundaries only grow: step >= out_of_sample > 0
        boundary = first if k == 0 else first + step * k
        oos_start = int(index.searchsorted(boundary))
        if oos_start >= n:
            break
        oos_end = int(index.searchsorted(boundary + oos))
        is_start = int(index.searchsorted(boundary - is_))
        out.append((is_start, oos_start, oos_end, oos_end < n))
    return out


def _overlap(step: Any, oos: Any) -> str:
    return (
        f"step ({step}) must be at least out_of_sample ({oos}): overlapping out-of-sample "
        f"windows cannot be chained into one equity curve; leave step=None to use out_of_sample"
    )
