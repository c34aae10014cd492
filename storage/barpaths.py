"""Where the bar store keeps things, and the checks on names and times that pick a path.

Paths are plain strings in the store's pyarrow file system. On a local disk, listings and
existence checks go through ``os`` directly: it is several times cheaper than pyarrow's
``get_file_info`` for the handful of entries a read needs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re

import numpy as np
import pandas as pd
import pyarrow.fs as pafs

from core.errors import StorageError, ValidationError
from storage.barfiles import DATA_FILE
from storage.barfs import is_local
from storage.manifest import MANIFEST_NAME

TimeLike = pd.Timestamp | dt.datetime | dt.date | str | np.datetime64

# Control characters and the characters that would break a Hive path segment or its decoding.
_BAD_SYMBOL = re.compile(r"[/\\=%\x00-\x1f\x7f]")


def validate_symbol(symbol: str) -> str:
    """Return ``symbol`` upper-cased, or raise if it cannot name a partition directory.

    Raises:
        ValidationError: for an empty symbol, surrounding spaces, ``/ \\ = %``, ``..``,
            control characters, or a leading ``.`` or ``_`` (hidden from dataset readers).
    """
    if not isinstance(symbol, str) or not symbol or symbol != symbol.strip():
        raise ValidationError(
            f"symbol {symbol!r} must be a non-empty string without surrounding spaces",
            field="symbol",
        )
    if _BAD_SYMBOL.search(symbol) or ".." in symbol or symbol[0] in "._":
        raise ValidationError(
            f"symbol {symbol!r} may not contain '/', '\\', '=', '%', '..' or control "
            "characters, nor start with '.' or '_'; use the IBKR symbol, e.g. 'BRK B'",
            field="symbol",
        )
    return symbol.upper()


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

    def symbol_dir(self, size: str, sym: str) -> str:
        """Return the directory holding one symbol's partitions and manifest."""
        return f"{self.base}/bar_size={size}/symbol={sym}"

    def data_file(self, size: str, sym: str, year: int) -> str:
        """Return the data file of one year partition."""
        return f"{self.symbol_dir(size, sym)}/year={year}/{DATA_FILE}"

    def manifest_file(self, size: str, sym: str) -> str:
        """Return the coverage manifest path of one symbol and bar size."""
        return f"{self.symbol_dir(size, sym)}/{MANIFEST_NAME}"

    def files(self, size: str, sym: str, lo: int | None, hi: int | None) -> list[str]:
        """Return existing data files whose year may hold bars in ``[lo, hi)``, by year."""
        first = -1 if lo is None else _year(lo)
        last = 1 << 30 if hi is None else _year(hi - 1)
        years = [y for y in self._years(size, sym) if first <= y <= last]
        paths = (self.data_file(size, sym, y) for y in sorted(years))
        return [p for p in paths if self.exists(p)]

    def _years(self, size: str, sym: str) -> list[int]:
        years = []
        for name in self.list_names(self.symbol_dir(size, sym)):
            if name.startswith("year="):
                with contextlib.suppress(ValueError):
                    years.append(int(name[5:]))
        return years

    def symbols(self, size: str) -> list[str]:
        """Return the sorted symbols with at least one data file of ``size``."""
        found = []
        for name in self.list_names(self.size_dir(size)):
            if name.startswith("symbol=") and self.files(size, name[7:], None, None):
                found.append(name[7:])
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
