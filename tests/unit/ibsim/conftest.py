"""Shared fixtures for ibsim unit tests: real client decoders with a recording wrapper.

``DecodeHarness`` runs ib_async's installed decoder at any server version; ``OfficialHarness``
runs the official ``ibapi`` client's decoder (the PyPI release, 9.81, speaks up to 157) and
also checks that it consumed every field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from ib_async.decoder import Decoder

from ibsim import versions
from ibsim.contracts import ContractInfo, default_world
from ibsim.protocol import decode_fields, encode_fields


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
    """Encode fields as ibsim would and run them through ib_async's decoder at ``version``."""

    def __init__(self, version: int = versions.MAX_VERSION) -> None:
        self.version = version
        self.wrapper = RecordingWrapper()
        self.decoder = Decoder(self.wrapper, version)  # type: ignore[arg-type]

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


class OfficialHarness:
    """Run ibsim's fields through the official ibapi decoder at 157, strictly.

    Handlers the official client maps straight onto a wrapper method need the exact field
    count (it drops the message otherwise); the others must leave no field unread.
    """

    version = versions.MIN_VERSION

    def __init__(self) -> None:
        # Imported here so that only the official-client tests need the ibapi package.
        from ibapi.comm import read_fields
        from ibapi.decoder import Decoder as OfficialDecoder

        self.read_fields = read_fields
        self.wrapper = RecordingWrapper()
        self.decoder = OfficialDecoder(self.wrapper, self.version)

    def decode_all(self, fields: list[Any]) -> list[tuple[str, tuple[Any, ...]]]:
        """Decode one message and return every callback it produced."""
        wire = self.read_fields(encode_fields(fields))
        info = self.decoder.msgId2handleInfo[int(wire[0])]
        before = len(self.wrapper.calls)
        if info.wrapperMeth is not None:
            self.decoder.interpretWithSignature(wire, info)
        else:
            rest = iter(wire)
            info.processMeth(self.decoder, rest)
            unread = list(rest)
            assert unread == [], f"message {fields[0]}: {len(unread)} fields left unread"
        new = self.wrapper.calls[before:]
        assert new, f"message {fields[0]} produced no callback"
        return new

    def decode(self, fields: list[Any]) -> tuple[str, tuple[Any, ...]]:
        """Decode one message and return its first callback."""
        return self.decode_all(fields)[0]


@pytest.fixture
def harness() -> DecodeHarness:
    return DecodeHarness()


@pytest.fixture(params=list(versions.SUPPORTED), ids=lambda v: f"v{v}")
def at_version(request: pytest.FixtureRequest) -> DecodeHarness:
    """ib_async's decoder at each server version ibsim speaks."""
    return DecodeHarness(int(request.param))


@pytest.fixture
def official() -> OfficialHarness:
    return OfficialHarness()


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
