"""Unit tests of actors.fills.FillBook: executions and commission reports joined by execId."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import ib_async
import pytest

from actors import ib_convert as conv
from actors.fills import Commission, Execution, FillBook
from core.errors import Conflict, DataError
from core.types import Side

EXECUTION = Execution(
    exec_id="0000e0d5.00000001.01.01",
    order_ref="r1",
    instrument="VEA.ASX",
    con_id=577987566,
    side=Side.BUY,
    quantity=Decimal(10),
    price=Decimal("2.51"),
    time=datetime(2024, 3, 12, 0, 31, tzinfo=UTC),
)
COMMISSION = Commission(exec_id=EXECUTION.exec_id, commission=Decimal("5.00"), currency="AUD")


def test_fill_book_execution_then_commission_gives_one_complete_fill() -> None:
    book = FillBook()
    assert book.add_execution(EXECUTION) is None
    assert book.take_new() == [] and book.fills() == []  # never a fill with commission 0
    assert book.awaiting_commission == 1
    fill = book.add_commission(COMMISSION)
    assert fill is not None and fill.commission == Decimal("5.00")
    assert (fill.instrument, fill.con_id, fill.quantity) == ("VEA.ASX", 577987566, Decimal(10))
    assert book.take_new() == [fill] and book.take_new() == []
    assert book.awaiting_commission == 0 and book.fill(EXECUTION.exec_id) == fill


def test_fill_book_commission_then_execution_gives_the_same_fill() -> None:
    first, second = FillBook(), FillBook()
    assert first.add_commission(COMMISSION) is None
    assert first.awaiting_execution == 1 and first.take_new() == []
    joined = first.add_execution(EXECUTION)
    second.add_execution(EXECUTION)
    assert joined is not None and joined == second.add_commission(COMMISSION)
    assert first.take_new() == [joined] and first.awaiting_execution == 0


def test_fill_book_hands_a_repeated_report_out_once_and_keeps_its_values() -> None:
    book = FillBook()
    book.add_execution(EXECUTION)
    book.add_commission(COMMISSION)
    assert book.take_new() != []
    assert book.add_execution(EXECUTION) is None  # executions requests repeat both halves
    assert book.add_commission(COMMISSION) is None
    assert book.take_new() == [] and len(book.fills()) == 1


def test_fill_book_refuses_a_second_commission_and_changed_execution_values() -> None:
    book = FillBook()
    book.add_execution(EXECUTION)
    book.add_commission(COMMISSION)
    with pytest.raises(Conflict, match=r"5\.00 AUD, then 0"):
        book.add_commission(dataclasses.replace(COMMISSION, commission=Decimal(0)))
    with pytest.raises(Conflict, match="price"):
        book.add_execution(dataclasses.replace(EXECUTION, price=Decimal("2.52")))
    fill = book.fill(EXECUTION.exec_id)
    assert fill is not None and (fill.commission, fill.price) == (Decimal("5.00"), Decimal("2.51"))


def test_commission_of_is_none_until_ib_sends_the_report() -> None:
    assert conv.commission_of(ib_async.CommissionReport()) is None
    report = ib_async.CommissionReport(execId="e1", commission=1.0, currency="USD")
    assert conv.commission_of(report) == Commission(
        exec_id="e1", commission=Decimal("1.0"), currency="USD"
    )
    with pytest.raises(DataError):
        conv.commission_of(ib_async.CommissionReport(execId="e2", commission=float("nan")))


def test_execution_of_names_the_listing_and_keeps_decimal_prices() -> None:
    fill = ib_async.Fill(
        contract=ib_async.Contract(conId=577987566, symbol="VEA", exchange="ASX"),
        execution=ib_async.Execution(
            execId="e1",
            orderRef="r1",
            side="BOT",
            shares=10.0,
            price=2.51,
            time=datetime(2024, 3, 12, 0, 31, tzinfo=UTC),
        ),
        commissionReport=ib_async.CommissionReport(),
        time=datetime(2024, 3, 12, 0, 31, tzinfo=UTC),
    )
    execution = conv.execution_of(fill, instrument="VEA.ASX")
    assert execution == dataclasses.replace(EXECUTION, exec_id="e1")
