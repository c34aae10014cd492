"""Optimization jobs on the cluster.

``optimizations``: status ``cancelled``; the study ``spec`` (the JSON it was submitted with);
``progress`` (0..1) with the ``n_complete`` and ``n_failed`` trial counts; ``artifacts`` (the
Ray Job, timings, sweep figures); ``started_at``; an index on ``status``.

Literal SQL, so the revision keeps producing the same schema whatever the models become.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOBS_NEW = "status IN ('queued', 'running', 'done', 'failed', 'cancelled')"
JOBS_OLD = "status IN ('queued', 'running', 'done', 'failed')"
UTC_TIME = sa.DateTime(timezone=True)
TABLE = "optimizations"


def _check(name: str, rule: str) -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_constraint(op.f(f"ck_{TABLE}_{name}"), type_="check")
        batch.create_check_constraint(op.f(f"ck_{TABLE}_{name}"), rule)


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("spec", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("progress", sa.Float(), nullable=True))
        batch.add_column(sa.Column("n_complete", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("n_failed", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("artifacts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("started_at", UTC_TIME, nullable=True))
    op.execute(
        "UPDATE optimizations SET spec = '{}', progress = 0, n_complete = 0, n_failed = 0, "
        "artifacts = '{}'"
    )
    with op.batch_alter_table(TABLE) as batch:
        for name, kind in (("spec", sa.JSON()), ("progress", sa.Float()),
                           ("n_complete", sa.Integer()), ("n_failed", sa.Integer()),
                           ("artifacts", sa.JSON())):  # fmt: skip
            batch.alter_column(name, existing_type=kind, nullable=False)
        batch.create_check_constraint(
            op.f("ck_optimizations_progress_range"), "progress >= 0 AND progress <= 1"
        )
        batch.create_index(op.f("ix_optimizations_status"), ["status"])
    _check("status_valid", JOBS_NEW)


def downgrade() -> None:
    """Revert this revision (a cancelled optimization would not fit: refused)."""
    connection = op.get_bind()
    if connection.execute(sa.text(f"SELECT count(*) FROM {TABLE} WHERE NOT ({JOBS_OLD})")).scalar():
        from core.errors import StorageError

        raise StorageError(
            "cannot revert revision 0006: optimizations holds cancelled rows, a state 0005 "
            "lacks; delete them first"
        )
    _check("status_valid", JOBS_OLD)
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_index(op.f("ix_optimizations_status"))
        batch.drop_constraint(op.f("ck_optimizations_progress_range"), type_="check")
        for name in ("started_at", "artifacts", "n_failed", "n_complete", "progress", "spec"):
            batch.drop_column(name)
