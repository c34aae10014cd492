"""The services routes call that are not plain catalog reads: IB lookups, adding listings,
and trading through the cluster's actors.

:class:`RayGateway` reaches the cluster's one gateway actor by name (it never opens a
connection of its own); :class:`NoGateway` stands in where there is none (unit tests).
:class:`RayTrading` is the order manager, the deployments' runners and the emergency stop
(:mod:`actors.trading_ops`) over their actors; :class:`NoTrading` answers 503.
:func:`add_listing` is the HTTP twin of ``scizor symbols add`` (``cluster.symbols``, which
``serve`` may not import): the listing is asked of IB through the gateway, then stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol, cast

import anyio

from core.errors import NotFound, ValidationError
from core.instruments import parse, venue
from core.settings import Settings
from core.types import Fill, Instrument, Order, SecType, utcnow
from serve.errors import ServiceUnavailable
from storage.catalog.records import OrderRecord, SymbolRecord

GATEWAY_TIMEOUT_S = 30.0
TRADING_TIMEOUT_S = 120.0


class Gateway(Protocol):
    """IB through the gateway actor."""

    async def contract_details(self, instrument: Instrument) -> dict[str, Any]: ...

    async def account_summary(self) -> dict[str, dict[str, str]]: ...

    def health(self) -> dict[str, Any]: ...


class NoGateway:
    """No gateway in this process: every call is a 503."""

    async def contract_details(self, instrument: Instrument) -> dict[str, Any]:
        raise ServiceUnavailable("no IB gateway is configured for this API")

    async def account_summary(self) -> dict[str, dict[str, str]]:
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
        ref = self._actor().contract_details.remote(instrument)
        return cast(dict[str, Any], await self._await(ref))

    async def account_summary(self) -> dict[str, dict[str, str]]:
        """The gateway's account values, ``{account: {tag: value}}``."""
        summary = await self._await(self._actor().account_summary.remote())
        return cast(dict[str, dict[str, str]], summary)

    async def _await(self, ref: Any) -> Any:
        import asyncio

        import ray

        try:
            return await asyncio.wait_for(ref, timeout=self._timeout)
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


class Trading(Protocol):
    """Trading through the cluster's actors: the order manager, the deployments' runners and
    the emergency stop. Calls block (routes run them in the thread pool)."""

    def submit(self, order: Order) -> Any: ...

    def cancel(self, order_ref: str) -> OrderRecord: ...

    def orders(self, *, open_only: bool = False, deployment_id: int | None = None,
               instrument: str | None = None) -> list[OrderRecord]: ...  # fmt: skip

    def order(self, order_ref: str) -> OrderRecord: ...

    def executions(self, *, order_ref: str | None = None,
                   since: datetime | None = None) -> list[Fill]: ...  # fmt: skip

    def positions(self, *, include_flat: bool = False) -> list[Any]: ...

    def start(self, deployment_id: int, *, confirm_live: bool = False) -> dict[str, Any]: ...

    def pause(self, deployment_id: int) -> dict[str, Any]: ...

    def resume(self, deployment_id: int) -> dict[str, Any]: ...

    def stop(self, deployment_id: int, *, flatten: bool = False) -> dict[str, Any]: ...

    def emergency_stop(self, *, reason: str, by: str, flatten: bool) -> dict[str, Any]: ...

    def reset(self, *, by: str) -> dict[str, Any]: ...

    def limits_changed(self) -> None: ...


class NoTrading:
    """No trading actors behind this API: every call is a 503 (a change of limits is only
    written to the catalog, which the risk manager reads when it starts)."""

    def __getattr__(self, name: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise ServiceUnavailable("no trading actors are configured for this API")

        return refuse

    def limits_changed(self) -> None:
        return None


class RayTrading:
    """:class:`Trading` over the cluster's order-manager and runner actors (created on first
    use if missing) and :mod:`actors.trading_ops`.

    Args:
        settings: The replica's settings (the actors open the same catalog).
        timeout: Seconds one call to an actor may take.
    """

    def __init__(self, settings: Settings, *, timeout: float = TRADING_TIMEOUT_S) -> None:
        self._settings = settings
        self._timeout = timeout

    def _om(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from actors.order_actor import get_order_manager

        handle = get_order_manager(self._settings)
        return _unwrapped(lambda: getattr(handle, method).remote(*args, **kwargs), self._timeout,
                          what="the order manager")  # fmt: skip

    def submit(self, order: Order) -> Any:
        """See :meth:`actors.order_manager.OrderManager.submit` (a Submission)."""
        return self._om("submit", order)

    def cancel(self, order_ref: str) -> OrderRecord:
        """See :meth:`actors.order_manager.OrderManager.cancel`."""
        return cast(OrderRecord, self._om("cancel", order_ref))

    def orders(self, *, open_only: bool = False, deployment_id: int | None = None,
               instrument: str | None = None) -> list[OrderRecord]:  # fmt: skip
        """Stored orders, oldest first."""
        return cast(list[OrderRecord], self._om("orders", open_only, deployment_id, instrument))

    def order(self, order_ref: str) -> OrderRecord:
        """One stored order (NotFound if none has ``order_ref``)."""
        return cast(OrderRecord, self._om("order", order_ref))

    def executions(self, *, order_ref: str | None = None,
                   since: datetime | None = None) -> list[Fill]:  # fmt: skip
        """Stored fills in time order."""
        return cast(list[Fill], self._om("executions", order_ref, since))

    def positions(self, *, include_flat: bool = False) -> list[Any]:
        """Positions from the stored executions (``PositionState``), marked."""
        return cast(list[Any], self._om("positions", include_flat))

    def _lifecycle(self, call: Any) -> dict[str, Any]:
        return cast(dict[str, Any], _unwrapped(call, None, what="the deployment's runner"))

    def start(self, deployment_id: int, *, confirm_live: bool = False) -> dict[str, Any]:
        """See :func:`actors.deployments.start_deployment`."""
        from actors.deployments import start_deployment

        return self._lifecycle(
            lambda: start_deployment(self._settings, deployment_id, confirm_live=confirm_live)
        )

    def pause(self, deployment_id: int) -> dict[str, Any]:
        """See :func:`actors.deployments.pause_deployment`."""
        from actors.deployments import pause_deployment

        return self._lifecycle(lambda: pause_deployment(self._settings, deployment_id))

    def resume(self, deployment_id: int) -> dict[str, Any]:
        """See :func:`actors.deployments.resume_deployment`."""
        from actors.deployments import resume_deployment

        return self._lifecycle(lambda: resume_deployment(self._settings, deployment_id))

    def stop(self, deployment_id: int, *, flatten: bool = False) -> dict[str, Any]:
        """See :func:`actors.deployments.stop_deployment`."""
        from actors.deployments import stop_deployment

        return self._lifecycle(
            lambda: stop_deployment(self._settings, deployment_id, flatten=flatten)
        )

    def emergency_stop(self, *, reason: str, by: str, flatten: bool) -> dict[str, Any]:
        """See :func:`actors.trading_ops.emergency_stop`."""
        from actors import trading_ops

        return self._lifecycle(
            lambda: trading_ops.emergency_stop(self._settings, reason, by, flatten)
        )

    def reset(self, *, by: str) -> dict[str, Any]:
        """See :func:`actors.trading_ops.reset`."""
        from actors import trading_ops

        return self._lifecycle(lambda: trading_ops.reset(self._settings, by))

    def limits_changed(self) -> None:
        """Make the risk-manager actor read the limits the API just wrote."""
        from actors import trading_ops

        _unwrapped(lambda: trading_ops.reload_risk(self._settings), None,
                   what="the risk manager")  # fmt: skip


def _unwrapped(call: Callable[[], Any], timeout: float | None, *, what: str) -> Any:
    """Run ``call`` (an object ref, waited for up to ``timeout``, or a blocking result);
    raise an actor's own error as itself and an unreachable actor as a 503."""
    import ray

    try:
        result = call()
        if isinstance(result, ray.ObjectRef):
            result = ray.get(result, timeout=timeout)
        return result
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, Exception):
            raise exc.cause from None
        raise
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError) as exc:
        raise ServiceUnavailable(f"{what} did not answer: {exc}") from exc
