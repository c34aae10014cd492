"""Where the bar store keeps things, and the checks on names and times that pick a path.

Paths are plain strings in the store's pyarrow file system. On a local disk, listings and
existence checks go through ``os`` directly: it is several times cheaper than pyarrow's
``get_file_info`` for the handful of entries a read needs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os

import numpy as np
import pandas as pd
import pyarrow.fs as pafs

from core.errors import StorageError, ValidationError
from core.instruments import parse
from storage.barfiles import DATA_FILE
from storage.barfs import is_local
from storage.manifest import MANIFEST_NAME

TimeLike = pd.Timestamp | dt.datetime | dt.date | str | np.datetime64

KEY = "instrument"
"""The Hive partition key of an instrument's directory: ``instrument=VEA.ASX``."""
LEGACY_KEY = "symbol"
"""The key of stores written before instrument ids (``symbol=VEA``): see
:mod:`storage.barmigrate`."""


def validate_instrument(instrument: str) -> str:
    """Return the canonical id ``instrument`` names (``SYMBOL.VENUE``), upper-cased.

    A bare ticker is refused: it may name several listings, whose bars must never share a
    partition. The id's characters are safe in a Hive path segment.

    Raises:
        ValidationError: naming ``instrument`` for anything but ``SYMBOL.VENUE``.
    """
    return str(parse(instrument, field="instrument"))


def to_ns(value: TimeLike | None, field: str) -> int | None:
    """Return a tz-aware time as int64 UTC nanoseconds; a ``date`` means 00:00 UTC.

    Raises:
        ValidationError: for naive datetimes (time zones are never guessed) or bad values.
    """
    if value is None:
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return int(pd.Timestamp(value).tz_localize("UTC").value)
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{field} {value!r} is not a timestamp: {exc}", field=field) from exc
    if pd.isna(stamp):
        raise ValidationError(f"{field} is NaT; pass a timestamp or None", field=field)
    if stamp.tzinfo is None:
        raise ValidationError(
            f"{field} {value!r} has no time zone; pass e.g. "
            f"pd.Timestamp({str(value)!r}, tz='UTC') or a datetime.date",
            field=field,
        )
    return int(stamp.tz_convert("UTC").as_unit("ns").value)


def _year(ns: int) -> int:
    return int(np.datetime64(ns, "ns").astype("datetime64[Y]").astype(np.int64)) + 1970


class BarPaths:
    """Path layout and small file operations of one store root."""

    def __init__(self, fs: pafs.FileSystem, base: str) -> None:
        self.fs = fs
        self.base = base
        self._local = is_local(fs)

    def size_dir(self, size: str) -> str:
        """Return ``<base>/bar_size=<size>``."""
        return f"{self.base}/bar_size={size}"

    def instrument_dir(self, size: str, sym: str) -> str:
        """Return the directory holding one instrument's partitions and manifest."""
        return f"{self.base}/bar_size={size}/{KEY}={sym}"

    def data_file(self, size: str, sym: str, year: int) -> str:
        """Return the data file of one year partition."""
        return f"{self.instrument_dir(size, sym)}/year={year}/{DATA_FILE}"

    def manifest_file(self, size: str, sym: str) -> str:
        """Return the coverage manifest path of one instrument and bar size."""
        return f"{self.instrument_dir(size, sym)}/{MANIFEST_NAME}"

    def files(self, size: str, sym: str, lo: int | None, hi: int | None) -> list[str]:
        """Return existing data files whose year may hold bars in ``[lo, hi)``, by year."""
        first = -1 if lo is None else _year(lo)
        last = 1 << 30 if hi is None else _year(hi - 1)
        years = [y for y in self._years(size, sym) if first <= y <= last]
        paths = (self.data_file(size, sym, y) for y in sorted(years))
        return [p for p in paths if self.exists(p)]

    def _years(self, size: str, sym: str) -> list[int]:
        years = []
        for name in self.list_names(self.instrument_dir(size, sym)):
            if name.startswith("year="):
                with contextlib.suppress(ValueError):
                    years.append(int(name[5:]))
        return years

    def instruments(self, size: str) -> list[str]:
        """Return the sorted instrument ids with at least one data file of ``size``."""
        prefix = f"{KEY}="
        found = []
        for name in self.list_names(self.size_dir(size)):
            if name.startswith(prefix) and self.files(size, name[len(prefix) :], None, None):
                found.append(name[len(prefix) :])
        return sorted(found)

    def bar_sizes(self) -> list[str]:
        """Return the bar sizes that have a directory in the store."""
        names = self.list_names(self.base)
        return sorted(n[9:] for n in names if n.startswith("bar_size="))

    def list_names(self, directory: str) -> list[str]:
        """Return the entry names of ``directory`` ([] when it does not exist)."""
        if self._local:
            try:
                return os.listdir(directory)
            except (FileNotFoundError, NotADirectoryError):
                return []
        selector = pafs.FileSelector(directory, allow_not_found=True)
        return [info.base_name for info in self.fs.get_file_info(selector)]

    def exists(self, path: str) -> bool:
        """Return True when ``path`` is an existing file."""
        if self._local:
            return os.path.isfile(path)
        return bool(self.fs.get_file_info(path).type == pafs.FileType.File)

    def read_bytes(self, path: str) -> bytes | None:
        """Return a small file's content, or None when it does not exist."""
        if not self.exists(path):
            return None
        with self.fs.open_input_stream(path) as stream:
            return bytes(stream.read())

    def write_bytes(self, path: str, raw: bytes) -> None:
        """Write a small file in one go."""
        with self.fs.open_output_stream(path) as stream:
            stream.write(raw)

    def remove_file(self, path: str) -> None:
        """Delete a file if it exists."""
        if self.exists(path):
            self.fs.delete_file(path)

    def remove_dir(self, path: str) -> None:
        """Delete a directory tree if it exists."""
        try:
            if self.fs.get_file_info(path).type == pafs.FileType.Directory:
                self.fs.delete_dir(path)
        except OSError as exc:
            raise StorageError(f"cannot delete {path!r}: {exc}") from exc
