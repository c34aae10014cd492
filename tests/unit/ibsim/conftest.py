"""Shared fixtures for ibsim unit tests: the real ib_async decoder with a recording wrapper."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from ib_async.decoder import Decoder

from ibsim.contracts import ContractInfo, default_world
from ibsim.protocol import SERVER_VERSION, decode_fields, encode_fields


class _FakeIB:
    TimezoneTWS = None


class RecordingWrapper:
    """Stands in for ib_async's Wrapper: records every callback the decoder makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.ib = _FakeIB()
        self.defaultTimezone = dt.UTC

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("__"):
            raise AttributeError(name)

        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record


class DecodeHarness:
    """Encode fields as ibsim would and run them through ib_async's decoder."""

    def __init__(self) -> None:
        self.wrapper = RecordingWrapper()
        self.decoder = Decoder(self.wrapper, SERVER_VERSION)  # type: ignore[arg-type]

    def wire(self, fields: list[Any]) -> list[str]:
        """Round-trip through the wire encoding, as the client would split it."""
        return decode_fields(encode_fields(fields))

    def consumed(self, fields: list[Any]) -> int | None:
        """For simple ``wrap`` handlers: how many fields the decoder reads (None if custom)."""
        handler = self.decoder.handlers[int(fields[0])]
        if handler.__closure__ is None or "types" not in handler.__code__.co_freevars:
            return None
        cells = dict(
            zip(
                handler.__code__.co_freevars,
                (c.cell_contents for c in handler.__closure__),
                strict=True,
            )
        )
        return int(cells["skip"]) + len(cells["types"])

    def decode(self, fields: list[Any]) -> tuple[str, tuple[Any, ...]]:
        """Decode one message strictly and return the single callback it produced."""
        wire = self.wire(fields)
        expected = self.consumed(fields)
        if expected is not None:
            assert len(wire) == expected, f"{fields[0]}: sent {len(wire)}, decoder reads {expected}"
        before = len(self.wrapper.calls)
        self.decoder.handlers[int(wire[0])](wire)
        new = self.wrapper.calls[before:]
        assert new, f"message {fields[0]} produced no callback"
        return new[-1]


@pytest.fixture
def harness() -> DecodeHarness:
    return DecodeHarness()


@pytest.fixture
def aapl() -> ContractInfo:
    c = default_world().get("AAPL", currency="USD")
    assert c is not None
    return c


@pytest.fixture
def bhp() -> ContractInfo:
    c = default_world().get("BHP", currency="AUD")
    assert c is not None
    return c
