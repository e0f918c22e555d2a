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
MAX_STARTUP_BYTES = 10_000
"""PostgreSQL's own bound on the startup packet; lakehose holds the password message to it too,
so nothing larger is read from a client that has not logged in."""


class ProtocolError(Exception):
    """The client broke the framing; the connection cannot go on (FATAL 08P01)."""


class MessageTooLarge(ProtocolError):
    """A message announced a length over the limit; its bytes are never read."""

    def __init__(self, kind: bytes, size: int, limit: int) -> None:
        super().__init__(f"message {kind!r} of {size} bytes, over the limit of {limit} bytes")
        self.kind = kind
        self.size = size
        self.limit = limit


class BadMessage(Exception):
    """A well-framed message whose body does not fit its type: an ERROR (08P01), the session goes on."""


@dataclass(frozen=True)
class Startup:
    code: int
    body: bytes


def startup_length(header: bytes) -> int:
    """The payload length the 4-byte header of the untyped first packet announces."""
    (length,) = struct.unpack("!i", header)
    if not 8 <= length <= MAX_STARTUP_BYTES:
        raise ProtocolError(f"startup packet of {length} bytes")
    return int(length) - 4


def parse_startup(payload: bytes) -> Startup:
    (code,) = struct.unpack_from("!i", payload)
    if code == CANCEL_REQUEST and len(payload) != 12:
        raise ProtocolError(f"cancel request of {len(payload) + 4} bytes")
    return Startup(code, payload[4:])


async def read_startup(reader: asyncio.StreamReader) -> Startup:
    """The untyped first packet: startup, SSL/GSS negotiation or a cancel request."""
    length = startup_length(await reader.readexactly(4))
    return parse_startup(await reader.readexactly(length))


def startup_parameters(body: bytes) -> dict[str, str]:
    """``user``, ``database``, ``options``...: NUL-separated pairs ending in an empty name."""
    parts = body.split(b"\x00")
    pairs: dict[str, str] = {}
    for name, value in zip(parts[0::2], parts[1::2]):
        if not name:
            break
        pairs[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return pairs


def body_length(header: bytes, limit: int) -> int:
    """The body length the 5-byte header of a typed message announces, checked before any is read."""
    kind = header[:1]
    (length,) = struct.unpack("!i", header[1:])
    if length < 4:
        raise ProtocolError(f"message {kind!r} of {length} bytes")
    if length - 4 > limit:
        raise MessageTooLarge(kind, length - 4, limit)
    return int(length) - 4


async def read_message(reader: asyncio.StreamReader, limit: int) -> tuple[bytes, bytes]:
    """One typed frontend message: its type byte and its body of at most ``limit`` bytes."""
    header = await reader.readexactly(5)
    return header[:1], await reader.readexactly(body_length(header, limit))


class Buffer:
    """Reads the fields of a message body in order; a body that runs short raises BadMessage."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise BadMessage("a string is not terminated")
        try:
            text = self.data[self.pos:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadMessage(f"invalid UTF-8 in a string: {exc.reason}") from exc
        self.pos = end + 1
        return text

    def int16(self) -> int:
        return self._unpack("!h", 2)

    def int32(self) -> int:
        return self._unpack("!i", 4)

    def count(self) -> int:
        """An int16 count of the items that follow."""
        value = self.int16()
        if value < 0:
            raise BadMessage(f"negative count {value}")
        return value

    def _unpack(self, fmt: str, size: int) -> int:
        if self.pos + size > len(self.data):
            raise BadMessage("message shorter than its fields")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return int(value)

    def bytes_(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BadMessage("message shorter than its fields")
        value = self.data[self.pos:self.pos + n]
        self.pos += n
        return value

    def end(self) -> None:
        if self.pos != len(self.data):
            raise BadMessage(f"{len(self.data) - self.pos} bytes after the last field")


# --- the bodies of frontend messages -----------------------------------------------------------

def query_text(body: bytes) -> str:
    """Query (``Q``) and PasswordMessage (``p``): one string."""
    buf = Buffer(body)
    text = buf.cstring()
    buf.end()
    return text


@dataclass(frozen=True)
class Parse:
    name: str
    sql: str
    param_oids: list[int]


def parse_message(body: bytes) -> Parse:
    buf = Buffer(body)
    name, sql = buf.cstring(), buf.cstring()
    oids = [buf.int32() for _ in range(buf.count())]
    buf.end()
    return Parse(name, sql, oids)


@dataclass(frozen=True)
class Bind:
    portal: str
    statement: str
    values: list[bytes | None]
    binary: list[bool]  # per value
    result_formats: list[int]  # none (all text), one for all columns, or one per column


def _formats(buf: Buffer) -> list[int]:
    formats = [buf.int16() for _ in range(buf.count())]
    if any(f not in (0, 1) for f in formats):
        raise BadMessage(f"unsupported format code in {formats}")
    return formats


def bind_message(body: bytes) -> Bind:
    buf = Buffer(body)
    portal, statement = buf.cstring(), buf.cstring()
    param_formats = _formats(buf)
    values: list[bytes | None] = []
    for _ in range(buf.count()):
        length = buf.int32()
        values.append(None if length == -1 else buf.bytes_(length))
    if len(param_formats) not in (0, 1, len(values)):
        raise BadMessage(f"{len(param_formats)} parameter formats for {len(values)} parameters")
    binary = [(param_formats[i] if len(param_formats) > 1 else param_formats[0] if param_formats else 0) == 1
              for i in range(len(values))]
    result_formats = _formats(buf)
    buf.end()
    return Bind(portal, statement, values, binary, result_formats)


@dataclass(frozen=True)
class Target:
    """What Describe and Close name: a prepared statement (``S``) or a portal (``P``)."""

    kind: bytes
    name: str


def target_message(body: bytes) -> Target:
    buf = Buffer(body)
    kind, name = buf.bytes_(1), buf.cstring()
    buf.end()
    if kind not in (b"S", b"P"):
        raise BadMessage(f"{kind!r} is neither a statement (S) nor a portal (P)")
    return Target(kind, name)


@dataclass(frozen=True)
class Execute:
    portal: str
    max_rows: int  # 0: all


def execute_message(body: bytes) -> Execute:
    buf = Buffer(body)
    portal, max_rows = buf.cstring(), buf.int32()
    buf.end()
    return Execute(portal, max_rows)


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
