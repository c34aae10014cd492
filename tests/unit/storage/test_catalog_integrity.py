"""Integrity rules of the catalog, on SQLite and PostgreSQL.

Fills must match their order (symbol, side, no overfill); the database refuses orders whose
type lacks its price, duplicate IB contract ids and negative average costs, even from raw
SQL; a corrupt order row read back is a StorageError naming the row. Each rejection writes
nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text

from core.errors import Conflict, StorageError
from core.types import Fill, Order, OrderType, Position, Side
from storage.catalog import Catalog, SymbolRecord

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
D = Decimal


def _count(catalog: Catalog, table: str) -> int:
    with catalog.db.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _order(ref: str = "o-1", **kw: object) -> Order:
    base: dict[str, object] = dict(
        symbol="AAPL", side=Side.BUY, quantity=D("10"), order_ref=ref, created_at=T0
    )
    return Order(**(base | kw))  # type: ignore[arg-type]


def _fill(exec_id: str = "e-1", ref: str = "o-1", **kw: object) -> Fill:
    base: dict[str, object] = dict(
        exec_id=exec_id,
        order_ref=ref,
        symbol="AAPL",
        side=Side.BUY,
        quantity=D("4"),
        price=D("187.25"),
        commission=D("1"),
        time=T0,
    )
    return Fill(**(base | kw))  # type: ignore[arg-type]


# --- fills against their order ---------------------------------------------------------------


def test_fill_contradicting_its_order_in_everything_is_rejected(catalog):
    catalog.orders.add(_order())  # AAPL BUY 10
    bad = _fill(symbol="MSFT", side=Side.SELL, quantity=D("500"))
    with pytest.raises(Conflict, match="symbol MSFT differs from the order's AAPL"):
        catalog.executions.add(bad)
    assert _count(catalog, "executions") == 0


def test_fill_for_another_symbol_is_rejected_and_writes_nothing(catalog):
    catalog.orders.add(_order())
    with pytest.raises(Conflict, match=r"'o-1'.*symbol MSFT"):
        catalog.executions.add(_fill(symbol="MSFT"))
    assert catalog.executions.list() == []


def test_fill_on_the_other_side_is_rejected_and_writes_nothing(catalog):
    catalog.orders.add(_order())
    with pytest.raises(Conflict, match="side SELL differs from the order's BUY"):
        catalog.executions.add(_fill(side=Side.SELL))
    assert catalog.executions.list() == []


def test_fills_may_complete_an_order_but_never_overfill_it(catalog):
    catalog.orders.add(_order())  # quantity 10
    assert catalog.executions.add(_fill("e-1", quantity=D("4"))) is True
    assert catalog.executions.add(_fill("e-2", quantity=D("6"))) is True  # exactly full
    with pytest.raises(Conflict, match=r"quantity 0\.5.* 10\.00000000 already executed"):
        catalog.executions.add(_fill("e-3", quantity=D("0.5")))
    # IB re-sends execDetails after a reconnect: a known fill stays a no-op, not a Conflict.
    assert catalog.executions.add(_fill("e-2", quantity=D("6"))) is False
    assert [f.exec_id for f in catalog.executions.list(order_ref="o-1")] == ["e-1", "e-2"]


def test_single_fill_larger_than_the_order_is_rejected(catalog):
    catalog.orders.add(_order())
    with pytest.raises(Conflict, match="exceeds the order quantity 10"):
        catalog.executions.add(_fill(quantity=D("10.00000001")))
    assert _count(catalog, "executions") == 0


def test_overfill_counts_only_the_fills_of_that_order(catalog):
    catalog.orders.add(_order("o-1"))
    catalog.orders.add(_order("o-2"))
    catalog.executions.add(_fill("e-1", ref="o-1", quantity=D("10")))
    assert catalog.executions.add(_fill("e-2", ref="o-2", quantity=D("10"))) is True


def test_fill_symbol_is_compared_case_insensitively(catalog):
    catalog.orders.add(_order())
    assert catalog.executions.add(_fill(symbol="aapl")) is True
    assert catalog.executions.list()[0].symbol == "AAPL"


def test_known_exec_id_sent_for_another_order_is_a_conflict(catalog):
    catalog.orders.add(_order("o-1"))
    catalog.orders.add(_order("o-2"))
    catalog.executions.add(_fill("e-1", ref="o-1"))
    with pytest.raises(Conflict, match="another order"):
        catalog.executions.add(_fill("e-1", ref="o-2"))
    assert [f.order_ref for f in catalog.executions.list()] == ["o-1"]


# --- database CHECKs, through raw SQL --------------------------------------------------------

_ORDER_SQL = (
    "INSERT INTO orders (order_ref, symbol, side, order_type, quantity, limit_price, "
    "stop_price, tif, status, filled_quantity, created_at, updated_at) VALUES "
    "(:ref, 'AAPL', 'BUY', :type, 5, :limit, :stop, 'DAY', 'Submitted', 0, :t, :t)"
)


def _insert_order(catalog: Catalog, ref: str, order_type: str, limit=None, stop=None) -> None:
    params = {"ref": ref, "type": order_type, "limit": limit, "stop": stop}
    with catalog.db.transaction() as session:
        session.execute(text(_ORDER_SQL), params | {"t": T0.replace(tzinfo=None)})


@pytest.mark.parametrize(
    ("order_type", "limit", "stop", "field"),
    [
        ("LMT", None, None, "limit_price"),
        ("LOC", None, None, "limit_price"),
        ("STP LMT", None, 10, "limit_price"),
        ("STP LMT", 10, None, "stop_price"),
        ("STP", None, None, "stop_price"),
    ],
)
def test_raw_order_without_the_price_its_type_needs_is_rejected(
    catalog, order_type, limit, stop, field
):
    with pytest.raises(Conflict, match=rf"orders\.{field} is required for .*{order_type}"):
        _insert_order(catalog, "bad", order_type, limit, stop)
    assert _count(catalog, "orders") == 0
    assert catalog.orders.list() == []  # the listing every user shares still works


def test_raw_orders_with_the_prices_their_types_need_are_accepted(catalog):
    _insert_order(catalog, "mkt", "MKT")
    _insert_order(catalog, "moc", "MOC")
    _insert_order(catalog, "lmt", "LMT", limit=10)
    _insert_order(catalog, "stp", "STP", stop=9)
    _insert_order(catalog, "stplmt", "STP LMT", limit=10, stop=9)
    listed = {r.order_ref: r.order.order_type for r in catalog.orders.list()}
    assert listed == {
        "mkt": OrderType.MARKET,
        "moc": OrderType.MARKET_ON_CLOSE,
        "lmt": OrderType.LIMIT,
        "stp": OrderType.STOP,
        "stplmt": OrderType.STOP_LIMIT,
    }


_SYMBOL_SQL = (
    "INSERT INTO symbols (symbol, sec_type, exchange, primary_exchange, currency, con_id, name, "
    "added_at) VALUES (:symbol, 'STK', 'SMART', 'NASDAQ', 'USD', :con_id, '', :t)"
)


def _insert_symbol(catalog: Catalog, symbol: str, con_id: int | None) -> None:
    with catalog.db.transaction() as session:
        params = {"symbol": symbol, "con_id": con_id, "t": T0.replace(tzinfo=None)}
        session.execute(text(_SYMBOL_SQL), params)


def test_raw_symbol_with_a_taken_con_id_is_rejected_but_nulls_may_repeat(catalog):
    for symbol, con_id in (("AAPL", 265598), ("A", None), ("B", None)):
        _insert_symbol(catalog, symbol, con_id)
    with pytest.raises(Conflict, match=r"symbols\.con_id must be unique"):
        _insert_symbol(catalog, "APL", 265598)
    assert sorted(s.symbol for s in catalog.symbols.list()) == ["A", "AAPL", "B"]


def test_mark_verified_with_another_listings_con_id_is_a_conflict(catalog):
    catalog.symbols.upsert_many([SymbolRecord(symbol="AAPL"), SymbolRecord(symbol="APPL")])
    catalog.symbols.mark_verified("AAPL", con_id=265598, at=T0)
    with pytest.raises(Conflict, match=r"symbols\.con_id"):
        catalog.symbols.mark_verified("APPL", con_id=265598, at=T0)
    appl = catalog.symbols.get("APPL")
    assert (appl.con_id, appl.valid) == (None, None)


def test_negative_avg_cost_is_rejected_by_raw_sql_and_by_the_repository(catalog):
    sql = (
        "INSERT INTO positions (account, symbol, quantity, avg_cost, updated_at) "
        "VALUES ('U1', 'AAPL', 10, -1, :t)"
    )
    with pytest.raises(Conflict, match=r"positions\.avg_cost"):  # noqa: SIM117
        with catalog.db.transaction() as session:
            session.execute(text(sql), {"t": T0.replace(tzinfo=None)})
    with pytest.raises(Conflict, match=r"positions\.avg_cost"):
        catalog.positions.upsert(Position(symbol="AAPL", quantity=D(10), avg_cost=D("-0.01")))
    assert _count(catalog, "positions") == 0
    catalog.positions.upsert(Position(symbol="AAPL", quantity=D(-5), avg_cost=D(0)))
    assert catalog.positions.get("AAPL").avg_cost == D(0)


# --- databases from before revision 0002 -----------------------------------------------------


def _at_0001(url: str) -> Catalog:
    catalog = Catalog(url)
    catalog.upgrade("0001")
    return catalog


def test_corrupt_order_row_reads_back_as_storage_error_naming_it(db_url):
    with _at_0001(db_url) as catalog:  # revision 0001 has no price-per-type CHECK
        catalog.orders.add(_order("good"))
        _insert_order(catalog, "bad-lmt", "LMT")
        with pytest.raises(StorageError, match=r"'bad-lmt'.*corrupt.*limit_price"):
            catalog.orders.list()
        assert catalog.orders.get("good").order.symbol == "AAPL"


def test_upgrade_refuses_rows_that_break_the_new_rules_and_changes_nothing(db_url):
    with _at_0001(db_url) as catalog:
        _insert_order(catalog, "bad-lmt", "LMT")
        _insert_order(catalog, "bad-stp", "STP")
        _insert_symbol(catalog, "X", 7)
        _insert_symbol(catalog, "Y", 7)
        with pytest.raises(StorageError) as caught:
            catalog.upgrade()
        message = str(caught.value)
        assert "'bad-lmt'" not in message  # order refs are listed bare
        for needle in ("bad-lmt", "bad-stp", "sharing one con_id (7)", "limit_price", "nothing"):
            assert needle in message
        assert catalog.revision() == "0001"
        assert _count(catalog, "orders") == 2 and _count(catalog, "symbols") == 2


def test_upgrade_from_0001_keeps_orders_and_their_executions(db_url):
    with _at_0001(db_url) as catalog:
        catalog.orders.add(_order(order_type=OrderType.LIMIT, limit_price=D("187.5")))
        catalog.executions.add(_fill())
        catalog.positions.upsert(Position(symbol="AAPL", quantity=D(4), avg_cost=D("187.5")))
        catalog.upgrade()
        assert catalog.revision() == "0002"
        assert catalog.orders.get("o-1").order.limit_price == D("187.5")
        assert [f.exec_id for f in catalog.executions.list(order_ref="o-1")] == ["e-1"]
        assert catalog.positions.get("AAPL").quantity == D(4)
        # Foreign keys are enforced again after the migration (SQLite turns them off for it).
        with pytest.raises(Conflict, match=r"foreign key|order_id"):  # noqa: SIM117
            with catalog.db.transaction() as session:
                session.execute(
                    text(
                        "INSERT INTO executions (exec_id, order_id, symbol, side, quantity, "
                        "price, commission, time) VALUES ('e-x', 999, 'AAPL', 'BUY', 1, 1, 0, :t)"
                    ),
                    {"t": T0.replace(tzinfo=None)},
                )
        with pytest.raises(Conflict, match=r"orders\.limit_price"):
            _insert_order(catalog, "bad-lmt", "LMT")
