"""A catalog URL the platform cannot use fails with a ConfigError naming the setting."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from storage.catalog.db import make_engine


def test_sqlite_folder_that_cannot_be_created_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="SCIZOR_DATABASE_URL") as info:
        make_engine("sqlite:////proc/scizor-no-such-dir/catalog.db")
    assert "/proc/scizor-no-such-dir" in str(info.value)
