"""Catalog revision 0003 on SQLite and PostgreSQL: bare symbols become instrument ids.

A 0002 catalog (bare symbols everywhere, ``VEA`` listed twice) is built by raw SQL, upgraded
and read back: every listing gets ``SYMBOL.VENUE``; rows naming a symbol with one listing get
its id and con_id; rows naming an ambiguous symbol keep it, so nothing is lost. The upgrade
is refused, changing nothing, when two listings would get one id; reverting is refused when
two listings' rows would merge under one bare symbol.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Connection, inspect, text

from core.errors import StorageError
from core.instruments import AmbiguousInstrument
from core.types import Fill, Order, Position, Side
from storage.catalog import Catalog, ItemStatus, RunStatus, SymbolRecord
from storage.catalog.migrate import head_revision
from tests.unit.storage import legacy_catalog as legacy
from tests.unit.storage.legacy_catalog import T0

TABLES = (
    "symbols", "collection_runs", "collection_items", "orders", "executions", "positions",
    "backtests", "deployments",
)  # fmt: skip
VIVA, VANGUARD, APPLE = 577987566, 337524944, 265598


def _at_0002(url: str) -> Catalog:
    catalog = Catalog(url)
    catalog.upgrade("0002")
    return catalog


def _rows(catalog: Catalog, sql: str) -> list[tuple[object, ...]]:
    with catalog.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def _counts(catalog: Catalog) -> dict[str, int]:
    return {t: int(_rows(catalog, f"SELECT count(*) FROM {t}")[0][0]) for t in TABLES}


def _columns(catalog: Catalog, table: str) -> set[str]:
    return {c["name"] for c in inspect(catalog.db.engine).get_columns(table)}


def _legacy_rows(conn: Connection) -> dict[str, int]:
    """A 0002 catalog: VEA on two venues, AAPL on one, XYZ routed SMART without a primary."""
    legacy.symbol(
        conn, "VEA", primary="ASX", exchange="ASX", currency="AUD", con_id=VIVA,
        long_name="Viva Energy Group",
    )  # fmt: skip
    legacy.symbol(
        conn, "VEA", primary="ARCA", con_id=VANGUARD,
        long_name="Vanguard FTSE Developed Markets ETF",
    )  # fmt: skip
    legacy.symbol(conn, "AAPL", primary="NASDAQ", con_id=APPLE, long_name="Apple Inc")
    legacy.symbol(conn, "XYZ", primary="")
    ids = {"run": legacy.run(conn, "daily", [("AAPL", "1d"), ("AAPL", "1h"), ("VEA", "1d")])}
    for name in ("AAPL", "VEA"):
        order_id = legacy.order(conn, f"o-{name}", name)
        legacy.execution(conn, f"e-{name}", order_id, name, quantity=4)
        legacy.position(conn, "U1", name, quantity=4, avg_cost="10.5")
    ids["backtest"] = legacy.backtest(conn, ["AAPL", "VEA", "XYZ"])
    ids["deployment"] = legacy.deployment(conn, ["aapl", "VEA", "ZZZ"])
    return ids


# --- upgrade -----------------------------------------------------------------------------------


def test_upgrade_names_every_listing_by_its_instrument_id(db_url):
    with _at_0002(db_url) as catalog:
        with catalog.db.engine.begin() as conn:
            _legacy_rows(conn)
        catalog.upgrade()
        assert catalog.revision() == head_revision()
        assert _rows(
            catalog,
            "SELECT instrument_id, symbol, primary_exchange, currency, con_id FROM symbols "
            "ORDER BY instrument_id",
        ) == [
            ("AAPL.NASDAQ", "AAPL", "NASDAQ", "USD", APPLE),
            ("VEA.ARCA", "VEA", "ARCA", "USD", VANGUARD),
            ("VEA.ASX", "VEA", "ASX", "AUD", VIVA),
            ("XYZ.SMART", "XYZ", "", "USD", None),  # until validation learns its venue
        ]
        assert catalog.symbols.get("XYZ").id == "XYZ.SMART"
        with pytest.raises(AmbiguousInstrument, match=r"VEA\.ARCA .*VEA\.ASX"):
            catalog.symbols.get("VEA")


def test_upgrade_maps_unambiguous_symbols_and_keeps_ambiguous_ones(db_url):
    with _at_0002(db_url) as catalog:
        with catalog.db.engine.begin() as conn:
            ids = _legacy_rows(conn)
        before = _counts(catalog)
        catalog.upgrade()
        assert _counts(catalog) == before  # nothing lost, nothing added
        for table in ("orders", "executions", "positions", "collection_items"):
            assert "symbol" not in _columns(catalog, table)
        assert _rows(catalog, "SELECT order_ref, instrument, con_id FROM orders ORDER BY id") == [
            ("o-AAPL", "AAPL.NASDAQ", APPLE),
            ("o-VEA", "VEA", None),  # two listings: which one is not ours to guess
        ]
        assert _rows(catalog, "SELECT exec_id, instrument, con_id FROM executions ORDER BY id") == [
            ("e-AAPL", "AAPL.NASDAQ", APPLE),
            ("e-VEA", "VEA", None),
        ]
        assert _rows(catalog, "SELECT account, instrument, con_id FROM positions ORDER BY id") == [
            ("U1", "AAPL.NASDAQ", APPLE),
            ("U1", "VEA", None),
        ]
        items = "SELECT run_id, instrument, bar_size FROM collection_items ORDER BY id"
        assert _rows(catalog, items) == [
            (ids["run"], "AAPL.NASDAQ", "1d"),
            (ids["run"], "AAPL.NASDAQ", "1h"),
            (ids["run"], "VEA", "1d"),
        ]
        assert catalog.backtests.get(ids["backtest"]).instruments == [
            "AAPL.NASDAQ", "VEA", "XYZ.SMART",
        ]  # fmt: skip
        assert catalog.deployments.get(ids["deployment"]).instruments == [
            "AAPL.NASDAQ", "VEA", "ZZZ",
        ]  # fmt: skip


def test_upgraded_rows_read_back_through_the_repositories(db_url):
    with _at_0002(db_url) as catalog:
        with catalog.db.engine.begin() as conn:
            ids = _legacy_rows(conn)
        catalog.upgrade()
        order = catalog.orders.get("o-AAPL").order
        assert (order.instrument, order.con_id, order.quantity) == ("AAPL.NASDAQ", APPLE, 10)
        (fill,) = catalog.executions.list(order_ref="o-AAPL")
        assert (fill.instrument, fill.con_id, fill.price) == (
            "AAPL.NASDAQ",
            APPLE,
            Decimal("187.25"),
        )
        held = catalog.positions.get("AAPL.NASDAQ", account="U1")
        assert (held.quantity, held.avg_cost, held.con_id) == (4, Decimal("10.5"), APPLE)
        # The run a 0002 driver left running has no lease: the next run of its kind closes it.
        run = catalog.collection_runs.create("daily", [("AAPL.NASDAQ", "1d", None, None)])
        assert catalog.collection_runs.get(ids["run"]).status is RunStatus.FAILED
        assert catalog.collection_runs.get(run.id).counts[ItemStatus.PENDING] == 1


def test_rows_kept_with_an_ambiguous_symbol_read_back_as_storage_errors_naming_them(db_url):
    with _at_0002(db_url) as catalog:
        with catalog.db.engine.begin() as conn:
            _legacy_rows(conn)
        catalog.upgrade()
        with pytest.raises(StorageError, match=r"order 'o-VEA'.*'VEA'.*SYMBOL\.VENUE"):
            catalog.orders.list()
        with pytest.raises(StorageError, match=r"execution 'e-VEA'.*'VEA'.*SYMBOL\.VENUE"):
            catalog.executions.list()
        with pytest.raises(StorageError, match=r"position of account 'U1' in 'VEA'.*SYMBOL\.VENUE"):
            catalog.positions.list()


def test_upgrade_is_refused_unchanged_when_two_listings_would_get_one_id(db_url):
    with _at_0002(db_url) as catalog:
        with catalog.db.engine.begin() as conn:
            legacy.symbol(conn, "VEA", primary="ASX", currency="AUD", con_id=VIVA)
            legacy.symbol(conn, "VEA", primary="ASX", currency="USD")  # same venue, 2 currencies
            legacy.symbol(conn, "BHP", primary="ASX", currency="AUD")
            legacy.symbol(conn, "BHP", primary="", exchange="ASX", currency="USD")  # routed there
            legacy.symbol(conn, "AAPL", primary="NASDAQ")
            legacy.order(conn, "o-1", "AAPL")
        before = _counts(catalog)
        with pytest.raises(StorageError) as caught:
            catalog.upgrade()
        message = str(caught.value)
        for needle in ("BHP.ASX", "VEA.ASX", "nothing was changed", "scizor symbols remove"):
            assert needle in message
        assert "AAPL" not in message
        assert catalog.revision() == "0002"
        assert _counts(catalog) == before
        assert "instrument_id" not in _columns(catalog, "symbols")
        assert "symbol" in _columns(catalog, "orders")


def test_upgrade_is_refused_unchanged_when_a_listing_would_get_no_valid_id(db_url):
    with _at_0002(db_url) as catalog:
        with catalog.db.engine.begin() as conn:
            legacy.symbol(conn, "BRK.B", primary="NYSE")  # IB writes it 'BRK B'
            legacy.symbol(conn, "BRK B", primary="NYSE")
            legacy.symbol(conn, "AAPL", primary="NASDAQ")
        before = _counts(catalog)
        with pytest.raises(StorageError, match=r"would not be instrument ids \(BRK\.B\.NYSE\)"):
            catalog.upgrade()
        assert catalog.revision() == "0002" and _counts(catalog) == before


# --- downgrade ---------------------------------------------------------------------------------


def _trade(catalog: Catalog, ref: str, instrument: str) -> None:
    """An order in ``instrument``, one fill of it and the position it leaves."""
    order = Order(instrument=instrument, side=Side.BUY, quantity=4, order_ref=ref, created_at=T0)
    catalog.orders.add(order)
    catalog.executions.add(
        Fill(
            exec_id=f"e-{ref}", order_ref=ref, instrument=instrument, side=Side.BUY, quantity=4,
            price=10, commission=1, time=T0,
        )
    )  # fmt: skip
    catalog.positions.upsert(Position(instrument=instrument, quantity=4, avg_cost=10))


def _at_head_with(catalog: Catalog, *instruments: str) -> None:
    """A listing, a finished run, a trade and a backtest of each instrument, by the API."""
    catalog.symbols.upsert_many(
        SymbolRecord(symbol=i.split(".")[0], primary_exchange=i.split(".")[1]) for i in instruments
    )
    run = catalog.collection_runs.create("daily", [(i, "1d", None, None) for i in instruments])
    catalog.collection_runs.finish(run.id)
    for n, instrument in enumerate(instruments):
        _trade(catalog, f"o-{n}", instrument)
    catalog.backtests.create("buy_hold", instruments=list(instruments), bar_size="1d")


def _json(raw: object) -> object:
    return json.loads(raw) if isinstance(raw, str) else raw


def test_downgrade_maps_ids_back_to_bare_symbols_and_keeps_every_row(db_url):
    with Catalog(db_url) as catalog:
        catalog.upgrade()
        _at_head_with(catalog, "AAPL.NASDAQ", "VEA.ASX")
        before = _counts(catalog)
        catalog.downgrade("0002")
        assert catalog.revision() == "0002"
        assert _counts(catalog) == before  # SQLite would cascade-delete items without care
        assert _rows(catalog, "SELECT order_ref, symbol FROM orders ORDER BY id") == [
            ("o-0", "AAPL"),
            ("o-1", "VEA"),
        ]
        assert _rows(catalog, "SELECT symbol FROM collection_items ORDER BY id") == [
            ("AAPL",),
            ("VEA",),
        ]
        (raw,) = _rows(catalog, "SELECT symbols FROM backtests")[0]
        assert _json(raw) == ["AAPL", "VEA"]
        catalog.upgrade()  # and forward again, to the same ids
        assert [r.order.instrument for r in catalog.orders.list()] == ["AAPL.NASDAQ", "VEA.ASX"]
        assert catalog.backtests.list()[0].instruments == ["AAPL.NASDAQ", "VEA.ASX"]


@pytest.mark.parametrize("table", ["positions", "orders", "backtests"])
def test_downgrade_is_refused_unchanged_when_two_listings_would_merge(db_url, table):
    with Catalog(db_url) as catalog:
        catalog.upgrade()
        if table == "positions":
            catalog.positions.upsert(Position(instrument="VEA.ASX", quantity=4, avg_cost=10))
            catalog.positions.upsert(Position(instrument="VEA.ARCA", quantity=4, avg_cost=10))
        elif table == "orders":  # no unique key merges them, but nobody could tell them apart
            _trade(catalog, "o-asx", "VEA.ASX")
            _trade(catalog, "o-arca", "VEA.ARCA")
        else:
            catalog.backtests.create("buy_hold", instruments=["VEA.ASX", "VEA.ARCA"], bar_size="1d")
        before = _counts(catalog)
        with pytest.raises(
            StorageError,
            match=rf"cannot revert revision 0003:.*VEA \(VEA\.ARCA, VEA\.ASX\) in .*{table}",
        ):
            catalog.downgrade("0002")
        assert catalog.revision() == head_revision()
        assert _counts(catalog) == before
        assert "instrument" in _columns(catalog, "orders")


# --- 0004: one running run per kind ------------------------------------------------------------


def _raced_run(conn: Connection, kind: str, statuses: tuple[str, ...]) -> int:
    """A running run as 0003 wrote it (leased), with items in ``statuses``."""
    row = {"kind": kind, "status": "running", "created_at": legacy.stamp(conn)}
    row["lease_until"] = legacy.stamp(conn, T0 + timedelta(minutes=2))
    run_id = int(
        conn.execute(
            text(
                "INSERT INTO collection_runs (kind, status, created_at, lease_until) "
                "VALUES (:kind, :status, :created_at, :lease_until) RETURNING id"
            ),
            row,
        ).scalar_one()
    )
    for n, status in enumerate(statuses):
        conn.execute(
            text(
                "INSERT INTO collection_items (run_id, instrument, bar_size, status, "
                "bars_written, attempts) VALUES (:run, :instrument, '1d', :status, 0, 0)"
            ),
            {"run": run_id, "instrument": f"X{n}.ASX", "status": status},
        )
    return run_id


def test_upgrade_to_0004_closes_all_but_the_newest_running_run_of_each_kind(db_url):
    with Catalog(db_url) as catalog:
        catalog.upgrade("0003")
        with catalog.db.engine.begin() as conn:  # drivers of 0003 raced: 3 daily runs at once
            stale = _raced_run(conn, "daily", ("running", "pending"))
            finished = _raced_run(conn, "daily", ("done", "done"))
            newest = _raced_run(conn, "daily", ("running",))
            history = _raced_run(conn, "history", ("running",))
        catalog.upgrade()
        assert catalog.revision() == head_revision()
        runs = catalog.collection_runs
        assert {r: runs.get(r).status for r in (stale, finished, newest, history)} == {
            stale: RunStatus.FAILED,
            finished: RunStatus.DONE,  # every item was done
            newest: RunStatus.RUNNING,
            history: RunStatus.RUNNING,
        }
        running, pending = runs.items(stale)
        assert (running.status, pending.status) == (ItemStatus.FAILED, ItemStatus.PENDING)
        assert "interrupted" in running.error and running.finished_at is not None
        assert runs.get(stale).lease_until is None and runs.get(stale).finished_at is not None
        assert [i.status for i in runs.items(newest)] == [ItemStatus.RUNNING]
