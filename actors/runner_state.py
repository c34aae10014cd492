"""What a strategy runner saves after every bar, and its deterministic order references.

The state is one JSON document in ``deployments.runner_state``::

    {"format": 1,
     "live_confirmed": false,
     "instruments": {
        "AAPL.NASDAQ": {"anchor": "2026-09-01T00:00:00+00:00",    # first bar of its history
                        "last_bar": "2026-12-01T00:00:00+00:00",  # newest bar processed
                        "target": 1.0,                            # last target acted on
                        "position": "120"}}}                      # intended shares

An order's ``order_ref`` is derived from what caused it, never from a counter or a clock:
``scz-<deployment id>-<instrument>-<bar start, UTC, %Y%m%dT%H%M%SZ>`` for the order a bar's
target asks for, with ``-flat`` appended for the order that flattens the position when the
deployment stops. A runner restarted between sending an intent and saving its state
re-derives the same reference, and the order manager (idempotent by ``order_ref``) never
places it twice. References longer than the catalog's 64 characters shorten the instrument
to its first 16 characters plus 8 hex digits of its SHA-1.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

from core.errors import StorageError

FORMAT = 1
ORDER_REF_LENGTH = 64


def order_ref(
    deployment_id: int, instrument: str, bar_time: pd.Timestamp, *, flat: bool = False
) -> str:
    """Return the deterministic order reference of an intent (see the module docstring).

    Args:
        deployment_id: the deployment's id.
        instrument: the canonical instrument id.
        bar_time: the start of the bar whose target caused the order (tz-aware).
        flat: True for the order that flattens the position at stop.
    """
    stamp = pd.Timestamp(bar_time).tz_convert("UTC").strftime("%Y%m%dT%H%M%SZ")
    suffix = "-flat" if flat else ""
    ref = f"scz-{deployment_id}-{instrument}-{stamp}{suffix}"
    if len(ref) > ORDER_REF_LENGTH:
        digest = hashlib.sha1(instrument.encode()).hexdigest()[:8]
        ref = f"scz-{deployment_id}-{instrument[:16]}~{digest}-{stamp}{suffix}"
    return ref


@dataclass(slots=True, kw_only=True)
class InstrumentState:
    """One instrument's part of the runner's state.

    Attributes:
        anchor: the first bar of the evaluator's history (None before any bar).
        last_bar: the newest bar processed (None before any bar).
        target: the last target acted on (0 while flat).
        position: the shares the runner intends to hold (what its orders add up to).
    """

    anchor: pd.Timestamp | None = None
    last_bar: pd.Timestamp | None = None
    target: float = 0.0
    position: Decimal = Decimal(0)

    def to_json(self) -> dict[str, Any]:
        """Return the state as JSON values."""
        return {
            "anchor": _iso(self.anchor),
            "last_bar": _iso(self.last_bar),
            "target": self.target,
            "position": str(self.position),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstrumentState:
        """Read the state back (see :meth:`to_json`)."""
        return cls(
            anchor=_stamp(data.get("anchor")),
            last_bar=_stamp(data.get("last_bar")),
            target=float(data.get("target", 0.0)),
            position=Decimal(str(data.get("position", "0"))),
        )


@dataclass(slots=True, kw_only=True)
class RunnerState:
    """The whole runner state of one deployment.

    Attributes:
        instruments: per instrument id, its :class:`InstrumentState`.
        live_confirmed: a live deployment was started with the explicit confirmation (a
            restarted runner does not ask again).
    """

    instruments: dict[str, InstrumentState] = field(default_factory=dict)
    live_confirmed: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return the document saved in ``deployments.runner_state``."""
        return {
            "format": FORMAT,
            "live_confirmed": self.live_confirmed,
            "instruments": {k: v.to_json() for k, v in self.instruments.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RunnerState:
        """Read a saved document (None: a fresh state).

        Raises:
            StorageError: the document is of another format or not readable (the
                message names the problem; the deployment's state needs repair).
        """
        if not data:
            return cls()
        if data.get("format") != FORMAT:
            raise StorageError(
                f"runner_state has format {data.get('format')!r}; this runner reads {FORMAT}"
            )
        try:
            items = dict(data.get("instruments") or {})
            return cls(
                instruments={k: InstrumentState.from_json(v) for k, v in items.items()},
                live_confirmed=bool(data.get("live_confirmed", False)),
            )
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise StorageError(f"runner_state is not readable: {exc}") from exc


def _iso(when: pd.Timestamp | None) -> str | None:
    return when.isoformat() if when is not None else None


def _stamp(text: str | None) -> pd.Timestamp | None:
    return pd.Timestamp(text).tz_convert("UTC") if text else None
