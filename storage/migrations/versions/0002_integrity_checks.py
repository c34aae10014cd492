"""Integrity rules the initial schema missed.

- ``orders``: a limit price is required for LMT, STP LMT and LOC orders, a stop price for STP
  and STP LMT orders (the rule :class:`core.types.Order` enforces), so a row that the
  repositories cannot read back can no longer be written by raw SQL.
- ``symbols.con_id`` is unique (NULLs allowed): one IB contract is one listing.
- ``positions.avg_cost`` is not negative.

Databases created by earlier versions may already hold rows that break these rules; the
upgrade then stops before changing anything and names those rows and the fix.

Literal SQL (not the models' helpers) so this revision keeps producing the same schema
whatever the models become later. ``batch_alter_table`` recreates the tables on SQLite
(which cannot add constraints in place); :func:`storage.catalog.migrate.upgrade` turns
SQLite's foreign-key enforcement off around the migration so the copy of ``orders`` keeps
its executions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.errors import StorageError

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIMIT_REQUIRED = "order_type NOT IN ('LMT', 'STP LMT', 'LOC') OR limit_price IS NOT NULL"
STOP_REQUIRED = "order_type NOT IN ('STP', 'STP LMT') OR stop_price IS NOT NULL"

# (what is wrong, query returning the offending rows, how to fix it)
_PRECHECKS = (
    (
        "orders without the limit price their order_type needs",
        f"SELECT order_ref FROM orders WHERE NOT ({LIMIT_REQUIRED}) ORDER BY id",
        "set limit_price on those orders, or delete them",
    ),
    (
        "orders without the stop price their order_type needs",
        f"SELECT order_ref FROM orders WHERE NOT ({STOP_REQUIRED}) ORDER BY id",
        "set stop_price on those orders, or delete them",
    ),
    (
        "symbols sharing one con_id",
        "SELECT con_id FROM symbols WHERE con_id IS NOT NULL GROUP BY con_id "
        "HAVING count(*) > 1 ORDER BY con_id",
        "set con_id to NULL on the wrong listings (then run scizor symbols validate)",
    ),
    (
        "positions with a negative avg_cost",
        "SELECT account || ':' || symbol FROM positions WHERE avg_cost < 0 ORDER BY id",
        "correct avg_cost (or delete the rows; reconciliation with the broker rewrites them)",
    ),
)


def _refuse_rows_that_break_the_new_rules() -> None:
    """Raise StorageError naming every row the new constraints would reject."""
    problems = []
    connection = op.get_bind()
    for what, query, fix in _PRECHECKS:
        rows = [str(r[0]) for r in connection.execute(sa.text(query))]
        if rows:
            shown = ", ".join(rows[:20]) + (f" and {len(rows) - 20} more" if len(rows) > 20 else "")
            problems.append(f"{len(rows)} {what} ({shown}): {fix}")
    if problems:
        raise StorageError(
            "cannot migrate the catalog to revision 0002: existing rows break its new rules; "
            "nothing was changed. " + "; ".join(problems)
        )


def upgrade() -> None:
    """Apply this revision."""
    _refuse_rows_that_break_the_new_rules()
    with op.batch_alter_table("orders") as batch:
        batch.create_check_constraint(op.f("ck_orders_limit_price_required"), LIMIT_REQUIRED)
        batch.create_check_constraint(op.f("ck_orders_stop_price_required"), STOP_REQUIRED)
    with op.batch_alter_table("symbols") as batch:
        batch.create_unique_constraint(op.f("uq_symbols_con_id"), ["con_id"])
    with op.batch_alter_table("positions") as batch:
        batch.create_check_constraint(op.f("ck_positions_avg_cost_nonnegative"), "avg_cost >= 0")


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("positions") as batch:
        batch.drop_constraint(op.f("ck_positions_avg_cost_nonnegative"), type_="check")
    with op.batch_alter_table("symbols") as batch:
        batch.drop_constraint(op.f("uq_symbols_con_id"), type_="unique")
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint(op.f("ck_orders_stop_price_required"), type_="check")
        batch.drop_constraint(op.f("ck_orders_limit_price_required"), type_="check")
