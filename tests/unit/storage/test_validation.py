"""Bar validation: each rule rejects the batch, names the row and field, and writes nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.barsize import bar_size
from core.errors import DataError
from storage.bars import BarStore
from storage.validation import validate_bars


def good_bars(start: str = "2024-01-02", periods: int = 5, freq: str = "1D") -> pd.DataFrame:
    index = pd.date_range(start, periods=periods, freq=freq, tz="UTC", name="ts").as_unit("ns")
    return pd.DataFrame(
        {
            "open": np.full(periods, 10.0),
            "high": np.full(periods, 11.0),
            "low": np.full(periods, 9.0),
            "close": np.full(periods, 10.5),
            "volume": np.full(periods, 100.0),
        },
        index=index,
    )


def _set(column: str, value: float):
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame.iloc[2, frame.columns.get_loc(column)] = value
        return frame

    return edit


def _shift_third(delta: str):
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        index = frame.index.to_list()
        index[2] = index[2] + pd.Timedelta(delta)
        frame.index = pd.DatetimeIndex(index, name="ts")
        return frame

    return edit


def _duplicate_third(frame: pd.DataFrame) -> pd.DataFrame:
    index = frame.index.to_list()
    index[2] = index[1]
    frame.index = pd.DatetimeIndex(index, name="ts")
    return frame


def _swap_order(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[[0, 2, 1, 3, 4]]


BAD_CASES = [
    ("high below open", _set("high", 9.5), "high", "high >= max(open, close)"),
    ("high below close", _set("close", 11.5), "high", "high >= max(open, close)"),
    ("low above open", _set("low", 10.2), "low", "low <= min(open, close)"),
    ("negative volume", _set("volume", -1.0), "volume", "volume >= 0"),
    ("nan volume", _set("volume", np.nan), "volume", "volume >= 0"),
    ("nan close", _set("close", np.nan), "close", "positive"),
    ("zero open", _set("open", 0.0), "open", "positive"),
    ("negative low", _set("low", -1.0), "low", "positive"),
    ("infinite high", _set("high", np.inf), "values", "infinite"),
    ("duplicate time", _duplicate_third, "ts", "strictly increasing"),
    ("non-monotonic time", _swap_order, "ts", "strictly increasing"),
    ("daily not at midnight", _shift_third("1h"), "ts", "00:00 UTC"),
]


@pytest.mark.parametrize(
    ("case", "edit", "field", "rule"), BAD_CASES, ids=[c[0] for c in BAD_CASES]
)
def test_bad_daily_bar_is_rejected_naming_row_and_rule_and_nothing_is_written(
    tmp_path, case, edit, field, rule
):
    store = BarStore(tmp_path)
    bars = edit(good_bars())

    with pytest.raises(DataError) as info:
        store.write("AAPL.NASDAQ", "1d", bars)

    assert info.value.field == field
    assert rule in str(info.value)
    assert "2024-01-0" in str(info.value)  # names the offending row's timestamp
    assert "nothing of this batch was written" in str(info.value)
    assert store.read("AAPL.NASDAQ", "1d").empty
    assert store.coverage("AAPL.NASDAQ", "1d") == []


def test_error_names_the_first_bad_row_and_counts_all():
    bars = good_bars(periods=5)
    bars.loc[bars.index[3:], "volume"] = -5.0

    with pytest.raises(DataError) as info:
        validate_bars(bars, bar_size("1d"))

    assert "2024-01-05T00:00:00+00:00" in str(info.value)
    assert "(2 bad row(s))" in str(info.value)


def test_intraday_bars_must_sit_on_multiples_of_the_bar_length():
    bars = good_bars("2024-01-02 14:30", freq="5min")
    validate_bars(bars, bar_size("5m"))  # aligned: accepted

    shifted = _shift_third("1min")(bars.copy())
    with pytest.raises(DataError, match="multiple of 300s") as info:
        validate_bars(shifted, bar_size("5m"))
    assert info.value.field == "ts"
    assert "14:41:00" in str(info.value)


def test_hourly_bars_may_start_at_a_half_hour_session_open_like_ibkr_rth():
    index = pd.DatetimeIndex(["2024-01-02 14:30", "2024-01-02 15:00", "2024-01-02 16:00"], tz="UTC")
    bars = good_bars(periods=3)
    bars.index = index.rename("ts")
    validate_bars(bars, bar_size("1h"))  # 09:30, 10:00, 11:00 New York: accepted

    bars.index = (index + pd.Timedelta("10min")).rename("ts")
    with pytest.raises(DataError, match="multiple of 1800s"):
        validate_bars(bars, bar_size("1h"))


def test_naive_timestamps_are_rejected_not_guessed():
    bars = good_bars()
    bars.index = bars.index.tz_localize(None)

    with pytest.raises(DataError, match="naive") as info:
        validate_bars(bars, bar_size("1d"))
    assert info.value.field == "ts"


def test_missing_required_column_is_named():
    with pytest.raises(DataError, match="'volume'") as info:
        validate_bars(good_bars().drop(columns=["volume"]), bar_size("1d"))
    assert info.value.field == "volume"


def test_non_numeric_column_is_rejected():
    bars = good_bars()
    bars["close"] = ["a", "b", "c", "d", "e"]

    with pytest.raises(DataError, match="not numeric") as info:
        validate_bars(bars, bar_size("1d"))
    assert info.value.field == "close"


def test_negative_or_fractional_bar_count_is_rejected():
    bars = good_bars()
    bars["bar_count"] = [1, 2, -3, 4, 5]

    with pytest.raises(DataError) as info:
        validate_bars(bars, bar_size("1d"))
    assert info.value.field == "bar_count"


def test_index_without_times_is_rejected():
    with pytest.raises(DataError, match="DatetimeIndex") as info:
        validate_bars(good_bars().reset_index(drop=True), bar_size("1d"))
    assert info.value.field == "ts"


def test_valid_bars_come_back_as_arrays_with_defaults():
    arrays = validate_bars(good_bars(), bar_size("1d"))

    assert arrays.ts.dtype == np.int64 and len(arrays) == 5
    assert np.isnan(arrays.columns["wap"]).all()
    assert arrays.columns["bar_count"].dtype == np.int64
    assert (arrays.columns["bar_count"] == 0).all()


def test_unparsable_ts_string_is_a_data_error_naming_the_value_and_the_fix():
    bars = good_bars().reset_index()
    bars["ts"] = bars["ts"].astype(str)
    bars.loc[3, "ts"] = "yesterday-ish"

    with pytest.raises(DataError, match="'yesterday-ish' \\(row 3\\) is not a timestamp") as info:
        validate_bars(bars, bar_size("1d"))
    assert info.value.field == "ts"
    assert "ISO 8601" in str(info.value)


def test_ts_strings_with_mixed_offsets_are_a_data_error_suggesting_utc_conversion():
    bars = good_bars(periods=2).reset_index()
    bars["ts"] = ["2024-01-02T00:00:00+00:00", "2024-01-03T00:00:00-05:00"]

    with pytest.raises(DataError, match="utc=True") as info:
        validate_bars(bars, bar_size("1d"))
    assert info.value.field == "ts"


def test_iso_ts_strings_with_a_zone_are_accepted_as_utc():
    bars = good_bars(periods=2).reset_index()
    bars["ts"] = ["2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"]

    arrays = validate_bars(bars, bar_size("1d"))
    assert arrays.ts.tolist() == [
        pd.Timestamp("2024-01-02", tz="UTC").value,
        pd.Timestamp("2024-01-03", tz="UTC").value,
    ]
