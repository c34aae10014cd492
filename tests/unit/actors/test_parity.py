"""The parity check's plain parts: each side's trades, their comparison, the replay's feed
and history (no Ray, no ibsim)."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from actors.parity_io import ReplayFeed, ReplayHistory
from actors.parity_trades import (
    ParityResult,
    Trade,
    backtest_trades,
    compare_trades,
    paper_trades,
)
from core.types import Fill, Side

AAPL = "AAPL.NASDAQ"
DAYS = pd.date_range("2024-01-01", periods=10, freq="D", tz="UTC")


def day(i: int) -> pd.Timestamp:
    return pd.Timestamp(DAYS[i])


def trade(**changes: object) -> Trade:
    base: dict[str, object] = {
        "instrument": AAPL, "side": "long", "quantity": 100.0, "entry_time": day(1),
        "entry_price": 10.0, "exit_time": day(3), "exit_price": 12.0, "commission": 2.0,
        "pnl": 198.0,
    }  # fmt: skip
    return Trade(**{**base, **changes})  # type: ignore[arg-type]


def fill(ref: str, side: Side, qty: int, price: str, commission: str, i: int, n: int = 1) -> Fill:
    at = datetime(2024, 1, 1, 14, 30, tzinfo=UTC) + pd.Timedelta(days=i)
    return Fill(exec_id=f"{ref}.{n}", order_ref=ref, instrument=AAPL, side=side,
                quantity=Decimal(qty), price=Decimal(price), commission=Decimal(commission),
                time=at)  # fmt: skip


# --- compare_trades -------------------------------------------------------------------


def test_compare_trades_matches_equal_lists_with_no_divergence() -> None:
    both = [trade(), trade(entry_time=day(5), exit_time=None, exit_price=None, commission=None,
                           pnl=None)]  # fmt: skip
    matched, found = compare_trades(both, list(reversed(both)))
    assert (matched, found) == (2, [])


def test_compare_trades_reports_a_trade_only_one_side_has_as_a_signal() -> None:
    extra = trade(entry_time=day(5), exit_time=day(7))
    matched, found = compare_trades([trade(), extra], [trade()])
    assert matched == 1
    assert [(d.kind, d.field, d.at) for d in found] == [("signal", "trade", day(5))]
    assert found[0].paper is None and found[0].backtest["quantity"] == 100.0
    assert "the backtest has a long trade" in found[0].message
    matched, found = compare_trades([], [extra])
    assert matched == 0 and found[0].backtest is None and "the paper has" in found[0].message


def test_compare_trades_reports_another_exit_bar_as_a_signal_only() -> None:
    matched, found = compare_trades([trade()], [trade(exit_time=day(4), pnl=50.0)])
    assert matched == 0
    assert [(d.kind, d.field) for d in found] == [("signal", "exit_time")]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"quantity": 99.0}, [("quantity", "quantity")]),
        ({"entry_price": 10.01}, [("fill price", "entry_price")]),
        ({"exit_price": 12.5, "pnl": 248.0}, [("fill price", "exit_price"), ("P&L", "pnl")]),
        ({"commission": 0.0, "pnl": 200.0}, [("commission", "commission"), ("P&L", "pnl")]),
    ],
)
def test_compare_trades_names_each_field_that_differs(
    changes: dict[str, object], expected: list[tuple[str, str]]
) -> None:
    matched, found = compare_trades([trade()], [trade(**changes)])
    assert matched == 0
    assert [(d.kind, d.field) for d in found] == expected
    assert all(d.at == day(1) for d in found)


def test_compare_trades_ignores_float_noise_and_sub_cent_commission_rounding() -> None:
    paper = trade(entry_price=10.0 * (1 + 1e-12), commission=2.004, pnl=197.996)
    assert compare_trades([trade()], [paper]) == (1, [])


def test_parity_result_summary_counts_divergences_by_kind() -> None:
    _, found = compare_trades([trade()], [trade(commission=0.0, pnl=200.0)])
    common = {"strategy": "sma_cross", "params": {}, "instruments": [AAPL], "bar_size": "1d",
              "start": day(0), "end": day(9), "backtest": (trade(),)}  # fmt: skip
    same = ParityResult(**common, paper=(trade(),), matched=1, divergences=())  # type: ignore[arg-type]
    assert same.identical and same.summary() == "identical: 1 trades"
    other = ParityResult(**common, paper=(trade(),), matched=0, divergences=tuple(found))  # type: ignore[arg-type]
    assert not other.identical
    assert other.summary().startswith("divergent: 1 commission, 1 P&L")
    stuck = ParityResult(**common, paper=(), matched=0, divergences=(), problems=("x",))  # type: ignore[arg-type]
    assert not stuck.identical and "1 replay problems" in stuck.summary()


# --- paper_trades -----------------------------------------------------------------------


def test_paper_trades_pairs_orders_into_round_trips_at_their_average_price() -> None:
    fills = [
        fill("buy", Side.BUY, 60, "10.00", "0.60", 1, n=1),  # one order, two executions
        fill("buy", Side.BUY, 40, "10.50", "0.40", 1, n=2),
        fill("sell", Side.SELL, 100, "12.00", "1.00", 3),
    ]
    [t] = paper_trades(fills, pd.DatetimeIndex(DAYS))
    assert (t.side, t.quantity, t.entry_time, t.exit_time) == ("long", 100.0, day(1), day(3))
    assert t.entry_price == pytest.approx(10.2)
    assert t.exit_price == 12.0
    assert t.commission == pytest.approx(2.0)
    assert t.pnl == pytest.approx((12.0 - 10.2) * 100 - 2.0)


def test_paper_trades_splits_a_reversal_and_keeps_the_open_position() -> None:
    fills = [
        fill("buy", Side.BUY, 100, "10", "1", 1),
        fill("flip", Side.SELL, 300, "11", "3", 4),  # closes 100, opens 200 short
    ]
    closed, still_open = paper_trades(fills, pd.DatetimeIndex(DAYS))
    assert closed.quantity == 100 and closed.commission == pytest.approx(2.0)
    assert closed.pnl == pytest.approx(100 - 2.0)
    assert (still_open.side, still_open.quantity, still_open.entry_price) == ("short", 200, 11)
    assert still_open.entry_time == day(4) and still_open.exit_time is None


# --- backtest_trades ------------------------------------------------------------------


def bars(close: list[float]) -> pd.DataFrame:
    c = np.asarray(close, dtype=float)
    opens = np.concatenate([[c[0]], c[:-1]]) + 0.5  # each open differs from the last close
    idx = pd.date_range("2024-01-01", periods=len(c), freq="D", tz="UTC")
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, c) + 1,
                         "low": np.minimum(opens, c) - 1, "close": c, "volume": 1e6},
                        index=idx)  # fmt: skip


RISE_FALL_RISE = [12, 11, 10, 9, 10, 11, 12, 13, 12, 11, 9, 8, 9, 10, 11, 12]
"""sma_cross(2, 3) buys on the first rise, sells on the fall, buys again and holds."""


def test_backtest_trades_fill_next_open_sized_on_the_capital_at_the_signal_close() -> None:
    frame = bars(RISE_FALL_RISE)
    params = {"fast": 2, "slow": 3}
    trades = backtest_trades(frame, "sma_cross", params, instrument=AAPL, capital=1_000.0,
                             cash=1e6, commission=0.0)  # fmt: skip
    assert len(trades) == 2
    first = trades[0]
    entry_at = frame.index.get_loc(first.entry_time)
    signal_close = frame["close"].iloc[entry_at - 1]
    assert first.entry_price == frame["open"].iloc[entry_at]  # the next bar's open
    assert first.quantity == math.floor(1_000.0 / signal_close)  # the runner's sizing
    assert first.exit_time is not None and first.pnl == pytest.approx(
        (first.exit_price - first.entry_price) * first.quantity  # type: ignore[operator]
    )
    last = trades[-1]
    assert last.exit_time is None and last.pnl is None  # still open after the last bar


def test_backtest_trades_charge_the_commission_asked_for() -> None:
    frame = bars(RISE_FALL_RISE)
    params = {"fast": 2, "slow": 3}
    free, charged = (
        backtest_trades(
            frame, "sma_cross", params, instrument=AAPL, capital=1_000.0, cash=1e6, commission=c
        )
        for c in (0.0, "ibkr")
    )
    assert free[0].commission == 0.0
    assert charged[0].commission == pytest.approx(2.0)  # IBKR's minimum 1.00, in and out
    assert charged[0].pnl == pytest.approx(free[0].pnl - 2.0)  # type: ignore[operator]


# --- the replay's feed and history ---------------------------------------------------------


def test_replay_history_reads_half_open_ranges_and_merges_written_bars() -> None:
    frame = bars(list(range(10, 20)))
    history = ReplayHistory({AAPL: frame.iloc[:3]})
    assert len(history.read(AAPL, "1d")) == 3
    assert history.read("MSFT.NASDAQ", "1d").empty
    history.write(AAPL, "1d", frame.iloc[2:5])
    assert list(history.read(AAPL, "1d").index) == list(frame.index[:5])
    part = history.read(AAPL, "1d", start=frame.index[1], end=frame.index[3])
    assert list(part.index) == list(frame.index[1:3])


class Accounts:
    async def accounts(self) -> list[str]:
        return ["DU1"]


def test_replay_feed_hands_out_only_released_bars_once() -> None:
    frame = bars(list(range(10, 20)))
    feed = ReplayFeed({AAPL: frame}, accounts=Accounts())  # type: ignore[arg-type]

    async def scenario() -> None:
        stream = await feed.open_stream(AAPL, "1d")
        assert (await feed.poll_stream(stream)).bars.empty
        feed.release(frame.index[4])
        batch = await feed.poll_stream(stream)
        assert list(batch.bars.index) == [frame.index[4]] and not batch.status.stale
        assert (await feed.poll_stream(stream)).bars.empty
        assert await feed.accounts() == ["DU1"]

    asyncio.run(scenario())
