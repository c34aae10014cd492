"""The health checks exercise each part: the catalog's revision, a bar store write/read."""

from __future__ import annotations

import os
from pathlib import Path

from serve.health import bar_store_check, catalog_check
from storage.catalog import Catalog
from storage.catalog.migrate import head_revision


def test_the_catalog_is_ok_only_at_the_head_revision(catalog, tmp_path):
    assert catalog_check(catalog, redacted_url="db")["ok"] is True
    old = Catalog(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        old.upgrade("0004")
        check = catalog_check(old, redacted_url="db")
    finally:
        old.dispose()
    assert check["ok"] is False
    assert (check["revision"], check["head"]) == ("0004", head_revision())
    assert "scizor db upgrade" in check["fix"]


def test_the_bar_store_is_ok_when_a_probe_is_written_read_and_removed(tmp_path):
    root = tmp_path / "bars"
    check = bar_store_check(str(root))
    assert check["ok"] is True and check["writable"] and check["readable"]
    assert list(root.iterdir()) == [], "the probe file is removed"
    assert bar_store_check(f"file://{root}")["ok"] is True, "a pyarrow URI works the same"


def test_a_read_only_bar_store_is_not_ok_and_says_which_step_failed(tmp_path):
    root = Path(tmp_path / "ro")
    root.mkdir()
    os.chmod(root, 0o555)
    try:
        check = bar_store_check(str(root))
    finally:
        os.chmod(root, 0o755)
    if os.geteuid() == 0:  # root writes anywhere: a path under a file cannot be created
        blocker = tmp_path / "file"
        blocker.write_text("x")
        check = bar_store_check(str(blocker / "bars"))
    assert check["ok"] is False and check["step"] in ("create", "write") and check["error"]
