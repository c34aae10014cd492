"""Instruments by canonical id; collection runs hold a lease.

A ticker is not an instrument (``VEA`` is Viva Energy on the ASX and a Vanguard ETF on NYSE
Arca), so every table that named an instrument by bare symbol now names it by its canonical
id ``SYMBOL.VENUE`` (:mod:`core.instruments`), with IB's ``con_id`` alongside where the
broker's records need it:

- ``symbols.instrument_id`` (unique): ``symbol`` + ``.`` + the primary exchange (or the
  routing exchange when it is not SMART). A SMART listing whose primary exchange was never
  known gets the venue ``SMART`` until ``scizor symbols validate`` learns it from IB.
- ``collection_items.symbol`` -> ``instrument``; ``orders``, ``executions``, ``positions``:
  ``symbol`` -> ``instrument`` plus ``con_id``; ``backtests.symbols`` and
  ``deployments.symbols`` -> ``instruments``. A bare symbol with exactly one listing in
  ``symbols`` becomes that listing's id (and con_id); any other value is kept as it was, so
  nothing is lost (history of earlier runs keeps its bare names).
- Reverting is refused when bare symbols would merge two listings' rows.
- ``collection_runs.owner`` and ``lease_until``: a running run's lease (see
  :mod:`storage.catalog.collection_runs`).

Refused, with nothing changed, when two ``symbols`` rows would get the same id (the same
symbol and venue in two currencies) or a row's id would not be ``SYMBOL.VENUE``. Literal SQL, so the revision keeps producing the same
schema whatever the models become.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:00:00.000000
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from core.errors import StorageError

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VENUE = (
    "CASE WHEN primary_exchange <> '' THEN upper(primary_exchange) "
    "WHEN upper(exchange) <> 'SMART' THEN upper(exchange) ELSE 'SMART' END"
)
# The one listing a bare symbol names, when it names exactly one.
_UNIQUE_LISTING = (
    "(SELECT s.{col} FROM symbols s WHERE s.symbol = upper({table}.symbol) "
    "AND (SELECT count(*) FROM symbols s2 WHERE s2.symbol = upper({table}.symbol)) = 1)"
)


# The form of an id when this revision was written (core.instruments), kept literal here.
_ID = re.compile(r"[A-Z0-9][A-Z0-9 &+\-]{0,30}\.[A-Z][A-Z0-9]{0,15}")


def _refuse_bad_ids() -> None:
    """Raise StorageError, changing nothing, if the ids the listings would get are unusable:
    shared by two rows, or not of the form ``SYMBOL.VENUE`` (e.g. a symbol with a dot)."""
    ids = [
        str(r[0])
        for r in op.get_bind().execute(
            sa.text(f"SELECT upper(symbol) || '.' || {VENUE} FROM symbols ORDER BY 1")
        )
    ]
    clashes = sorted(i for i, n in Counter(ids).items() if n > 1)
    malformed = [i for i in ids if not _ID.fullmatch(i)]
    problems = []
    if clashes:
        problems.append(
            f"these instrument ids would name several symbols rows ({', '.join(clashes)}): "
            "delete the duplicate listings (scizor symbols remove)"
        )
    if malformed:
        problems.append(
            f"these would not be instrument ids ({', '.join(malformed)}): write the symbol as "
            "IB does (a space, not a dot: 'BRK B'), or delete those listings"
        )
    if problems:
        raise StorageError(
            "cannot migrate the catalog to revision 0003: "
            + "; ".join(problems)
            + "; then run the upgrade again; nothing was changed"
        )


def _symbol_to_instrument(table: str, *, con_id: bool) -> None:
    """Add ``instrument`` (and ``con_id``) to ``table`` filled from its bare ``symbol``."""
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("instrument", sa.String(48), nullable=True))
        if con_id:
            batch.add_column(sa.Column("con_id", sa.BigInteger(), nullable=True))
    listing_id = _UNIQUE_LISTING.format(col="instrument_id", table=table)
    sets = [f"instrument = COALESCE({listing_id}, upper(symbol))"]
    if con_id:
        sets.append(f"con_id = {_UNIQUE_LISTING.format(col='con_id', table=table)}")
    op.execute(f"UPDATE {table} SET {', '.join(sets)}")


def _json_lists(table: str) -> None:
    """``symbols`` JSON lists -> ``instruments``, bare symbols mapped where unambiguous."""
    connection = op.get_bind()
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("instruments", sa.JSON(), nullable=True))
    unique: dict[str, str] = dict(
        connection.execute(
            sa.text(
                "SELECT symbol, min(instrument_id) FROM symbols GROUP BY symbol "
                "HAVING count(*) = 1"
            )
        ).all()
    )
    for row_id, raw in connection.execute(sa.text(f"SELECT id, symbols FROM {table}")).all():
        mapped = [unique.get(n.upper(), n.upper()) for n in _json(raw)]
        update = sa.text(f"UPDATE {table} SET instruments = :v WHERE id = :id").bindparams(
            sa.bindparam("v", type_=sa.JSON())
        )
        connection.execute(update, {"v": mapped, "id": row_id})
    with op.batch_alter_table(table) as batch:
        batch.alter_column("instruments", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("symbols")


def upgrade() -> None:
    """Apply this revision."""
    _refuse_bad_ids()
    with op.batch_alter_table("symbols") as batch:
        batch.add_column(sa.Column("instrument_id", sa.String(48), nullable=True))
    op.execute(f"UPDATE symbols SET instrument_id = upper(symbol) || '.' || {VENUE}")
    with op.batch_alter_table("symbols") as batch:
        batch.alter_column("instrument_id", existing_type=sa.String(48), nullable=False)
        batch.create_unique_constraint(op.f("uq_symbols_instrument_id"), ["instrument_id"])

    _symbol_to_instrument("collection_items", con_id=False)
    with op.batch_alter_table("collection_items") as batch:
        batch.drop_constraint(op.f("uq_collection_items_run_id_symbol_bar_size"), type_="unique")
        batch.drop_column("symbol")
        batch.alter_column("instrument", existing_type=sa.String(48), nullable=False)
        batch.create_unique_constraint(
            op.f("uq_collection_items_run_id_instrument_bar_size"),
            ["run_id", "instrument", "bar_size"],
        )
    with op.batch_alter_table("collection_runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(200), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))

    for table in ("orders", "executions", "positions"):
        _symbol_to_instrument(table, con_id=True)
    for table in ("orders", "executions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("symbol")
            batch.alter_column("instrument", existing_type=sa.String(48), nullable=False)
    with op.batch_alter_table("positions") as batch:
        batch.drop_constraint(op.f("uq_positions_account_symbol"), type_="unique")
        batch.drop_column("symbol")
        batch.alter_column("instrument", existing_type=sa.String(48), nullable=False)
        batch.create_unique_constraint(
            op.f("uq_positions_account_instrument"), ["account", "instrument"]
        )
    for table in ("backtests", "deployments"):
        _json_lists(table)


def _bare(column: str) -> str:
    """SQL for the symbol part of an id (everything before the '.'; ids have one)."""
    if op.get_bind().dialect.name == "postgresql":
        return f"split_part({column}, '.', 1)"
    dot = f"instr({column}, '.')"
    return f"CASE WHEN {dot} > 0 THEN substr({column}, 1, {dot} - 1) ELSE {column} END"
_ID_TABLES = ("orders", "executions", "positions", "collection_items")
_JSON_TABLES = ("backtests", "deployments")


def _json(raw: object) -> list[str]:
    """A JSON list column's value (text on SQLite, already a list on PostgreSQL)."""
    names: Any = json.loads(raw) if isinstance(raw, str) else raw
    return [str(n) for n in names or []]


def _values_by_symbol() -> dict[str, dict[str, set[str]]]:
    """``{bare symbol: {table: instrument values}}`` over every table naming instruments."""
    connection = op.get_bind()
    found: dict[str, dict[str, set[str]]] = {}
    for table in _ID_TABLES:
        for (value,) in connection.execute(sa.text(f"SELECT DISTINCT instrument FROM {table}")):
            found.setdefault(str(value).split(".", 1)[0], {}).setdefault(table, set()).add(value)
    for table in _JSON_TABLES:
        for (raw,) in connection.execute(sa.text(f"SELECT instruments FROM {table}")):
            for value in _json(raw):
                found.setdefault(value.split(".", 1)[0], {}).setdefault(table, set()).add(value)
    return found


def _refuse_merging_listings() -> None:
    """Raise StorageError when rows of two listings would share one bare symbol.

    Refused even where no unique key would break (orders, executions, a backtest's list):
    once both listings' rows say ``VEA``, nobody can tell them apart again.
    """
    clashes = []
    for bare, tables in sorted(_values_by_symbol().items()):
        listings = sorted(set().union(*tables.values()))
        if len(listings) > 1:
            clashes.append(f"{bare} ({', '.join(listings)}) in {', '.join(tables)}")
    if clashes:
        raise StorageError(
            "cannot revert revision 0003: bare symbols cannot tell apart the listings of "
            + "; ".join(clashes)
            + "; nothing was changed: keep revision 0003, or restore a backup from before "
            "the upgrade"
        )


def _json_lists_back(table: str) -> None:
    """``instruments`` JSON lists -> ``symbols`` of bare symbols."""
    connection = op.get_bind()
    with op.batch_alter_table(table) as batch:
        batch.alter_column("instruments", new_column_name="symbols")
    update = sa.text(f"UPDATE {table} SET symbols = :v WHERE id = :id").bindparams(
        sa.bindparam("v", type_=sa.JSON())
    )
    for row_id, raw in connection.execute(sa.text(f"SELECT id, symbols FROM {table}")).all():
        bare = [value.split(".", 1)[0] for value in _json(raw)]
        connection.execute(update, {"v": bare, "id": row_id})


def _back_to_symbol(table: str, *, con_id: bool) -> None:
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("symbol", sa.String(32), nullable=True))
    op.execute(f"UPDATE {table} SET symbol = {_bare('instrument')}")
    with op.batch_alter_table(table) as batch:
        batch.drop_column("instrument")
        if con_id:
            batch.drop_column("con_id")
        batch.alter_column("symbol", existing_type=sa.String(32), nullable=False)


def downgrade() -> None:
    """Revert this revision; refused when bare symbols would merge two listings' rows."""
    _refuse_merging_listings()
    for table in _JSON_TABLES:
        _json_lists_back(table)
    with op.batch_alter_table("positions") as batch:
        batch.drop_constraint(op.f("uq_positions_account_instrument"), type_="unique")
    for table in ("orders", "executions", "positions"):
        _back_to_symbol(table, con_id=True)
    with op.batch_alter_table("positions") as batch:
        batch.create_unique_constraint(op.f("uq_positions_account_symbol"), ["account", "symbol"])
    with op.batch_alter_table("collection_runs") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("owner")
    with op.batch_alter_table("collection_items") as batch:
        batch.drop_constraint(
            op.f("uq_collection_items_run_id_instrument_bar_size"), type_="unique"
        )
    _back_to_symbol("collection_items", con_id=False)
    with op.batch_alter_table("collection_items") as batch:
        batch.create_unique_constraint(
            op.f("uq_collection_items_run_id_symbol_bar_size"), ["run_id", "symbol", "bar_size"]
        )
    with op.batch_alter_table("symbols") as batch:
        batch.drop_constraint(op.f("uq_symbols_instrument_id"), type_="unique")
        batch.drop_column("instrument_id")
