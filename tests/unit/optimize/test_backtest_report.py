"""The report adapter: stored long-form equity back to curves, and a job's combined curve."""

from __future__ import annotations

import pandas as pd

from optimize.backtest_ranking import RankedResult
from optimize.backtest_report import combined, curve, job_report


def _long(instrument: str, days: list[str], values: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"instrument": instrument, "ts": pd.to_datetime(days, utc=True), "equity": values,
         "benchmark": float("nan")}
    )  # fmt: skip


def test_accounts_on_different_calendars_are_combined_day_by_day():
    equity = pd.concat(
        [
            _long("A.ASX", ["2024-01-02", "2024-01-03", "2024-01-05"], [100.0, 110.0, 120.0]),
            _long("B.NASDAQ", ["2024-01-03", "2024-01-04"], [100.0, 90.0]),
        ]
    )
    got = combined(equity)
    # Before B's first bar its account counts at its cash; after its last, at its last value.
    assert got.to_dict() == {
        pd.Timestamp("2024-01-02", tz="UTC"): 100.0,
        pd.Timestamp("2024-01-03", tz="UTC"): 105.0,
        pd.Timestamp("2024-01-04", tz="UTC"): 100.0,
        pd.Timestamp("2024-01-05", tz="UTC"): 105.0,
    }
    assert curve(equity[equity["instrument"] == "A.ASX"]).tolist() == [100.0, 110.0, 120.0]
    assert curve(equity, "benchmark").empty  # no benchmark stored


def test_a_job_report_has_the_combined_equity_and_the_ranked_table():
    equity = _long("A.ASX", ["2024-01-02", "2024-01-03", "2024-01-04"], [100.0, 101.0, 99.0])
    ranked = [
        RankedResult(rank=1, instrument="A.ASX", value=1.2, stats={"sharpe": 1.2}, error=None),
        RankedResult(rank=None, instrument="<B>.ASX", value=None, stats={}, error="no bars"),
    ]
    page = job_report(title="t", equity=equity, medians={"sharpe": 1.2, "x": None},
                      ranked=ranked, metric="sharpe")  # fmt: skip
    assert "id='equity-chart'" in page and "class='series' data-points='3'" in page
    assert page.index("id='ranked'") < page.index("<script>")
    assert "<td>&lt;B&gt;.ASX</td>" in page and "no bars" in page  # escaped
