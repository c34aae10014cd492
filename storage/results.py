"""Trades and equity of backtest jobs, as Parquet beside the bar store.

One directory per job and instrument (a local path or any pyarrow file system URI)::

    <root>/backtest=12/instrument=AAPL.NASDAQ/trades.parquet
    <root>/backtest=12/instrument=AAPL.NASDAQ/equity.parquet
    <root>/backtest=13/instrument=portfolio/...             # a portfolio-mode job

``root`` defaults to ``results`` next to the bar store (:meth:`ResultStore.beside`): with
``SCIZOR_BAR_STORE=s3://bucket/bars`` results go to ``s3://bucket/results``. Any Parquet
reader can read the tree (Hive partitions ``backtest`` and ``instrument``).

Schemas: ``trades`` has the engine's trade columns (``symbol side size entry_time
entry_price exit_time exit_price pnl return_pct commission``; times ``timestamp[ns, tz=UTC]``,
``symbol`` and ``side`` dictionary-encoded strings); ``equity`` has ``ts`` (UTC), ``equity``
and ``benchmark`` (the buy-and-hold series, NaN when there is none).

Writes are atomic per file: a temp file in the final directory renamed over the final name
on a local disk (a reader, or a writer killed mid-write, sees the old file or the new one),
a single PUT on an object store. Rewriting an instrument replaces its files, so a result
computed twice (a retried task) is stored once. Results are not fsynced: unlike bars they
are derived data, and the catalog's result row (written after the files) is what says a
result exists; :meth:`ResultStore.clean` removes files without a row.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from core.errors import NotFound, StorageError, ValidationError
from core.instruments import parse
from storage import barfs

PORTFOLIO = "portfolio"
"""The instrument key of a portfolio-mode job's results."""
TRADES, EQUITY = "trades.parquet", "equity.parquet"
_UTC = pa.timestamp("ns", tz="UTC")
_STR = pa.dictionary(pa.int32(), pa.string())
TRADES_SCHEMA = pa.schema(
    [
        pa.field("symbol", _STR),
        pa.field("side", _STR),
        pa.field("size", pa.float64()),
        pa.field("entry_time", _UTC),
        pa.field("entry_price", pa.float64()),
        pa.field("exit_time", _UTC),
        *(pa.field(n, pa.float64()) for n in ("exit_price", "pnl", "return_pct", "commission")),
    ]
)
EQUITY_SCHEMA = pa.schema(
    [pa.field("ts", _UTC), pa.field("equity", pa.float64()), pa.field("benchmark", pa.float64())]
)
EQUITY_COLUMNS = ["instrument", "ts", "equity", "benchmark"]


def instrument_key(instrument: str) -> str:
    """Return the canonical id (or ``"portfolio"``) a result is stored under.

    Raises:
        ValidationError: naming ``instrument`` for anything else.
    """
    if isinstance(instrument, str) and instrument.strip().lower() == PORTFOLIO:
        return PORTFOLIO
    return str(parse(instrument, field="instrument"))


class ResultStore:
    """Per-instrument trades and equity of backtest jobs.

    Args:
        root: A local directory or a pyarrow file system URI; created on first write.
        filesystem: A configured pyarrow file system; ``root`` is then a path inside it.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, filesystem: pafs.FileSystem | None = None
    ) -> None:
        self._text = os.fspath(root).rstrip("/")
        self._fs, self._base = barfs.resolve_root(root, filesystem)
        self._local = barfs.is_local(self._fs)

    @classmethod
    def beside(cls, bar_store: str) -> ResultStore:
        """Return the store at ``results`` next to the bar store root (path or URI)."""
        text = bar_store.rstrip("/")
        _scheme, sep, rest = text.rpartition("://")
        if sep and "/" not in rest:  # a bucket root: results go inside it
            return cls(f"{text}/results")
        return cls(f"{text.rsplit('/', 1)[0]}/results")

    @property
    def root(self) -> str:
        """The store's base path inside its file system."""
        return self._base

    @property
    def address(self) -> str:
        """The root as a path or URI another process opens with ``ResultStore(address)``."""
        return self._text if "://" in self._text else self._base

    def location(self, backtest_id: int) -> str:
        """Return where a job's results live, as a path or URI a user can open."""
        return f"{self.address}/backtest={_job(backtest_id)}"

    # -- writing ----------------------------------------------------------------------------

    def write(
        self,
        backtest_id: int,
        instrument: str,
        *,
        trades: pd.DataFrame,
        equity: pd.Series,
        benchmark: pd.Series | None = None,
    ) -> None:
        """Store one instrument's trades and equity curve, replacing any earlier ones.

        Args:
            backtest_id: The job.
            instrument: A canonical id, or ``"portfolio"``.
            trades: The engine's trades frame (columns of :data:`TRADES_SCHEMA`).
            equity: Account value per bar (UTC DatetimeIndex).
            benchmark: Buy-and-hold values on the same index, if any.

        Raises:
            ValidationError: a bad id, or frames without the expected columns.
            StorageError: the file system refused the write.
        """
        folder = self._folder(backtest_id, instrument_key(instrument))
        tables = {TRADES: trades_table(trades), EQUITY: equity_table(equity, benchmark)}
        try:
            self._make_dir(folder)
            for name, table in tables.items():
                self._write(f"{folder}/{name}", table)
        except OSError as exc:
            raise StorageError(f"cannot write results to {folder!r}: {exc}") from exc

    def _make_dir(self, folder: str) -> None:
        if self._local:
            os.makedirs(folder, exist_ok=True)
        else:
            self._fs.create_dir(folder, recursive=True)

    def _write(self, final: str, table: pa.Table) -> None:
        if not self._local:
            pq.write_table(table, final, filesystem=self._fs)  # one PUT: atomic already
            return
        temp = barfs.temp_path_for(final)
        try:
            pq.write_table(table, temp, compression="none")
            os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    # -- reading ----------------------------------------------------------------------------

    def instruments(self, backtest_id: int) -> list[str]:
        """Return the instruments (ids or ``portfolio``) with stored results, sorted."""
        names = self._names(f"{self._base}/backtest={_job(backtest_id)}")
        return sorted(n[len("instrument=") :] for n in names if n.startswith("instrument="))

    def trades(self, backtest_id: int, instrument: str | None = None) -> pd.DataFrame:
        """Return the stored trades of one instrument, or of every instrument of the job.

        Raises:
            NotFound: ``instrument`` has no stored results in this job.
        """
        frame = self._read(backtest_id, instrument, TRADES, TRADES_SCHEMA)
        return frame.sort_values(["entry_time", "symbol"], kind="stable", ignore_index=True)

    def equity(self, backtest_id: int, instrument: str | None = None) -> pd.DataFrame:
        """Return equity curves in long form: columns ``instrument ts equity benchmark``.

        Raises:
            NotFound: ``instrument`` has no stored results in this job.
        """
        frame = self._read(backtest_id, instrument, EQUITY, EQUITY_SCHEMA)
        return frame[EQUITY_COLUMNS]

    def _read(
        self, backtest_id: int, instrument: str | None, name: str, schema: pa.Schema
    ) -> pd.DataFrame:
        keys = self.instruments(backtest_id) if instrument is None else [instrument_key(instrument)]
        tables = []
        for key in keys:
            path = f"{self._folder(backtest_id, key)}/{name}"
            table = self._read_file(path, backtest_id, key)
            if name == EQUITY:
                table = table.add_column(0, "instrument", pa.array([key] * table.num_rows))
            tables.append(table)
        if not tables:
            empty = schema.empty_table()
            if name == EQUITY:
                empty = empty.add_column(0, "instrument", pa.array([], pa.string()))
            tables = [empty]
        joined = pa.concat_tables(tables, promote_options="permissive")
        frame: pd.DataFrame = joined.to_pandas(ignore_metadata=True)
        return frame

    def _read_file(self, path: str, backtest_id: int, key: str) -> pa.Table:
        try:
            return pq.read_table(path, filesystem=self._fs)
        except FileNotFoundError:
            raise NotFound(
                f"backtest {backtest_id} has no stored results for {key}"
                f" (stored: {', '.join(self.instruments(backtest_id)[:10]) or 'none'})"
            ) from None
        except (OSError, pa.ArrowInvalid) as exc:
            raise StorageError(
                f"stored results {path!r} are unreadable ({exc}); rerun backtest {backtest_id}"
            ) from exc

    # -- maintenance ------------------------------------------------------------------------

    def clean(self, backtest_id: int, *, keep: Iterable[str]) -> list[str]:
        """Delete temp files killed writers left, and the results of instruments not in
        ``keep`` (those without a catalog row); return the instruments deleted."""
        wanted = {instrument_key(k) for k in keep}
        removed = []
        for key in self.instruments(backtest_id):
            folder = self._folder(backtest_id, key)
            barfs.remove_stale_temps(self._fs, folder)
            if key not in wanted:
                self._remove(folder)
                removed.append(key)
        return removed

    def delete(self, backtest_id: int) -> None:
        """Delete every stored result of a job (nothing happens if there is none)."""
        self._remove(f"{self._base}/backtest={_job(backtest_id)}")

    def _remove(self, folder: str) -> None:
        try:
            if self._fs.get_file_info(folder).type == pafs.FileType.Directory:
                self._fs.delete_dir(folder)
        except OSError as exc:
            raise StorageError(f"cannot delete {folder!r}: {exc}") from exc

    def _names(self, directory: str) -> list[str]:
        if self._local:
            try:
                return os.listdir(directory)
            except (FileNotFoundError, NotADirectoryError):
                return []
        selector = pafs.FileSelector(directory, allow_not_found=True)
        return [info.base_name for info in self._fs.get_file_info(selector)]

    def _folder(self, backtest_id: int, key: str) -> str:
        return f"{self._base}/backtest={_job(backtest_id)}/instrument={key}"


def _job(backtest_id: int) -> int:
    if isinstance(backtest_id, bool) or not isinstance(backtest_id, int) or backtest_id < 1:
        raise ValidationError(
            f"backtest_id must be a positive integer, got {backtest_id!r}", field="backtest_id"
        )
    return backtest_id


def trades_table(trades: pd.DataFrame) -> pa.Table:
    """Return the engine's trades frame as an Arrow table of :data:`TRADES_SCHEMA`.

    Raises:
        ValidationError: a column of the schema is missing.
    """
    missing = [n for n in TRADES_SCHEMA.names if n not in trades.columns]
    if missing:
        raise ValidationError(
            f"trades lack the columns {missing}; pass BacktestResult.trades", field="trades"
        )
    arrays = []
    for field in TRADES_SCHEMA:
        column = trades[field.name]
        if field.type == _STR:
            arrays.append(_labels(column))
        elif field.type == _UTC:
            arrays.append(_stamps(column))
        else:
            arrays.append(pa.array(column.to_numpy(np.float64), pa.float64()))
    return pa.Table.from_arrays(arrays, schema=TRADES_SCHEMA)


def equity_table(equity: pd.Series, benchmark: pd.Series | None = None) -> pa.Table:
    """Return an equity curve (and its benchmark) as an Arrow table of :data:`EQUITY_SCHEMA`.

    Raises:
        ValidationError: ``equity`` is not indexed by time.
    """
    if not isinstance(equity.index, pd.DatetimeIndex):
        raise ValidationError("equity must be a Series indexed by time (UTC)", field="equity")
    values = equity.to_numpy(np.float64)
    bench = (
        np.full(len(values), np.nan)
        if benchmark is None
        else benchmark.reindex(equity.index).to_numpy(np.float64)
    )
    arrays = [_stamps(equity.index), pa.array(values), pa.array(bench)]
    return pa.Table.from_arrays(arrays, schema=EQUITY_SCHEMA)


def _labels(column: pd.Series) -> pa.Array:
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = pa.array(column.cat.codes.to_numpy(np.int32), pa.int32())
        labels = pa.array([str(c) for c in column.cat.categories], pa.string())
        return pa.DictionaryArray.from_arrays(codes, labels)
    return pa.array(column.astype(str).to_numpy(), pa.string()).dictionary_encode()


def _stamps(values: pd.Series | pd.Index) -> pa.Array:
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        raise ValidationError("result timestamps must be timezone-aware (UTC)", field="ts")
    ns = pd.DatetimeIndex(values).as_unit("ns").asi8  # UTC nanoseconds, whatever the zone
    return pa.array(ns, pa.int64()).cast(_UTC)
