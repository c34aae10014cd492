"""Unit tests of actors.ib_convert and the reconnect backoff: pure translations, no network."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, date, datetime
from decimal import Decimal

import ib_async
import pytest

from actors import ib_convert as conv
from actors.ib_connection import Backoff
from actors.order_acks import order_status
from core.errors import BrokerError, NotFound, PacingViolation
from core.types import Instrument, Order, OrderStatus, OrderType, Side


def test_bars_to_frame_stamps_daily_bars_at_midnight_utc_and_sorts() -> None:
    bars = [
        ib_async.BarData(date=date(2024, 1, 3), open=2, high=3, low=1, close=2.5, volume=10),
        ib_async.BarData(date=date(2024, 1, 2), open=1, high=2, low=0.5, close=1.5, volume=5),
        ib_async.BarData(date=date(2024, 1, 3), open=2, high=3, low=1, close=2.6, volume=11),
    ]
    frame = conv.bars_to_frame(bars)
    assert list(frame.index) == [
        datetime(2024, 1, 2, tzinfo=UTC),
        datetime(2024, 1, 3, tzinfo=UTC),
    ]
    assert frame.loc[datetime(2024, 1, 3, tzinfo=UTC), "close"] == 2.6  # the later copy wins
    assert list(frame.columns) == list(conv.BAR_COLUMNS)
    assert all(str(t) == "float64" for t in frame.dtypes)


def test_bars_to_frame_converts_intraday_times_to_utc() -> None:
    ny = datetime(2024, 3, 4, 9, 30).astimezone(UTC)
    frame = conv.bars_to_frame([ib_async.BarData(date=ny, open=1, high=1, low=1, close=1)])
    assert frame.index[0] == ny and str(frame.index.tz) == "UTC"
    assert len(conv.bars_to_frame([])) == 0


def test_to_ib_order_keeps_prices_and_quantity() -> None:
    order = Order(
        instrument="AAPL.NASDAQ",
        side=Side.SELL,
        quantity=Decimal("3"),
        order_type=OrderType.STOP_LIMIT,
        limit_price=Decimal("99.5"),
        stop_price=Decimal("100.25"),
        order_ref="r1",
    )
    ib_order = conv.to_ib_order(order, account="DU1")
    assert (ib_order.action, ib_order.totalQuantity, ib_order.orderType) == ("SELL", 3.0, "STP LMT")
    assert (ib_order.lmtPrice, ib_order.auxPrice) == (99.5, 100.25)
    assert ib_order.account == "DU1" and ib_order.orderRef == "r1"


def test_order_status_maps_partial_fills_and_api_states() -> None:
    assert order_status("Submitted", filled=1, remaining=2) == OrderStatus.PARTIALLY_FILLED
    assert order_status("ApiCancelled", filled=0, remaining=2) == OrderStatus.CANCELLED
    assert order_status("Filled", filled=3, remaining=0) == OrderStatus.FILLED


def test_to_contract_uses_con_id_when_known() -> None:
    contract = conv.to_contract(Instrument(symbol="BHP", currency="AUD", con_id=4036812))
    assert (contract.conId, contract.symbol, contract.currency) == (4036812, "BHP", "AUD")
    assert conv.decimal(0.1) == Decimal("0.1")


def test_request_error_translates_codes() -> None:
    assert isinstance(
        conv.request_error(162, "Historical data request pacing violation"), PacingViolation
    )
    assert isinstance(conv.request_error(200, "No security definition"), NotFound)
    other = conv.request_error(162, "HMDS query returned no data")
    assert type(other) is BrokerError and other.code == 162


@pytest.mark.parametrize("err", [BrokerError(321, "bad"), PacingViolation()])
def test_broker_errors_survive_pickling_for_ray(err: BrokerError) -> None:
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert (back.code, back.broker_message) == (err.code, err.broker_message)


def test_backoff_grows_is_capped_and_jittered() -> None:
    backoff = Backoff(initial=1.0, factor=2.0, cap=8.0, jitter=0.25)
    rng = random.Random(7)
    delays = [backoff.delay(i, rng) for i in range(8)]
    for i, d in enumerate(delays):
        base = min(8.0, 2.0**i)
        assert base * 0.75 <= d <= base * 1.25
    assert max(delays) <= 10.0
    assert len({round(d, 6) for d in delays[4:]}) > 1  # jitter spreads the capped ones
