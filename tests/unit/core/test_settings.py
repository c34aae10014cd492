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
    [
        ("SCIZOR_IB_PORT", "not-a-port"),
        ("SCIZOR_API_PORT", "70000"),
        ("SCIZOR_IB_TIMEOUT", "0"),
        ("SCIZOR_LOG_LEVEL", "loud"),
        ("SCIZOR_API_RATE", "0"),
        ("SCIZOR_API_BURST", "-1"),
        ("SCIZOR_API_MAX_BODY_BYTES", "10"),
    ],
)
def test_settings_bad_value_names_the_variable(variable, value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: value})
    assert variable in str(info.value)
    assert repr(value) in str(info.value)


def test_a_short_admin_token_is_refused_without_showing_it():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"SCIZOR_ADMIN_TOKEN": "hunter2 hunter2"})
    message = str(info.value)
    assert "SCIZOR_ADMIN_TOKEN" in message and "32 characters" in message
    assert "hunter2" not in message and "***" in message


def test_settings_do_not_read_process_environment_when_given_a_mapping(monkeypatch):
    monkeypatch.setenv("SCIZOR_API_PORT", "1234")
    assert Settings.from_env({}).api.port == 8000
    assert Settings.from_env().api.port == 1234


def test_database_url_is_redacted_for_printing():
    s = Settings.from_env({"SCIZOR_DATABASE_URL": "postgresql+psycopg://scizor:s3cr3t@db:5432/x"})
    assert s.db.redacted_url == "postgresql+psycopg://scizor:***@db:5432/x"
    assert "s3cr3t" not in s.db.redacted_url


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("SCIZOR_DATABSE_URL", "SCIZOR_DATABASE_URL"),
        ("SCIZOR_IB_HOSTNAME", "SCIZOR_IB_HOST"),
        ("SCIZOR_RAY_ADRESS", "SCIZOR_RAY_ADDRESS"),
    ],
)
def test_settings_unknown_variable_is_an_error_naming_the_closest_valid_one(typo, meant):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({typo: "postgresql+psycopg://u:pw@db/x"})
    message = str(info.value)
    assert f"{typo} (did you mean {meant}?)" in message
    assert "pw" not in message


def test_settings_unknown_variable_without_a_close_match_lists_the_valid_names():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"SCIZOR_QQQQ": "1", "SCIZOR_HOME": "/tmp/x"})
    message = str(info.value)
    assert "SCIZOR_QQQQ" in message and "did you mean" not in message
    assert "SCIZOR_DATABASE_URL" in message and "SCIZOR_IB_HOST" in message


def test_settings_accept_every_field_and_the_test_suites_variables():
    env = {name: "" for name in Settings.variables()}
    assert {"SCIZOR_TEST_PG_URL", "SCIZOR_LIVE_IB", "SCIZOR_IB_TIMEOUT"} <= set(env)
    env |= {
        "SCIZOR_TEST_PG_URL": "postgresql+psycopg://u@h/t",
        "SCIZOR_LIVE_IB": "1",
        "SCIZOR_HOME": "var",
        "SCIZOR_IB_PORT": "4001",
        "SCIZOR_IB_CLIENT_ID": "3",
        "SCIZOR_IB_ACCOUNT": "DU123",
        "SCIZOR_IB_TIMEOUT": "2.5",
        "SCIZOR_RAY_NUM_CPUS": "4",
        "SCIZOR_DASHBOARD_PORT": "8266",
        "SCIZOR_API_PORT": "8001",
        "SCIZOR_ADMIN_TOKEN": "scz_" + "k" * 40,
        "SCIZOR_LOG_LEVEL": "debug",
        "SCIZOR_API_RATE": "5",
        "SCIZOR_API_BURST": "10",
        "SCIZOR_API_MAX_BODY_BYTES": "65536",
        "SCIZOR_API_TOKEN_CACHE_SECONDS": "0",
    }
    s = Settings.from_env(env)
    assert (s.ib.port, s.ib.client_id, s.ib.account, s.ib.timeout) == (4001, 3, "DU123", 2.5)
    assert s.log_level == "DEBUG" and (s.api_rate, s.api_burst) == (5.0, 10)
    assert (s.api_max_body_bytes, s.api_token_cache_seconds) == (65536, 0.0)
    assert s.ray.num_cpus == 4 and s.db.is_sqlite and s.ib.embedded


def test_settings_lowercase_or_unprefixed_names_are_not_ours_and_are_ignored():
    s = Settings.from_env({"scizor_databse_url": "x", "SCIZORX": "y", "PATH": "/bin"})
    assert s.db.is_sqlite


def test_settings_repr_and_str_never_show_the_database_password_or_admin_token():
    s = Settings.from_env(
        {
            "SCIZOR_DATABASE_URL": "postgresql+psycopg://scizor:s3cr3t@db:5432/x",
            "SCIZOR_ADMIN_TOKEN": "t0ken" * 8,
        }
    )
    for text in (repr(s), str(s), repr(s.db), str(s.db), repr(s.api)):
        assert "s3cr3t" not in text and "t0ken" not in text
    assert "scizor:***@db:5432/x" in repr(s.db)
    assert s.db.url == "postgresql+psycopg://scizor:s3cr3t@db:5432/x"  # storage still connects


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        (
            "postgresql://u@h/db?password=pw&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_url_redaction_covers_at_signs_and_query_passwords(url, redacted):
    assert Settings.from_env({"SCIZOR_DATABASE_URL": url}).db.redacted_url == redacted
