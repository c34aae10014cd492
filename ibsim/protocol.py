"""TWS API wire format: framing, field encoding and the connection handshake.

Every message after the client's ``API\\0`` greeting is a big-endian u32 length followed by
that many bytes of NUL-terminated ASCII fields. The server's first reply carries exactly two
fields (the negotiated version and the time); everything after that starts with a numeric
message id.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from ibsim import versions

SERVER_VERSION = versions.MAX_VERSION
"""The newest version ibsim speaks (answered to any client offering it or more)."""
MIN_CLIENT_VERSION = versions.MIN_VERSION
"""The oldest client protocol version ibsim accepts (the oldest ib_async speaks)."""
MAX_FRAME = 1 << 20
"""Largest inbound frame accepted; anything bigger is treated as a malformed stream."""

_LENGTH = struct.Struct(">I")
_VERSION_RANGE = re.compile(rb"v(\d+)(?:\.\.(\d+))?")

Field = str | int | float | bool | Decimal | None


class ProtocolError(Exception):
    """The peer sent bytes that do not follow the TWS API framing or handshake."""


def encode_field(value: Field) -> str:
    """Encode one field the way TWS does: bools as 1/0, None as empty, inf as ``Infinite``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isinf(value):
            return "Infinite"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value)) if value != 0 else "0"
        return repr(value)
    return str(value)


def encode_fields(fields: Iterable[Field]) -> bytes:
    """Return the payload (without length prefix) for ``fields``."""
    parts = [encode_field(f) for f in fields]
    if any("\0" in p for p in parts):
        raise ProtocolError("a field contains NUL; remove it before encoding")
    return "".join(p + "\0" for p in parts).encode("utf-8")


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its u32 big-endian length."""
    return _LENGTH.pack(len(payload)) + payload


def encode_message(fields: Iterable[Field]) -> bytes:
    """Return a complete framed message for ``fields``."""
    return frame(encode_fields(fields))


def decode_fields(payload: bytes) -> list[str]:
    """Split a frame payload into its fields (the trailing NUL ends the last field)."""
    text = payload.decode("utf-8", errors="strict")
    parts = text.split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


class FrameReader:
    """Incremental parser turning a byte stream into frame payloads."""

    def __init__(self, *, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data`` and return every complete payload now available.

        Raises:
            ProtocolError: if a frame announces a length above ``max_frame``.
        """
        self._buffer += data
        payloads: list[bytes] = []
        while len(self._buffer) >= 4:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length > self._max_frame:
                raise ProtocolError(f"frame of {length} bytes exceeds the {self._max_frame} limit")
            if len(self._buffer) < 4 + length:
                break
            payloads.append(bytes(self._buffer[4 : 4 + length]))
            del self._buffer[: 4 + length]
        return payloads


def parse_version_range(payload: bytes) -> tuple[int, int]:
    """Parse the client's ``v157..178[ options]`` greeting payload into (low, high).

    Raises:
        ProtocolError: if the text is not a version range (or its low end is above its high).
    """
    match = _VERSION_RANGE.match(payload.strip())
    if not match:
        raise ProtocolError(f"bad version range {payload[:40]!r}; expected b'v157..178'")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if low > high:
        raise ProtocolError(f"client version range {low}..{high} is empty")
    return low, high


def negotiate(payload: bytes) -> int:
    """Return the version to speak with a client that sent ``payload``: ``min(its max, ours)``.

    Raises:
        ProtocolError: if the client's range holds no version ibsim speaks (TWS refuses it too).
    """
    low, high = parse_version_range(payload)
    version = min(high, versions.MAX_VERSION)
    if version < max(low, versions.MIN_VERSION):
        raise ProtocolError(
            f"client versions {low}..{high} do not overlap ibsim's "
            f"{versions.MIN_VERSION}..{versions.MAX_VERSION}"
        )
    return version


def server_hello(version: int, now: datetime, *, zone: str = "UTC") -> bytes:
    """Return the framed two-field handshake reply: the negotiated version and the time.

    The time is written in the TWS login zone ``zone`` (an IANA name), as TWS does.
    """
    local = now.astimezone(ZoneInfo(zone))
    return encode_message([version, local.strftime("%Y%m%d %H:%M:%S") + " " + zone])


def ib_time(moment: datetime) -> str:
    """Format a UTC datetime as TWS does in execution reports (``YYYYMMDD HH:MM:SS UTC``)."""
    return moment.strftime("%Y%m%d %H:%M:%S") + " UTC"
