"""Bearer tokens: verification (cached briefly per replica), scopes, and per-token rate limits.

Every route but ``/health``, ``/docs`` and ``/openapi.json`` depends on :func:`authorize`.
A route needs scope ``read`` for GET and ``research`` for POST/PUT/DELETE unless it declares
another with :func:`needs` (trading routes need ``trade``); each scope includes the ones
before it (``read < research < trade < admin``).

Tokens are looked up by their SHA-256 hash and the stored hash compared in constant time
(:meth:`storage.catalog.admin.TokenRepository.lookup`). A replica trusts what it looked up
for :attr:`~serve.limits.ApiLimits.token_cache_seconds` (15 s by default), so a revoked
token stops working within that time; expiry is checked on every request. ``last_used_at``
is written in one batch every :attr:`~serve.limits.ApiLimits.last_use_flush_seconds` (by the
app's background task, or by a request once that long has passed), never per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import anyio
from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.errors import ScizorError
from core.types import utcnow
from serve.errors import Forbidden, RateLimited, Unauthorized
from serve.limits import ApiLimits, RateLimiter
from storage.catalog.admin import ApiToken, hash_token, scope_includes
from storage.catalog.records import TokenScope

log = logging.getLogger(__name__)

SCOPE_KEY = "x-scizor-scope"
"""OpenAPI extension naming the scope an operation needs."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="An API token from 'scizor token create' (or the admin token 'scizor up' "
    "printed once): send 'Authorization: Bearer <token>'.",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who a request is from: the token's id, name and scope."""

    token_id: int
    name: str
    scope: TokenScope


class TokenStore(Protocol):
    """The part of :class:`storage.catalog.admin.TokenRepository` verification needs."""

    def lookup(self, token: str) -> ApiToken | None: ...

    def mark_used(self, uses: Mapping[int, datetime]) -> None: ...


_MISS = object()


class TokenVerifier:
    """Verify bearer tokens against the catalog, caching answers for ``ttl`` seconds.

    Thread-safe. Unknown tokens are cached too (so a flood of bad tokens does not reach the
    database), at most ``max_entries`` answers in all.
    """

    def __init__(
        self,
        tokens: TokenStore,
        *,
        limits: ApiLimits,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        max_entries: int = 10_000,
    ) -> None:
        self._tokens = tokens
        self._ttl, self._flush_every = limits.token_cache_seconds, limits.last_use_flush_seconds
        self._clock, self._now = clock, now
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[ApiToken | None, float]] = OrderedDict()
        self._used: dict[int, datetime] = {}
        self._flushed = clock()
        self._lock = threading.Lock()

    def cached(self, token: str) -> Principal | None:
        """Verify from the cache alone; None when the catalog must be asked (:meth:`verify`).

        Raises:
            Unauthorized: if the cached answer is that the token is not live.
        """
        entry = self._fresh(hash_token(token))
        return None if entry is _MISS else self._admit(entry)

    def verify(self, token: str) -> Principal:
        """Verify ``token``, asking the catalog when the cache has no fresh answer.

        Raises:
            Unauthorized: if the token is unknown, revoked or expired.
        """
        digest = hash_token(token)
        entry = self._fresh(digest)
        if entry is _MISS:
            entry = self._tokens.lookup(token)
            with self._lock:
                self._cache[digest] = (entry, self._clock())
                while len(self._cache) > self._max:
                    self._cache.popitem(last=False)
        return self._admit(entry)

    @property
    def pending(self) -> int:
        """How many tokens' last use waits to be written."""
        return len(self._used)

    def flush_due(self) -> bool:
        """True when uses are waiting and the last batch is older than the flush interval."""
        return bool(self._used) and self._clock() - self._flushed >= self._flush_every

    def flush(self) -> None:
        """Write the waiting ``last_used_at`` values in one batch (kept for the next batch
        if the catalog cannot be written: a request never fails for it)."""
        with self._lock:
            used, self._used = self._used, {}
            self._flushed = self._clock()
        try:
            self._tokens.mark_used(used)
        except ScizorError as exc:
            log.warning("cannot record token use (retried in the next batch): %s", exc)
            with self._lock:
                self._used = {**used, **self._used}

    def _fresh(self, digest: str) -> Any:
        with self._lock:
            hit = self._cache.get(digest)
            if hit is None or self._clock() - hit[1] >= self._ttl:
                return _MISS
            return hit[0]

    def _admit(self, record: ApiToken | None) -> Principal:
        now = self._now()
        if record is None:
            raise Unauthorized(
                "unknown API token; create one with 'scizor token create --name NAME --scope "
                "read' and send it as 'Authorization: Bearer <token>'"
            )
        state = record.state(now)
        if state != "live":
            when = record.revoked_at if state == "revoked" else record.expires_at
            raise Unauthorized(
                f"API token {record.name or record.id!r} is {state} (since {when:%Y-%m-%d %H:%M} "
                "UTC); create a new one with 'scizor token create'"
            )
        with self._lock:
            self._used[record.id] = now
        return Principal(token_id=record.id, name=record.name or f"token-{record.id}",
                         scope=record.scope)  # fmt: skip


def needs(scope: TokenScope | str) -> dict[str, Any]:
    """``openapi_extra`` declaring that a route needs ``scope`` (instead of the default)."""
    return {SCOPE_KEY: TokenScope(scope).value}


def default_scope(method: str) -> TokenScope:
    """The scope a route needs unless it declares one: read for GET, research otherwise."""
    return TokenScope.READ if method.upper() in SAFE_METHODS else TokenScope.RESEARCH


def required_scope(request: Request) -> TokenScope:
    """The scope the matched route needs."""
    route = request.scope.get("route")
    declared = (getattr(route, "openapi_extra", None) or {}).get(SCOPE_KEY)
    return TokenScope(declared) if declared else default_scope(request.method)


@dataclass(slots=True, kw_only=True)
class Guard:
    """What :func:`authorize` checks a request with: the verifier and the rate limiter."""

    verifier: TokenVerifier
    limiter: RateLimiter


async def authorize(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)
) -> Principal:
    """FastAPI dependency: the request's principal, after token, scope and rate checks.

    Raises:
        Unauthorized: 401 without a bearer token or with one that is not live.
        Forbidden: 403 when the token's scope does not include the route's.
        RateLimited: 429 when the token is over its rate (``Retry-After`` says when to retry).
    """
    needed = required_scope(request)
    try:
        principal = await _principal(request, credentials)
    except Unauthorized as exc:
        exc.required_scope = needed.value
        raise
    if not scope_includes(principal.scope, needed):
        raise Forbidden(
            f"{request.method} {_template(request)} needs scope '{needed}' (or higher); token "
            f"'{principal.name}' has '{principal.scope}'. Create a token with "
            f"'scizor token create --name NAME --scope {needed}'",
            required_scope=needed.value,
            token_scope=principal.scope.value,
        )
    guard: Guard = request.app.state.context.guard
    wait = guard.limiter.take(principal.token_id)
    if wait > 0:
        raise RateLimited(
            f"token '{principal.name}' is over its rate limit; retry after {wait:.2f} s",
            retry_after=wait,
        )
    return principal


async def _principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    """The verified principal of the request's bearer token (also set on ``request.state``)."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized(
            "this route needs an API token: send 'Authorization: Bearer <token>' (create one "
            "with 'scizor token create --name NAME --scope read')"
        )
    guard: Guard = request.app.state.context.guard
    principal = guard.verifier.cached(credentials.credentials)
    if principal is None:
        principal = await anyio.to_thread.run_sync(guard.verifier.verify, credentials.credentials)
    request.state.principal = principal
    if guard.verifier.flush_due():
        await anyio.to_thread.run_sync(guard.verifier.flush)
    return principal


def _template(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))
