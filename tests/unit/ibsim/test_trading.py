"""Broker.modify, IOC, volume participation and the margin check (ibsim.orders, ibsim.margin)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ibsim import versions
from ibsim.margin import margin_shortfall, opening_quantity
from ibsim.order_messages import completed_order
from ibsim.orders import Broker, FillEvent, Quote, SimOrder

NOW = datetime(2024, 3, 5, 15, tzinfo=UTC)
BAR = Quote(bid=99.99, ask=100.01, last=100.0, bar_volume=50_000.0, bar_epoch=1000)
"""A bar in which an order may take 500 shares at 1% participation."""


def _order(c, *, action="BUY", qty=100, kind="MKT", lmt=None, tif="DAY", oid=1) -> SimOrder:
    return SimOrder(
        order_id=oid,
        client_id=1,
        perm_id=oid,
        contract=c,
        exchange="SMART",
        action=action,
        total_qty=Decimal(qty),
        order_type=kind,
        lmt_price=lmt,
        tif=tif,
    )


def test_participation_caps_each_bar_and_a_new_bar_frees_more(aapl) -> None:
    broker = Broker(account="DU1", participation=0.01)
    order = _order(aapl, qty=1200)
    broker.place(order, BAR, NOW)
    broker.match(lambda c: BAR, NOW)  # the same bar: nothing left to take
    assert order.filled == 500 and len(broker.executions) == 1
    broker.match(lambda c: replace(BAR, bar_epoch=1060, bar_volume=30_000.0), NOW)
    assert order.filled == 800 and order.status == "Submitted"
    assert [e.cum_qty for e in broker.executions] == [500, 800]


def test_participation_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="participation"):
        Broker(account="DU1", participation=1.5)


def test_modify_keeps_fills_perm_id_and_commission_and_takes_the_new_quantity(aapl) -> None:
    broker = Broker(account="DU1", participation=0.01)
    order = _order(aapl, qty=2000)
    broker.place(order, BAR, NOW)
    change = _order(aapl, qty=600)
    change.perm_id = 99  # what the client sends is not what the order keeps
    events, code, _ = broker.modify(change, BAR, NOW)
    assert code == 0 and order.filled == 500 and order.total_qty == 600
    assert order.perm_id == 1 and order.status == "Submitted" and order.remaining == 100
    assert not any(isinstance(e, FillEvent) for e in events)  # the bar is used up
    paid = order.commission_paid
    broker.match(lambda c: replace(BAR, bar_epoch=1060), NOW)
    assert order.status == "Filled" and order.commission_paid >= paid
    assert [e.shares for e in broker.executions] == [500, 100]


def test_modify_down_to_the_filled_quantity_ends_the_order_filled(aapl) -> None:
    broker = Broker(account="DU1", participation=0.01)
    order = _order(aapl, qty=2000)
    broker.place(order, BAR, NOW)
    _, code, _ = broker.modify(_order(aapl, qty=500), BAR, NOW + timedelta(seconds=1))
    assert code == 0 and order.status == "Filled" and order.done_at is not None


def test_modify_refusals_leave_the_order_as_it_was(aapl) -> None:
    broker = Broker(account="DU1", participation=0.01)
    working = _order(aapl, qty=2000)
    broker.place(working, BAR, NOW)
    assert broker.modify(_order(aapl, qty=100), BAR, NOW)[1:] == (134, "Modify order failed.")
    assert broker.modify(_order(aapl, action="SELL", qty=2000), BAR, NOW)[1] == 105
    assert working.total_qty == 2000 and working.action == "BUY"
    filled = _order(aapl, qty=10, oid=2)
    broker.place(filled, BAR, NOW)
    assert broker.modify(_order(aapl, qty=20, oid=2), BAR, NOW)[1:] == (
        104,
        "Can't modify a filled order.",
    )
    broker.cancel(1, 1, NOW)
    assert broker.modify(_order(aapl, qty=3000), BAR, NOW)[1:] == (103, "Duplicate order id")
    assert filled.total_qty == 10 and working.status == "Cancelled"


def test_ioc_cancels_the_remainder_at_once_and_an_unmarketable_one_entirely(aapl) -> None:
    broker = Broker(account="DU1", participation=0.01)
    big = _order(aapl, qty=800, tif="IOC")
    broker.place(big, BAR, NOW)
    assert (big.status, big.filled, big.remaining) == ("Cancelled", 500, 300)
    far = _order(aapl, kind="LMT", lmt=1.0, tif="IOC", oid=2)
    broker.place(far, BAR, NOW)
    assert (far.status, far.filled, far.completed_status) == (
        "Cancelled",
        0,
        "Cancelled: IOC remainder",
    )
    assert big.expires is None  # only DAY orders carry the session close


def test_margin_counts_only_the_opening_part_of_an_order(aapl) -> None:
    broker = Broker(account="DU1", cash=100_000.0)
    broker.place(_order(aapl, qty=1000), BAR, NOW)  # long 1000 at 100.01
    assert opening_quantity(broker, _order(aapl, action="SELL"), Decimal(1500)) == 500
    assert opening_quantity(broker, _order(aapl, action="SELL"), Decimal(800)) == 0
    assert opening_quantity(broker, _order(aapl), Decimal(7)) == 7


def test_margin_refuses_what_25_percent_of_equity_cannot_carry(aapl) -> None:
    broker = Broker(account="DU1", cash=100_000.0)
    prices: dict[int, float] = {}
    assert margin_shortfall(broker, _order(aapl, qty=3999), quote=BAR, prices=prices) == ""
    text = margin_shortfall(broker, _order(aapl, qty=4000), quote=BAR, prices=prices)
    assert text.startswith("We are unable to accept your order.")
    assert "Equity with Loan Value [100000.00 USD]" in text
    assert "Initial Margin of [100010.00 USD]" in text
    limit = _order(aapl, qty=4000, kind="LMT", lmt=90.0)  # valued at its limit
    assert margin_shortfall(broker, limit, quote=BAR, prices=prices) == ""


def test_refused_order_is_inactive_live_and_cancelled_among_completed_orders(aapl) -> None:
    broker = Broker(account="DU1")
    order = _order(aapl)
    broker.refuse(order, NOW, "insufficient margin")
    assert order.status == "Inactive" and order.is_done
    assert broker.completed() == [order]
    fields = completed_order(order, version=versions.MAX_VERSION)
    assert "Cancelled" in fields and "Inactive" not in fields
