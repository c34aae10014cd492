"""PositionBook: IB's average cost of the open quantity, realized and unrealized P&L, by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from itertools import count

from actors.positions import PositionBook, last_fill_prices
from core.types import Fill, Side

T0 = datetime(2025, 3, 3, 15, tzinfo=UTC)
_ids = count(1)


def fill(side: Side, qty: str, price: str, commission: str = "1", *, inst: str = "AAPL.NASDAQ",
         exec_id: str | None = None) -> Fill:  # fmt: skip
    n = next(_ids)
    return Fill(exec_id=exec_id or f"e{n}", order_ref=f"o{n}", instrument=inst, side=side,
                quantity=D(qty), price=D(price), commission=D(commission),
                time=T0 + timedelta(seconds=n))  # fmt: skip


def test_position_long_then_add_averages_the_open_quantity():
    book = PositionBook([fill(Side.BUY, "100", "10"), fill(Side.BUY, "50", "13")])
    pos = book.position("AAPL.NASDAQ")
    # (100 * 10 + 50 * 13) / 150 = 1650 / 150 = 11
    assert (pos.quantity, pos.avg_cost, pos.realized_pnl, pos.commission) == (
        D(150),
        D(11),
        D(0),
        D(2),
    )


def test_position_partial_close_realizes_against_avg_cost_and_keeps_it():
    book = PositionBook([fill(Side.BUY, "100", "10", "1.5"), fill(Side.SELL, "40", "12", "0.5")])
    pos = book.position("AAPL.NASDAQ")
    # (12 - 10) * 40 = 80 realized; 60 left at 10
    assert (pos.quantity, pos.avg_cost, pos.realized_pnl) == (D(60), D(10), D(80))
    assert pos.commission == D(2) and pos.net_realized_pnl == D(78)


def test_position_full_close_is_flat_with_zero_cost_and_its_pnl_kept():
    book = PositionBook([fill(Side.BUY, "10", "50"), fill(Side.SELL, "10", "45")])
    pos = book.position("AAPL.NASDAQ")
    assert (pos.quantity, pos.avg_cost, pos.realized_pnl) == (D(0), D(0), D(-50))
    assert book.positions() == [] and len(book.positions(include_flat=True)) == 1
    assert book.quantities() == {}


def test_position_flip_closes_all_and_opens_the_rest_at_the_fill_price():
    book = PositionBook([fill(Side.BUY, "100", "10"), fill(Side.SELL, "150", "12")])
    pos = book.position("AAPL.NASDAQ", last_price=D("11"))
    # closes 100 at +2 = 200; opens -50 at 12; unrealized (11 - 12) * -50 = +50
    assert (pos.quantity, pos.avg_cost, pos.realized_pnl) == (D(-50), D(12), D(200))
    assert pos.unrealized_pnl == D(50)


def test_position_short_add_and_cover_mirror_the_long_rules():
    fills = [fill(Side.SELL, "100", "20"), fill(Side.SELL, "100", "22"),  # avg 21
             fill(Side.BUY, "50", "19")]  # fmt: skip
    pos = PositionBook(fills).position("AAPL.NASDAQ", last_price=D("25"))
    # covered 50 at 19 against 21: +100; 150 short at 21 marked at 25: -600
    assert (pos.quantity, pos.avg_cost, pos.realized_pnl) == (D(-150), D(21), D(100))
    assert pos.unrealized_pnl == D(-600) and pos.commission == D(3)


def test_position_flip_from_short_to_long():
    pos = PositionBook([fill(Side.SELL, "30", "10"), fill(Side.BUY, "50", "8")]).position(
        "AAPL.NASDAQ"
    )
    assert (pos.quantity, pos.avg_cost, pos.realized_pnl) == (D(20), D(8), D(60))


def test_position_book_counts_the_same_exec_id_once():
    first = fill(Side.BUY, "10", "100", exec_id="dup")
    book = PositionBook([first])
    assert book.apply(first) is False and "dup" in book
    pos = book.position("AAPL.NASDAQ")
    assert (pos.quantity, pos.commission, pos.fills) == (D(10), D(1), 1)


def test_position_book_rebuilt_from_the_same_fills_is_equal():
    fills = [fill(Side.BUY, "7", "3.33"), fill(Side.BUY, "5", "2.1", inst="BHP.ASX"),
             fill(Side.SELL, "2", "4"), fill(Side.SELL, "9", "2.5", inst="BHP.ASX")]  # fmt: skip
    prices = {"AAPL.NASDAQ": D("4"), "BHP.ASX": D("2")}
    assert PositionBook(fills).positions(last_prices=prices) == PositionBook.from_fills(
        list(fills) + fills[:2]
    ).positions(last_prices=prices)
    assert PositionBook(fills).quantities() == {"AAPL.NASDAQ": D(5), "BHP.ASX": D(-4)}
    bhp = PositionBook(fills).position("BHP.ASX", last_price=D(2))
    # closed 5 at 2.5 against 2.1: +2.0; short 4 opened at 2.5, marked at 2: +2.0
    assert (bhp.realized_pnl, bhp.avg_cost, bhp.unrealized_pnl) == (D("2.0"), D("2.5"), D("2.0"))


def test_position_without_a_last_price_has_no_unrealized_pnl():
    pos = PositionBook([fill(Side.BUY, "1", "5")]).position("AAPL.NASDAQ")
    assert pos.unrealized_pnl is None and pos.to_position().avg_cost == D(5)


def test_last_fill_prices_takes_the_latest_fill_per_instrument():
    fills = [
        fill(Side.BUY, "1", "5"),
        fill(Side.BUY, "1", "6"),
        fill(Side.BUY, "1", "7", inst="BHP.ASX"),
    ]
    assert last_fill_prices(fills) == {"AAPL.NASDAQ": D(6), "BHP.ASX": D(7)}
