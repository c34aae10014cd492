"""One contract suite for the catalog, run on SQLite and PostgreSQL via the ``catalog`` fixture.

Covers every repository operation, the constraints (each violation is a core error and
writes nothing), tz-aware round trips and Decimal exactness.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import text

from core.errors import Conflict, NotFound, ValidationError
from core.instruments import AmbiguousInstrument
from core.types import Fill, Order, OrderStatus, OrderType, Position, SecType, Side, TradingMode
from storage.catalog import (
    DeploymentStatus,
    ItemStatus,
    JobStatus,
    RunStatus,
    StrategyKind,
    SymbolRecord,
    TokenScope,
)
from storage.catalog.collection_runs import LEASE

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
D = Decimal


def _count(catalog, table: str) -> int:
    with catalog.db.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def _order(ref: str = "o-1", **kw) -> Order:
    base = dict(
        instrument="AAPL.NASDAQ", side=Side.BUY, quantity=D("100"), order_ref=ref, created_at=T0
    )
    return Order(**(base | kw))


def _fill(exec_id: str = "e-1", ref: str = "o-1", **kw) -> Fill:
    base = dict(
        exec_id=exec_id,
        order_ref=ref,
        instrument="AAPL.NASDAQ",
        side=Side.BUY,
        quantity=D("40"),
        price=D("187.25"),
        commission=D("1.00"),
        time=T0,
    )
    return Fill(**(base | kw))


# --- symbols ---------------------------------------------------------------------------------


def test_symbols_upsert_many_is_idempotent_and_keeps_validation_state(catalog):
    recs = [
        SymbolRecord(symbol="aapl", primary_exchange="NASDAQ", universe="nasdaq100"),
        SymbolRecord(symbol="SPY", sec_type=SecType.ETF, primary_exchange="ARCA", universe="etf"),
    ]
    assert catalog.symbols.upsert_many(recs, at=T0) == 2
    catalog.symbols.mark_verified("AAPL", con_id=265598, at=T0, details={"name": "Apple Inc"})
    catalog.symbols.upsert_many(recs, at=T0 + timedelta(days=1))
    aapl = catalog.symbols.get("AAPL")
    assert (aapl.valid, aapl.con_id, aapl.name, aapl.last_verified) == (
        True,
        265598,
        "Apple Inc",
        T0,
    )
    assert aapl.added_at == T0 and aapl.id == aapl.instrument_id == "AAPL.NASDAQ"
    assert [s.id for s in catalog.symbols.list()] == ["AAPL.NASDAQ", "SPY.ARCA"]
    assert [s.id for s in catalog.symbols.list(universe="etf")] == ["SPY.ARCA"]
    assert [s.id for s in catalog.symbols.list(valid=True)] == ["AAPL.NASDAQ"]
    assert catalog.symbols.get("SPY.ARCA").instrument.sec_type is SecType.ETF
    assert catalog.symbols.listings() == {"AAPL.NASDAQ": "Apple Inc", "SPY.ARCA": ""}


def test_symbols_same_ticker_on_two_exchanges_is_named_by_instrument_id(catalog):
    catalog.symbols.upsert_many(
        [
            SymbolRecord(symbol="BHP", primary_exchange="ASX", currency="AUD", name="BHP Group"),
            SymbolRecord(symbol="BHP", primary_exchange="NYSE", currency="USD", name="BHP ADR"),
        ]
    )
    with pytest.raises(AmbiguousInstrument, match=r"BHP\.ASX \(BHP Group\), BHP\.NYSE") as caught:
        catalog.symbols.get("BHP")
    assert caught.value.candidates == ["BHP.ASX", "BHP.NYSE"]
    assert catalog.symbols.get("BHP.ASX").currency == "AUD"
    assert catalog.symbols.get("bhp.nyse").currency == "USD"
    assert catalog.symbols.resolve("BHP.NYSE") == "BHP.NYSE"
    with pytest.raises(AmbiguousInstrument):  # every lookup by bare symbol, writes included
        catalog.symbols.mark_invalid("BHP", at=T0)
    with pytest.raises(AmbiguousInstrument):
        catalog.symbols.delete("BHP")
    assert {s.id: s.valid for s in catalog.symbols.list()} == {"BHP.ASX": None, "BHP.NYSE": None}
    with pytest.raises(NotFound, match="MSFT"):
        catalog.symbols.get("MSFT")


def test_symbols_batch_with_one_bad_row_writes_nothing(catalog):
    good = SymbolRecord(symbol="MSFT", primary_exchange="NASDAQ")
    with pytest.raises(ValidationError, match="symbol"):
        catalog.symbols.upsert_many([good, SymbolRecord(symbol="  ", primary_exchange="NASDAQ")])
    with pytest.raises(ValidationError, match="timezone-aware"):
        late = SymbolRecord(symbol="X", primary_exchange="NYSE", added_at=datetime(2024, 1, 1))
        catalog.symbols.upsert_many([good, late])
    assert _count(catalog, "symbols") == 0


def test_symbols_smart_listing_without_primary_exchange_is_refused(catalog):
    # The primary exchange is the venue part of the id: without it there is no id.
    with pytest.raises(ValidationError, match="primary_exchange") as caught:
        catalog.symbols.upsert_many(
            [SymbolRecord(symbol="MSFT", primary_exchange="NASDAQ"), SymbolRecord(symbol="X")]
        )
    assert caught.value.field == "primary_exchange"
    assert _count(catalog, "symbols") == 0
    catalog.symbols.upsert_many([SymbolRecord(symbol="BHP", exchange="ASX", currency="AUD")])
    assert catalog.symbols.get("BHP").id == "BHP.ASX"  # a routing exchange names its venue


def test_symbols_due_for_validation_skips_recently_verified_unless_forced(catalog):
    now = T0 + timedelta(days=200)
    catalog.symbols.upsert_many(
        [SymbolRecord(symbol=s, primary_exchange="NASDAQ") for s in ("NEW", "OLD", "FRESH")]
    )
    catalog.symbols.mark_verified("OLD", con_id=1, at=now - timedelta(days=91))
    catalog.symbols.mark_verified("FRESH.NASDAQ", con_id=2, at=now - timedelta(days=10))
    due = catalog.symbols.due_for_validation(max_age_days=90, now=now)
    assert [s.id for s in due] == ["NEW.NASDAQ", "OLD.NASDAQ"]
    assert [s.symbol for s in catalog.symbols.due_for_validation(now=now, limit=1)] == ["NEW"]
    assert len(catalog.symbols.due_for_validation(now=now, force=True)) == 3


def test_symbols_mark_invalid_remove_invalid_and_delete(catalog):
    catalog.symbols.upsert_many(
        [SymbolRecord(symbol=s, primary_exchange="NASDAQ") for s in ("ZZZZ", "AAPL", "MSFT")]
    )
    assert catalog.symbols.mark_invalid("ZZZZ", at=T0).valid is False
    assert [s.id for s in catalog.symbols.remove_invalid()] == ["ZZZZ.NASDAQ"]
    assert catalog.symbols.delete("MSFT.NASDAQ").symbol == "MSFT"
    assert [s.id for s in catalog.symbols.list()] == ["AAPL.NASDAQ"]
    with pytest.raises(NotFound):
        catalog.symbols.delete("MSFT")
    with pytest.raises(ValidationError, match="details"):
        catalog.symbols.mark_verified("AAPL", con_id=1, details={"colour": "red"})


# --- collection runs -------------------------------------------------------------------------


def test_collection_run_lifecycle_counts_and_resume(catalog):
    run = catalog.collection_runs.create(
        "daily",
        [("AAPL.NASDAQ", "1d", None, None), ("msft.nasdaq", "1d", T0, T0 + timedelta(days=5))],
        at=T0,
        owner="host-a pid 1",
    )
    assert run.status is RunStatus.RUNNING and run.counts[ItemStatus.PENDING] == 2
    assert (run.owner, run.lease_until) == ("host-a pid 1", T0 + LEASE)
    first, second = catalog.collection_runs.pending_items(run.id)
    assert (first.instrument, second.instrument) == ("AAPL.NASDAQ", "MSFT.NASDAQ")
    assert second.end == T0 + timedelta(days=5)
    catalog.collection_runs.start_item(first.id, at=T0)
    assert catalog.collection_runs.finish_item(first.id, bars_written=250).status is ItemStatus.DONE
    catalog.collection_runs.start_item(second.id)
    failed = catalog.collection_runs.fail_item(second.id, "IB error 162")
    assert (failed.attempts, failed.error) == (1, "IB error 162")
    assert catalog.collection_runs.pending_items(run.id) == []
    assert [i.id for i in catalog.collection_runs.pending_items(run.id, retry_failed=True)] == [
        second.id
    ]
    done = catalog.collection_runs.finish(run.id)
    assert done.status is RunStatus.FAILED and done.bars_written == 250
    assert done.counts[ItemStatus.DONE] == 1 and done.total == 2
    assert done.lease_until is None  # a finished run holds no lease
    assert catalog.collection_runs.latest().id == run.id
    assert catalog.collection_runs.latest(kind="history") is None
    with pytest.raises(Conflict, match="already done"):
        catalog.collection_runs.start_item(first.id)


def test_interrupted_runs_are_closed_with_their_stuck_items_failed(catalog):
    runs = catalog.collection_runs
    items = [("AAPL.NASDAQ", "1d", None, None), ("MSFT.NASDAQ", "1d", None, None)]
    killed = runs.create("daily", items, at=T0)
    aapl, msft = runs.pending_items(killed.id)
    runs.start_item(aapl.id)
    runs.finish_item(aapl.id, bars_written=10)
    runs.start_item(msft.id)  # the driver dies here
    other_kind = runs.create("history", [("AAPL.NASDAQ", "1m", None, None)], at=T0)

    assert runs.close_interrupted(kind="daily", at=T0 + LEASE / 2) == []  # its lease holds
    later = T0 + LEASE + timedelta(seconds=1)
    assert runs.close_interrupted(kind="daily", at=later) == [killed.id]
    closed = runs.get(killed.id)
    assert closed.status is RunStatus.FAILED and closed.finished_at == later
    stuck = {i.instrument: i for i in runs.items(killed.id)}["MSFT.NASDAQ"]
    assert stuck.status is ItemStatus.FAILED and "interrupted" in stuck.error
    assert runs.get(other_kind.id).status is RunStatus.RUNNING  # another kind is left alone
    assert runs.close_interrupted(kind="daily", at=later) == []  # nothing left to close


def test_collection_run_with_bad_item_writes_nothing(catalog):
    with pytest.raises(ValidationError, match="bar"):
        catalog.collection_runs.create(
            "daily", [("AAPL.NASDAQ", "1d", None, None), ("X.NYSE", "7m", None, None)]
        )
    with pytest.raises(ValidationError, match=r"SYMBOL\.VENUE") as caught:  # not an id
        catalog.collection_runs.create("daily", [("AAPL", "1d", None, None)])
    assert caught.value.field == "instrument"
    with pytest.raises(Conflict, match="collection_items"):
        catalog.collection_runs.create("daily", [("AAPL.NASDAQ", "1d", None, None)] * 2)
    assert _count(catalog, "collection_runs") == 0 and _count(catalog, "collection_items") == 0
    with pytest.raises(NotFound):
        catalog.collection_runs.get(999)


# --- strategies, backtests, optimizations ----------------------------------------------------


def test_strategies_add_get_list_and_unique_name(catalog):
    spec = {"entry": "sma(10) > sma(30)", "nested": {"k": [1, 2.5, None]}}
    catalog.strategies.add("my_rules", kind=StrategyKind.RULE_SPEC, spec=spec, at=T0)
    with pytest.raises(Conflict, match=r"strategies\.name"):
        catalog.strategies.add("my_rules", kind="library", spec={})
    got = catalog.strategies.get("my_rules")
    assert (got.spec, got.kind, got.created_at) == (spec, StrategyKind.RULE_SPEC, T0)
    assert [s.name for s in catalog.strategies.list()] == ["my_rules"]


def test_backtest_lifecycle(catalog):
    bt = catalog.backtests.create(
        "sma_cross",
        instruments=["aapl.nasdaq", "BHP.ASX", "AAPL.NASDAQ"],
        bar_size="1d",
        params={"fast": 10, "slow": 30},
        costs={"commission": 0.001},
        start=T0,
    )
    assert (bt.status, bt.instruments, bt.start) == (
        JobStatus.QUEUED,
        ["AAPL.NASDAQ", "BHP.ASX"],  # canonical, in order, once each
        T0,
    )
    assert catalog.backtests.get(bt.id).instruments == ["AAPL.NASDAQ", "BHP.ASX"]
    assert catalog.backtests.update_progress(bt.id, 0.5).status is JobStatus.RUNNING
    with pytest.raises(ValidationError, match="progress"):
        catalog.backtests.update_progress(bt.id, 1.5)
    done = catalog.backtests.finish(bt.id, stats={"sharpe": 1.25}, artifacts={"equity": "e.pq"})
    assert (done.status, done.progress, done.stats["sharpe"]) == (JobStatus.DONE, 1.0, 1.25)
    with pytest.raises(Conflict, match="already done"):
        catalog.backtests.fail(bt.id, "late")
    other = catalog.backtests.create("buy_hold", instruments=["SPY.ARCA"], bar_size="1d")
    assert catalog.backtests.fail(other.id, "no bars").error == "no bars"
    assert [b.id for b in catalog.backtests.list()] == [other.id, bt.id]
    assert [b.id for b in catalog.backtests.list(status=JobStatus.DONE)] == [bt.id]
    with pytest.raises(NotFound):
        catalog.backtests.get(12345)
    with pytest.raises(ValidationError, match="instruments"):  # a ticker is not an id
        catalog.backtests.create("buy_hold", instruments=["SPY"], bar_size="1d")
    with pytest.raises(ValidationError, match="at least one instrument"):
        catalog.backtests.create("buy_hold", instruments=[], bar_size="1d")
    assert _count(catalog, "backtests") == 2


def test_optimization_lifecycle_and_checks(catalog):
    kw = dict(strategy="sma_cross", space={"fast": [5, 20]}, objective="sharpe")
    opt = catalog.optimizations.create("study-1", n_trials=50, spec={"sampler": "tpe"}, **kw)
    assert (opt.status, opt.spec, opt.progress, opt.artifacts) == (
        JobStatus.QUEUED, {"sampler": "tpe"}, 0.0, {})  # fmt: skip
    with pytest.raises(Conflict, match="exists already"):
        catalog.optimizations.create("study-1", n_trials=5, **kw)
    with pytest.raises(ValidationError, match="n_trials"):
        catalog.optimizations.create("study-2", n_trials=0, **kw)
    assert catalog.optimizations.find("study-1").id == opt.id
    assert catalog.optimizations.find("study-9") is None
    assert catalog.optimizations.start(opt.id).status is JobStatus.RUNNING
    moving = catalog.optimizations.update_progress(opt.id, n_complete=20, n_failed=1, total=50)
    assert (moving.n_complete, moving.n_failed, moving.progress) == (20, 1, 0.4)
    assert catalog.optimizations.set_artifacts(opt.id, job_id="optimize-1").artifacts == {
        "job_id": "optimize-1"}  # fmt: skip
    done = catalog.optimizations.finish(opt.id, best_params={"fast": 9}, best_value=1.7,
                                        report={"verdict": "not significant"})  # fmt: skip
    assert (done.best_params, done.best_value, done.status) == ({"fast": 9}, 1.7, JobStatus.DONE)
    assert done.finished_at is not None and done.report == {"verdict": "not significant"}
    assert [o.study_name for o in catalog.optimizations.list()] == ["study-1"]
    with pytest.raises(Conflict, match="already done"):
        catalog.optimizations.cancel(opt.id)
    again = catalog.optimizations.requeue(opt.id, n_trials=80, spec={"sampler": "tpe"})
    assert (again.status, again.n_trials, again.finished_at) == (JobStatus.QUEUED, 80, None)
    with pytest.raises(Conflict, match="queued"):
        catalog.optimizations.requeue(opt.id, n_trials=90, spec={})


def test_a_cancelled_optimization_takes_no_progress_or_result(catalog):
    kw = dict(strategy="sma_cross", space={}, objective="sharpe", n_trials=10)
    opt = catalog.optimizations.create("study-c", **kw)
    catalog.optimizations.start(opt.id)
    assert catalog.optimizations.cancel(opt.id).status is JobStatus.CANCELLED
    assert catalog.optimizations.cancel(opt.id).status is JobStatus.CANCELLED  # no change
    with pytest.raises(Conflict, match="cancelled"):
        catalog.optimizations.update_progress(opt.id, n_complete=5, n_failed=0, total=10)
    with pytest.raises(Conflict, match="cancelled"):
        catalog.optimizations.finish(opt.id, best_params={}, best_value=1.0)
    with pytest.raises(NotFound):
        catalog.optimizations.get(999)
    other = catalog.optimizations.create("study-d", **{**kw, "strategy": "rsi_reversion"})
    assert catalog.optimizations.count() == 2
    assert catalog.optimizations.count(status="cancelled") == 1
    assert [o.id for o in catalog.optimizations.list(strategy="rsi_reversion")] == [other.id]
    assert [o.id for o in catalog.optimizations.list(offset=1, limit=1)] == [opt.id]
    with pytest.raises(ValidationError, match="status"):
        catalog.optimizations.list(status="paused")


# --- deployments, orders, executions ---------------------------------------------------------


def test_deployment_status_transitions(catalog):
    dep = catalog.deployments.create("sma_cross", instruments=["VEA.ASX"], mode="paper")
    assert dep.mode is TradingMode.PAPER and dep.status is DeploymentStatus.CREATED
    assert catalog.deployments.get(dep.id).instruments == ["VEA.ASX"]
    with pytest.raises(Conflict, match="created to paused"):
        catalog.deployments.set_status(dep.id, "paused")
    catalog.deployments.set_status(dep.id, DeploymentStatus.RUNNING)
    catalog.deployments.set_status(dep.id, DeploymentStatus.PAUSED)
    assert [d.id for d in catalog.deployments.list(status=DeploymentStatus.PAUSED)] == [dep.id]
    with pytest.raises(ValueError):
        catalog.deployments.create("x", instruments=["A.NYSE"], mode="fantasy")
    with pytest.raises(ValidationError, match="instruments"):  # VEA is two listings
        catalog.deployments.create("x", instruments=["VEA"])
    assert [d.id for d in catalog.deployments.list()] == [dep.id]


def test_orders_add_get_and_duplicate_ref_keeps_the_original(catalog):
    dep = catalog.deployments.create("sma_cross", instruments=["AAPL.NASDAQ"])
    lmt = _order(
        order_type=OrderType.LIMIT,
        limit_price=D("187.12345678"),
        deployment_id=dep.id,
        con_id=265598,
    )
    stored = catalog.orders.add(lmt)
    assert stored.order == lmt and stored.status is OrderStatus.PENDING_SUBMIT
    with pytest.raises(Conflict, match=r"orders\.order_ref"):
        catalog.orders.add(_order(instrument="MSFT.NASDAQ", quantity=D("5")))
    again = catalog.orders.get("o-1")
    assert (again.order.instrument, again.order.con_id, again.order.limit_price) == (
        "AAPL.NASDAQ",
        265598,
        D("187.12345678"),
    )
    assert [o.order_ref for o in catalog.orders.list(instrument="aapl.nasdaq")] == ["o-1"]
    assert catalog.orders.list(instrument="AAPL.ARCA") == []
    assert _count(catalog, "orders") == 1
    with pytest.raises(NotFound):
        catalog.orders.get("nope")


def test_orders_database_checks_reject_bad_rows_and_write_nothing(catalog):
    # SQLite does not say which foreign key failed; PostgreSQL names the column.
    with pytest.raises(Conflict, match=r"deployment_id|foreign key"):
        catalog.orders.add(_order("o-fk", deployment_id=999))
    cols = "order_ref, instrument, side, order_type, quantity, tif, status, filled_quantity"
    bad = {  # raw SQL bypasses the domain type so the database CHECKs are what stops these
        "quantity": "'q', 'A.NYSE', 'BUY', 'MKT', 0, 'DAY', 'Submitted', 0",
        "filled_quantity": "'f', 'A.NYSE', 'BUY', 'MKT', 5, 'DAY', 'Submitted', 6",
        "side": "'s', 'A.NYSE', 'HOLD', 'MKT', 5, 'DAY', 'Submitted', 0",
    }
    sql = f"INSERT INTO orders ({cols}, created_at, updated_at) VALUES ({{}}, :t, :t)"
    for field, values in bad.items():
        with (
            pytest.raises(Conflict, match=rf"orders\.{field}"),
            catalog.db.transaction() as session,
        ):
            session.execute(text(sql.format(values)), {"t": T0.replace(tzinfo=None)})
    assert _count(catalog, "orders") == 0


def test_order_status_updates_follow_the_transition_table(catalog):
    catalog.orders.add(_order())
    catalog.orders.update_status("o-1", OrderStatus.SUBMITTED, broker_order_id=7, perm_id=99)
    part = catalog.orders.update_status(
        "o-1", OrderStatus.PARTIALLY_FILLED, filled=D("40"), avg_price=D("187.25")
    )
    assert (part.filled_quantity, part.remaining, part.broker_order_id) == (D(40), D(60), 7)
    assert [o.order_ref for o in catalog.orders.list(open_only=True)] == ["o-1"]
    with pytest.raises(Conflict, match="filled_quantity"):
        catalog.orders.update_status("o-1", OrderStatus.FILLED, filled=D("101"))
    with pytest.raises(Conflict, match="go back"):
        catalog.orders.update_status("o-1", OrderStatus.PARTIALLY_FILLED, filled=D("10"))
    catalog.orders.update_status("o-1", OrderStatus.FILLED, filled=D("100"))
    with pytest.raises(Conflict, match="Filled to Submitted"):
        catalog.orders.update_status("o-1", OrderStatus.SUBMITTED)
    final = catalog.orders.get("o-1")
    assert (final.status, final.filled_quantity) == (OrderStatus.FILLED, D(100))
    assert catalog.orders.list(open_only=True) == []


def test_executions_are_idempotent_by_exec_id(catalog):
    catalog.orders.add(_order())
    assert catalog.executions.add(_fill()) is True
    assert catalog.executions.add(_fill()) is False
    with pytest.raises(Conflict, match="different details"):
        catalog.executions.add(_fill(price=D("188")))
    catalog.executions.add(_fill("e-2", time=T0 + timedelta(minutes=1)))
    fills = catalog.executions.list(order_ref="o-1")
    assert [f.exec_id for f in fills] == ["e-1", "e-2"] and fills[0] == _fill()
    assert [f.exec_id for f in catalog.executions.list(since=T0 + timedelta(seconds=1))] == ["e-2"]
    with pytest.raises(NotFound):
        catalog.executions.add(_fill("e-3", ref="missing"))


def test_execution_checks_reject_negative_commission(catalog):
    catalog.orders.add(_order())
    with pytest.raises(Conflict, match=r"executions\.commission"):
        catalog.executions.add(_fill(commission=D("-0.5")))
    assert _count(catalog, "executions") == 0


# --- positions, risk, tokens, audit ----------------------------------------------------------


def test_positions_upsert_and_replace_account(catalog):
    catalog.positions.upsert(
        Position(instrument="AAPL.NASDAQ", quantity=D(10), avg_cost=D("150.5"), account="U1")
    )
    catalog.positions.upsert(
        Position(
            instrument="AAPL.NASDAQ", quantity=D(-5), avg_cost=D("151"), account="U1", con_id=265598
        )
    )
    held = catalog.positions.get("aapl.nasdaq", account="U1")
    assert (held.quantity, held.con_id) == (D(-5), 265598)
    catalog.positions.replace_account(
        "U1",
        [
            Position(instrument="VEA.ASX", quantity=D(3), avg_cost=D(1), con_id=577987566),
            Position(instrument="VEA.ARCA", quantity=D(2), avg_cost=D(50), con_id=337524944),
        ],
    )
    listed = catalog.positions.list(account="U1")
    assert [(p.instrument, p.con_id) for p in listed] == [
        ("VEA.ARCA", 337524944),  # two listings of one ticker are two positions
        ("VEA.ASX", 577987566),
    ]
    with pytest.raises(NotFound):
        catalog.positions.get("AAPL.NASDAQ", account="U1")
    with pytest.raises(ValidationError, match="instrument"):  # a ticker names no position
        catalog.positions.get("VEA", account="U1")


def test_risk_limits_are_one_mapping_per_scope_and_events_page_newest_first(catalog):
    catalog.risk.set_limits("global", {"max_order_notional": "50000"}, by="alice", at=T0)
    catalog.risk.set_limits("deployment:7", {"max_position": "10"}, by="bob", at=T0)
    catalog.risk.set_limits("global", {"max_position": "100"}, by="carol", at=T0)  # replaces
    assert catalog.risk.book() == {
        "global": {"max_position": "100"},
        "deployments": {"7": {"max_position": "10"}},
    }
    dep, glob = catalog.risk.limit_sets()
    assert (dep.scope, glob.scope, glob.updated_by, glob.updated_at) == (
        "deployment:7", "global", "carol", T0)  # fmt: skip
    assert glob.legacy == {}
    with pytest.raises(ValidationError, match="deployment:<id>") as info:
        catalog.risk.set_many({"global": {}, "deployment:x": {}}, by="alice")
    assert info.value.field == "scope"
    assert catalog.risk.book()["global"] == {"max_position": "100"}, "nothing written"
    catalog.risk.add_event("rejected", limit_name="max_order_notional", detail={"n": 1}, at=T0)
    catalog.risk.add_event("emergency_stop", at=T0 + timedelta(hours=1))
    catalog.risk.add_event("rejected", order_ref="o-9", at=T0 + timedelta(hours=2))
    assert [e.kind for e in catalog.risk.events()] == ["rejected", "emergency_stop", "rejected"]
    assert catalog.risk.events(since=T0 + timedelta(minutes=1))[1].kind == "emergency_stop"
    assert [e.order_ref for e in catalog.risk.events(kind="rejected", offset=1)] == [None]
    assert catalog.risk.count_events(kind="rejected") == 2
    assert catalog.risk.count_events(since=T0 + timedelta(minutes=1)) == 2


def test_risk_state_is_one_row_replaced_on_save(catalog):
    assert catalog.risk.state() is None
    catalog.risk.save_state({"format": 1, "state": "HALTED"}, at=T0)
    catalog.risk.save_state({"format": 1, "state": "ACTIVE"}, at=T0)
    assert catalog.risk.state() == {"format": 1, "state": "ACTIVE"}
    assert _count(catalog, "risk_state") == 1


def test_tokens_store_only_hashes_and_can_be_revoked(catalog):
    record, plaintext = catalog.tokens.create("trade", "ci")
    assert catalog.tokens.verify(plaintext) is TokenScope.TRADE
    assert catalog.tokens.verify(plaintext + "x") is None
    with catalog.db.engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM api_tokens")).scalar_one()
    assert plaintext not in stored and len(stored) == 64
    assert catalog.tokens.list()[0].last_used_at is not None
    assert catalog.tokens.revoke(record.id).revoked_at is not None
    assert catalog.tokens.verify(plaintext) is None
    with pytest.raises(ValidationError, match="scope"):
        catalog.tokens.create("root")


def test_audit_log_newest_first_with_filters(catalog):
    catalog.audit.record("alice", "deploy", detail={"id": 1}, at=T0)
    catalog.audit.record("bob", "stop", at=T0 + timedelta(seconds=1))
    assert [e.actor for e in catalog.audit.list()] == ["bob", "alice"]
    assert catalog.audit.list(action="deploy")[0].detail == {"id": 1}


# --- types: time zones and decimals ----------------------------------------------------------


def test_timestamps_round_trip_as_utc_whatever_the_input_zone(catalog):
    sydney = timezone(timedelta(hours=11))
    local = datetime(2024, 3, 2, 1, 30, 0, 123456, tzinfo=sydney)
    entry = catalog.audit.record("tz", "probe", at=local)
    got = catalog.audit.list(actor="tz")[0].time
    assert got == local and got.tzinfo == UTC and got.utcoffset() == timedelta(0)
    assert got.hour == 14 and got.microsecond == 123456 and entry.time == local


@pytest.mark.parametrize(
    "value", ["0.00000001", "123456.12345678", "9999999.99999999", "1234567890.12345"]
)
def test_decimals_round_trip_exactly(catalog, value):
    catalog.positions.upsert(Position(instrument="X.ASX", quantity=D(1), avg_cost=D(value)))
    assert catalog.positions.get("X.ASX").avg_cost == D(value)


def test_decimals_beyond_numeric_20_8_are_rejected_not_truncated(catalog):
    with pytest.raises(ValidationError, match="NUMERIC"):
        catalog.positions.upsert(Position(instrument="X.ASX", quantity=D(1), avg_cost=D("1e15")))
    assert _count(catalog, "positions") == 0


def test_failed_replace_account_rolls_back_the_delete_too(catalog):
    held = Position(instrument="AAPL.NASDAQ", quantity=D(10), avg_cost=D(1), account="U1")
    catalog.positions.upsert(held)
    twice = [Position(instrument="MSFT.NASDAQ", quantity=D(1), avg_cost=D(1))] * 2
    with pytest.raises(Conflict, match=r"positions\.account\+instrument"):
        catalog.positions.replace_account("U1", twice)
    assert catalog.positions.list(account="U1") == [held]


def test_two_catalogs_on_one_database_see_each_others_writes(catalog):
    from storage.catalog import Catalog

    with Catalog(catalog.url) as other:
        other.audit.record("worker", "wrote")
        assert [e.actor for e in catalog.audit.list()] == ["worker"]


def test_deployment_with_an_unknown_mode_is_refused_naming_mode(catalog):
    with pytest.raises(ValidationError, match="paper, live") as err:
        catalog.deployments.create("sma_cross", instruments=["AAPL.NASDAQ"], mode="fantasy")
    assert err.value.field == "mode"
    assert catalog.deployments.list() == []
