"""Bearer tokens over HTTP: 401/403 bodies, scopes, the verification cache, batched last use,
expiry, and the per-token rate limit (TestClient, real catalog on both backends, no Ray)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.types import utcnow
from serve.auth import TokenVerifier
from serve.errors import Unauthorized
from serve.limits import ApiLimits
from storage.catalog.admin import scope_includes
from storage.catalog.records import TokenScope
from tests.unit.serve.conftest import make_api
from tests.unit.serve.fakes import Clock


def test_a_route_without_a_token_is_401_with_a_bearer_challenge_and_the_fix(api):
    response = api.client.get("/symbols")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["error"] == "Unauthorized" and "Authorization: Bearer" in body["detail"]
    assert body["required_scope"] == "read"
    assert api.client.post("/collect").json()["required_scope"] == "research"


@pytest.mark.parametrize("header", ["Bearer scz_not-a-token", "Basic dXNlcjpwdw==", "Bearer "])
def test_a_bad_token_or_scheme_is_401(api, header):
    response = api.client.get("/symbols", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"
    assert response.json()["required_scope"] == "read"


def test_health_docs_and_openapi_need_no_token(api):
    for path in ("/health", "/docs", "/openapi.json"):
        assert api.client.get(path).status_code == 200, path


def test_a_read_token_reads_but_may_not_mutate_and_403_names_the_scope_needed(api):
    assert api.get("/symbols", scope="read").status_code == 200
    response = api.post("/symbols", scope="read", json={"instrument": "VEA.ASX"})
    assert response.status_code == 403
    body = response.json()
    assert body["required_scope"] == "research" and body["token_scope"] == "read"
    assert "scizor token create" in body["detail"] and "research" in body["detail"]
    assert api.gateway.asked == [], "nothing ran for a refused request"


@pytest.mark.parametrize("scope", ["research", "trade", "admin"])
def test_research_and_every_higher_scope_may_mutate(api, scope):
    response = api.post("/symbols", scope=scope, json={"instrument": "VEA.ASX"})
    assert response.status_code == 201, response.text


def test_scopes_include_the_ones_before_them():
    order = list(TokenScope)
    for i, granted in enumerate(order):
        assert [scope_includes(granted, needed) for needed in order] == [
            j <= i for j in range(len(order))
        ]


def test_a_revoked_token_works_until_the_cache_ttl_then_is_refused(catalog):
    clock = Clock()
    verifier = TokenVerifier(catalog.tokens, limits=ApiLimits(token_cache_seconds=15), clock=clock)
    record, token = catalog.tokens.create("read", "ci")
    assert verifier.verify(token).name == "ci"
    catalog.tokens.revoke(record.id)
    clock.now += 14.9
    assert verifier.cached(token) is not None, "cached answers are trusted within the TTL"
    clock.now += 0.2
    assert verifier.cached(token) is None, "past the TTL the catalog must be asked"
    with pytest.raises(Unauthorized, match="revoked"):
        verifier.verify(token)


def test_an_expired_token_is_refused_even_from_the_cache(catalog):
    now = [utcnow()]
    verifier = TokenVerifier(catalog.tokens, limits=ApiLimits(), now=lambda: now[0])
    _, token = catalog.tokens.create("read", "short", expires_at=now[0] + timedelta(minutes=5))
    assert verifier.verify(token).scope is TokenScope.READ
    now[0] += timedelta(minutes=6)
    with pytest.raises(Unauthorized, match="expired"):
        verifier.cached(token)


def test_unknown_tokens_are_cached_too_so_a_flood_does_not_reach_the_catalog(catalog):
    class Counting:
        lookups = 0

        def lookup(self, token):
            Counting.lookups += 1
            return catalog.tokens.lookup(token)

        def mark_used(self, uses):
            catalog.tokens.mark_used(uses)

    verifier = TokenVerifier(Counting(), limits=ApiLimits())
    for _ in range(50):
        with pytest.raises(Unauthorized, match="unknown"):
            verifier.verify("scz_guess")
    assert Counting.lookups == 1


def test_last_use_is_written_in_batches_not_per_request(catalog):
    clock = Clock()
    limits = ApiLimits(last_use_flush_seconds=30)
    verifier = TokenVerifier(catalog.tokens, limits=limits, clock=clock)
    _, token = catalog.tokens.create("read", "ci")
    for _ in range(20):
        verifier.verify(token)
    assert not verifier.flush_due()
    assert catalog.tokens.list()[0].last_used_at is None, "no write per request"
    clock.now += 30
    assert verifier.flush_due()
    verifier.flush()
    assert catalog.tokens.list()[0].last_used_at is not None
    assert not verifier.flush_due(), "nothing waits after a flush"


def test_the_stored_hash_is_compared_after_lookup_and_verify_honours_expiry(catalog):
    record, token = catalog.tokens.create("trade", "ci", expires_at=utcnow() + timedelta(days=1))
    assert catalog.tokens.lookup(token).id == record.id
    assert catalog.tokens.lookup(token + "x") is None
    assert catalog.tokens.verify(token, at=utcnow() + timedelta(days=2)) is None


def test_over_the_rate_limit_is_429_with_retry_after(catalog, tmp_path):
    # A refill of one request per 100 s: a slow run cannot earn a fourth request in time.
    api = make_api(catalog, tmp_path, limits=ApiLimits(rate_per_second=0.01, burst=3))
    statuses = [api.get("/strategies", scope="read").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = api.get("/strategies", scope="read")
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["retry_after"] >= 1
    assert api.get("/strategies", scope="admin").status_code == 200, "buckets are per token"
