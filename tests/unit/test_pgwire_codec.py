"""Decoding what PostgreSQL clients send: every malformed input is a protocol error, never a crash.

The cases marked "fuzz" were found by bench/fuzz/pgwire_codec.py: before the
fix they escaped as exceptions the session did not expect (and ended it with
an internal error).
"""

from __future__ import annotations

import struct

import pytest

from lakehose.pgwire import codec
from lakehose.pgwire import types as t


def test_lengths_are_checked_before_any_body_is_read() -> None:
    assert codec.startup_length(struct.pack("!i", 40)) == 36
    for length in (7, codec.MAX_STARTUP_BYTES + 1, 60 * 1024 * 1024, -1):
        with pytest.raises(codec.ProtocolError):
            codec.startup_length(struct.pack("!i", length))
    assert codec.body_length(b"Q" + struct.pack("!i", 1004), 1000) == 1000
    with pytest.raises(codec.MessageTooLarge) as caught:
        codec.body_length(b"Q" + struct.pack("!i", 60 * 1024 * 1024), 1000)
    assert (caught.value.kind, caught.value.limit) == (b"Q", 1000)
    with pytest.raises(codec.ProtocolError):
        codec.body_length(b"Q" + struct.pack("!i", 3), 1000)


def test_a_cancel_request_must_have_its_size() -> None:
    assert codec.parse_startup(struct.pack("!iii", codec.CANCEL_REQUEST, 1, 2)).body == struct.pack("!ii", 1, 2)
    with pytest.raises(codec.ProtocolError):
        codec.parse_startup(struct.pack("!ii", codec.CANCEL_REQUEST, 1))


def test_well_formed_bodies_decode() -> None:
    assert codec.query_text(b"SELECT 1\x00") == "SELECT 1"
    assert codec.parse_message(b"s\x00SELECT $1\x00\x00\x01\x00\x00\x00\x17") == codec.Parse("s", "SELECT $1", [23])
    bind = codec.bind_message(b"p\x00s\x00\x00\x01\x00\x01\x00\x02\x00\x00\x00\x01\x07\xff\xff\xff\xff\x00\x01\x00\x01")
    assert bind == codec.Bind("p", "s", [b"\x07", None], [True, True], [1])
    assert codec.target_message(b"Pp\x00") == codec.Target(b"P", "p")
    assert codec.execute_message(b"p\x00\x00\x00\x00\x0a") == codec.Execute("p", 10)


@pytest.mark.parametrize("decode, body", [
    (codec.query_text, b"SELECT 1"),  # no terminator
    (codec.query_text, b"SELECT \xff\x00"),  # not UTF-8
    (codec.query_text, b"SELECT 1\x00extra"),  # bytes after the last field
    (codec.parse_message, b"\x00SELECT 1\x00\x00\x02\x00\x00\x00\x17"),  # fewer OIDs than counted
    (codec.parse_message, b"\x00SELECT 1\x00\xff\xff"),  # a negative count
    (codec.bind_message, b"\x00\x00\x00\x01\x00\x02\x00\x00\x00\x00"),  # format code 2
    (codec.bind_message, b"\x00\x00\x00\x02\x00\x01\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00"),  # 2 formats, 1 value
    (codec.bind_message, b"\x00\x00\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00"),  # a length of -2
    (codec.bind_message, b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x09abc\x00\x00"),  # a value longer than the body
    (codec.target_message, b"X\x00"),  # neither S nor P
    (codec.target_message, b""),
    (codec.execute_message, b"\x00\x00\x00"),  # max_rows cut short
])
def test_malformed_bodies_are_bad_messages(decode, body) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(codec.BadMessage):
        decode(body)


@pytest.mark.parametrize("oid, data, binary", [
    (t.DATE, struct.pack("!i", 2**31 - 1), True),  # fuzz: OverflowError, date value out of range
    (t.TIMESTAMP, struct.pack("!q", 2**63 - 1), True),  # fuzz: OverflowError in timedelta
    (t.TIMESTAMPTZ, struct.pack("!q", -(2**63)), True),
    (t.NUMERIC, b"twelve", False),  # decimal.InvalidOperation, an ArithmeticError
    (t.NUMERIC, struct.pack("!hhHh", 1, 0, 0, 32767) + b"\x00\x01", True),  # quantize beyond the precision
    (t.INT8, b"\x01\x02", True),  # struct.error
    (t.TIMESTAMP, b"\x00", True),
    (t.INT4, b"\xff", False),  # not UTF-8
    (t.UUID, b"\x01" * 3, True),
])
def test_parameter_values_that_do_not_read_raise_value_error_only(oid: int, data: bytes, binary: bool) -> None:
    with pytest.raises(ValueError):
        t.decode_parameter(oid, data, binary)
