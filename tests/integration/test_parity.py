"""Parity, end to end: every library strategy traded by a paper deployment (the real
strategy runner, and the order manager, risk manager and gateway actors on the session Ray
cluster) against ibsim over TCP, replaying a year and a half of ibsim's seeded daily bars
bar by bar, has exactly the trades of its backtest on the same bars; a backtest charged
another commission is reported divergent; and ``scizor parity`` prints the verdict.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from actors.parity import ACCOUNT_CASH, ParitySpec, check_parity
from actors.parity_trades import backtest_trades, compare_trades
from ibsim.contracts import default_world
from ibsim.market import Market
from storage.bars import BarStore
from storage.catalog import Catalog
from strategies import list_strategies

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCIZOR = str(Path(sys.executable).with_name("scizor"))
AAPL = "AAPL.NASDAQ"
MSFT = "MSFT.NASDAQ"
BHP = "BHP.ASX"  # its session opens at 23:00 or 00:00 UTC, the evening before its date
START, END = "2022-01-03", "2023-06-30"
CAPITAL = 50_000.0
# Parameters that trade several times on these bars (each asserted below).
PARAMS: dict[str, dict[str, object]] = {
    "sma_cross": {"fast": 5, "slow": 20},
    "rsi_reversion": {"period": 7, "lower": 35, "upper": 60},
    "buy_hold": {},
    "macd_trend": {"fast": 6, "slow": 13, "signal": 5},
    "bollinger_reversion": {"period": 10, "nbdev": 1.5},
    "donchian_breakout": {"period": 10, "exit_period": 5},
}


@pytest.fixture(scope="module")
def bar_store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    """ibsim's seeded AAPL and MSFT daily bars for the range, in a bar store on disk."""
    store = BarStore(str(tmp_path_factory.mktemp("parity-bars")))
    for instrument in (AAPL, MSFT, BHP):
        symbol, venue = instrument.split(".")
        contract = default_world().get(symbol, currency="AUD" if venue == "ASX" else "USD")
        assert contract is not None
        daily = Market(seed=0).daily(contract)
        frame = daily.set_axis(pd.DatetimeIndex(daily.index).tz_localize("UTC"), axis=0)
        store.write(instrument, "1d", frame.loc[START:END])  # type: ignore[misc]
        assert len(store.read(instrument, "1d")) > 300
    return store


def test_params_cover_every_library_strategy() -> None:
    assert set(PARAMS) == {s["name"] for s in list_strategies()}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parity_paper_trades_equal_the_backtest_for_every_library_strategy(
    ray_session: None, bar_store: BarStore, name: str
) -> None:
    spec = ParitySpec(strategy=name, instruments=[AAPL], start=START, end=END,
                      params=PARAMS[name], capital=CAPITAL)  # fmt: skip
    result = check_parity(spec, bar_store)
    assert result.problems == ()
    assert [d.message for d in result.divergences] == []
    assert result.identical
    closed = [t for t in result.backtest if t.exit_time is not None]
    if name == "buy_hold":  # one entry, still open at the end: compared on both sides
        assert len(result.backtest) == len(result.paper) == 1
        assert result.paper[0].exit_time is None
    else:
        assert len(closed) >= 3, result.backtest
    assert result.matched == len(result.backtest) == len(result.paper)
    # Every paper trade came from the deployment's own orders, filled by ibsim.
    assert all(ref.startswith("scz-") for ref in result.orders)
    assert len(result.orders) >= len(result.paper) + len(closed)
    for ours, theirs in zip(result.backtest, result.paper, strict=True):
        assert ours.entry_time == theirs.entry_time
        assert ours.quantity == theirs.quantity > 0
        assert ours.entry_price == theirs.entry_price
    assert result.summary() == f"identical: {len(result.backtest)} trades"


def test_parity_splits_the_capital_over_two_instruments_and_matches_each(
    ray_session: None, bar_store: BarStore
) -> None:
    spec = ParitySpec(strategy="sma_cross", instruments=[AAPL, MSFT], start=START, end=END,
                      params=PARAMS["sma_cross"], capital=2 * CAPITAL)  # fmt: skip
    result = check_parity(spec, bar_store)
    assert [d.message for d in result.divergences] == [] and result.problems == ()
    assert {t.instrument for t in result.paper} == {AAPL, MSFT}
    # Each instrument trades half the capital: MSFT's paper trades are those of a backtest
    # of MSFT alone with half of it (sized floor(capital / signal close)).
    alone = backtest_trades(bar_store.read(MSFT, "1d"), "sma_cross", PARAMS["sma_cross"],
                            instrument=MSFT, capital=CAPITAL, cash=ACCOUNT_CASH)  # fmt: skip
    msft = [t for t in result.paper if t.instrument == MSFT]
    assert compare_trades(alone, msft) == (len(alone), []) and len(alone) >= 3


def test_parity_holds_on_an_asx_listing_in_aud(ray_session: None, bar_store: BarStore) -> None:
    spec = ParitySpec(strategy="sma_cross", instruments=[BHP], start=START, end=END,
                      params=PARAMS["sma_cross"], capital=CAPITAL)  # fmt: skip
    result = check_parity(spec, bar_store)
    # No signal divergence: each fill is placed on its session's bar, though the session
    # opens the UTC day before; commissions agree to the cent ibsim rounds them to.
    assert [d.message for d in result.divergences] == [] and result.problems == ()
    assert len(result.paper) >= 3


def test_parity_reports_a_backtest_charged_another_commission_as_divergent(
    ray_session: None, bar_store: BarStore
) -> None:
    spec = ParitySpec(strategy="sma_cross", instruments=[AAPL], start=START, end=END,
                      params=PARAMS["sma_cross"], capital=CAPITAL, commission=0.0)  # fmt: skip
    result = check_parity(spec, bar_store)
    assert not result.identical
    kinds = {d.kind for d in result.divergences}
    assert kinds == {"commission", "P&L"}
    closed = [t for t in result.backtest if t.exit_time is not None]
    assert len([d for d in result.divergences if d.kind == "commission"]) == len(closed)
    assert all(d.backtest == 0.0 and d.paper > 0 for d in result.divergences
               if d.kind == "commission")  # fmt: skip
    assert result.summary().startswith("divergent:")


def test_scizor_parity_prints_identical_for_a_deployment_and_exits_0(
    ray_session: None, bar_store: BarStore, tmp_path: Path
) -> None:
    import ray

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(url)
    catalog.upgrade()
    record = catalog.deployments.create(
        "sma_cross", instruments=[AAPL], params=PARAMS["sma_cross"], mode="paper",
        bar_size="1d", capital=CAPITAL, account="DU1234567",
    )  # fmt: skip
    catalog.dispose()
    env = {
        **os.environ,
        "SCIZOR_HOME": str(tmp_path),
        "SCIZOR_DATABASE_URL": url,
        "SCIZOR_BAR_STORE": bar_store.root,
        "SCIZOR_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "COLUMNS": "200",
    }
    args = [SCIZOR, "parity", str(record.id), "--start", START, "--end", END]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "identical:" in done.stdout
    short = [*args[:-1], "2022-09-30", "--commission", "0"]  # a shorter range: a few trades
    diverged = subprocess.run(short, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
    assert diverged.returncode == 1, diverged.stdout + diverged.stderr
    assert "commission" in diverged.stdout and "divergent:" in diverged.stdout
