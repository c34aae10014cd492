"""Deterministic market data, historical requests and the contract world."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from ibsim.contracts import default_world
from ibsim.history import HistoryError, fetch_bars, parse_request
from ibsim.market import Market

NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)


def _request(c, **overrides):
    fields = {
        "end": "",
        "barSize": "1 day",
        "duration": "1 Y",
        "useRTH": "1",
        "whatToShow": "TRADES",
        "formatDate": "1",
    } | overrides
    return parse_request(c, fields=fields, now=NOW)


def test_world_holds_the_expected_universes_with_unique_con_ids() -> None:
    world = default_world()
    rows = list(world)
    assert len({c.con_id for c in rows}) == len(rows)
    count = lambda pred: sum(1 for c in rows if pred(c))  # noqa: E731
    assert count(lambda c: c.primary_exchange == "NASDAQ" and c.sec_type == "STK") >= 100
    assert count(lambda c: c.primary_exchange == "NYSE") >= 60
    assert count(lambda c: c.sec_type == "ETF") >= 60
    assert count(lambda c: c.is_asx) >= 200
    for symbol in ("SPY", "QQQ", "IWM", "GLD", "TLT", "HYG", "EEM", "EFA", "XLK"):
        assert world.get(symbol, currency="USD") is not None, symbol


def test_matching_uses_currency_exchange_and_con_id() -> None:
    world = default_world()
    assert [c.currency for c in world.match(symbol="VEA")] == ["USD", "AUD"]
    (bhp,) = world.match(symbol="BHP", exchange="ASX", currency="AUD")
    assert world.match(con_id=bhp.con_id) == [bhp]
    assert world.match(symbol="BHP", exchange="NYSE") == []
    assert world.match(symbol="NOPE") == []


def test_daily_history_is_deterministic_realistic_and_on_trading_days(aapl) -> None:
    _, _, bars = fetch_bars(Market(seed=1), _request(aapl, duration="5 Y"))
    _, _, again = fetch_bars(Market(seed=1), _request(aapl, duration="5 Y"))
    assert bars == again and 1240 <= len(bars) <= 1270
    arr = np.array([b[1:5] for b in bars])
    assert (arr[:, 1] >= arr[:, [0, 3]].max(axis=1)).all()
    assert (arr[:, 2] <= arr[:, [0, 3]].min(axis=1)).all()
    days = [datetime.strptime(b[0], "%Y%m%d") for b in bars]
    assert all(d.weekday() < 5 for d in days)
    assert "20231225" not in {b[0] for b in bars}  # Christmas: NYSE closed
    _, _, other_seed = fetch_bars(Market(seed=2), _request(aapl, duration="5 Y"))
    assert other_seed != bars


def test_intraday_bars_cover_the_session_so_far_and_follow_format_date(aapl) -> None:
    req = _request(aapl, barSize="1 min", duration="1 D", formatDate="2")
    _, _, bars = fetch_bars(Market(), req)
    assert len(bars) == 30  # 14:30 -> 15:00 UTC
    assert int(bars[0][0]) == int(datetime(2024, 3, 5, 14, 30, tzinfo=UTC).timestamp())
    req = _request(aapl, barSize="1 hour", duration="2 D", formatDate="1", useRTH="1")
    _, _, hourly = fetch_bars(Market(), req)
    assert hourly[0][0] == "20240304 09:30:00 America/New_York"
    assert hourly[1][0] == "20240304 10:00:00 America/New_York"


def test_asx_bars_are_in_sydney_hours(bhp) -> None:
    now = datetime(2024, 3, 5, 2, 0, tzinfo=UTC)  # 13:00 in Sydney
    req = parse_request(
        bhp,
        fields={
            "end": "",
            "barSize": "30 mins",
            "duration": "1 D",
            "useRTH": "1",
            "whatToShow": "MIDPOINT",
            "formatDate": "1",
        },
        now=now,
    )
    _, _, bars = fetch_bars(Market(), req)
    assert bars[0][0] == "20240305 10:00:00 Australia/Sydney" and bars[0][5] == -1.0


@pytest.mark.parametrize(
    ("duration", "bar"), [("1 Y", "1 min"), ("1 D", "1 secs"), ("2 D", "1 day_x")]
)
def test_duration_bar_size_outside_the_step_table_is_error_321(aapl, duration, bar) -> None:
    with pytest.raises(HistoryError) as info:
        _request(aapl, duration=duration, barSize=bar)
    assert info.value.code == 321


def test_bid_and_ask_bars_bracket_midpoint(aapl) -> None:
    market = Market()
    mid = fetch_bars(market, _request(aapl, whatToShow="MIDPOINT", duration="1 M"))[2]
    bid = fetch_bars(market, _request(aapl, whatToShow="BID", duration="1 M"))[2]
    ask = fetch_bars(market, _request(aapl, whatToShow="ASK", duration="1 M"))[2]
    assert all(b[4] < m[4] < a[4] for b, m, a in zip(bid, mid, ask, strict=True))


def test_quotes_are_inside_the_spread_and_closed_outside_hours(aapl) -> None:
    market = Market()
    q = market.quote(aapl, NOW)
    assert q.is_open and q.bid < q.ask and q.bid <= q.last <= q.ask
    night = market.quote(aapl, datetime(2024, 3, 5, 23, 0, tzinfo=UTC))
    assert not night.is_open


def test_replay_files_replace_the_synthetic_series(tmp_path, aapl) -> None:
    (tmp_path / "AAPL.csv").write_text(
        "date,open,high,low,close,volume\n"
        "2024-03-01,10,11,9,10.5,1000\n2024-03-04,10.5,12,10,11.5,2000\n"
    )
    _, _, bars = fetch_bars(Market(data_dir=tmp_path), _request(aapl, duration="1 M"))
    assert [b[0] for b in bars] == ["20240301", "20240304"]
    assert bars[1][1:5] == (10.5, 12.0, 10.0, 11.5)


def test_quote_carries_the_volume_of_its_one_minute_bar(aapl) -> None:
    market = Market(seed=0)
    at = datetime(2024, 3, 5, 15, 0, 42, tzinfo=UTC)
    quote = market.quote(aapl, at)
    minute = int(datetime(2024, 3, 5, 15, 0, tzinfo=UTC).timestamp())
    secs = market.seconds(aapl, market.session_index(aapl, at.timestamp()))
    in_bar = (secs.epoch >= minute) & (secs.epoch < minute + 60)
    assert quote.bar_epoch == minute and quote.bar_volume == secs.volume[in_bar].sum() > 0
    assert market.quote(aapl, at.replace(second=59)).bar_volume == quote.bar_volume
    closed = market.quote(aapl, datetime(2024, 3, 5, 22, 0, tzinfo=UTC))
    assert (closed.bar_volume, closed.bar_epoch) == (0.0, 0)
