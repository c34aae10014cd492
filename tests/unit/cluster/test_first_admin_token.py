"""The first admin token: generated and shown once, or the operator's SCIZOR_ADMIN_TOKEN;
on SQLite and PostgreSQL catalogs."""

from __future__ import annotations

import pytest

from cluster.platform import first_admin_token
from core.errors import ValidationError
from core.settings import Settings
from serve.context import ApiContext
from serve.limits import ApiLimits

CHOSEN = "scz_" + "operator-chosen-secret-" * 2


def _settings(catalog_url: str, tmp_path, **extra: str) -> Settings:
    return Settings.from_env({"SCIZOR_HOME": str(tmp_path), "SCIZOR_DATABASE_URL": catalog_url,
                              **extra})  # fmt: skip


def test_a_generated_token_is_returned_once_and_stored_hashed(catalog, catalog_url, tmp_path):
    settings = _settings(catalog_url, tmp_path)
    token = first_admin_token(settings)
    assert token is not None and catalog.tokens.lookup(token).scope.value == "admin"
    assert first_admin_token(settings) is None and catalog.tokens.count() == 1


def test_the_operators_token_becomes_the_first_admin_token_and_is_not_returned(
    catalog, catalog_url, tmp_path
):
    settings = _settings(catalog_url, tmp_path, SCIZOR_ADMIN_TOKEN=CHOSEN)
    assert first_admin_token(settings) is None
    (record,) = catalog.tokens.list()
    assert catalog.tokens.lookup(CHOSEN).id == record.id and record.scope.value == "admin"
    assert first_admin_token(settings) is None and catalog.tokens.count() == 1


def test_a_catalog_with_tokens_ignores_the_operators_token(catalog, catalog_url, tmp_path):
    catalog.tokens.create("read", "someone")
    assert first_admin_token(_settings(catalog_url, tmp_path, SCIZOR_ADMIN_TOKEN=CHOSEN)) is None
    assert catalog.tokens.lookup(CHOSEN) is None and catalog.tokens.count() == 1


@pytest.mark.parametrize("plaintext", ["short", "x" * 20 + " " + "y" * 20])
def test_a_chosen_token_too_short_or_with_spaces_is_refused(catalog, plaintext):
    with pytest.raises(ValidationError) as refused:
        catalog.tokens.create("admin", "ops", plaintext=plaintext)
    assert refused.value.field == "token" and "32 characters" in str(refused.value)
    assert catalog.tokens.count() == 0


def test_a_chosen_token_stored_already_is_refused(catalog):
    catalog.tokens.create("admin", "ops", plaintext=CHOSEN)
    with pytest.raises(ValidationError, match="stored already"):
        catalog.tokens.create("read", "again", plaintext=CHOSEN)
    assert catalog.tokens.count() == 1


def test_the_api_limits_come_from_the_settings(tmp_path):
    settings = Settings.from_env({"SCIZOR_HOME": str(tmp_path), "SCIZOR_API_RATE": "2.5",
                                  "SCIZOR_API_BURST": "3", "SCIZOR_API_MAX_BODY_BYTES": "4096",
                                  "SCIZOR_API_TOKEN_CACHE_SECONDS": "1"})  # fmt: skip
    expected = ApiLimits(rate_per_second=2.5, burst=3, max_body_bytes=4096, token_cache_seconds=1)
    assert ApiLimits.of(settings) == expected
    assert ApiContext(settings).limits == expected
    assert ApiLimits.of(Settings.from_env({})) == ApiLimits()
