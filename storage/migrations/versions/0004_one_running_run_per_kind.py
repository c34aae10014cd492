"""One running collection run per kind, enforced by the database.

:meth:`storage.catalog.collection_runs.CollectionRunRepository.create` refuses a second run of
a kind while the first's lease holds, but two drivers starting at the same moment could both
pass that check (each reads before the other writes). A partial unique index on
``collection_runs.kind`` where ``status = 'running'`` makes the second insert fail instead.

Runs that would break it (several still marked running for one kind: drivers of earlier
versions that were killed, or raced) are closed first, keeping the newest of each kind
running, exactly as the next ``create`` of that kind would close them: their running items
become failed with an "interrupted" error, and the run is done if every item was done, else
failed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_collection_runs_kind_running"
RUNNING = "status = 'running'"
INTERRUPTED = "interrupted: the run's driver stopped before this item finished"
# Running runs with a newer running run of the same kind.
_SUPERSEDED = (
    "SELECT r.id FROM collection_runs r WHERE r.status = 'running' AND EXISTS "
    "(SELECT 1 FROM collection_runs n WHERE n.kind = r.kind AND n.status = 'running' "
    "AND n.id > r.id)"
)


def _close_superseded_runs() -> None:
    connection = op.get_bind()
    ids = [int(r[0]) for r in connection.execute(sa.text(_SUPERSEDED))]
    if not ids:
        return
    now = datetime.now(UTC)
    if connection.dialect.name == "sqlite":  # naive UTC, as the catalog's column type writes
        now = now.replace(tzinfo=None)
    chosen: sa.BindParameter[list[int]] = sa.bindparam("ids", expanding=True)
    connection.execute(
        sa.text(
            "UPDATE collection_items SET status = 'failed', finished_at = :now, error = :error "
            "WHERE status = 'running' AND run_id IN :ids"
        ).bindparams(chosen),
        {"now": now, "ids": ids, "error": INTERRUPTED},
    )
    connection.execute(
        sa.text(
            "UPDATE collection_runs SET finished_at = :now, lease_until = NULL, status = "
            "CASE WHEN EXISTS (SELECT 1 FROM collection_items i WHERE i.run_id = "
            "collection_runs.id AND i.status <> 'done') THEN 'failed' ELSE 'done' END "
            "WHERE id IN :ids"
        ).bindparams(chosen),
        {"now": now, "ids": ids},
    )


def upgrade() -> None:
    """Apply this revision."""
    _close_superseded_runs()
    op.create_index(
        INDEX,
        "collection_runs",
        ["kind"],
        unique=True,
        sqlite_where=sa.text(RUNNING),
        postgresql_where=sa.text(RUNNING),
    )


def downgrade() -> None:
    """Revert this revision (runs closed by the upgrade stay closed)."""
    op.drop_index(INDEX, table_name="collection_runs")
