"""The Alembic migration builds exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import CheckConstraint, UniqueConstraint, create_engine, inspect
from sqlalchemy.exc import IntegrityError

from core.errors import ConfigError, StorageError
from storage.catalog import Catalog
from storage.catalog.db import normalize_url
from storage.catalog.migrate import VERSION_TABLE, alembic_config, head_revision
from storage.catalog.models import Base


def _diff(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            opts = {"compare_type": True, "version_table": VERSION_TABLE}
            ctx = MigrationContext.configure(conn, opts=opts)
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def test_upgrade_creates_a_schema_identical_to_the_models(db_url):
    with Catalog(db_url) as catalog:
        assert catalog.revision() is None
        catalog.upgrade()
        assert catalog.revision() == head_revision() == "0008"
    assert _diff(db_url) == []


def _named_constraints(url: str) -> tuple[set[tuple[str, str]], set[tuple[str, str, tuple]]]:
    """(table, CHECK name) and (table, UNIQUE name, columns) reflected from the database."""
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        checks, uniques = set(), set()
        present = set(insp.get_table_names())
        for table in Base.metadata.tables:
            if table not in present:  # an earlier revision: tables created later are absent
                continue
            checks |= {(table, c["name"]) for c in insp.get_check_constraints(table)}
            uniques |= {
                (table, u["name"], tuple(u["column_names"]))
                for u in insp.get_unique_constraints(table)
            }
        return checks, uniques
    finally:
        engine.dispose()


def _model_constraints() -> tuple[set[tuple[str, str]], set[tuple[str, str, tuple]]]:
    checks, uniques = set(), set()
    for table in Base.metadata.tables.values():
        for c in table.constraints:
            if isinstance(c, CheckConstraint):
                checks.add((table.name, c.name))
            elif isinstance(c, UniqueConstraint):
                uniques.add((table.name, c.name, tuple(col.name for col in c.columns)))
    return checks, uniques


def test_migrated_database_has_exactly_the_models_check_and_unique_constraints(db_url):
    # compare_metadata ignores CHECK constraints (and unique ones on SQLite): compare names.
    with Catalog(db_url) as catalog:
        catalog.upgrade()
    checks, uniques = _named_constraints(db_url)
    model_checks, model_uniques = _model_constraints()
    assert checks == model_checks
    assert uniques == model_uniques
    assert ("orders", "ck_orders_limit_price_required") in checks
    assert ("symbols", "uq_symbols_con_id", ("con_id",)) in uniques


def test_constraint_comparison_notices_what_revision_0002_adds(db_url):
    # Guards the test above: between 0001 and 0002 exactly 0002's constraints appear.
    with Catalog(db_url) as catalog:
        catalog.upgrade("0001")
        before = _named_constraints(db_url)
        catalog.upgrade("0002")
        after = _named_constraints(db_url)
    assert after[0] - before[0] == {
        ("orders", "ck_orders_limit_price_required"),
        ("orders", "ck_orders_stop_price_required"),
        ("positions", "ck_positions_avg_cost_nonnegative"),
    }
    assert after[1] - before[1] == {("symbols", "uq_symbols_con_id", ("con_id",))}
    assert before[0] <= after[0] and before[1] <= after[1]


def test_constraint_comparison_notices_what_revision_0003_changes(db_url):
    # At 0002 the unique keys were bare symbols; 0003 keys them by instrument id.
    with Catalog(db_url) as catalog:
        catalog.upgrade("0002")
        checks, uniques = _named_constraints(db_url)
        catalog.upgrade("0003")
        after_checks, after_uniques = _named_constraints(db_url)
    assert checks == after_checks
    assert after_uniques - uniques == {
        ("symbols", "uq_symbols_instrument_id", ("instrument_id",)),
        ("collection_items", "uq_collection_items_run_id_instrument_bar_size",
         ("run_id", "instrument", "bar_size")),
        ("positions", "uq_positions_account_instrument", ("account", "instrument")),
    }  # fmt: skip
    assert uniques - after_uniques == {
        ("collection_items", "uq_collection_items_run_id_symbol_bar_size",
         ("run_id", "symbol", "bar_size")),
        ("positions", "uq_positions_account_symbol", ("account", "symbol")),
    }  # fmt: skip


def test_revision_0005_adds_backtest_results_and_widens_scopes_and_job_states(db_url):
    with Catalog(db_url) as catalog:
        catalog.upgrade("0004")
        _, uniques = _named_constraints(db_url)
        catalog.upgrade("0005")
        _, after = _named_constraints(db_url)
        assert after - uniques == {
            ("backtest_results", "uq_backtest_results_backtest_id_instrument",
             ("backtest_id", "instrument")),
        }  # fmt: skip
        token, _ = catalog.tokens.create("research", "analyst")
        assert token.scope == "research"
        run = catalog.backtests.create("sma_cross", instruments=["AAPL.NASDAQ"], bar_size="1d")
        assert run.options == {}


def test_revision_0006_gives_optimizations_their_job_columns_and_keeps_old_rows(db_url):
    with Catalog(db_url) as catalog:
        catalog.upgrade("0005")
        engine = create_engine(db_url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO optimizations (study_name, strategy, space, objective, n_trials,"
                    " status, created_at) VALUES ('old', 'sma_cross', '{}', 'sharpe', 10,"
                    " 'done', '2026-11-01 00:00:00+00:00')"
                )
        finally:
            engine.dispose()
        catalog.upgrade("0006")
        (old,) = catalog.optimizations.list()
        assert (old.study_name, old.status.value, old.spec, old.n_complete) == (
            "old", "done", {}, 0)  # fmt: skip
        queued = catalog.optimizations.create("new", strategy="sma_cross", space={},
                                              objective="sharpe", n_trials=5)  # fmt: skip
        assert catalog.optimizations.cancel(queued.id).status.value == "cancelled"
        with pytest.raises(StorageError, match="cancelled rows"):
            catalog.downgrade("0005")
        assert catalog.revision() == "0006"


def _execute(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def test_revision_0007_keeps_one_row_per_scope_and_every_old_named_value(db_url):
    with Catalog(db_url) as catalog:
        catalog.upgrade("0006")
        _execute(db_url, *(
            "INSERT INTO risk_limits (name, value, scope, updated_at) VALUES "
            f"('{name}', {value}, '{scope}', '2026-11-0{day} 00:00:00+00:00')"
            for name, value, scope, day in [
                ("max_order_notional", "50000", "global", 1),
                ("max_orders_per_minute", "30", "global", 2),
                ("trading_hours", "1", "global", 1),
                ("max_position", "25.5", "deployment:3", 1),
                ("max_leverage", "2.5", "global", 1),  # no such limit: kept as legacy
                ("max_orders_per_second", "-1", "deployment:3", 1),
            ]
        ))  # fmt: skip
        catalog.upgrade("0007")
        book = catalog.risk.book()
        assert book["global"]["max_order_notional"] == "50000"
        assert (book["global"]["max_orders_per_minute"], book["global"]["trading_hours"]) == (
            30, True)  # fmt: skip
        assert book["deployments"]["3"]["max_position"] == "25.5"
        assert book["global"]["max_position"] is None
        dep, glob = catalog.risk.limit_sets()
        assert glob.legacy == {"max_leverage": "2.5"}
        assert dep.legacy == {"max_orders_per_second": "-1"}
        assert glob.updated_by == "migration 0007" and glob.updated_at.day == 2
        catalog.downgrade("0006")  # everything fits the old layout again
        _execute(db_url, "DELETE FROM risk_limits WHERE name = 'max_orders_per_second'")
        catalog.upgrade("0007")
        assert catalog.risk.book()["deployments"]["3"]["max_position"] == "25.5"
        assert "max_orders_per_second" not in catalog.risk.limit_sets()[0].legacy


def test_revision_0007_downgrade_refuses_what_0006_cannot_hold(db_url):
    with Catalog(db_url) as catalog:
        catalog.upgrade()
        catalog.risk.set_limits("global", {"max_position": "10"}, by="a")
        catalog.risk.set_limits("deployment:1", {"max_position": "5"}, by="a")
        with pytest.raises(StorageError, match="max_position is set in scopes"):
            catalog.downgrade("0006")
        catalog.risk.set_limits("deployment:1", {"allowed_instruments": ["BHP.ASX"]}, by="a")
        with pytest.raises(StorageError, match="allows only some instruments"):
            catalog.downgrade("0006")
        catalog.risk.set_limits("deployment:1", {}, by="a")
        catalog.risk.save_state({"format": 1, "state": "HALTED"})
        with pytest.raises(StorageError, match="halted"):
            catalog.downgrade("0006")
        assert catalog.revision() == head_revision()
        assert catalog.risk.book()["global"] == {"max_position": "10"}, "nothing changed"


def test_revision_0008_gives_deployments_their_spec_and_runner_state_and_keeps_old_rows(db_url):
    with Catalog(db_url) as catalog:
        catalog.upgrade("0007")
        _execute(db_url, (
            "INSERT INTO deployments (strategy, params, instruments, mode, status, created_at, "
            "updated_at) VALUES ('sma_cross', '{\"fast\": 5}', '[\"AAPL.NASDAQ\"]', 'paper', "
            "'stopped', '2026-11-01 00:00:00+00:00', '2026-11-01 00:00:00+00:00')"
        ))  # fmt: skip
        catalog.upgrade("0008")
        (old,) = catalog.deployments.list()
        assert (old.strategy, old.params, old.instruments) == (
            "sma_cross", {"fast": 5}, ["AAPL.NASDAQ"])  # fmt: skip
        assert (old.bar_size, old.capital, old.account, old.runner_state) == ("1d", None, "", None)
        with pytest.raises(IntegrityError, match="bar_size"):
            _execute(db_url, f"UPDATE deployments SET bar_size = '2d' WHERE id = {old.id}")
        with pytest.raises(IntegrityError, match="capital"):
            _execute(db_url, f"UPDATE deployments SET capital = -1 WHERE id = {old.id}")
        catalog.deployments.save_runner_state(old.id, {"format": 1})
        catalog.downgrade("0007")  # library deployments fit 0007: the new columns go
        assert catalog.revision() == "0007"
        catalog.upgrade("0008")
        assert catalog.deployments.get(old.id).runner_state is None
        catalog.deployments.create(
            "sma_rsi", instruments=["MSFT.NASDAQ"], rule_spec={"entry": "rsi(14) < 30"}
        )
        with pytest.raises(StorageError, match="rule specs"):
            catalog.downgrade("0007")
        assert catalog.revision() == "0008"
        assert len(catalog.deployments.list()) == 2, "nothing changed"


def test_downgrade_to_0001_and_back(db_url):
    with Catalog(db_url) as catalog:
        catalog.upgrade()
        command.downgrade(alembic_config(db_url), "0001")
        assert catalog.revision() == "0001"
        assert _named_constraints(db_url) != _model_constraints()
        catalog.upgrade()
        assert catalog.revision() == "0008"
    assert _named_constraints(db_url) == _model_constraints()


def test_upgrade_twice_is_a_no_op(db_url):
    with Catalog(db_url) as catalog:
        catalog.upgrade()
        catalog.upgrade()
        assert catalog.revision() == head_revision()
    engine = create_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(Base.metadata.tables) | {"scizor_schema_version"} == tables


def test_compare_metadata_notices_a_missing_table(db_url):
    # Guards the schema test above: an empty database must show differences.
    assert _diff(db_url) != []


def test_postgres_urls_use_psycopg3():
    assert normalize_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


@pytest.mark.parametrize("url", ["not a url", "mysql://u@h/db"])
def test_unsupported_urls_raise_config_error_naming_the_variable(url):
    with pytest.raises(ConfigError, match="SCIZOR_DATABASE_URL"):
        Catalog(url)


def test_upgrade_of_an_unreachable_server_raises_storage_error():
    catalog = Catalog("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        with pytest.raises(StorageError, match="cannot migrate the catalog"):
            catalog.upgrade()
    finally:
        catalog.dispose()


def test_sqlite_catalog_creates_its_parent_directory(tmp_path):
    path = tmp_path / "deep" / "var" / "scizor.db"
    with Catalog(f"sqlite:///{path}") as catalog:
        catalog.upgrade()
    assert path.exists()


def test_sqlite_migration_failing_midway_changes_nothing(tmp_path):
    # pysqlite would commit DDL as it runs; the migration must be one transaction anyway.
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    with Catalog(url) as catalog:
        catalog.upgrade("0001")
        with catalog.db.engine.begin() as conn:  # makes 0002's last batch step fail
            conn.exec_driver_sql("CREATE TABLE _alembic_tmp_positions (x INTEGER)")
        with pytest.raises(StorageError, match="cannot migrate"):
            catalog.upgrade()
        assert catalog.revision() == "0001"
    checks, uniques = _named_constraints(url)
    assert ("orders", "ck_orders_limit_price_required") not in checks  # orders step undone
    assert ("symbols", "uq_symbols_con_id", ("con_id",)) not in uniques
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert not {t for t in tables if t.startswith("_alembic_tmp_")} - {"_alembic_tmp_positions"}
