"""The coverage manifest: which time ranges of an instrument/bar size have been fetched.

A manifest is a small JSON file per instrument and bar size, stored next to the data
(``bar_size=1m/instrument=AAPL.NASDAQ/_manifest.json``) and replaced atomically. Ranges are
half-open ``[start, end)`` in UTC, kept as int64 nanoseconds, sorted and merged.

It holds two lists:

- ``covered``: every range a write recorded (the ``covered=`` argument, or first bar to the end
  of the last bar). Intraday gap finding uses it.
- ``declared``: only the ranges callers passed explicitly as ``covered=``. Daily gap finding
  uses it together with the stored bar dates, so a daily session without a bar counts as
  missing unless a caller declared it fetched (a holiday-like closure, a pre-listing period).

The data is always written before the manifest, so a writer killed in between leaves a manifest
that claims less than is stored, never more; :meth:`Manifest.from_bars` rebuilds one from the
data alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

Range = tuple[int, int]

MANIFEST_NAME = "_manifest.json"
_VERSION = 1


def merge_ranges(ranges: Iterable[Range]) -> list[Range]:
    """Return ``ranges`` sorted, with overlapping and adjacent ranges merged; drop empty ones."""
    merged: list[Range] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def ranges_from_bars(ts: np.ndarray, *, length_ns: int) -> list[Range]:
    """Return the merged ranges ``[ts, ts + length)`` covered by sorted bar timestamps."""
    if len(ts) == 0:
        return []
    breaks = np.flatnonzero(np.diff(ts) > length_ns) + 1
    starts = ts[np.r_[0, breaks]]
    ends = ts[np.r_[breaks - 1, len(ts) - 1]] + length_ns
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def covered_mask(starts: np.ndarray, ends: np.ndarray, ranges: list[Range]) -> np.ndarray:
    """Return, per interval ``[starts[i], ends[i])``, whether one merged range contains it.

    Empty intervals (``end <= start``) count as covered.
    """
    if not ranges:
        return ends <= starts
    r_starts = np.array([r[0] for r in ranges], dtype=np.int64)
    r_ends = np.array([r[1] for r in ranges], dtype=np.int64)
    # The only merged range that can contain [s, e) is the last one starting at or before s.
    idx = np.searchsorted(r_starts, starts, side="right") - 1
    safe = np.clip(idx, 0, None)
    inside = (idx >= 0) & (r_ends[safe] >= ends)
    return inside | (ends <= starts)


@dataclass(slots=True, kw_only=True)
class Manifest:
    """Coverage of one instrument and bar size (see the module docstring).

    Attributes:
        covered: Merged ranges recorded by every write.
        declared: Merged ranges passed explicitly as ``covered=``.
    """

    covered: list[Range] = field(default_factory=list)
    declared: list[Range] = field(default_factory=list)

    def add(self, span: Range, *, declared: bool) -> None:
        """Record that ``span`` was fetched; ``declared`` when the caller named it."""
        self.covered = merge_ranges([*self.covered, span])
        if declared:
            self.declared = merge_ranges([*self.declared, span])

    @classmethod
    def from_bars(cls, ts: np.ndarray, *, length_ns: int) -> Manifest:
        """Rebuild a manifest from stored bar timestamps alone (declared ranges are lost)."""
        return cls(covered=ranges_from_bars(ts, length_ns=length_ns))

    def to_json(self, *, instrument: str, bar_size: str) -> bytes:
        """Serialize, with the instrument id and bar size for humans reading the file."""
        doc = {
            "version": _VERSION,
            "instrument": instrument,
            "bar_size": bar_size,
            "covered": [list(r) for r in self.covered],
            "declared": [list(r) for r in self.declared],
        }
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Parse a manifest written by :meth:`to_json`.

        Raises:
            ValueError: if the document is not a manifest of a known version.
        """
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("version") != _VERSION:
            raise ValueError("not a version-1 bar store manifest")
        return cls(
            covered=merge_ranges((int(a), int(b)) for a, b in doc["covered"]),
            declared=merge_ranges((int(a), int(b)) for a, b in doc["declared"]),
        )
