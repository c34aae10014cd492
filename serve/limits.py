"""What the API allows: body size, per-token request rate, and how long token checks are cached.

The defaults are constants here; :class:`ApiLimits` is passed to the app (and bound into the
Serve deployment), so tests and benchmarks choose their own without touching the environment.
The rate is a token bucket per API token **per replica**: with N replicas a token may reach
up to N times the rate.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from core.settings import Settings

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiLimits:
    """Limits of one API replica.

    Attributes:
        max_body_bytes: Largest request body accepted; larger ones are answered 413.
        rate_per_second: Requests per second a token may sustain.
        burst: Requests a token may send at once after being idle.
        token_cache_seconds: How long a verified token is trusted without asking the
            catalog again; a revoked token stops working within this time.
        last_use_flush_seconds: How often tokens' ``last_used_at`` is written, in one batch.
    """

    max_body_bytes: int = MIB
    rate_per_second: float = 20.0
    burst: int = 40
    token_cache_seconds: float = 15.0
    last_use_flush_seconds: float = 30.0

    @classmethod
    def of(cls, settings: Settings) -> ApiLimits:
        """The limits ``SCIZOR_API_RATE``, ``_BURST``, ``_MAX_BODY_BYTES`` and
        ``_TOKEN_CACHE_SECONDS`` set (the defaults above where they are unset)."""
        return cls(
            max_body_bytes=settings.api_max_body_bytes,
            rate_per_second=settings.api_rate,
            burst=settings.api_burst,
            token_cache_seconds=settings.api_token_cache_seconds,
        )


class RateLimiter:
    """Token buckets keyed by API token id: ``rate`` per second, at most ``burst`` saved up.

    Thread-safe; keeps at most ``max_keys`` buckets (the least recently used go first).
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self._rate, self._burst = float(rate), float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: object) -> float:
        """Spend one request of ``key``'s bucket.

        Returns:
            0.0 when the request is allowed, else the seconds until it would be.
        """
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens >= 1.0:
                wait, tokens = 0.0, tokens - 1.0
            else:
                wait = (1.0 - tokens) / self._rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        return wait
