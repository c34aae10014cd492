"""``scizor db upgrade`` on SQLite and PostgreSQL, and its message for a bad database URL."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from cluster.cli import app, main
from storage.catalog import Catalog
from storage.catalog.migrate import head_revision


def one_line(text: str) -> str:
    """Rich wraps long lines at the terminal width; join them back for matching."""
    return " ".join(text.split())


def revision_and_tables(url: str) -> tuple[str | None, list[str]]:
    catalog = Catalog(url)
    try:
        revision = catalog.revision()
    finally:
        catalog.dispose()
    engine = create_engine(url)
    try:
        tables = sorted(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    return revision, tables


def test_db_upgrade_migrates_to_head_then_is_a_no_op(db_url: str, tmp_path: Path) -> None:
    env = {"SCIZOR_HOME": str(tmp_path), "SCIZOR_DATABASE_URL": db_url}
    assert revision_and_tables(db_url) == (None, [])  # a fresh, empty database

    first = CliRunner().invoke(app, ["db", "upgrade"], env=env)
    assert first.exit_code == 0, first.output
    assert "is up to date." in one_line(first.output)
    revision, tables = revision_and_tables(db_url)
    assert revision is not None and revision == head_revision()
    assert "scizor_schema_version" in tables and "symbols" in tables

    second = CliRunner().invoke(app, ["db", "upgrade"], env=env)
    assert second.exit_code == 0, second.output
    assert "is up to date." in one_line(second.output)
    assert revision_and_tables(db_url) == (revision, tables)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("notaurl", "SCIZOR_DATABASE_URL='notaurl' is not a database URL"),
        ("mysql://u@localhost/db", "SCIZOR_DATABASE_URL uses 'mysql'"),
        (
            "postgresql+psycopg://nobody@127.0.0.1:1/scizor",
            "cannot migrate the catalog at postgresql+psycopg://nobody@127.0.0.1:1/scizor",
        ),
    ],
)
def test_db_upgrade_with_a_bad_url_exits_2_with_one_clear_line(
    url: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # main() is the console script: it turns SCIZOR errors into one line and exit status 2.
    monkeypatch.setenv("SCIZOR_HOME", str(tmp_path))
    monkeypatch.setenv("SCIZOR_DATABASE_URL", url)
    monkeypatch.delenv("SCIZOR_RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # main() sets it; restored afterwards
    monkeypatch.setattr(sys, "argv", ["scizor", "db", "upgrade"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert "up to date" not in out
    assert one_line(err).startswith("error: ")
    assert expected in one_line(err)
    assert "Traceback" not in err and "Traceback" not in out
