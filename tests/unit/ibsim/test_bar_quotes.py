"""Replay given as frames, and bar quotes: a session quoted at its daily open, no spread."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd

from ibsim.contracts import default_world
from ibsim.market import Market
from ibsim.orders import Broker, SimOrder

AAPL = default_world().get("AAPL")
assert AAPL is not None
# 2024-03-05 and 2024-03-06 are NASDAQ sessions: 14:30 to 21:00 UTC.
OPEN_6TH = datetime(2024, 3, 6, 14, 30, tzinfo=UTC)


def bars() -> pd.DataFrame:
    idx = pd.DatetimeIndex(["2024-03-04", "2024-03-05", "2024-03-06"], tz="UTC")
    return pd.DataFrame({"open": [100.123456, 101.5, 103.987654321],
                         "high": [102.0, 104.0, 105.0], "low": [99.0, 100.0, 103.0],
                         "close": [101.0, 103.25, 104.0], "volume": [1e6, 2e6, 3e6]},
                        index=idx)  # fmt: skip


def test_market_replays_frames_given_directly_over_the_synthetic_series() -> None:
    market = Market(replay={"AAPL": bars()})
    daily = market.daily(AAPL)
    assert list(daily.index) == list(pd.DatetimeIndex(["2024-03-04", "2024-03-05", "2024-03-06"]))
    assert daily["open"].iloc[2] == 103.987654321
    synthetic = Market().daily(AAPL)
    assert len(synthetic) > 1000  # without replay: the seeded series


def test_bar_quotes_quote_the_sessions_open_without_spread_until_its_close() -> None:
    market = Market(replay={"AAPL": bars()}, bar_quotes=True)
    for moment in (OPEN_6TH, datetime(2024, 3, 6, 20, 59, 59, tzinfo=UTC)):
        q = market.quote(AAPL, moment)
        assert (q.bid, q.ask, q.last, q.is_open) == (103.987654321,) * 3 + (True,)
        assert q.session_close == datetime(2024, 3, 6, 21, 0, tzinfo=UTC)
    after = market.quote(AAPL, datetime(2024, 3, 5, 21, 1, tzinfo=UTC))
    assert (after.bid, after.ask, after.last, after.is_open) == (103.25, 103.25, 103.25, False)
    assert after.session_close == datetime(2024, 3, 6, 21, 0, tzinfo=UTC)


def test_without_bar_quotes_the_open_is_quoted_with_a_spread() -> None:
    q = Market(replay={"AAPL": bars()}).quote(AAPL, OPEN_6TH)
    assert q.bid < q.ask


def test_a_market_order_placed_after_the_close_fills_at_the_next_open_exactly() -> None:
    market = Market(replay={"AAPL": bars()}, bar_quotes=True)
    broker = Broker(account="DU1")
    placed = datetime(2024, 3, 5, 21, 1, tzinfo=UTC)
    order = SimOrder(order_id=1, client_id=1, perm_id=broker.next_perm_id(), contract=AAPL,
                     exchange="SMART", action="BUY", total_qty=Decimal(10), order_type="MKT",
                     tif="DAY")  # fmt: skip
    _, reason = broker.place(order, market.quote(AAPL, placed), placed)
    assert reason == "" and order.filled == 0  # the market is closed: it waits
    broker.match(lambda c: market.quote(c, OPEN_6TH), OPEN_6TH)
    assert order.status == "Filled"
    assert [e.price for e in broker.executions] == [103.987654321]
