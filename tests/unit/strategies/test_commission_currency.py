"""Commission schedules by currency: ``"ibkr"`` is US per-share pricing for USD instruments and
ASX fixed pricing (0.08 %, min AUD 6) for AUD ones; results record the currency."""

from __future__ import annotations

import numbers

import pytest

from core.errors import ParameterError
from strategies.engine import (
    IBKR_ASX,
    IBKR_FIXED,
    IBKR_US,
    Commission,
    FixedShares,
    run_backtest,
    run_batch,
)
from tests.unit.strategies.scripted import Scripted
from tests.unit.strategies.test_engine import frame, run


def test_ibkr_schedules_reproduce_ibkrs_own_fixed_pricing_examples():
    assert IBKR_US.of(100, 25.0) == pytest.approx(1.00)
    assert IBKR_US.of(1_000, 25.0) == pytest.approx(5.00)
    assert IBKR_US.of(1_000, 0.25) == pytest.approx(2.50)  # the 1 % cap
    assert IBKR_ASX.of(400, 50.0) == pytest.approx(16.00)  # 0.08 % of AUD 20,000
    assert IBKR_ASX.of(100, 50.0) == pytest.approx(6.00)  # 0.08 % is 4.00: the minimum
    assert IBKR_FIXED is IBKR_US


def test_ibkr_on_aud_bars_charges_asx_pricing_not_us_per_share():
    bars = frame([50, 50, 50, 50])
    small = run(bars, [1, 0, 0, 0], commission="ibkr", currency="AUD", size=FixedShares(100))
    assert small.trades.commission.iloc[0] == pytest.approx(2 * 6.00)  # US would be 2 x 1.00
    big = run(
        bars, [1, 0, 0, 0], commission="ibkr", currency="AUD", cash=1e5, size=FixedShares(1000)
    )
    assert big.trades.commission.iloc[0] == pytest.approx(2 * 40.00)  # 0.08 % of AUD 50,000
    usd = run(bars, [1, 0, 0, 0], commission="ibkr", cash=1e5, size=FixedShares(1000))
    assert usd.trades.commission.iloc[0] == pytest.approx(2 * 5.00)  # 1,000 x 0.005


@pytest.mark.parametrize(
    ("cash", "price", "shares"),
    [
        (5_000.0, 10.0, 499),  # 500 x 10 + 6 > 5,000; 499 x 10 + 6 fits
        (100_000.0, 10.0, 9_992),  # floor(100,000 / (10 x 1.0008)): the rate binds
        (5_000.0, 0.05, 99_880),  # floor((5,000 - 6) / 0.05): the minimum binds exactly
    ],
)
def test_all_in_entries_under_asx_pricing_buy_the_most_shares_that_fit(cash, price, shares):
    r = run(frame([price] * 3), [1, 1, 1], commission="ibkr_asx", currency="AUD", cash=cash)
    assert r.positions.iloc[1] == shares

    def fee(n: int) -> float:
        return max(6.0, 0.0008 * n * price)

    assert r.equity.iloc[1] == pytest.approx(cash - fee(shares))
    assert shares * price + fee(shares) <= cash < (shares + 1) * price + fee(shares + 1)


def test_explicit_schedule_names_equal_ibkr_for_their_currency():
    bars = frame([20, 21, 19, 22, 23, 18])
    targets = [1, 0, 1, 0, 1, 0]
    for name, currency in (("ibkr_us", "USD"), ("ibkr_asx", "AUD")):
        named = run(bars, targets, commission=name, currency=currency, cash=10_000)
        auto = run(bars, targets, commission="ibkr", currency=currency, cash=10_000)
        assert named.trades.equals(auto.trades) and len(named.trades) == 2


def test_ibkr_with_an_unsupported_currency_names_currency_and_lists_the_supported_ones():
    with pytest.raises(ParameterError, match=r"currencies AUD, USD; got currency='EUR'") as info:
        run(frame([10, 10, 10]), [1, 0, 0], commission="ibkr", currency="EUR")
    assert info.value.field == "currency"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"commission": "ibkr_asx", "currency": "USD"}, "priced in AUD"),
        ({"commission": 0.001, "currency": "dollars"}, "three-letter currency code"),
        ({"commission": 0.001, "currency": 840}, "three-letter currency code"),
    ],
)
def test_mismatched_or_malformed_currencies_are_parameter_errors(kwargs, match):
    with pytest.raises(ParameterError, match=match) as info:
        run(frame([10, 10, 10]), [1, 0, 0], **kwargs)
    assert info.value.field == "currency"


def test_commission_objects_and_fractions_work_in_any_currency():
    bars = frame([10, 10, 10, 10])
    fee = Commission(rate=0.001, minimum_total=2.5)
    r = run(bars, [1, 0, 0, 0], commission=fee, currency="EUR", size=FixedShares(10))
    assert r.trades.commission.iloc[0] == pytest.approx(2 * 2.5)
    assert r.currency == "EUR"
    plain = run(bars, [1, 0, 0, 0], commission=0.01, currency="jpy", size=FixedShares(10))
    assert plain.trades.commission.iloc[0] == pytest.approx(2 * 1.0)
    assert plain.currency == "JPY"


def test_results_record_the_currency_and_keep_stats_and_batch_columns_numeric():
    bars = frame([10, 11, 12, 11, 13, 12, 14, 15, 13, 16] * 5)
    single = run_backtest(bars, Scripted([0, 1] * 25), commission="ibkr", currency="AUD")
    assert single.currency == "AUD"
    assert run_backtest(bars, "buy_hold").currency == "USD"
    assert all(isinstance(v, numbers.Real) for v in single.stats.values())
    sets = [{"fast": 2, "slow": 5}, {"fast": 3, "slow": 8}]
    table = run_batch(bars, "sma_cross", sets, commission="ibkr", currency="AUD")
    assert table.attrs["currency"] == "AUD"
    assert all(dtype.kind in "bif" for dtype in table.dtypes)
    row = run_backtest(bars, "sma_cross", sets[0], commission="ibkr", currency="AUD")
    assert table.return_pct.iloc[0] == pytest.approx(row.stats["return_pct"], rel=1e-12)
    assert table.return_pct.iloc[0] != pytest.approx(
        run_backtest(bars, "sma_cross", sets[0], commission="ibkr").stats["return_pct"]
    )
