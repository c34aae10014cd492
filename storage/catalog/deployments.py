"""Deployments: what a strategy runner trades, its status, and the state it restarts from.

A deployment names a strategy (a library name, or a rule spec kept as its document), its
parameters, canonical instrument ids, the bar size, the capital allocated, the IB account
and the mode (paper or live). Status moves follow ``DEPLOYMENT_TRANSITIONS`` (an illegal
move is a :class:`~core.errors.Conflict`). The runner's state is one JSON document saved
after every bar, so a restarted runner resumes where it stopped. The strategy's parameters
are checked by the strategy itself (``actors.deployments``): storage does not import
strategies.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.barsize import BAR_SIZES
from core.errors import Conflict, NotFound, ValidationError
from core.instruments import parse
from core.types import TradingMode, utcnow
from storage.catalog.db import Database
from storage.catalog.models import DeploymentRow
from storage.catalog.records import DEPLOYMENT_TRANSITIONS, DeploymentRecord, DeploymentStatus
from storage.catalog.sqltypes import to_money

ACCOUNT_LENGTH = 32


def _record(row: DeploymentRow) -> DeploymentRecord:
    return DeploymentRecord(
        id=row.id,
        strategy=row.strategy,
        params=dict(row.params),
        instruments=list(row.instruments),
        mode=TradingMode(row.mode),
        status=DeploymentStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        bar_size=row.bar_size,
        capital=row.capital,
        account=row.account,
        rule_spec=dict(row.rule_spec) if row.rule_spec else None,
        runner_state=dict(row.runner_state) if row.runner_state else None,
        started_at=row.started_at,
        stopped_at=row.stopped_at,
    )


class DeploymentRepository:
    """Strategies deployed to paper or live trading, with a status transition table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        strategy: str,
        *,
        instruments: Sequence[str],
        mode: TradingMode | str = TradingMode.PAPER,
        params: Mapping[str, Any] | None = None,
        bar_size: str = "1d",
        capital: Decimal | int | float | str | None = None,
        account: str = "",
        rule_spec: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> DeploymentRecord:
        """Create a deployment in status ``created``.

        Args:
            strategy: a library strategy's name, or the rule spec's name.
            instruments: canonical ids (``AAPL.NASDAQ``); duplicates are dropped.
            mode: ``paper`` or ``live``.
            params: the strategy's parameters (JSON values).
            bar_size: one of ``1s 5s 30s 1m 5m 15m 30m 1h 1d``.
            capital: the money allocated (> 0).
            account: the IB account (at most 32 characters).
            rule_spec: the rule-spec document when the strategy is one.
            at: the creation time (now by default).

        Raises:
            ValidationError: naming the field: no instruments or one that is not a
                canonical id, an unknown mode or bar size, a capital that is not > 0, an
                account that is not a short string.
        """
        if not instruments:
            raise ValidationError("a deployment needs at least one instrument", field="instruments")
        now = at or utcnow()
        row = DeploymentRow(
            strategy=_strategy(strategy),
            params=dict(params or {}),
            instruments=_ids(instruments),
            mode=_mode(mode),
            status=DeploymentStatus.CREATED.value,
            created_at=now,
            updated_at=now,
            bar_size=_bar_size(bar_size),
            capital=_capital(capital),
            account=_account(account),
            rule_spec=dict(rule_spec) if rule_spec is not None else None,
        )
        with self._db.transaction() as session:
            session.add(row)
            session.flush()
            return _record(row)

    def get(self, deployment_id: int) -> DeploymentRecord:
        """Return a deployment.

        Raises:
            NotFound: if there is no deployment ``deployment_id``.
        """
        with self._db.transaction() as session:
            return _record(self._row(session, deployment_id))

    def list(self, *, status: DeploymentStatus | None = None) -> builtins.list[DeploymentRecord]:
        """Return deployments by id, optionally only those in ``status``."""
        stmt = select(DeploymentRow).order_by(DeploymentRow.id)
        if status is not None:
            stmt = stmt.where(DeploymentRow.status == DeploymentStatus(status).value)
        with self._db.transaction() as session:
            return [_record(row) for row in session.scalars(stmt)]

    def set_status(
        self, deployment_id: int, status: DeploymentStatus | str, *, at: datetime | None = None
    ) -> DeploymentRecord:
        """Move a deployment to ``status``; ``running`` stamps ``started_at``, ``stopped``
        stamps ``stopped_at``.

        Raises:
            NotFound: if there is no deployment ``deployment_id``.
            Conflict: if the move is not allowed (e.g. created -> paused).
        """
        new = DeploymentStatus(status)
        now = at or utcnow()
        with self._db.transaction() as session:
            row = self._row(session, deployment_id)
            current = DeploymentStatus(row.status)
            if new != current and new not in DEPLOYMENT_TRANSITIONS[current]:
                raise Conflict(f"deployment {deployment_id} cannot move from {current} to {new}")
            if new != current and new == DeploymentStatus.RUNNING and current != _PAUSED:
                row.started_at, row.stopped_at = now, None
            if new != current and new == DeploymentStatus.STOPPED:
                row.stopped_at = now
            row.status, row.updated_at = new.value, now
            session.flush()
            return _record(row)

    def save_runner_state(
        self, deployment_id: int, state: Mapping[str, Any], *, at: datetime | None = None
    ) -> None:
        """Replace the runner's saved state of a deployment (one JSON document).

        Raises:
            NotFound: if there is no deployment ``deployment_id``.
            ValidationError: if ``state`` is not a mapping.
        """
        if not isinstance(state, Mapping):
            raise ValidationError(
                f"runner state must be a mapping, got {type(state).__name__}",
                field="runner_state",
            )
        with self._db.transaction() as session:
            row = self._row(session, deployment_id)
            row.runner_state = dict(state)
            row.updated_at = at or utcnow()

    def runner_state(self, deployment_id: int) -> dict[str, Any] | None:
        """Return the runner's saved state (None before it saved any).

        Raises:
            NotFound: if there is no deployment ``deployment_id``.
        """
        return self.get(deployment_id).runner_state

    @staticmethod
    def _row(session: Session, deployment_id: int) -> DeploymentRow:
        row = session.get(DeploymentRow, deployment_id)
        if row is None:
            raise NotFound(f"deployment {deployment_id} does not exist")
        return row


_PAUSED = DeploymentStatus.PAUSED


def _strategy(strategy: str) -> str:
    if not isinstance(strategy, str) or not 0 < len(strategy.strip()) <= 100:
        raise ValidationError(
            f"strategy must be a name of 1 to 100 characters, got {strategy!r}", field="strategy"
        )
    return strategy.strip()


def _ids(instruments: Sequence[str]) -> list[str]:
    """Canonical ids of ``instruments``, in order, without duplicates."""
    if isinstance(instruments, str):
        raise ValidationError(
            f"instruments must be a list of ids, got the string {instruments!r}",
            field="instruments",
        )
    return list(dict.fromkeys(str(parse(i, field="instruments")) for i in instruments))


def _mode(mode: TradingMode | str) -> str:
    try:
        return TradingMode(mode).value
    except ValueError:
        raise ValidationError(
            f"mode must be one of {', '.join(m.value for m in TradingMode)}; got {mode!r}",
            field="mode",
        ) from None


def _bar_size(bar_size: str) -> str:
    if bar_size not in BAR_SIZES:
        raise ValidationError(
            f"bar_size must be one of {' '.join(BAR_SIZES)}; got {bar_size!r}", field="bar_size"
        )
    return bar_size


def _capital(capital: Decimal | int | float | str | None) -> Decimal | None:
    if capital is None:
        return None
    value = to_money(capital, field="capital")
    if not value > 0:
        raise ValidationError(f"capital must be > 0, got {capital!r}", field="capital")
    return value


def _account(account: str) -> str:
    if not isinstance(account, str) or len(account.strip()) > ACCOUNT_LENGTH:
        raise ValidationError(
            f"account must be an IB account id of at most {ACCOUNT_LENGTH} characters, "
            f"got {account!r}",
            field="account",
        )
    return account.strip()
