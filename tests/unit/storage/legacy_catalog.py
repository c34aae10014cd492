"""Rows of a catalog from before instrument ids (revisions 0001 and 0002), by raw SQL.

At those revisions tables named instruments by bare ``symbol``, the repositories of today
cannot write them, so tests that build an old database use these helpers instead.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)


def stamp(conn: Connection, when: datetime = T0) -> datetime:
    """``when`` as raw SQL must bind it: naive UTC on SQLite, aware on PostgreSQL."""
    return when.replace(tzinfo=None) if conn.dialect.name == "sqlite" else when


def _insert(conn: Connection, table: str, row: dict[str, Any]) -> int:
    cols = ", ".join(row)
    marks = ", ".join(f":{c}" for c in row)
    sql = f"INSERT INTO {table} ({cols}) VALUES ({marks}) RETURNING id"
    return int(conn.execute(text(sql), row).scalar_one())


def symbol(
    conn: Connection,
    name: str,
    *,
    primary: str,
    exchange: str = "SMART",
    currency: str = "USD",
    con_id: int | None = None,
    long_name: str = "",
) -> int:
    """Insert a ``symbols`` row of the old schema (no ``instrument_id``)."""
    row = {
        "symbol": name, "sec_type": "STK", "exchange": exchange, "primary_exchange": primary,
        "currency": currency, "con_id": con_id, "name": long_name, "added_at": stamp(conn),
    }  # fmt: skip
    return _insert(conn, "symbols", row)


def order(
    conn: Connection,
    ref: str,
    name: str,
    *,
    order_type: str = "MKT",
    limit: object = None,
    stop: object = None,
    quantity: object = 10,
) -> int:
    """Insert an ``orders`` row of the old schema (bare ``symbol``)."""
    row = {
        "order_ref": ref, "symbol": name, "side": "BUY", "order_type": order_type,
        "quantity": quantity, "limit_price": limit, "stop_price": stop, "tif": "DAY",
        "status": "Submitted", "filled_quantity": 0, "created_at": stamp(conn),
        "updated_at": stamp(conn),
    }  # fmt: skip
    return _insert(conn, "orders", row)


def execution(conn: Connection, exec_id: str, order_id: int, name: str, *, quantity: int) -> int:
    """Insert an ``executions`` row of the old schema."""
    row = {
        "exec_id": exec_id, "order_id": order_id, "symbol": name, "side": "BUY",
        "quantity": quantity, "price": "187.25", "commission": "1", "time": stamp(conn),
    }  # fmt: skip
    return _insert(conn, "executions", row)


def position(conn: Connection, account: str, name: str, *, quantity: int, avg_cost: str) -> int:
    """Insert a ``positions`` row of the old schema."""
    row = {
        "account": account, "symbol": name, "quantity": quantity, "avg_cost": avg_cost,
        "updated_at": stamp(conn),
    }  # fmt: skip
    return _insert(conn, "positions", row)


def run(conn: Connection, kind: str, items: list[tuple[str, str]]) -> int:
    """Insert a running ``collection_runs`` row with pending (symbol, bar size) items."""
    run_id = _insert(
        conn, "collection_runs", {"kind": kind, "status": "running", "created_at": stamp(conn)}
    )
    for name, size in items:
        item = {
            "run_id": run_id, "symbol": name, "bar_size": size, "status": "pending",
            "bars_written": 0, "attempts": 0,
        }  # fmt: skip
        _insert(conn, "collection_items", item)
    return run_id


def backtest(conn: Connection, symbols: list[str]) -> int:
    """Insert a queued ``backtests`` row whose ``symbols`` JSON list is ``symbols``."""
    row = {
        "strategy": "buy_hold", "params": "{}", "symbols": json.dumps(symbols), "bar_size": "1d",
        "costs": "{}", "status": "queued", "progress": 0.0, "artifacts": "{}",
        "created_at": stamp(conn),
    }  # fmt: skip
    return _insert(conn, "backtests", row)


def deployment(conn: Connection, symbols: list[str]) -> int:
    """Insert a ``deployments`` row whose ``symbols`` JSON list is ``symbols``."""
    row = {
        "strategy": "buy_hold", "params": "{}", "symbols": json.dumps(symbols), "mode": "paper",
        "status": "created", "created_at": stamp(conn), "updated_at": stamp(conn),
    }  # fmt: skip
    return _insert(conn, "deployments", row)
