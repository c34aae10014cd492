"""``scizor token create|list|revoke`` as a user runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.catalog import Catalog
from storage.catalog.admin import hash_token

pytestmark = pytest.mark.integration

SCIZOR = str(Path(sys.executable).with_name("scizor"))
TOKEN = re.compile(r"^(scz_[A-Za-z0-9_\-]{40,})$", re.M)


def scizor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCIZOR, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def env(catalog_url: str, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCIZOR_")}
    return {**base, "SCIZOR_HOME": str(tmp_path), "SCIZOR_DATABASE_URL": catalog_url,
            "COLUMNS": "200"}  # fmt: skip


def test_create_prints_the_token_once_and_stores_only_its_hash(env, catalog_url):
    made = scizor(env, "token", "create", "--name", "ci bot", "--scope", "research",
                  "--expires", "30d")  # fmt: skip
    assert made.returncode == 0, made.stderr
    (token,) = TOKEN.findall(made.stdout)
    assert "will not be shown again" in made.stdout
    catalog = Catalog(catalog_url)
    try:
        (record,) = catalog.tokens.list()
        assert catalog.tokens.lookup(token).id == record.id
        expected = datetime.now(UTC) + timedelta(days=30)
        assert abs(record.expires_at - expected) < timedelta(minutes=5)
        with catalog.db.engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT token_hash FROM api_tokens").scalar_one()
    finally:
        catalog.dispose()
    assert stored == hash_token(token) and token not in stored
    listed = scizor(env, "token", "list")
    assert "ci bot" in listed.stdout and "research" in listed.stdout and "live" in listed.stdout
    assert token not in listed.stdout, "list never shows a token"


def test_quiet_prints_the_token_alone_for_a_shell_variable(env, catalog_url):
    made = scizor(env, "token", "create", "--name", "notebook", "--scope", "read", "--quiet")
    assert made.returncode == 0, made.stderr
    assert TOKEN.fullmatch(made.stdout.strip()) and made.stdout.count("\n") == 1
    catalog = Catalog(catalog_url)
    try:
        assert catalog.tokens.lookup(made.stdout.strip()).name == "notebook"
    finally:
        catalog.dispose()


def test_revoke_marks_the_token_revoked_and_a_missing_id_is_a_clean_error(env):
    scizor(env, "token", "create", "--name", "old", "--scope", "read")
    revoked = scizor(env, "token", "revoke", "1")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert "revoked" in scizor(env, "token", "list").stdout
    missing = scizor(env, "token", "revoke", "99")
    assert missing.returncode == 2 and "99 does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "x", "--scope", "root"], "read, research, trade, admin"),
        (["--name", "x", "--scope", "read", "--expires", "soon"], "30d"),
        (["--name", " ", "--scope", "read"], "--name"),
    ],
)
def test_bad_options_are_refused_naming_the_fix(env, args, message):
    result = scizor(env, "token", "create", *args)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr
