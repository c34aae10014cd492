"""Initial catalog schema: every table of the SQL catalog.

Written with plain SQLAlchemy types (not the models' TypeDecorators) so this revision
keeps producing the same schema whatever the models become later.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 04:29:14.873839
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "scope IN ('read', 'trade', 'admin')", name=op.f("ck_api_tokens_scope_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_time"), "audit_log", ["time"], unique=False)

    op.create_table(
        "backtests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=100), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("symbols", sa.JSON(), nullable=False),
        sa.Column("bar_size", sa.String(length=8), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("costs", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("artifacts", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')",
            name=op.f("ck_backtests_status_valid"),
        ),
        sa.CheckConstraint(
            "progress >= 0 AND progress <= 1", name=op.f("ck_backtests_progress_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backtests")),
    )
    op.create_index(op.f("ix_backtests_status"), "backtests", ["status"], unique=False)
    op.create_index(op.f("ix_backtests_strategy"), "backtests", ["strategy"], unique=False)

    op.create_table(
        "collection_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'done', 'failed')", name=op.f("ck_collection_runs_status_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_runs")),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=100), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("symbols", sa.JSON(), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("mode IN ('paper', 'live')", name=op.f("ck_deployments_mode_valid")),
        sa.CheckConstraint(
            "status IN ('created', 'running', 'paused', 'stopped', 'failed')",
            name=op.f("ck_deployments_status_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
    )
    op.create_index(op.f("ix_deployments_status"), "deployments", ["status"], unique=False)

    op.create_table(
        "optimizations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_name", sa.String(length=200), nullable=False),
        sa.Column("strategy", sa.String(length=100), nullable=False),
        sa.Column("space", sa.JSON(), nullable=False),
        sa.Column("objective", sa.String(length=64), nullable=False),
        sa.Column("n_trials", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("best_params", sa.JSON(), nullable=True),
        sa.Column("best_value", sa.Float(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')",
            name=op.f("ck_optimizations_status_valid"),
        ),
        sa.CheckConstraint("n_trials > 0", name=op.f("ck_optimizations_n_trials_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_optimizations")),
        sa.UniqueConstraint("study_name", name=op.f("uq_optimizations_study_name")),
    )
    op.create_table(
        "positions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("avg_cost", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_positions")),
        sa.UniqueConstraint("account", "symbol", name=op.f("uq_positions_account_symbol")),
    )
    op.create_table(
        "risk_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("limit_name", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("order_ref", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_events")),
    )
    op.create_index(op.f("ix_risk_events_time"), "risk_events", ["time"], unique=False)

    op.create_table(
        "risk_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_limits")),
        sa.UniqueConstraint("name", name=op.f("uq_risk_limits_name")),
    )
    op.create_table(
        "strategies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('library', 'rule_spec')", name=op.f("ck_strategies_kind_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strategies")),
        sa.UniqueConstraint("name", name=op.f("uq_strategies_name")),
    )
    op.create_table(
        "symbols",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("sec_type", sa.String(length=8), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("primary_exchange", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("con_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("universe", sa.String(length=64), nullable=True),
        sa.Column("valid", sa.Boolean(), nullable=True),
        sa.Column("last_verified", sa.DateTime(timezone=True), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_symbols")),
        sa.UniqueConstraint(
            "symbol",
            "primary_exchange",
            "currency",
            name=op.f("uq_symbols_symbol_primary_exchange_currency"),
        ),
    )
    op.create_index(op.f("ix_symbols_symbol"), "symbols", ["symbol"], unique=False)
    op.create_index(op.f("ix_symbols_universe"), "symbols", ["universe"], unique=False)

    op.create_table(
        "collection_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("bar_size", sa.String(length=8), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("bars_written", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'done', 'failed')",
            name=op.f("ck_collection_items_status_valid"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_collection_items_attempts_nonnegative")),
        sa.CheckConstraint(
            "bars_written >= 0", name=op.f("ck_collection_items_bars_written_nonnegative")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["collection_runs.id"],
            name=op.f("fk_collection_items_run_id_collection_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_items")),
        sa.UniqueConstraint(
            "run_id", "symbol", "bar_size", name=op.f("uq_collection_items_run_id_symbol_bar_size")
        ),
    )
    op.create_index(
        op.f("ix_collection_items_run_id_status"),
        "collection_items",
        ["run_id", "status"],
        unique=False,
    )

    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_ref", sa.String(length=64), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.Column("broker_order_id", sa.BigInteger(), nullable=True),
        sa.Column("perm_id", sa.BigInteger(), nullable=True),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("order_type", sa.String(length=8), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("limit_price", sa.Numeric(precision=20, scale=8), nullable=True),
        sa.Column("stop_price", sa.Numeric(precision=20, scale=8), nullable=True),
        sa.Column("tif", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("filled_quantity", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("avg_fill_price", sa.Numeric(precision=20, scale=8), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "order_type IN ('MKT', 'LMT', 'STP', 'STP LMT', 'MOC', 'LOC')",
            name=op.f("ck_orders_order_type_valid"),
        ),
        sa.CheckConstraint("side IN ('BUY', 'SELL')", name=op.f("ck_orders_side_valid")),
        sa.CheckConstraint(
            "status IN ('PendingSubmit', 'PreSubmitted', 'Submitted', 'PartiallyFilled', "
            "'Filled', 'PendingCancel', 'Cancelled', 'Rejected', 'Inactive')",
            name=op.f("ck_orders_status_valid"),
        ),
        sa.CheckConstraint("tif IN ('DAY', 'GTC', 'IOC')", name=op.f("ck_orders_tif_valid")),
        sa.CheckConstraint(
            "avg_fill_price IS NULL OR avg_fill_price > 0",
            name=op.f("ck_orders_avg_fill_price_positive"),
        ),
        sa.CheckConstraint(
            "filled_quantity >= 0 AND filled_quantity <= quantity",
            name=op.f("ck_orders_filled_quantity_range"),
        ),
        sa.CheckConstraint(
            "limit_price IS NULL OR limit_price > 0", name=op.f("ck_orders_limit_price_positive")
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_orders_quantity_positive")),
        sa.CheckConstraint(
            "stop_price IS NULL OR stop_price > 0", name=op.f("ck_orders_stop_price_positive")
        ),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_orders_deployment_id_deployments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("order_ref", name=op.f("uq_orders_order_ref")),
    )
    op.create_index(op.f("ix_orders_deployment_id"), "orders", ["deployment_id"], unique=False)
    op.create_index(op.f("ix_orders_status"), "orders", ["status"], unique=False)

    op.create_table(
        "executions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exec_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("price", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("commission", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("side IN ('BUY', 'SELL')", name=op.f("ck_executions_side_valid")),
        sa.CheckConstraint("commission >= 0", name=op.f("ck_executions_commission_nonnegative")),
        sa.CheckConstraint("price > 0", name=op.f("ck_executions_price_positive")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_executions_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_executions_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_executions")),
        sa.UniqueConstraint("exec_id", name=op.f("uq_executions_exec_id")),
    )
    op.create_index(op.f("ix_executions_order_id"), "executions", ["order_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_executions_order_id"), table_name="executions")

    op.drop_table("executions")
    op.drop_index(op.f("ix_orders_status"), table_name="orders")
    op.drop_index(op.f("ix_orders_deployment_id"), table_name="orders")

    op.drop_table("orders")
    op.drop_index(op.f("ix_collection_items_run_id_status"), table_name="collection_items")

    op.drop_table("collection_items")
    op.drop_index(op.f("ix_symbols_universe"), table_name="symbols")
    op.drop_index(op.f("ix_symbols_symbol"), table_name="symbols")

    op.drop_table("symbols")
    op.drop_table("strategies")
    op.drop_table("risk_limits")
    op.drop_index(op.f("ix_risk_events_time"), table_name="risk_events")

    op.drop_table("risk_events")
    op.drop_table("positions")
    op.drop_table("optimizations")
    op.drop_index(op.f("ix_deployments_status"), table_name="deployments")

    op.drop_table("deployments")
    op.drop_table("collection_runs")
    op.drop_index(op.f("ix_backtests_strategy"), table_name="backtests")
    op.drop_index(op.f("ix_backtests_status"), table_name="backtests")

    op.drop_table("backtests")
    op.drop_index(op.f("ix_audit_log_time"), table_name="audit_log")

    op.drop_table("audit_log")
    op.drop_table("api_tokens")
