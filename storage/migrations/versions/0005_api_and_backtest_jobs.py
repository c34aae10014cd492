"""The API's tokens and audit, and backtest jobs on the cluster.

- ``api_tokens``: scope ``research`` (between ``read`` and ``trade``) and ``expires_at``.
- ``audit_log``: the HTTP ``status`` answered and the ``request_id`` of each mutation.
- ``backtests``: status ``cancelled``; ``options`` (sizing, stops, mode, ranking, ...).
- ``backtest_results``: one row per instrument (or ``portfolio``) of a backtest job, unique
  per job and instrument, so a retried task cannot write a result twice.

Literal SQL, so the revision keeps producing the same schema whatever the models become.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPES_NEW = "scope IN ('read', 'research', 'trade', 'admin')"
SCOPES_OLD = "scope IN ('read', 'trade', 'admin')"
JOBS_NEW = "status IN ('queued', 'running', 'done', 'failed', 'cancelled')"
JOBS_OLD = "status IN ('queued', 'running', 'done', 'failed')"
UTC_TIME = sa.DateTime(timezone=True)


def _check(table: str, name: str, rule: str) -> None:
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")
        batch.create_check_constraint(op.f(f"ck_{table}_{name}"), rule)


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", UTC_TIME, nullable=True))
    _check("api_tokens", "scope_valid", SCOPES_NEW)
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("status", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("request_id", sa.String(64), nullable=True))
    with op.batch_alter_table("backtests") as batch:
        batch.add_column(sa.Column("options", sa.JSON(), nullable=True))
    op.execute("UPDATE backtests SET options = '{}'")
    with op.batch_alter_table("backtests") as batch:
        batch.alter_column("options", existing_type=sa.JSON(), nullable=False)
    _check("backtests", "status_valid", JOBS_NEW)
    op.create_table(
        "backtest_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("backtest_id", sa.Integer(), nullable=False),
        sa.Column("instrument", sa.String(48), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["backtest_id"], ["backtests.id"],
            name=op.f("fk_backtest_results_backtest_id_backtests"), ondelete="CASCADE",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backtest_results")),
        sa.UniqueConstraint(
            "backtest_id", "instrument", name=op.f("uq_backtest_results_backtest_id_instrument")
        ),
    )


def downgrade() -> None:
    """Revert this revision (research tokens and cancelled backtests would not fit: refused)."""
    connection = op.get_bind()
    for table, rule in (("api_tokens", SCOPES_OLD), ("backtests", JOBS_OLD)):
        if connection.execute(sa.text(f"SELECT count(*) FROM {table} WHERE NOT ({rule})")).scalar():
            from core.errors import StorageError

            raise StorageError(
                f"cannot revert revision 0005: {table} holds rows of a state 0004 lacks "
                "(research tokens or cancelled backtests); revoke or delete them first"
            )
    op.drop_table("backtest_results")
    _check("backtests", "status_valid", JOBS_OLD)
    with op.batch_alter_table("backtests") as batch:
        batch.drop_column("options")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("request_id")
        batch.drop_column("status")
    _check("api_tokens", "scope_valid", SCOPES_OLD)
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
