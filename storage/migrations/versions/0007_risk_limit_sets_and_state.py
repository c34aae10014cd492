"""The risk manager's limits per scope, and its kill-switch state.

- ``risk_limits``: one row per scope (``global`` or ``deployment:<id>``) holding that scope's
  whole limits as JSON (the layout of ``actors.risk_limits.RiskLimits.to_mapping``), with
  ``updated_at`` and ``updated_by``; unique per scope. It was one row per named value.
- ``risk_state``: one row (``id = 1``) holding the kill switch's state as JSON.

Existing named values move into their scope's row: a name that is a limit of this version
(with a value that limit takes) becomes that limit; any other is kept under the row's
``legacy`` key, so nothing is lost. The downgrade puts them back as named values, and
refuses when it cannot: allowed instruments, a name set in two scopes (the old table is
unique by name), or a halted kill switch (the old schema has nowhere to keep it).

Literal SQL, so the revision keeps producing the same schema whatever the models become.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 05:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
BY = "migration 0007"
# The limits of this version (actors.risk_limits.RiskLimits), frozen here: the revision must
# not change when that class does.
AMOUNTS = (
    "max_order_quantity", "max_order_notional", "max_position", "max_gross_exposure",
    "max_net_exposure", "max_daily_loss", "max_drawdown_pct", "price_band_pct",
)  # fmt: skip
FIELDS = (*AMOUNTS[:5], "max_orders_per_minute", "allowed_instruments", "trading_hours",
          *AMOUNTS[5:])  # fmt: skip

OLD = sa.table(
    "risk_limits",
    sa.column("name", sa.String),
    sa.column("value", sa.String),  # read as text (or Decimal): no float rounding
    sa.column("scope", sa.String),
    sa.column("updated_at", UTC_TIME),
)
NEW = sa.table(
    "risk_limits",
    sa.column("scope", sa.String),
    sa.column("limits", sa.JSON),
    sa.column("updated_at", UTC_TIME),
    sa.column("updated_by", sa.String),
)
STATE = sa.table("risk_state", sa.column("state", sa.JSON))


def _utc(value: Any) -> datetime:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(when, datetime)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _stored(value: datetime) -> datetime:
    # SQLite has no zones: the catalog writes naive UTC there (storage.catalog.sqltypes).
    return value.replace(tzinfo=None) if op.get_bind().dialect.name == "sqlite" else value


def _plain(value: Decimal) -> str:
    """``50000.00000000`` (PostgreSQL) or ``50000.0`` (SQLite) -> ``50000``."""
    return format(value.normalize(), "f")


def _limit(name: str, value: Decimal) -> Any:
    """The value of limit ``name`` for a stored number, or None when it takes no such value."""
    if name in AMOUNTS and value >= 0:
        return _plain(value)
    if name == "max_orders_per_minute" and value >= 0 and value == value.to_integral_value():
        return int(value)
    if name == "trading_hours" and value in (0, 1):
        return bool(value)
    return None


def _create_new() -> None:
    op.create_table(
        "risk_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_limits")),
        sa.UniqueConstraint("scope", name=op.f("uq_risk_limits_scope")),
    )


def _create_old() -> None:
    op.create_table(
        "risk_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_limits")),
        sa.UniqueConstraint("name", name=op.f("uq_risk_limits_name")),
    )


def upgrade() -> None:
    """Apply this revision."""
    rows = op.get_bind().execute(sa.select(OLD).order_by(OLD.c.scope, OLD.c.name)).all()
    scopes: dict[str, dict[str, Any]] = {}
    for name, value, scope, updated_at in rows:
        entry = scopes.setdefault(
            scope, {"limits": dict.fromkeys(FIELDS), "legacy": {}, "at": _utc(updated_at)}
        )
        entry["limits"]["trading_hours"] = entry["limits"]["trading_hours"] or False
        entry["at"] = max(entry["at"], _utc(updated_at))
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            number = Decimal("NaN")
        known = _limit(name, number) if name in FIELDS and number.is_finite() else None
        if known is None:
            entry["legacy"][name] = _plain(number) if number.is_finite() else str(value)
        else:
            entry["limits"][name] = known
    op.drop_table("risk_limits")
    _create_new()
    op.bulk_insert(NEW, [
        {"scope": scope, "updated_at": _stored(e["at"]), "updated_by": BY,
         "limits": {**e["limits"], **({"legacy": e["legacy"]} if e["legacy"] else {})}}
        for scope, e in scopes.items()
    ])  # fmt: skip
    op.create_table(
        "risk_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_risk_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_state")),
    )


def _refuse(why: str) -> None:
    from core.errors import StorageError

    raise StorageError(f"cannot revert revision 0007: {why}")


def _named_values(scope: str, limits: dict[str, Any]) -> list[tuple[str, str]]:
    values: list[tuple[str, str]] = []
    for name, value in limits.items():
        if name == "legacy":
            values += [(str(k), str(v)) for k, v in dict(value or {}).items()]
        elif name == "allowed_instruments" and value is not None:
            _refuse(f"scope {scope!r} allows only some instruments, which 0006 cannot store")
        elif name == "trading_hours":
            if value:
                values.append((name, "1"))
        elif value is not None:
            values.append((name, str(value)))
    return values


def downgrade() -> None:
    """Revert this revision (refused when the limits or the state would not fit 0006)."""
    connection = op.get_bind()
    for (state,) in connection.execute(sa.select(STATE)):
        if (state or {}).get("state") == "HALTED":
            _refuse("trading is halted and 0006 cannot keep the kill switch; reset it first")
    sqlite = connection.dialect.name == "sqlite"  # binds floats there (Decimal warns)
    new = connection.execute(sa.select(NEW).order_by(NEW.c.scope)).all()
    old: dict[str, dict[str, Any]] = {}
    for scope, limits, updated_at, _ in new:
        for name, value in _named_values(scope, dict(limits or {})):
            if name in old:
                _refuse(
                    f"{name} is set in scopes {old[name]['scope']!r} and {scope!r}; 0006 keeps "
                    "one value per name: clear one of them first"
                )
            number = Decimal(value)
            old[name] = {"name": name, "value": float(number) if sqlite else number, "scope": scope,
                         "updated_at": _stored(_utc(updated_at))}  # fmt: skip
    op.drop_table("risk_state")
    op.drop_table("risk_limits")
    _create_old()
    table = sa.table(
        "risk_limits", sa.column("name", sa.String), sa.column("value", sa.Numeric(20, 8)),
        sa.column("scope", sa.String), sa.column("updated_at", UTC_TIME),
    )  # fmt: skip
    op.bulk_insert(table, list(old.values()))
