"""Framing, field encoding and the handshake pieces of ibsim.protocol."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ibsim.protocol import (
    FrameReader,
    ProtocolError,
    decode_fields,
    encode_field,
    encode_message,
    negotiate,
    parse_version_range,
    server_hello,
)
from ibsim.server import IBSim


def test_encode_message_prefixes_big_endian_length_and_nul_terminates_fields() -> None:
    msg = encode_message([9, 1, 42])
    assert msg == struct.pack(">I", 7) + b"9\x001\x0042\x00"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "1"),
        (False, "0"),
        (None, ""),
        (1.5, "1.5"),
        (100.0, "100"),
        (Decimal("2.50"), "2.50"),
        (float("inf"), "Infinite"),
        (-3, "-3"),
    ],
)
def test_encode_field_follows_tws_conventions(value: object, text: str) -> None:
    assert encode_field(value) == text  # type: ignore[arg-type]


def test_encode_rejects_nul_inside_a_field() -> None:
    with pytest.raises(ProtocolError):
        encode_message(["a\0b"])


def test_frame_reader_reassembles_frames_split_across_reads() -> None:
    data = encode_message([1, "x"]) + encode_message([2, "yy"])
    reader = FrameReader()
    got = []
    for i in range(len(data)):
        got += reader.feed(data[i : i + 1])
    assert [decode_fields(p) for p in got] == [["1", "x"], ["2", "yy"]]


def test_frame_reader_rejects_oversized_frames() -> None:
    with pytest.raises(ProtocolError):
        FrameReader(max_frame=10).feed(struct.pack(">I", 11) + b"x" * 11)


def test_version_range_parses_with_and_without_connect_options() -> None:
    assert parse_version_range(b"v157..178") == (157, 178)
    assert parse_version_range(b"v100..200 +PACEAPI") == (100, 200)
    assert parse_version_range(b"v176") == (176, 176)


@pytest.mark.parametrize("bad", [b"hello", b"v178..157"])
def test_version_range_rejects_garbage_and_empty_ranges(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_version_range(bad)


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        (b"v157..178", 178),
        (b"v157..176", 176),
        (b"v100..157", 157),  # the official ibapi 9.81 client
        (b"v100..217 +PACEAPI", 178),  # a newer official client
        (b"v163..163", 163),
    ],
)
def test_negotiate_answers_the_lower_of_the_two_maxima(offer: bytes, answer: int) -> None:
    assert negotiate(offer) == answer


@pytest.mark.parametrize("offer", [b"v100..156", b"v10..20", b"v179..200", b"v300..400"])
def test_negotiate_refuses_a_range_without_a_version_ibsim_speaks(offer: bytes) -> None:
    with pytest.raises(ProtocolError, match="do not overlap"):
        negotiate(offer)


def test_server_hello_has_exactly_the_negotiated_version_and_time() -> None:
    payload = server_hello(176, datetime(2024, 3, 5, 15, 0, tzinfo=UTC))[4:]
    assert decode_fields(payload) == ["176", "20240305 15:00:00 UTC"]


def test_server_hello_writes_the_time_in_the_login_zone() -> None:
    hello = server_hello(178, datetime(2024, 3, 5, 15, 0, tzinfo=UTC), zone="US/Eastern")
    assert decode_fields(hello[4:]) == ["178", "20240305 10:00:00 US/Eastern"]


def test_ibsim_refuses_a_login_zone_that_is_not_a_zone() -> None:
    with pytest.raises(ValueError, match="'Mars/Olympus' is not an IANA zone name"):
        IBSim(time_zone="Mars/Olympus")
    assert IBSim(time_zone="Australia/Sydney").time_zone == "Australia/Sydney"
