"""Walk-forward folds: bar-count and calendar windows, rolling and anchored, steps, partial
last windows, and errors that name the field."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from core.errors import ValidationError
from optimize.folds import Fold, Windows, fold_windows


@pytest.fixture(scope="module")
def index() -> pd.DatetimeIndex:
    """Business days from Thu 2015-01-01 to Fri 2022-12-30 (UTC midnight)."""
    return pd.date_range("2015-01-01", periods=2087, freq="B", tz="UTC")


def spans(folds: tuple[Fold, ...]) -> list[tuple[int, int, int, int]]:
    return [(f.is_start, f.is_end, f.oos_start, f.oos_end) for f in folds]


# --- fold_windows -------------------------------------------------------------------------


def test_fold_windows_rolling_bar_counts_step_by_the_oos_length():
    folds = fold_windows(pd.RangeIndex(21), in_sample=8, out_of_sample=3)
    assert spans(folds) == [(0, 8, 8, 11), (3, 11, 11, 14), (6, 14, 14, 17), (9, 17, 17, 20)]
    assert [f.number for f in folds] == [0, 1, 2, 3]


def test_fold_windows_partial_keeps_a_cut_short_last_window():
    folds = fold_windows(pd.RangeIndex(21), in_sample=8, out_of_sample=3, partial=True)
    assert spans(folds)[-1] == (12, 20, 20, 21)


def test_fold_windows_anchored_in_sample_always_starts_at_the_first_bar():
    folds = fold_windows(pd.RangeIndex(20), in_sample=8, out_of_sample=3, anchored=True)
    assert spans(folds) == [(0, 8, 8, 11), (0, 11, 11, 14), (0, 14, 14, 17), (0, 17, 17, 20)]


def test_fold_windows_step_longer_than_the_oos_window_leaves_gaps():
    folds = fold_windows(pd.RangeIndex(20), in_sample=8, out_of_sample=3, step=5)
    assert spans(folds) == [(0, 8, 8, 11), (5, 13, 13, 16)]


def test_fold_windows_durations_cut_at_calendar_boundaries(index):
    idx = index  # business days from Thu 2015-01-01 to 2022-12-30
    folds = fold_windows(idx, in_sample="2Y", out_of_sample="6M")
    at = idx.searchsorted
    # 2017-01-01 is a Sunday, so the first OOS bar is Monday 2017-01-02.
    assert idx[folds[0].oos_start] == pd.Timestamp("2017-01-02", tz="UTC")
    assert idx[folds[0].oos_end - 1] == pd.Timestamp("2017-06-30", tz="UTC")
    assert spans(folds)[1] == (
        at(pd.Timestamp("2015-07-01", tz="UTC")),
        at(pd.Timestamp("2017-07-01", tz="UTC")),
        at(pd.Timestamp("2017-07-01", tz="UTC")),
        at(pd.Timestamp("2018-01-01", tz="UTC")),
    )
    # The bars end on 2022-12-30: no bar at or after 2023-01-01 proves the last half-year
    # complete, so it is kept only with partial=True.
    assert idx[folds[-1].oos_start] == pd.Timestamp("2022-01-03", tz="UTC")
    assert len(folds) == 11
    last = fold_windows(idx, in_sample="2Y", out_of_sample="6M", partial=True)[-1]
    assert (idx[last.oos_start], last.oos_end) == (pd.Timestamp("2022-07-01", tz="UTC"), len(idx))
    for k, f in enumerate(folds):  # rolling: each IS window is the two years before its OOS
        boundary = pd.Timestamp("2017-01-01", tz="UTC") + pd.DateOffset(months=6 * k)
        assert idx[f.oos_start] >= boundary > idx[f.oos_start - 1]
        assert f.is_end == f.oos_start
        begin = boundary - pd.DateOffset(years=2)
        assert idx[f.is_start] >= begin and (f.is_start == 0 or begin > idx[f.is_start - 1])


def test_fold_windows_accept_timedelta_and_pandas_offsets(index):
    by_string = fold_windows(index, in_sample="104W", out_of_sample="13W")
    by_offset = fold_windows(
        index, in_sample=pd.Timedelta(weeks=104), out_of_sample=pd.offsets.Week(13)
    )
    assert spans(by_string) == spans(by_offset)


@pytest.mark.parametrize(
    ("kwargs", "field", "says"),
    [
        ({"in_sample": 1, "out_of_sample": 3}, "in_sample", "at least 2 bars"),
        ({"in_sample": 8, "out_of_sample": -2}, "out_of_sample", "at least 1 bar"),
        ({"in_sample": "2 years", "out_of_sample": 3}, "in_sample", "'2Y'"),
        ({"in_sample": "0M", "out_of_sample": "1M"}, "in_sample", "'6M'"),
        ({"in_sample": 8, "out_of_sample": "6M"}, "out_of_sample", "all be bar counts"),
        ({"in_sample": 8, "out_of_sample": 3, "step": 2}, "step", "at least out_of_sample"),
        ({"in_sample": 8, "out_of_sample": 3, "step": 0}, "step", "at least 1 bar"),
        ({"in_sample": 90, "out_of_sample": 20}, "in_sample", "load more bars"),
        ({"in_sample": "1Y", "out_of_sample": "1M"}, "in_sample", "DatetimeIndex"),
        ({"in_sample": 8, "out_of_sample": 3, "anchored": "yes"}, "anchored", "True or False"),
    ],
)
def test_fold_windows_rejects_bad_sizes_naming_the_field(kwargs, field, says):
    with pytest.raises(ValidationError, match=says) as err:
        fold_windows(pd.RangeIndex(100), **kwargs)
    assert err.value.field == field


def test_fold_windows_rejects_a_duration_shorter_than_the_step_and_too_little_data(index):
    with pytest.raises(ValidationError) as err:
        fold_windows(index, in_sample="2Y", out_of_sample="6M", step="3M")
    assert err.value.field == "step"
    with pytest.raises(ValidationError, match="partial=True") as err:
        fold_windows(index[:600], in_sample="2Y", out_of_sample="6M")
    assert err.value.field == "in_sample"
    with pytest.raises(ValidationError) as err:
        fold_windows(index[::-1], in_sample=10, out_of_sample=5)
    assert err.value.field == "index"


def test_windows_hold_the_arguments_of_fold_windows(index):
    windows = Windows(in_sample="2Y", out_of_sample="6M", step="1Y", anchored=True, partial=True)
    folds = fold_windows(
        index, in_sample="2Y", out_of_sample="6M", step="1Y", anchored=True, partial=True
    )
    assert windows.folds(index) == folds
    assert all(f.is_start == 0 for f in folds)  # anchored
    assert all(a.oos_end < b.oos_start for a, b in itertools.pairwise(folds))  # a step apart


def test_walkforward_re_exports_the_fold_types():
    from optimize import walkforward

    assert (walkforward.Fold, walkforward.Windows) == (Fold, Windows)
    assert walkforward.fold_windows is fold_windows
