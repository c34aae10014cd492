"""The risk manager: the pre-trade engine and the kill switch, kept in the catalog.

:class:`RiskManager` is a plain class over the catalog's risk repository
(:class:`storage.catalog.risk.RiskRepository`, or anything with its methods): it loads the
limit book and the kill switch when it starts, so a manager that restarts halted stays
halted; it persists every change of limits or state at once and records a risk event for
each (``rejected``, ``halted``, ``emergency_stop``, ``reset``, ``limits_changed``).
:data:`RiskManagerActor` is the same class as one named, detached Ray actor per cluster,
pinned to the head node like the gateway (:func:`get_risk_manager`).

Example:
    >>> manager = RiskManager(catalog.risk)                                # doctest: +SKIP
    >>> manager.check(order, RiskContext(now=utcnow(), last_prices={...})).accepted
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from actors.risk_limits import LimitBook, RiskLimits
from actors.risk_rules import Decision, RiskContext, RiskEngine, exchange_open
from actors.risk_state import KillSwitch, KillSwitchEvent
from core.errors import ValidationError
from core.types import Order, utcnow

__all__ = ["RiskManager", "RiskRepositoryLike", "scope_of"]

GLOBAL = "global"


class RiskRepositoryLike(Protocol):
    """What the manager needs of the catalog (``catalog.risk``)."""

    def book(self) -> dict[str, Any]: ...
    def set_many(
        self, scopes: Mapping[str, Mapping[str, Any]], *, by: str, at: datetime | None = None
    ) -> Any: ...
    def state(self) -> dict[str, Any] | None: ...
    def save_state(self, state: Mapping[str, Any], *, at: datetime | None = None) -> None: ...
    def add_event(
        self,
        kind: str,
        *,
        limit_name: str | None = None,
        detail: dict[str, Any] | None = None,
        order_ref: str | None = None,
        at: datetime | None = None,
    ) -> Any: ...


def scope_of(deployment_id: int | None) -> str:
    """``global`` for ``None``, else ``deployment:<id>``."""
    return GLOBAL if deployment_id is None else f"deployment:{int(deployment_id)}"


def _deployment_of(scope: str) -> int | None:
    if scope == GLOBAL:
        return None
    prefix, _, number = scope.partition(":")
    if prefix == "deployment" and number.isdigit() and int(number) > 0:
        return int(number)
    raise ValidationError(
        f"scope must be 'global' or 'deployment:<id>' (e.g. 'deployment:7'); got {scope!r}",
        field="scope",
    )


class RiskManager:
    """Checks orders, watches equity and holds the kill switch; every change is persisted.

    Args:
        repository: The catalog's risk repository.
        clock: Now, in UTC (tests pass a fixed one).
        session_open: ``(instrument, now) -> bool`` for ``trading_hours``.
        kill_switch: The switch to start with when the catalog holds none (its day start and
            zone); a saved one always wins.

    Raises:
        ValidationError: if the stored limits or state are not ones this version can read
            (corrupt data is refused, never ignored).
    """

    def __init__(
        self,
        repository: RiskRepositoryLike,
        *,
        clock: Callable[[], datetime] = utcnow,
        session_open: Callable[[str, datetime], bool] = exchange_open,
        kill_switch: KillSwitch | None = None,
    ) -> None:
        self._repo = repository
        self._clock = clock
        self._default_switch = kill_switch
        self.engine = RiskEngine(session_open=session_open)
        self.reload()

    def reload(self) -> None:
        """Read the limit book and the kill switch again (another process may have set them)."""
        self.engine.set_book(LimitBook.from_mapping(self._repo.book()))
        saved = self._repo.state()
        if saved is not None:
            self.engine.kill_switch = KillSwitch.from_mapping(saved)
        elif self._default_switch is not None:
            self.engine.kill_switch = KillSwitch.from_mapping(self._default_switch.to_mapping())

    def limits(self) -> LimitBook:
        """The limit book in force."""
        return self.engine.book

    def state(self) -> KillSwitch:
        """The kill switch (trading state, reason, equity marks)."""
        return self.engine.kill_switch

    def check(self, order: Order, context: RiskContext, *, record: bool = True) -> Decision:
        """Return every limit ``order`` breaks; record a ``rejected`` event if it breaks any.

        A context without an equity gets the kill switch's marks, so the loss limits are
        measured against what the manager observed.

        Args:
            order: The order about to be sent.
            context: Positions, prices and recent orders now.
            record: False for a dry run: the verdict only, nothing written.
        """
        if context.equity is None:
            context = context.with_marks(self.engine.kill_switch.marks)
        decision = self.engine.check(order, context)
        if record and not decision.accepted:
            self._repo.add_event(
                "rejected",
                limit_name=decision.breaches[0].limit,
                detail={
                    "instrument": order.instrument,
                    "side": str(order.side),
                    "quantity": str(order.quantity),
                    "limit_price": None if order.limit_price is None else str(order.limit_price),
                    "deployment_id": order.deployment_id,
                    "message": decision.message,
                    "breaches": [b.to_mapping() for b in decision.breaches],
                },
                order_ref=order.order_ref or None,
                at=context.now,
            )
        return decision

    def observe_equity(
        self, equity: Decimal, now: datetime | None = None
    ) -> KillSwitchEvent | None:
        """Feed the account's equity to the kill switch; persist it; record a trip as ``halted``.

        Returns:
            The ``halted`` event if this observation tripped the switch, else ``None``.
        """
        at = now or self._clock()
        event = self.engine.observe_equity(equity, at)
        self._save(event, at)
        return event

    def emergency_stop(self, reason: str, *, by: str, flatten: bool = False) -> KillSwitchEvent:
        """Halt trading now (persisted; an ``emergency_stop`` event)."""
        at = self._clock()
        event = self.engine.kill_switch.emergency_stop(reason, by=by, now=at, flatten=flatten)
        self._save(event, at)
        return event

    def reset(self, *, by: str, rebase: bool = False) -> KillSwitchEvent:
        """Let orders through again (persisted; a ``reset`` event).

        Raises:
            Conflict: if trading is not halted.
        """
        at = self._clock()
        event = self.engine.kill_switch.reset(by=by, now=at, rebase=rebase)
        self._save(event, at)
        return event

    def set_limits(self, scope: str, limits: Mapping[str, Any], *, by: str) -> LimitBook:
        """Replace one scope's limits (``global`` or ``deployment:<id>``); see :meth:`set_book`.

        Raises:
            ValidationError: naming ``scope`` or ``limits.<field>``; nothing is written.
        """
        deployment = _deployment_of(scope)
        parsed = RiskLimits.from_mapping(limits, where="limits")
        return self._replace({deployment: parsed}, by=by)

    def set_book(self, book: Mapping[str, Any], *, by: str) -> LimitBook:
        """Replace the scopes ``book`` names (``{"global": {...}, "deployments": {"7": {...}}}``).

        Scopes it leaves out keep their limits; a scope given ``{}`` has none. All or nothing,
        recorded as one ``limits_changed`` event with each scope's limits before and after.

        Raises:
            ValidationError: naming the field (``limits.deployments.7.max_position``).
        """
        parsed = LimitBook.from_mapping(book)
        changes: dict[int | None, RiskLimits] = {d: lim for d, lim in parsed.per_deployment.items()}
        if "global" in book:
            changes[None] = parsed.global_
        return self._replace(changes, by=by)

    def _replace(self, changes: Mapping[int | None, RiskLimits], *, by: str) -> LimitBook:
        if not by.strip():
            raise ValidationError("a change of limits needs who made it", field="by")
        at = self._clock()
        self.reload()
        old = self.engine.book
        before = {scope_of(d): _limits_in(old, d).to_mapping() for d in changes}
        after = {scope_of(d): lim.to_mapping() for d, lim in changes.items()}
        self._repo.set_many(after, by=by, at=at)
        per = {**old.per_deployment, **{d: lim for d, lim in changes.items() if d is not None}}
        book = LimitBook(global_=changes.get(None, old.global_), per_deployment=per)
        self.engine.set_book(book)
        self._repo.add_event(
            "limits_changed", detail={"by": by, "before": before, "after": after}, at=at
        )
        return book

    def _save(self, event: KillSwitchEvent | None, at: datetime) -> None:
        self._repo.save_state(self.engine.kill_switch.to_mapping(), at=at)
        if event is not None:
            self._repo.add_event(
                event.kind, limit_name=event.limit, detail=event.to_mapping(), at=event.at
            )


def _limits_in(book: LimitBook, deployment: int | None) -> RiskLimits:
    if deployment is None:
        return book.global_
    return book.per_deployment.get(deployment, RiskLimits())
