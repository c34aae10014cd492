"""run_portfolio over several currencies: converted into the base currency with FX rates
from the past, or refused; AUD is never added to USD."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError, ParameterError
from strategies.portfolio import run_portfolio

DAYS = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")


def flat(closes: list[float]) -> pd.DataFrame:
    c = np.asarray(closes, dtype=float)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1.0}, DAYS)


US, AU = flat([10, 10, 10, 10, 10]), flat([20, 20, 22, 22, 22])
AUDUSD = pd.Series([0.5, 0.5, 0.5, 0.6, 0.6], DAYS)  # USD per AUD
BOTH = {"US": US, "AU": AU}
CURRENCIES = {"US": "USD", "AU": "AUD"}


def run(**kw):
    kw.setdefault("currencies", CURRENCIES)
    kw.setdefault("fx", {"AUD": AUDUSD})
    kw.setdefault("cash", 1000.0)
    kw.setdefault("weights", {"US": 0.5, "AU": 0.5})
    return run_portfolio(BOTH, "buy_hold", **kw)


def test_aud_prices_are_converted_to_usd_bar_by_bar():
    r = run(finalize_trades=True)
    # Bar 1 opens: 500 USD each; AU costs 20 AUD x 0.5 = 10 USD: 50 shares of each.
    assert r.positions.iloc[1].to_dict() == {"US": 50, "AU": 50}
    # Bar 2: AU 22 AUD x 0.5 = 11 USD; bar 3: the rate moves to 0.6: 22 x 0.6 = 13.2 USD.
    expected = [1000, 1000, 500 + 50 * 11.0, 500 + 50 * 13.2, 500 + 50 * 13.2]
    np.testing.assert_allclose(r.equity.to_numpy(), expected, rtol=1e-12)
    au = r.trades.set_index("symbol").loc["AU"]
    assert (au.entry_price, au.exit_price) == (pytest.approx(10.0), pytest.approx(13.2))
    assert au.pnl == pytest.approx(50 * 3.2)
    assert r.currency == "USD"
    assert r.benchmark is not None
    np.testing.assert_allclose(r.benchmark.to_numpy(), [1.0, 1.0, 1.05, 1.16, 1.16])


def test_each_bar_takes_the_latest_rate_at_or_before_it_never_a_later_one():
    noon = pd.Series(
        [0.5, 0.6], [DAYS[0] - pd.Timedelta(hours=12), DAYS[2] + pd.Timedelta(hours=12)]
    )
    r = run(fx={"AUD": noon})
    # The 0.6 quoted at noon on day 2 first applies to day 3's bar, as above.
    np.testing.assert_allclose(r.equity.to_numpy(), run().equity.to_numpy(), rtol=1e-12)
    at_midnight = pd.Series([0.5, 0.6], [DAYS[0], DAYS[2]])
    early = run(fx={"AUD": at_midnight})
    assert early.equity.iloc[2] == pytest.approx(500 + 50 * 22 * 0.6)


def test_commission_minimums_are_charged_in_the_instruments_currency_then_converted():
    from strategies.engine import FixedShares

    r = run(commission="ibkr", size=FixedShares(50), finalize_trades=True)
    fees = r.trades.set_index("symbol").commission
    assert fees["US"] == pytest.approx(2 * 1.00)  # US per-share minimum, USD
    # ASX: 0.08 % of 1,000 and 1,100 AUD is below AUD 6.00: 6 x 0.5 on entry, 6 x 0.6 on exit.
    assert fees["AU"] == pytest.approx(6.0 * 0.5 + 6.0 * 0.6)


def test_mixed_currencies_without_rates_are_refused_naming_fx_and_the_currencies():
    with pytest.raises(ParameterError, match=r"instruments are in AUD, USD but the account is"):
        run(fx=None)
    with pytest.raises(ParameterError, match="fx lacks rates for AUD") as info:
        run(fx={"EUR": AUDUSD})
    assert info.value.field == "fx"
    with pytest.raises(ParameterError, match="own currency USD") as info:
        run(fx={"AUD": AUDUSD, "USD": AUDUSD})
    assert info.value.field == "fx"


@pytest.mark.parametrize(
    ("series", "match"),
    [
        (AUDUSD.iloc[2:], "no rate at or before 2024-01-01"),
        (AUDUSD.tz_localize(None), "timezone-aware"),
        (AUDUSD.where(AUDUSD.index != DAYS[3], -1.0), "finite and positive"),
        (AUDUSD.iloc[::-1], "strictly increasing"),
    ],
)
def test_bad_fx_series_are_data_errors_naming_fx(series, match):
    with pytest.raises(DataError, match=match) as info:
        run(fx={"AUD": series})
    assert info.value.field == "fx"


def test_one_currency_portfolios_need_no_rates_and_report_in_that_currency():
    r = run_portfolio(BOTH, "buy_hold", currencies="AUD", commission="ibkr", cash=10_000.0)
    assert r.currency == "AUD"
    first = r.positions.iloc[1]
    assert first.US > 0 and first.AU > 0  # no conversion: 10 and 20 AUD
    plain = run_portfolio(BOTH, "buy_hold", cash=10_000.0)
    assert plain.currency == "USD"


def test_a_usd_instrument_in_an_aud_account_is_converted_with_aud_per_usd():
    r = run(base_currency="AUD", fx={"USD": 1.0 / AUDUSD}, cash=2000.0)
    # Bar 1: 1,000 AUD each; US costs 10 USD x 2 = 20 AUD, AU 20 AUD: 50 shares of each.
    assert r.positions.iloc[1].to_dict() == {"US": 50, "AU": 50}
    assert r.equity.iloc[3] == pytest.approx(50 * 10 / 0.6 + 50 * 22)
    assert r.currency == "AUD"


@pytest.mark.parametrize(
    ("currencies", "match"),
    [({"US": "USD"}, r"missing \['AU'\]"), ({**CURRENCIES, "XX": "EUR"}, r"unknown \['XX'\]")],
)
def test_currencies_must_name_every_symbol(currencies, match):
    with pytest.raises(ParameterError, match=match) as info:
        run(currencies=currencies)
    assert info.value.field == "currencies"
