"""The catalog keeps its revision in ``scizor_schema_version``, so Optuna, whose studies live
in the same database, keeps its own in Alembic's default ``alembic_version``; catalogs of
earlier versions (revision in ``alembic_version``) move theirs on the next upgrade. SQLite
and PostgreSQL."""

from __future__ import annotations

import optuna
from alembic import command
from sqlalchemy import create_engine, inspect, text

from storage.catalog import Catalog
from storage.catalog.migrate import VERSION_TABLE, alembic_config, head_revision


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _sql(url: str, statement: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement))
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def test_a_catalog_of_an_earlier_version_moves_its_revision_on_upgrade(db_url):
    with Catalog(db_url) as catalog:
        catalog.upgrade("0005")
    _sql(db_url, f"ALTER TABLE {VERSION_TABLE} RENAME TO alembic_version")  # as 0005 left it
    with Catalog(db_url) as catalog:
        assert catalog.revision() == "0005", "read where earlier versions kept it"
        catalog.upgrade()
        assert catalog.revision() == head_revision()
    tables = _tables(db_url)
    assert VERSION_TABLE in tables and "alembic_version" not in tables
    assert _sql(db_url, f"SELECT version_num FROM {VERSION_TABLE}") == [(head_revision(),)]


def test_optuna_opens_the_catalogs_database_by_its_plain_url_and_both_keep_their_versions(
    catalog_url,
):
    storage = optuna.storages.RDBStorage(catalog_url)  # Optuna's own schema check passes
    study = optuna.create_study(study_name="side-by-side", storage=storage)
    study.add_trial(optuna.trial.create_trial(params={"x": 1.0}, value=2.0,
                    distributions={"x": optuna.distributions.FloatDistribution(0, 5)}))  # fmt: skip
    storage.engine.dispose()
    with Catalog(catalog_url) as catalog:
        assert catalog.revision() == head_revision()
        catalog.upgrade()  # a no-op that leaves Optuna's version alone
        assert catalog.revision() == head_revision()
    (optuna_version,) = _sql(catalog_url, "SELECT version_num FROM alembic_version")
    assert optuna_version[0] != head_revision() and optuna_version[0].startswith("v")
    loaded = optuna.load_study(study_name="side-by-side", storage=catalog_url)
    assert [t.value for t in loaded.trials] == [2.0]
    command.check(alembic_config(catalog_url))  # autogenerate sees no change: Optuna's are not ours
