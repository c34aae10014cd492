"""Deployments carry their whole spec and their strategy runner's state.

``deployments`` gains:

- ``bar_size`` (one of SCIZOR's bar sizes; existing rows get ``1d``);
- ``capital`` (the money allocated, > 0; NULL for rows from before this revision, which
  cannot start until given one);
- ``account`` (the IB account it trades; ``''`` for existing rows);
- ``rule_spec`` (the rule-spec document when the strategy is one, else NULL);
- ``runner_state`` (the runner's JSON state: last bar and target per instrument, see
  ``actors.runner_state``; NULL until the runner first saves it);
- ``started_at`` and ``stopped_at``.

The downgrade drops them, and refuses when a deployment trades a rule spec: without its
document the old schema cannot say what the deployment runs.

Literal SQL, so the revision keeps producing the same schema whatever the models become.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 09:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "deployments"
UTC_TIME = sa.DateTime(timezone=True)
BAR_SIZES = "bar_size IN ('1s', '5s', '30s', '1m', '5m', '15m', '30m', '1h', '1d')"
CAPITAL = "capital IS NULL OR capital > 0"


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("bar_size", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("capital", sa.Numeric(precision=20, scale=8), nullable=True))
        batch.add_column(sa.Column("account", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("rule_spec", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("runner_state", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("started_at", UTC_TIME, nullable=True))
        batch.add_column(sa.Column("stopped_at", UTC_TIME, nullable=True))
    op.execute(f"UPDATE {TABLE} SET bar_size = '1d', account = ''")
    with op.batch_alter_table(TABLE) as batch:
        batch.alter_column("bar_size", existing_type=sa.String(length=8), nullable=False)
        batch.alter_column("account", existing_type=sa.String(length=32), nullable=False)
        batch.create_check_constraint(op.f("ck_deployments_bar_size_valid"), BAR_SIZES)
        batch.create_check_constraint(op.f("ck_deployments_capital_positive"), CAPITAL)


def downgrade() -> None:
    """Revert this revision (refused while a deployment trades a rule spec)."""
    specs = (
        op.get_bind()
        .execute(
            sa.text(f"SELECT id, rule_spec FROM {TABLE} WHERE rule_spec IS NOT NULL ORDER BY id")
        )
        .all()
    )
    # A JSON null may be stored as the text 'null': only real documents count.
    refused = [row[0] for row in specs if row[1] not in (None, "null")]
    if refused:
        from core.errors import StorageError

        raise StorageError(
            f"cannot revert revision 0008: deployments {refused} trade rule specs that 0007 "
            "cannot hold; stop them and create library deployments instead"
        )
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_constraint(op.f("ck_deployments_capital_positive"), type_="check")
        batch.drop_constraint(op.f("ck_deployments_bar_size_valid"), type_="check")
        for name in (
            "stopped_at",
            "started_at",
            "runner_state",
            "rule_spec",
            "account",
            "capital",
            "bar_size",
        ):
            batch.drop_column(name)
