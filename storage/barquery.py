"""The bar store as the edges use it: reads by instrument, Arrow IPC, a read/write probe.

Reads name an instrument by canonical id or by a symbol with one listing in the catalog
(:meth:`storage.catalog.symbols.SymbolRepository.get`); bars that were never collected are a
:class:`~core.errors.NotFound` naming the instrument, the bar size and the command that
collects them, never an empty table. The CLI (``scizor bars``) and the HTTP API
(``GET /bars/{id}``) share this wording.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

import pandas as pd
import pyarrow as pa

from core.barsize import bar_size as parse_bar_size
from core.errors import NotFound, StorageError
from storage import barfs
from storage.bars import BarStore

ARROW_STREAM = "application/vnd.apache.arrow.stream"
"""The media type of an Arrow IPC stream."""

PROBE_PREFIX = ".probe-"


def collect_command(
    instrument: str,
    bar_size: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> str:
    """The ``scizor collect history ...`` command that collects these bars."""
    command = f"scizor collect history {instrument} --bar-size {bar_size}"
    if start is not None:
        command += f" --start {start:%Y-%m-%d}"
    if end is not None:
        command += f" --end {end:%Y-%m-%d}"
    return command


def read_bars(
    store: BarStore | str,
    catalog: Any,
    instrument: str,
    *,
    bar_size: str = "1d",
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> tuple[str, pd.DataFrame]:
    """Return ``(instrument id, bars)`` of one instrument and bar size in ``[start, end)``.

    Args:
        store: A bar store or its root.
        catalog: A :class:`storage.catalog.Catalog` (resolves bare symbols).
        instrument: A canonical id or a symbol with one listing.
        bar_size: The bar size (``1s`` ... ``1d``).
        start: Inclusive lower bound, or None.
        end: Exclusive upper bound, or None.

    Raises:
        NotFound: if the instrument is not in the catalog, or no bars of ``bar_size`` were
            collected for it in the range (the message gives the command that collects them).
        AmbiguousInstrument: if a bare symbol names several listings.
        ValidationError: for a bad bar size or bound.
    """
    size = parse_bar_size(bar_size).name
    listing = catalog.symbols.get(instrument)
    bars = (store if isinstance(store, BarStore) else BarStore(store)).read(
        listing.id, size, start, end
    )
    if bars.empty:
        window = "" if start is None and end is None else " in the requested range"
        raise NotFound(
            f"no {size} bars of {listing.id} ({listing.name or listing.symbol}) are stored"
            f"{window}; collect them with: {collect_command(listing.id, size, start, end)}"
        )
    return listing.id, bars


def arrow_stream(frame: pd.DataFrame) -> bytes:
    """Return a bar frame as an Arrow IPC stream (``ts`` as a UTC timestamp column)."""
    table = pa.Table.from_pandas(frame.reset_index(), preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def read_arrow_stream(data: bytes) -> pd.DataFrame:
    """Return the frame an Arrow IPC stream holds (the inverse of :func:`arrow_stream`)."""
    with pa.ipc.open_stream(data) as reader:
        frame: pd.DataFrame = reader.read_all().to_pandas()
    return frame


def probe(root: str) -> dict[str, Any]:
    """Check the store root is writable and readable: write, read back and delete a file.

    Works for local roots and pyarrow URIs alike. Returns ``{"ok": True, "root": ...}``, or
    ``ok: False`` with the step that failed and the error; never raises.
    """
    try:
        fs, base = barfs.resolve_root(root, None)
    except StorageError as exc:
        return {"ok": False, "root": root, "step": "open", "error": str(exc)}
    path = f"{base}/{PROBE_PREFIX}{uuid.uuid4().hex}"
    payload = uuid.uuid4().bytes
    step = "create"
    try:
        fs.create_dir(base, recursive=True)
        step = "write"
        with fs.open_output_stream(path) as out:
            out.write(payload)
        step = "read"
        with fs.open_input_stream(path) as stream:
            echoed = stream.read()
        step = "delete"
        fs.delete_file(path)
    except (OSError, pa.ArrowException) as exc:
        return {"ok": False, "root": root, "step": step, "error": f"{type(exc).__name__}: {exc}"}
    if echoed != payload:
        return {"ok": False, "root": root, "step": "read", "error": "read back other bytes"}
    return {"ok": True, "root": root, "writable": True, "readable": True}
