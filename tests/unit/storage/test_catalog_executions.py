"""Executions on SQLite and PostgreSQL: the commission report that follows a fill, and the
contract a fill is for.

IB sends execDetails before its commissionReport, so a fill is often stored with commission 0
and completed by the same ``exec_id`` seen again with the commission; anything else about a
stored execution never changes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from core.errors import Conflict, StorageError
from core.types import Fill, Order, Side
from storage.catalog import Catalog

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
D = Decimal
APPLE = 265598


def _order(ref: str = "o-1", **kw: object) -> Order:
    base: dict[str, object] = dict(
        instrument="AAPL.NASDAQ", con_id=APPLE, side=Side.BUY, quantity=D("100"),
        order_ref=ref, created_at=T0,
    )  # fmt: skip
    return Order(**(base | kw))  # type: ignore[arg-type]


def _fill(commission: str = "0", **kw: object) -> Fill:
    base: dict[str, object] = dict(
        exec_id="e-1", order_ref="o-1", instrument="AAPL.NASDAQ", con_id=APPLE, side=Side.BUY,
        quantity=D("40"), price=D("187.25"), commission=D(commission), time=T0,
    )  # fmt: skip
    return Fill(**(base | kw))  # type: ignore[arg-type]


def _stored_commissions(catalog: Catalog) -> list[tuple[str, Decimal]]:
    return [(f.exec_id, f.commission) for f in catalog.executions.list()]


def test_commission_report_after_its_execution_completes_the_stored_fill(catalog):
    catalog.orders.add(_order())
    assert catalog.executions.add(_fill("0")) is True
    assert _stored_commissions(catalog) == [("e-1", D("0"))]

    assert catalog.executions.add(_fill("1.05")) is True  # the commission report
    assert _stored_commissions(catalog) == [("e-1", D("1.05"))]
    assert catalog.executions.add(_fill("1.05")) is False  # seen before
    assert catalog.executions.add(_fill("0")) is False  # a replay without its report
    assert _stored_commissions(catalog) == [("e-1", D("1.05"))]  # the commission is kept
    assert catalog.executions.list()[0] == _fill("1.05")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price", D("187.30")),
        ("quantity", D("41")),
        ("time", T0 + timedelta(seconds=1)),
        ("commission", D("2")),  # a second, different commission report
    ],
)
def test_execution_seen_again_with_other_details_is_a_conflict_naming_them(catalog, field, value):
    catalog.orders.add(_order())
    catalog.executions.add(_fill("1.05"))
    with pytest.raises(Conflict, match=rf"'e-1' is already stored with different details: {field}"):
        catalog.executions.add(replace(_fill("1.05"), **{field: value}))
    assert catalog.executions.list() == [_fill("1.05")]


def test_commission_is_not_merged_into_a_fill_that_differs_otherwise(catalog):
    catalog.orders.add(_order())
    catalog.executions.add(_fill("0"))
    with pytest.raises(Conflict, match=r"price 187\.25000000 \(now 188\.00000000\)"):
        catalog.executions.add(_fill("1.05", price=D("188")))
    assert _stored_commissions(catalog) == [("e-1", D("0"))]


def test_execution_seen_again_for_another_order_is_a_conflict(catalog):
    catalog.orders.add(_order("o-1"))
    catalog.orders.add(_order("o-2"))
    catalog.executions.add(_fill("0"))
    with pytest.raises(Conflict, match=r"'e-1' is already stored for another order.*'o-2'"):
        catalog.executions.add(_fill("1.05", order_ref="o-2"))
    assert _stored_commissions(catalog) == [("e-1", D("0"))]


def test_negative_commission_report_is_refused_and_keeps_the_fill(catalog):
    catalog.orders.add(_order())
    catalog.executions.add(_fill("0"))
    with pytest.raises(Conflict, match=r"executions\.commission"):
        catalog.executions.add(_fill("-1"))
    assert _stored_commissions(catalog) == [("e-1", D("0"))]


def test_fill_for_another_contract_than_its_order_is_rejected(catalog):
    catalog.orders.add(_order())
    with pytest.raises(Conflict, match=r"con_id 1 differs from the order's 265598"):
        catalog.executions.add(_fill("1", con_id=1))
    assert catalog.executions.list() == []
    # A contract id known on one side only is not a contradiction.
    catalog.orders.add(_order("o-2", con_id=None))
    assert catalog.executions.add(_fill("1", exec_id="e-2", order_ref="o-2")) is True
    assert catalog.executions.add(_fill("1", exec_id="e-3", con_id=None)) is True


def test_stored_fill_with_a_bare_symbol_reads_back_as_a_storage_error(catalog):
    catalog.orders.add(_order())
    catalog.executions.add(_fill("1"))
    with catalog.db.transaction() as session:
        session.execute(text("UPDATE executions SET instrument = 'VEA'"))
    with pytest.raises(StorageError, match=r"execution 'e-1' of order 'o-1'.*'VEA'"):
        catalog.executions.list()
