"""The risk manager as a Ray actor: one named, detached actor per cluster.

:class:`RiskManagerHost` opens the catalog from the settings and serves a
:class:`actors.risk_manager.RiskManager` over it; :data:`RiskManagerActor` is that class under
``ray.remote``. Like the gateway (:mod:`actors.gateway`) it is pinned to the head node by the
``scizor_head`` resource, and Ray restarts it after a crash: its limits and kill switch come
back from the catalog, so a halted manager restarts halted. Calls are serial (one at a time),
so a check never sees half a change of limits.

Example:
    >>> risk = get_risk_manager(settings)                                  # doctest: +SKIP
    >>> ray.get(risk.check.remote(order, RiskContext(now=utcnow()))).accepted
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import ray

from actors.gateway import HEAD_RESOURCE, NAMESPACE
from actors.risk_manager import RiskManager
from actors.risk_rules import Decision, RiskContext
from actors.risk_state import KillSwitchEvent
from core.settings import Settings
from core.types import Order

ACTOR_NAME = "scizor-risk-manager"


class RiskManagerHost:
    """The risk manager over the catalog named by ``settings`` (``SCIZOR_DATABASE_URL``).

    Args:
        settings: SCIZOR settings.
    """

    def __init__(self, settings: Settings) -> None:
        from storage.catalog import Catalog

        self._catalog = Catalog(settings.db.url)
        self._manager = RiskManager(self._catalog.risk)

    def check(self, order: Order, context: RiskContext) -> Decision:
        """See :meth:`RiskManager.check` (a rejection is recorded)."""
        return self._manager.check(order, context)

    def observe_equity(self, equity: Decimal) -> KillSwitchEvent | None:
        """See :meth:`RiskManager.observe_equity`."""
        return self._manager.observe_equity(equity)

    def emergency_stop(self, reason: str, by: str, flatten: bool = False) -> KillSwitchEvent:
        """See :meth:`RiskManager.emergency_stop`."""
        return self._manager.emergency_stop(reason, by=by, flatten=flatten)

    def reset(self, by: str, rebase: bool = False) -> KillSwitchEvent:
        """See :meth:`RiskManager.reset`."""
        return self._manager.reset(by=by, rebase=rebase)

    def set_limits(self, scope: str, limits: Mapping[str, Any], by: str) -> dict[str, Any]:
        """See :meth:`RiskManager.set_limits`; returns the book as a mapping."""
        return self._manager.set_limits(scope, limits, by=by).to_mapping()

    def reload(self) -> None:
        """Read limits and state again (after the HTTP API changed them)."""
        self._manager.reload()

    def limits(self) -> dict[str, Any]:
        """The limit book as ``{"global": {...}, "deployments": {...}}``."""
        return self._manager.limits().to_mapping()

    def state(self) -> dict[str, Any]:
        """The kill switch as a mapping (``KillSwitch.to_mapping``)."""
        return self._manager.state().to_mapping()

    def close(self) -> None:
        """Release the catalog's connections."""
        self._catalog.dispose()


RiskManagerActor = ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)(RiskManagerHost)


def get_risk_manager(
    settings: Settings, *, pin_to_head: bool = True, name: str = ACTOR_NAME,
    namespace: str = NAMESPACE,
) -> Any:  # fmt: skip
    """Return the handle of the cluster's risk-manager actor, creating it if it does not exist.

    Args:
        settings: SCIZOR settings (the catalog's URL).
        pin_to_head: Require the ``scizor_head`` resource (see :func:`actors.gateway.get_gateway`).
        name: Actor name (one risk manager per name and namespace).
        namespace: Ray namespace of the actor.
    """
    options: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "lifetime": "detached",
        "get_if_exists": True,
    }
    if pin_to_head:
        options["resources"] = {HEAD_RESOURCE: 0.001}
    return RiskManagerActor.options(**options).remote(settings)
