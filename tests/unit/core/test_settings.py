from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import Settings


def test_settings_default_is_embedded_sqlite_parquet_under_var():
    s = Settings.from_env({})
    assert s.ib.embedded
    assert s.db.is_sqlite
    assert s.db.url.endswith(str(Path("var/scizor.db").resolve()))
    assert s.storage.bar_store == str(Path("var/bars").resolve())
    assert s.ray.address is None
    assert (s.api.host, s.api.port) == ("127.0.0.1", 8000)


def test_settings_documented_variables_reach_nested_views(tmp_path):
    s = Settings.from_env(
        {
            "SCIZOR_HOME": str(tmp_path),
            "SCIZOR_IB_HOST": "10.0.0.5",
            "SCIZOR_IB_PORT": "4002",
            "SCIZOR_IB_CLIENT_ID": "7",
            "SCIZOR_DATABASE_URL": "postgresql+psycopg://u@h/db",
            "SCIZOR_BAR_STORE": "s3://bucket/bars",
            "SCIZOR_RAY_ADDRESS": "ray://head:10001",
            "SCIZOR_API_PORT": "9000",
            "UNRELATED": "x",
        }
    )
    assert (s.ib.host, s.ib.port, s.ib.client_id) == ("10.0.0.5", 4002, 7)
    assert not s.ib.embedded
    assert s.db.url == "postgresql+psycopg://u@h/db" and not s.db.is_sqlite
    assert s.storage.bar_store == "s3://bucket/bars"
    assert s.ray.address == "ray://head:10001"
    assert s.api.port == 9000


def test_settings_blank_host_means_embedded_gateway():
    assert Settings.from_env({"SCIZOR_IB_HOST": "  "}).ib.embedded


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SCIZOR_IB_PORT", "not-a-port"), ("SCIZOR_API_PORT", "70000"), ("SCIZOR_IB_TIMEOUT", "0")],
)
def test_settings_bad_value_names_the_variable(variable, value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: value})
    assert variable in str(info.value)
    assert repr(value) in str(info.value)


def test_settings_do_not_read_process_environment_when_given_a_mapping(monkeypatch):
    monkeypatch.setenv("SCIZOR_API_PORT", "1234")
    assert Settings.from_env({}).api.port == 8000
    assert Settings.from_env().api.port == 1234


def test_database_url_is_redacted_for_printing():
    s = Settings.from_env({"SCIZOR_DATABASE_URL": "postgresql+psycopg://scizor:s3cr3t@db:5432/x"})
    assert s.db.redacted_url == "postgresql+psycopg://scizor:***@db:5432/x"
    assert "s3cr3t" not in s.db.redacted_url
