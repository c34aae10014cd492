"""Integrity rules of the catalog, on SQLite and PostgreSQL.

Fills must match their order (instrument, side, no overfill); the database refuses orders whose
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
from storage.catalog.migrate import head_revision
from tests.unit.storage import legacy_catalog as legacy

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
D = Decimal


def _count(catalog: Catalog, table: str) -> int:
    with catalog.db.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _order(ref: str = "o-1", **kw: object) -> Order:
    base: dict[str, object] = dict(
        instrument="AAPL.NASDAQ", side=Side.BUY, quantity=D("10"), order_ref=ref, created_at=T0
    )
    return Order(**(base | kw))  # type: ignore[arg-type]


def _fill(exec_id: str = "e-1", ref: str = "o-1", **kw: object) -> Fill:
    base: dict[str, object] = dict(
        exec_id=exec_id,
        order_ref=ref,
        instrument="AAPL.NASDAQ",
        side=Side.BUY,
        quantity=D("4"),
        price=D("187.25"),
        commission=D("1"),
        time=T0,
    )
    return Fill(**(base | kw))  # type: ignore[arg-type]


# --- fills against their order ---------------------------------------------------------------


def test_fill_contradicting_its_order_in_everything_is_rejected(catalog):
    catalog.orders.add(_order())  # AAPL.NASDAQ BUY 10
    bad = _fill(instrument="MSFT.NASDAQ", side=Side.SELL, quantity=D("500"))
    with pytest.raises(
        Conflict, match=r"instrument MSFT\.NASDAQ differs from the order's AAPL\.NASDAQ"
    ):
        catalog.executions.add(bad)
    assert _count(catalog, "executions") == 0


def test_fill_for_another_instrument_is_rejected_and_writes_nothing(catalog):
    catalog.orders.add(_order())
    with pytest.raises(Conflict, match=r"'o-1'.*instrument MSFT\.NASDAQ"):
        catalog.executions.add(_fill(instrument="MSFT.NASDAQ"))
    assert catalog.executions.list() == []


def test_fill_for_another_listing_of_the_same_ticker_is_rejected(catalog):
    # VEA on the ASX (Viva Energy) is not VEA on NYSE Arca (a Vanguard ETF).
    catalog.orders.add(_order(instrument="VEA.ASX", con_id=577987566))
    with pytest.raises(Conflict, match=r"instrument VEA\.ARCA differs from the order's VEA\.ASX"):
        catalog.executions.add(_fill(instrument="VEA.ARCA", con_id=337524944))
    assert catalog.executions.list() == []
    assert catalog.executions.add(_fill(instrument="VEA.ASX", con_id=577987566)) is True
    assert catalog.executions.list()[0].con_id == 577987566


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


def test_fill_instrument_is_compared_case_insensitively(catalog):
    catalog.orders.add(_order())
    assert catalog.executions.add(_fill(instrument="aapl.nasdaq")) is True
    assert catalog.executions.list()[0].instrument == "AAPL.NASDAQ"


def test_known_exec_id_sent_for_another_order_is_a_conflict(catalog):
    catalog.orders.add(_order("o-1"))
    catalog.orders.add(_order("o-2"))
    catalog.executions.add(_fill("e-1", ref="o-1"))
    with pytest.raises(Conflict, match="another order"):
        catalog.executions.add(_fill("e-1", ref="o-2"))
    assert [f.order_ref for f in catalog.executions.list()] == ["o-1"]


# --- database CHECKs, through raw SQL --------------------------------------------------------

_ORDER_SQL = (
    "INSERT INTO orders (order_ref, instrument, side, order_type, quantity, limit_price, "
    "stop_price, tif, status, filled_quantity, created_at, updated_at) VALUES "
    "(:ref, 'AAPL.NASDAQ', 'BUY', :type, 5, :limit, :stop, 'DAY', 'Submitted', 0, :t, :t)"
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
    "INSERT INTO symbols (instrument_id, symbol, sec_type, exchange, primary_exchange, "
    "currency, con_id, name, added_at) "
    "VALUES (:iid, :symbol, 'STK', 'SMART', 'NASDAQ', 'USD', :con_id, '', :t)"
)


def _insert_symbol(catalog: Catalog, symbol: str, con_id: int | None) -> None:
    with catalog.db.transaction() as session:
        params = {"iid": f"{symbol}.NASDAQ", "symbol": symbol, "con_id": con_id}
        session.execute(text(_SYMBOL_SQL), params | {"t": T0.replace(tzinfo=None)})


def test_raw_symbol_with_a_taken_con_id_is_rejected_but_nulls_may_repeat(catalog):
    for symbol, con_id in (("AAPL", 265598), ("A", None), ("B", None)):
        _insert_symbol(catalog, symbol, con_id)
    with pytest.raises(Conflict, match=r"symbols\.con_id must be unique"):
        _insert_symbol(catalog, "APL", 265598)
    assert sorted(s.id for s in catalog.symbols.list()) == ["A.NASDAQ", "AAPL.NASDAQ", "B.NASDAQ"]


def test_raw_symbol_with_a_taken_instrument_id_is_rejected(catalog):
    # One id, one listing: the same symbol and venue in another currency cannot be added.
    _insert_symbol(catalog, "AAPL", 265598)
    sql = _SYMBOL_SQL.replace("'USD'", "'EUR'")
    with pytest.raises(Conflict, match=r"symbols\.instrument_id must be unique"):  # noqa: SIM117
        with catalog.db.transaction() as session:
            params = {"iid": "AAPL.NASDAQ", "symbol": "AAPL", "con_id": None}
            session.execute(text(sql), params | {"t": T0.replace(tzinfo=None)})
    assert [s.currency for s in catalog.symbols.list()] == ["USD"]


def test_mark_verified_with_another_listings_con_id_is_a_conflict(catalog):
    catalog.symbols.upsert_many(
        [
            SymbolRecord(symbol="AAPL", primary_exchange="NASDAQ"),
            SymbolRecord(symbol="APPL", primary_exchange="NASDAQ"),
        ]
    )
    catalog.symbols.mark_verified("AAPL", con_id=265598, at=T0)
    with pytest.raises(Conflict, match=r"symbols\.con_id"):
        catalog.symbols.mark_verified("APPL", con_id=265598, at=T0)
    appl = catalog.symbols.get("APPL")
    assert (appl.con_id, appl.valid) == (None, None)


def test_negative_avg_cost_is_rejected_by_raw_sql_and_by_the_repository(catalog):
    sql = (
        "INSERT INTO positions (account, instrument, quantity, avg_cost, updated_at) "
        "VALUES ('U1', 'AAPL.NASDAQ', 10, -1, :t)"
    )
    with pytest.raises(Conflict, match=r"positions\.avg_cost"):  # noqa: SIM117
        with catalog.db.transaction() as session:
            session.execute(text(sql), {"t": T0.replace(tzinfo=None)})
    with pytest.raises(Conflict, match=r"positions\.avg_cost"):
        catalog.positions.upsert(
            Position(instrument="AAPL.NASDAQ", quantity=D(10), avg_cost=D("-0.01"))
        )
    assert _count(catalog, "positions") == 0
    catalog.positions.upsert(Position(instrument="AAPL.NASDAQ", quantity=D(-5), avg_cost=D(0)))
    assert catalog.positions.get("AAPL.NASDAQ").avg_cost == D(0)


# --- rows the domain types refuse ------------------------------------------------------------


def test_corrupt_order_row_reads_back_as_storage_error_naming_it(catalog):
    catalog.orders.add(_order("good"))
    with catalog.db.transaction() as session:  # a bare ticker, as revision 0003 may keep one
        session.execute(
            text(_ORDER_SQL.replace("'AAPL.NASDAQ'", "'VEA'")),
            {"ref": "bad-vea", "type": "MKT", "limit": None, "stop": None}
            | {"t": T0.replace(tzinfo=None)},
        )
    with pytest.raises(StorageError, match=r"'bad-vea'.*corrupt.*VEA"):
        catalog.orders.list()
    assert catalog.orders.get("good").order.instrument == "AAPL.NASDAQ"


# --- databases from before revision 0002 -----------------------------------------------------


def _at_0001(url: str) -> Catalog:
    catalog = Catalog(url)
    catalog.upgrade("0001")
    return catalog


def test_upgrade_refuses_rows_that_break_the_new_rules_and_changes_nothing(db_url):
    with _at_0001(db_url) as catalog:
        with catalog.db.engine.begin() as conn:
            legacy.order(conn, "bad-lmt", "AAPL", order_type="LMT")
            legacy.order(conn, "bad-stp", "AAPL", order_type="STP")
            legacy.symbol(conn, "X", primary="NASDAQ", con_id=7)
            legacy.symbol(conn, "Y", primary="NASDAQ", con_id=7)
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
        with catalog.db.engine.begin() as conn:
            legacy.symbol(conn, "AAPL", primary="NASDAQ", con_id=265598)
            order_id = legacy.order(conn, "o-1", "AAPL", order_type="LMT", limit="187.5")
            legacy.execution(conn, "e-1", order_id, "AAPL", quantity=4)
            legacy.position(conn, "", "AAPL", quantity=4, avg_cost="187.5")
        catalog.upgrade()
        assert catalog.revision() == head_revision()
        stored = catalog.orders.get("o-1").order
        assert (stored.instrument, stored.con_id, stored.limit_price) == (
            "AAPL.NASDAQ",
            265598,
            D("187.5"),
        )
        assert [f.exec_id for f in catalog.executions.list(order_ref="o-1")] == ["e-1"]
        assert catalog.positions.get("AAPL.NASDAQ").quantity == D(4)
        # Foreign keys are enforced again after the migration (SQLite turns them off for it).
        with pytest.raises(Conflict, match=r"foreign key|order_id"):  # noqa: SIM117
            with catalog.db.transaction() as session:
                session.execute(
                    text(
                        "INSERT INTO executions (exec_id, order_id, instrument, side, quantity, "
                        "price, commission, time) "
                        "VALUES ('e-x', 999, 'AAPL.NASDAQ', 'BUY', 1, 1, 0, :t)"
                    ),
                    {"t": T0.replace(tzinfo=None)},
                )
        with pytest.raises(Conflict, match=r"orders\.limit_price"):
            _insert_order(catalog, "bad-lmt", "LMT")
