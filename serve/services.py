"""The services routes call that are not plain catalog reads: IB lookups and adding listings.

:class:`RayGateway` reaches the cluster's one gateway actor by name (it never opens a
connection of its own); :class:`NoGateway` stands in where there is none (unit tests).
:func:`add_listing` is the HTTP twin of ``scizor symbols add`` (``cluster.symbols``, which
``serve`` may not import): the listing is asked of IB through the gateway, then stored.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol, cast

import anyio

from core.errors import NotFound, ValidationError
from core.instruments import parse, venue
from core.types import Instrument, SecType, utcnow
from serve.errors import ServiceUnavailable
from storage.catalog.records import SymbolRecord

GATEWAY_TIMEOUT_S = 30.0


class Gateway(Protocol):
    """IB through the gateway actor."""

    async def contract_details(self, instrument: Instrument) -> dict[str, Any]: ...

    def health(self) -> dict[str, Any]: ...


class NoGateway:
    """No gateway in this process: every call is a 503."""

    async def contract_details(self, instrument: Instrument) -> dict[str, Any]:
        raise ServiceUnavailable("no IB gateway is configured for this API")

    def health(self) -> dict[str, Any]:
        return {"ok": False, "error": "no IB gateway is configured for this API"}


class RayGateway:
    """The gateway actor (``actors.gateway``), looked up by name on each call."""

    def __init__(self, *, timeout: float = GATEWAY_TIMEOUT_S) -> None:
        self._timeout = timeout

    def _actor(self) -> Any:
        import ray

        from actors.gateway import GATEWAY_NAME, GATEWAY_NAMESPACE

        try:
            return ray.get_actor(GATEWAY_NAME, namespace=GATEWAY_NAMESPACE)
        except ValueError as exc:
            raise ServiceUnavailable(
                "the IB gateway actor is not running; start the platform with 'scizor up'"
            ) from exc

    async def contract_details(self, instrument: Instrument) -> dict[str, Any]:
        """IB's contract details of ``instrument`` (NotFound when IB has no such listing)."""
        import asyncio

        import ray

        ref = self._actor().contract_details.remote(instrument)
        try:
            return cast(dict[str, Any], await asyncio.wait_for(ref, timeout=self._timeout))
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, Exception):
                raise exc.cause from None
            raise
        except (TimeoutError, ray.exceptions.RayActorError) as exc:
            raise ServiceUnavailable(f"the IB gateway did not answer: {exc}") from exc

    def health(self) -> dict[str, Any]:
        """The gateway's own health; ok when connected and no bar stream is stale."""
        import ray

        health = cast(dict[str, Any], ray.get(self._actor().health.remote(), timeout=5))
        # A stale bar stream (a failed re-subscription) starves live runners: degraded.
        ok = bool(health.get("connected")) and not health.get("streams_stale")
        return {**health, "ok": ok}


async def add_listing(catalog: Any, gateway: Gateway, instrument: str) -> SymbolRecord:
    """Add one listing by canonical id (universe ``custom``) once IB confirms it.

    Raises:
        ValidationError: naming ``instrument`` if it is not ``SYMBOL.VENUE``, its venue is
            unknown, or IB has no such listing (nothing is added).
        ServiceUnavailable: if the gateway cannot be reached.
    """
    parsed = parse(instrument)
    try:
        place = venue(parsed.venue)
    except NotFound as exc:
        raise ValidationError(str(exc), field="instrument") from exc
    record = SymbolRecord(
        symbol=parsed.symbol, exchange=place.routing, primary_exchange=place.code,
        currency=place.currency, universe="custom",
    )  # fmt: skip
    try:
        details = await gateway.contract_details(record.instrument)
    except NotFound as exc:
        raise ValidationError(
            f"IB has no listing {parsed} ({place.currency}): {exc}; check the symbol and venue",
            field="instrument",
        ) from exc
    sec_type = str(details.get("sec_type") or "")
    verified = replace(
        record,
        con_id=int(details["con_id"]),
        name=str(details.get("long_name") or record.name),
        sec_type=SecType(sec_type) if sec_type in ("STK", "ETF") else record.sec_type,
        valid=True,
        last_verified=utcnow(),
    )

    def store() -> SymbolRecord:
        catalog.symbols.upsert_many([verified], at=verified.last_verified)
        return cast(SymbolRecord, catalog.symbols.get(record.id))

    return await anyio.to_thread.run_sync(store)
