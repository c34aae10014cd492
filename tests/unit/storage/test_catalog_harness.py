"""The database fixtures: each test gets its own empty database on both backends."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

SEEN: set[str] = set()


def test_db_url_is_an_empty_database_that_accepts_writes(db_url):
    engine = create_engine(db_url)
    try:
        assert inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE probe (note VARCHAR(10))"))
            conn.execute(text("INSERT INTO probe (note) VALUES ('x')"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM probe")).scalar_one() == 1
    finally:
        engine.dispose()


def test_db_url_gives_every_test_a_distinct_database(db_url):
    assert db_url not in SEEN
    SEEN.add(db_url)
    engine = create_engine(db_url)
    try:
        assert "probe" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_pg_url_uses_the_psycopg_driver(pg_url):
    assert pg_url.startswith("postgresql+psycopg://")
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW fsync")).scalar_one() in {"off", "on"}
    finally:
        engine.dispose()
