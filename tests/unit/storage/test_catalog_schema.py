"""The Alembic migration builds exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from core.errors import ConfigError, StorageError
from storage.catalog import Catalog
from storage.catalog.db import normalize_url
from storage.catalog.migrate import head_revision
from storage.catalog.models import Base


def _diff(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def test_upgrade_creates_a_schema_identical_to_the_models(db_url):
    with Catalog(db_url) as catalog:
        assert catalog.revision() is None
        catalog.upgrade()
        assert catalog.revision() == head_revision() == "0001"
    assert _diff(db_url) == []


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
    assert set(Base.metadata.tables) | {"alembic_version"} == tables


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
