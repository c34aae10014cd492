"""What the pacer enforces and reports: priorities, IBKR's limits, request keys, statistics.

Kept apart from :mod:`actors.pacing` so the collection benchmark and the gateway can compute
bounds and build keys without the scheduler. Plain Python: no Ray, no ib_async.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

from core import ibrules
from core.barsize import BarSize, bar_size

__all__ = [
    "GrantEvent",
    "PacerStats",
    "PacingRules",
    "Priority",
    "RequestKey",
    "lower_bound_seconds",
]


class Priority(IntEnum):
    """Who goes first when requests wait: lower values are served first."""

    LIVE = 0
    """Live trading: orders, cancels, snapshots a strategy is waiting for."""
    NORMAL = 1
    """Interactive requests (a user asked for something)."""
    BACKFILL = 2
    """Bulk history collection."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PacingRules:
    """The limits the pacer enforces; :meth:`ibkr` gives IBKR's own numbers.

    Attributes:
        identical_window_s: No identical hard-paced request within this many seconds.
        same_contract_window_s: Window of the per-contract/exchange/tick-type limit.
        same_contract_max: Weighted requests allowed per contract within that window.
        rolling_window_s: Window of the overall hard-paced limit.
        rolling_max: Weighted hard-paced requests allowed in the rolling window.
        max_open: Historical requests allowed open at once.
        messages_per_window: API messages allowed in any ``message_window_s``.
        message_window_s: Window of the message-rate limit.
        bid_ask_weight: How many requests one ``BID_ASK`` request counts as.
        margin_s: Real seconds added to every window. Historical windows start when each
            request completes, which no network lag can precede, so this only absorbs lag
            on the message-rate window (messages get no answer) and the server's clock
            granularity.
    """

    identical_window_s: float
    same_contract_window_s: float
    same_contract_max: int
    rolling_window_s: float
    rolling_max: int
    max_open: int
    messages_per_window: int
    message_window_s: float = 1.0
    bid_ask_weight: int = 1
    margin_s: float = 0.0

    @classmethod
    def ibkr(cls, *, margin_s: float = 0.0) -> PacingRules:
        """Return IBKR's published limits (from :mod:`core.ibrules`)."""
        return cls(
            identical_window_s=ibrules.IDENTICAL_WINDOW_S,
            same_contract_window_s=ibrules.SAME_CONTRACT_WINDOW_S,
            same_contract_max=ibrules.SAME_CONTRACT_MAX,
            rolling_window_s=ibrules.ROLLING_WINDOW_S,
            rolling_max=ibrules.ROLLING_MAX,
            max_open=ibrules.MAX_OPEN_HISTORICAL,
            messages_per_window=ibrules.CLIENT_MESSAGES_PER_S,
            message_window_s=1.0,
            bid_ask_weight=ibrules.BID_ASK_WEIGHT,
            margin_s=margin_s,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestKey:
    """What identifies a historical request for pacing.

    ``contract``, ``exchange`` and ``what_to_show`` form the group of the per-contract limit;
    every field together is the identity checked by the identical-request rule.

    Attributes:
        contract: The conId, or the symbol when the conId is unknown.
        exchange: The exchange the request names (``"SMART"``).
        what_to_show: IBKR's tick type (``"TRADES"``, ``"MIDPOINT"``, ``"BID_ASK"``, ...).
        bar_size: SCIZOR bar size (``"1m"``) or a :class:`core.barsize.BarSize`.
        end: The request's end time as sent (``""`` for now).
        duration: The request's ``durationStr``.
        use_rth: Regular trading hours only.
    """

    contract: str | int
    exchange: str = "SMART"
    what_to_show: str = "TRADES"
    bar_size: str = "1m"
    end: str = ""
    duration: str = ""
    use_rth: bool = True

    @property
    def group(self) -> tuple[str | int, str, str]:
        """The contract/exchange/tick-type group of the same-contract rule."""
        return (self.contract, self.exchange, self.what_to_show)

    @property
    def bar(self) -> BarSize:
        """The bar size as a :class:`core.barsize.BarSize`."""
        return bar_size(self.bar_size)

    @property
    def hard_paced(self) -> bool:
        """True when IBKR's hard pacing rules apply (bars of 30 seconds or less)."""
        return self.bar.hard_paced


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantEvent:
    """One request released by the pacer (passed to the ``on_grant`` observer)."""

    kind: str
    """``"historical"`` or ``"message"``."""
    key: RequestKey | None
    priority: Priority
    at: float
    """The pacer clock's ``monotonic()`` at release."""
    waited: float
    """Seconds the request waited in the queue."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PacerStats:
    """Counters of what the pacer has done so far."""

    granted: int
    waits: int
    wait_seconds: float
    queue_depth: int
    open_requests: int
    waits_by_priority: dict[str, int] = field(default_factory=dict)


def lower_bound_seconds(
    n_requests: int,
    bar: str | BarSize,
    *,
    what_to_show: str = "TRADES",
    n_contracts: int | None = None,
    rules: PacingRules | None = None,
    time_scale: float = 1.0,
) -> float:
    """Return the least wall time IBKR's rules allow for ``n_requests`` distinct requests.

    The bound is the release time of the last request when every request is released as
    early as the rules allow (the first at time zero). Responses take time too, so real runs
    are slower; a collection benchmark reports its time as a multiple of this bound.

    Args:
        n_requests: How many historical requests.
        bar: Their bar size (hard pacing applies to 30 s bars or less).
        what_to_show: Their tick type (``BID_ASK`` counts twice).
        n_contracts: Over how many contracts the requests are spread evenly (None: many).
        rules: The limits; IBKR's by default.
        time_scale: As for :class:`Pacer`.
    """
    if n_requests <= 0:
        return 0.0
    r = rules or PacingRules.ibkr()
    last = n_requests - 1
    bound = (last // r.messages_per_window) * r.message_window_s
    if not bar_size(bar).hard_paced:
        return float(bound)
    weight = r.bid_ask_weight if what_to_show.upper() == "BID_ASK" else 1
    per_window = max(1, r.rolling_max // weight)
    bound = max(bound, (last // per_window) * r.rolling_window_s / time_scale)
    if n_contracts:
        per_contract = max(1, r.same_contract_max // weight)
        last_in_contract = math.ceil(n_requests / n_contracts) - 1
        bound = max(
            bound, (last_in_contract // per_contract) * r.same_contract_window_s / time_scale
        )
    return float(bound)
