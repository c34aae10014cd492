"""The Parquet bar store.

Bars live in a Hive-partitioned dataset under one root, a local path or any pyarrow file
system URI (``file://``, ``s3://``, ``gs://``)::

    <root>/bar_size=1d/instrument=AAPL.NASDAQ/year=2024/data.parquet
    <root>/bar_size=1d/instrument=AAPL.NASDAQ/_manifest.json      # coverage manifest

Instruments are named by their canonical id ``SYMBOL.VENUE`` (:mod:`core.instruments`), never
by a bare ticker: ``VEA.ASX`` and ``VEA.ARCA`` are two instruments with two partitions.
Stores written before instrument ids (``symbol=VEA``) are migrated by
:mod:`storage.barmigrate`.

Schema: ``ts timestamp[ns, tz=UTC]``, ``open high low close volume wap`` float64,
``bar_count`` int64; each file sorted by ``ts`` with unique timestamps. Any Parquet reader
(pyarrow.dataset, DuckDB, Spark, pandas) can read the root directly.

Writes validate the whole batch first (:mod:`storage.validation`), merge it with what is
stored (newer rows win on equal ``ts``), replace each touched year partition atomically and
update the coverage manifest last (:mod:`storage.manifest`), so a killed writer leaves every
partition whole and a manifest that never claims more than is stored. Writers of different
instruments never touch the same files; writers of the same instrument and bar size serialize on a
lock on local disks (see :mod:`storage.barfs`).

Example:
    >>> store = BarStore("var/bars")                                    # doctest: +SKIP
    >>> store.write("AAPL.NASDAQ", "1d", frame)                         # doctest: +SKIP
    >>> store.read("AAPL.NASDAQ", "1d", start=pd.Timestamp("2024", tz="UTC"))  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from core.barsize import BarSize, bar_size
from core.errors import ValidationError
from core.instruments import parse
from storage import barfiles, barfs, barscan, gaps
from storage.barpaths import BarPaths, TimeLike, to_ns, validate_instrument
from storage.manifest import Manifest
from storage.validation import BarArrays, validate_bars

Span = tuple[pd.Timestamp, pd.Timestamp]


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteResult:
    """What a :meth:`BarStore.write` did.

    Attributes:
        rows_received: Bars in the batch.
        rows_new: Bars whose timestamp was not stored before.
        rows_replaced: Bars that overwrote a stored bar with the same timestamp.
        partitions: Year partitions rewritten (a partition whose bars did not change is left
            untouched).
    """

    rows_received: int
    rows_new: int
    rows_replaced: int
    partitions: int


class BarStore:
    """OHLCV bars per instrument and bar size in Parquet, with a coverage manifest.

    Args:
        root: A local directory or a pyarrow file system URI (``file:///data/bars``,
            ``s3://bucket/bars``); created on first write.
        filesystem: A configured pyarrow file system; ``root`` is then a path inside it.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, filesystem: pafs.FileSystem | None = None
    ) -> None:
        self._fs, base = barfs.resolve_root(root, filesystem)
        self._paths = BarPaths(self._fs, base)
        # Test hook: called between writing a partition's temp file and renaming it.
        self._before_rename: barfs.RenameHook | None = None

    @property
    def root(self) -> str:
        """The store's base path inside its file system."""
        return self._paths.base

    @property
    def paths(self) -> BarPaths:
        """The store's path layout (for maintenance such as :mod:`storage.barmigrate`)."""
        return self._paths

    # -- writing ---------------------------------------------------------------------------

    def write(
        self,
        instrument: str,
        bar_size: str | BarSize,
        frame: pd.DataFrame,
        *,
        covered: tuple[TimeLike, TimeLike] | None = None,
    ) -> WriteResult:
        """Validate bars and merge them into the store; newer bars win on equal timestamps.

        Args:
            instrument: The canonical instrument id, e.g. ``"AAPL.NASDAQ"`` (upper-cased).
            bar_size: One of ``1s 5s 30s 1m 5m 15m 30m 1h 1d``.
            frame: Bars with a tz-aware DatetimeIndex (or a ``ts`` column) and columns
                ``open high low close volume`` plus optional ``wap`` (NaN when absent) and
                ``bar_count`` (0 when absent). An empty frame writes nothing.
            covered: The half-open range ``[start, end)`` these bars were fetched for, recorded
                in the manifest even where the exchange was closed. Defaults to the first bar's
                start to the last bar's end.

        Returns:
            Counts of rows received, new and replaced.

        Raises:
            DataError: if any bar breaks a rule; nothing of the batch is written.
            ValidationError: for a bare ticker or malformed id, a bad bar size or ``covered``
                range.
        """
        sym, size = validate_instrument(instrument), _size(bar_size)
        bars = validate_bars(frame, size)
        span = _covered_span(covered, bars, size)
        if len(bars) == 0 and span is None:
            return WriteResult(rows_received=0, rows_new=0, rows_replaced=0, partitions=0)
        with barfs.writer_lock(self._fs, self._paths.base, f"{size.name}.{sym}"):
            new, replaced, parts = 0, 0, 0
            for year, chunk in _split_years(bars):
                added, swapped, wrote = self._merge_partition(sym, size, year, chunk)
                new, replaced, parts = new + added, replaced + swapped, parts + wrote
            if span is not None:  # manifest last: it must never claim unwritten data
                manifest = self._load_manifest(sym, size)
                manifest.add(span, declared=covered is not None)
                self._save_manifest(sym, size, manifest)
        return WriteResult(
            rows_received=len(bars), rows_new=new, rows_replaced=replaced, partitions=parts
        )

    def _merge_partition(
        self, sym: str, size: BarSize, year: int, bars: BarArrays
    ) -> tuple[int, int, int]:
        """Merge one year's bars into its partition; return (new, replaced, files written)."""
        path = self._paths.data_file(size.name, sym, year)
        barfs.remove_stale_temps(self._fs, path.rsplit("/", 1)[0])
        merged, replaced = bars, 0
        if self._paths.exists(path):
            old = barfiles.from_table(barfiles.read_file(self._fs, path, None, None))
            merged, replaced = _merge(old, bars)
            if replaced == len(bars) and _same(old, merged):
                return 0, replaced, 0  # a re-fetch of identical bars: leave the file alone
        barfs.atomic_replace(
            self._fs,
            path,
            lambda target: barfiles.write_file(self._fs, target, merged),
            before_rename=self._before_rename,
        )
        return len(bars) - replaced, replaced, 1

    # -- reading ---------------------------------------------------------------------------

    def read(
        self,
        instrument: str,
        bar_size: str | BarSize,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> pd.DataFrame:
        """Return stored bars with ``start <= ts < end`` (start inclusive, end exclusive).

        Args:
            instrument: The canonical instrument id.
            bar_size: The bar size.
            start: Inclusive lower bound (tz-aware timestamp, or a ``datetime.date`` meaning
                00:00 UTC); None for no bound.
            end: Exclusive upper bound; None for no bound.

        Returns:
            A frame indexed by a UTC DatetimeIndex named ``ts`` with float64 columns
            ``open high low close volume wap`` and int64 ``bar_count``; empty (same columns
            and dtypes) when nothing is stored in the range.
        """
        sym, size = validate_instrument(instrument), _size(bar_size)
        lo, hi = to_ns(start, "start"), to_ns(end, "end")
        tables = [
            barfiles.read_file(self._fs, path, lo, hi)
            for path in self._paths.files(size.name, sym, lo, hi)
        ]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return barfiles.empty_frame()
        # "default" promotion: older partitions declare the float columns nullable.
        return barfiles.frame_from_table(pa.concat_tables(tables, promote_options="default"))

    def read_many(
        self,
        instruments: Iterable[str],
        bar_size: str | BarSize,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> dict[str, pd.DataFrame]:
        """Read several instruments in one multi-threaded dataset scan.

        Same bounds and frame shape as :meth:`read`; every requested instrument id is a key,
        with an empty frame when nothing is stored for it.
        """
        wanted = list(dict.fromkeys(validate_instrument(s) for s in instruments))
        size = _size(bar_size)
        lo, hi = to_ns(start, "start"), to_ns(end, "end")
        return barscan.scan_many(self._paths, size.name, wanted, lo, hi)

    def instruments(self, bar_size: str | BarSize) -> list[str]:
        """Return the sorted instrument ids with at least one stored bar of ``bar_size``."""
        return self._paths.instruments(_size(bar_size).name)

    def delete(self, instrument: str, bar_size: str | BarSize | None = None) -> None:
        """Delete an instrument's bars and manifest for one bar size, or for all when None."""
        sym = validate_instrument(instrument)
        names = [_size(bar_size).name] if bar_size is not None else self._paths.bar_sizes()
        for name in names:
            with barfs.writer_lock(self._fs, self._paths.base, f"{name}.{sym}"):
                # Manifest first: a delete killed halfway must not leave it claiming data.
                self._paths.remove_file(self._paths.manifest_file(name, sym))
                self._paths.remove_dir(self._paths.instrument_dir(name, sym))

    # -- coverage --------------------------------------------------------------------------

    def coverage(self, instrument: str, bar_size: str | BarSize) -> list[Span]:
        """Return the merged half-open UTC ranges ``[start, end)`` recorded as fetched."""
        manifest = self._load_manifest(validate_instrument(instrument), _size(bar_size))
        return [_span(r) for r in manifest.covered]

    def missing(
        self,
        instrument: str,
        bar_size: str | BarSize,
        start: TimeLike,
        end: TimeLike,
        *,
        calendar: str | None = None,
    ) -> list[Span]:
        """Return the gaps in ``[start, end)`` on the exchange's trading sessions.

        A daily session is missing when it has no bar and no explicit ``covered=`` range of a
        past write contains its date. An intraday session is missing when its trading hours
        (lunch breaks excepted) inside ``[start, end)`` are not wholly inside the recorded
        coverage. Consecutive missing sessions merge into one range: for daily bars from the
        first missing date 00:00 UTC to the day after the last one; for intraday bars from the
        first missing session's open to the last one's close (clipped to ``[start, end)``).

        Args:
            instrument: The canonical instrument id.
            bar_size: The bar size.
            start: Inclusive tz-aware start.
            end: Exclusive tz-aware end.
            calendar: An exchange calendar code or IBKR exchange name (see
                :func:`storage.calendars.calendar_for`); default: the id's venue.

        Returns:
            The missing ranges, sorted.
        """
        sym, size = validate_instrument(instrument), _size(bar_size)
        lo, hi = to_ns(start, "start"), to_ns(end, "end")
        if lo is None or hi is None or hi <= lo:
            raise ValidationError("missing() needs start < end, both tz-aware", field="end")
        calendar = calendar or parse(sym).venue
        manifest = self._load_manifest(sym, size)
        if size.is_daily:
            stored = self._stored_ts(sym, size, lo, hi)
            found = gaps.daily_gaps(stored, manifest.declared, lo, hi, calendar=calendar)
        else:
            found = gaps.intraday_gaps(manifest.covered, lo, hi, calendar=calendar)
        return [_span(r) for r in found]

    def rebuild_manifest(self, instrument: str, bar_size: str | BarSize) -> list[Span]:
        """Recompute the manifest from the stored bars alone and return the new coverage.

        Explicitly declared ranges are lost, so :meth:`missing` may then report sessions that
        were fetched but held no bars; it never hides a gap.
        """
        sym, size = validate_instrument(instrument), _size(bar_size)
        with barfs.writer_lock(self._fs, self._paths.base, f"{size.name}.{sym}"):
            manifest = self._manifest_from_data(sym, size)
            self._save_manifest(sym, size, manifest)
        return [_span(r) for r in manifest.covered]

    def _stored_ts(self, sym: str, size: BarSize, lo: int | None, hi: int | None) -> np.ndarray:
        parts = [
            barfiles.read_file(self._fs, path, lo, hi, ts_only=True)
            for path in self._paths.files(size.name, sym, lo, hi)
        ]
        if not parts:
            return np.empty(0, dtype=np.int64)
        return np.concatenate([barfiles.from_ts_column(p) for p in parts])

    def _manifest_from_data(self, sym: str, size: BarSize) -> Manifest:
        return Manifest.from_bars(
            self._stored_ts(sym, size, None, None), length_ns=size.seconds * 1_000_000_000
        )

    def _load_manifest(self, sym: str, size: BarSize) -> Manifest:
        raw = self._paths.read_bytes(self._paths.manifest_file(size.name, sym))
        if raw is not None:
            try:
                return Manifest.from_json(raw)
            except (ValueError, KeyError, TypeError):
                pass  # unreadable: rebuild from the data below, as if it were absent
        return self._manifest_from_data(sym, size)

    def _save_manifest(self, sym: str, size: BarSize, manifest: Manifest) -> None:
        raw = manifest.to_json(instrument=sym, bar_size=size.name)
        barfs.atomic_replace(
            self._fs,
            self._paths.manifest_file(size.name, sym),
            lambda target: self._paths.write_bytes(target, raw),
        )


def _size(value: str | BarSize) -> BarSize:
    return bar_size(value)


def _span(r: tuple[int, int]) -> Span:
    return pd.Timestamp(r[0], tz="UTC"), pd.Timestamp(r[1], tz="UTC")


def _covered_span(
    covered: tuple[TimeLike, TimeLike] | None, bars: BarArrays, size: BarSize
) -> tuple[int, int] | None:
    if covered is None:
        if len(bars) == 0:
            return None
        return int(bars.ts[0]), int(bars.ts[-1]) + size.seconds * 1_000_000_000
    lo, hi = to_ns(covered[0], "covered"), to_ns(covered[1], "covered")
    if lo is None or hi is None or hi <= lo:
        raise ValidationError(
            "covered must be a (start, end) pair with start < end", field="covered"
        )
    if len(bars) and (bars.ts[0] < lo or bars.ts[-1] >= hi):
        raise ValidationError(
            "covered range must contain every bar of the batch; widen it or drop the bars",
            field="covered",
        )
    return lo, hi


def _split_years(bars: BarArrays) -> Iterable[tuple[int, BarArrays]]:
    if len(bars) == 0:
        return
    years = bars.ts.view("datetime64[ns]").astype("datetime64[Y]").astype(np.int64) + 1970
    cuts = np.flatnonzero(np.diff(years)) + 1
    bounds = [0, *cuts.tolist(), len(bars)]
    for a, b in itertools.pairwise(bounds):
        yield int(years[a]), bars.slice(a, b)


def _merge(old: BarArrays, new: BarArrays) -> tuple[BarArrays, int]:
    """Merge two sorted unique batches, ``new`` winning on equal timestamps."""
    if len(old) == 0:
        return new, 0
    if len(new) == 0 or new.ts[0] > old.ts[-1]:
        if len(new) == 0:
            return old, 0
        return _concat(old, new, None), 0
    pos = np.clip(np.searchsorted(new.ts, old.ts), 0, len(new) - 1)
    keep = new.ts[pos] != old.ts
    replaced = len(old) - int(keep.sum())
    kept = BarArrays(ts=old.ts[keep], columns={k: v[keep] for k, v in old.columns.items()})
    order = np.argsort(np.concatenate([kept.ts, new.ts]), kind="stable")
    return _concat(kept, new, order), replaced


def _same(a: BarArrays, b: BarArrays) -> bool:
    return (
        len(a) == len(b)
        and all(
            np.array_equal(a.columns[k], b.columns[k], equal_nan=k != "bar_count")
            for k in a.columns
        )
        and np.array_equal(a.ts, b.ts)
    )


def _concat(a: BarArrays, b: BarArrays, order: np.ndarray | None) -> BarArrays:
    def join(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        joined = np.concatenate([x, y])
        return joined if order is None else joined[order]

    return BarArrays(
        ts=join(a.ts, b.ts), columns={k: join(a.columns[k], b.columns[k]) for k in a.columns}
    )
