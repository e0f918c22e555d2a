"""Framing of PostgreSQL protocol 3.0 messages: reading what clients send, building replies.

Kept free of I/O policy so the session reads like the protocol description:
every builder returns the bytes of one backend message.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a query text or a bind larger than this is not a client


class ProtocolError(Exception):
    """The client broke the framing; the connection cannot go on."""


@dataclass(frozen=True)
class Startup:
    code: int
    body: bytes


async def read_startup(reader: asyncio.StreamReader) -> Startup:
    """The untyped first packet: startup, SSL/GSS negotiation or a cancel request."""
    (length,) = struct.unpack("!i", await reader.readexactly(4))
    if not 8 <= length <= 10_000:
        raise ProtocolError(f"startup packet of {length} bytes")
    payload = await reader.readexactly(length - 4)
    (code,) = struct.unpack("!i", payload[:4])
    return Startup(code, payload[4:])


def startup_parameters(body: bytes) -> dict[str, str]:
    """``user``, ``database``, ``options``...: NUL-separated pairs ending in an empty name."""
    parts = body.split(b"\x00")
    pairs: dict[str, str] = {}
    for name, value in zip(parts[0::2], parts[1::2]):
        if not name:
            break
        pairs[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return pairs


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One typed frontend message: its type byte and its body."""
    header = await reader.readexactly(5)
    kind = header[:1]
    (length,) = struct.unpack("!i", header[1:])
    if not 4 <= length <= MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message {kind!r} of {length} bytes")
    return kind, await reader.readexactly(length - 4)


class Buffer:
    """Reads the fields of a message body in order."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def cstring(self) -> str:
        end = self.data.index(b"\x00", self.pos)
        text = self.data[self.pos:end].decode("utf-8")
        self.pos = end + 1
        return text

    def int16(self) -> int:
        (value,) = struct.unpack_from("!h", self.data, self.pos)
        self.pos += 2
        return int(value)

    def int32(self) -> int:
        (value,) = struct.unpack_from("!i", self.data, self.pos)
        self.pos += 4
        return int(value)

    def bytes_(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError("message shorter than its fields")
        value = self.data[self.pos:self.pos + n]
        self.pos += n
        return value


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.encode("utf-8") + b"\x00"


def auth_ok() -> bytes:
    return message(b"R", struct.pack("!i", 0))


def auth_cleartext() -> bytes:
    return message(b"R", struct.pack("!i", 3))


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key_data(pid: int, secret: int) -> bytes:
    return message(b"K", struct.pack("!ii", pid, secret))


def ready_for_query(status: bytes) -> bytes:
    return message(b"Z", status)


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def notice_or_error(kind: bytes, severity: str, code: str, text: str) -> bytes:
    body = (b"S" + cstr(severity) + b"V" + cstr(severity) + b"C" + cstr(code)
            + b"M" + cstr(text) + b"\x00")
    return message(kind, body)


def error(code: str, text: str, severity: str = "ERROR") -> bytes:
    return notice_or_error(b"E", severity, code, text)


def notice(text: str) -> bytes:
    return notice_or_error(b"N", "WARNING", "01000", text)


@dataclass(frozen=True)
class Field:
    name: str
    oid: int
    size: int
    format: int


def row_description(fields: list[Field]) -> bytes:
    body = struct.pack("!h", len(fields)) + b"".join(
        cstr(f.name) + struct.pack("!ihihih", 0, 0, f.oid, f.size, -1, f.format) for f in fields)
    return message(b"T", body)


def parameter_description(oids: list[int]) -> bytes:
    return message(b"t", struct.pack(f"!h{len(oids)}i", len(oids), *oids))


_NULL = struct.pack("!i", -1)


def data_row(values: list[bytes | None]) -> bytes:
    parts = [struct.pack("!h", len(values))]
    for value in values:
        parts.append(_NULL if value is None else struct.pack("!i", len(value)) + value)
    return message(b"D", b"".join(parts))


PARSE_COMPLETE = message(b"1")
BIND_COMPLETE = message(b"2")
CLOSE_COMPLETE = message(b"3")
NO_DATA = message(b"n")
PORTAL_SUSPENDED = message(b"s")
EMPTY_QUERY = message(b"I")
SSL_REFUSED = b"N"
