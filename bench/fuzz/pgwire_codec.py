"""Fuzzes what the PostgreSQL endpoint parses from the bytes a client sends (atheris).

One input is one client's byte stream. Its first byte picks the phase:
even, before login (the untyped startup packet, its parameters, a ``TimeZone``
among them, then the password message, all at the pre-login size limit); odd,
after login (typed messages at ``[pgwire] max_message_bytes``: Query, Parse,
Bind with every value decoded as one of the parameter types the server knows,
Describe, Execute, Close), each query text split into statements as the
session does. A stream that ends mid-message stops there, as the server would
wait for the rest.

The outcomes the server turns into answers are expected: ``ProtocolError``
(FATAL 08P01), ``BadMessage`` (ERROR 08P01; FATAL before login), ``ValueError`` from a parameter
value (22P02) or a zone name (22023). Anything else escaping, or one input
running past ``-timeout``, is a crash: it would end the session with an
internal error or stall the event loop.

    .venv/bin/pip install atheris
    mkdir -p /tmp/pgwire-corpus
    .venv/bin/python bench/fuzz/pgwire_codec.py -atheris_runs=1000000 -timeout=5 -max_len=4096 \
        /tmp/pgwire-corpus

An empty corpus folder is first filled with the streams real clients send (see
:func:`seeds`), so the mutations start from well-framed messages.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["lakehose"]):
    from lakehose.pgwire import catalog, codec
    from lakehose.pgwire import types as t

MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # the default of [pgwire] max_message_bytes
PARAMETER_TYPES = [0, t.TEXT, t.BOOL, t.INT2, t.INT4, t.INT8, t.OID, t.FLOAT4, t.FLOAT8, t.NUMERIC,
                   t.DATE, t.TIME, t.TIMESTAMP, t.TIMESTAMPTZ, t.UUID, t.BYTEA, t.JSONB]


def before_login(data: bytes) -> None:
    if len(data) < 4:
        return
    size = codec.startup_length(data[:4])
    if len(data) < 4 + size:
        return
    startup = codec.parse_startup(data[4:4 + size])
    for name, value in codec.startup_parameters(startup.body).items():
        if name.lower() == "timezone":
            try:
                t.session_zone(value)
            except ValueError:
                pass
    rest = data[4 + size:]
    if len(rest) < 5:
        return
    length = codec.body_length(rest[:5], codec.MAX_STARTUP_BYTES)
    if len(rest) >= 5 + length and rest[:1] == b"p":
        try:
            codec.query_text(rest[5:5 + length])
        except codec.BadMessage:
            pass  # FATAL 08P01 before login


def after_login(data: bytes) -> None:
    while len(data) >= 5:
        kind, length = data[:1], codec.body_length(data[:5], MAX_MESSAGE_BYTES)
        if len(data) < 5 + length:
            return
        body, data = data[5:5 + length], data[5 + length:]
        try:
            one_message(kind, body)
        except codec.BadMessage:
            pass  # an ERROR for this message; the session reads the next one


def one_message(kind: bytes, body: bytes) -> None:
    if kind == b"Q":
        catalog.split_statements(codec.query_text(body))
    elif kind == b"P":
        catalog.split_statements(codec.parse_message(body).sql)
    elif kind == b"B":
        bind = codec.bind_message(body)
        for index, (value, binary) in enumerate(zip(bind.values, bind.binary)):
            if value is None:
                continue
            oid = PARAMETER_TYPES[(index + len(value)) % len(PARAMETER_TYPES)]
            try:
                t.decode_parameter(oid, value, binary)
            except ValueError:
                pass
    elif kind in (b"D", b"C"):
        codec.target_message(body)
    elif kind == b"E":
        codec.execute_message(body)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    try:
        (before_login if data[0] % 2 == 0 else after_login)(data[1:])
    except codec.ProtocolError:
        pass  # FATAL 08P01: the connection ends, cleanly


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def seeds() -> list[bytes]:
    """What psql, psycopg and pgJDBC send, one phase per stream (see the module docstring)."""
    params = b"user\x00bi\x00database\x00lake\x00TimeZone\x00Europe/Paris\x00options\x00-c x=1\x00\x00"
    startup = struct.pack("!ii", 8 + len(params), codec.PROTOCOL_3) + params
    login = b"\x00" + startup + message(b"p", b"lh_read_token\x00")
    cancel = b"\x00" + struct.pack("!iiii", 16, codec.CANCEL_REQUEST, 42, 7)
    values = [struct.pack("!q", 7), b"2024-02-29", b"\x00\x01\x00\x00\x00\x00\x00\x02\x00\x0c",
              b"1.5e3", b"\\x6869", struct.pack("!d", 0.5), b"2026-01-01T12:00:00+02:00", b"t"]
    formats = [1, 0, 1, 0, 0, 1, 0, 0, 0]
    bind = (b"p1\x00s1\x00" + struct.pack(f"!h{len(formats)}h", len(formats), *formats)
            + struct.pack("!h", len(values) + 1) + b"".join(struct.pack("!i", len(v)) + v for v in values)
            + struct.pack("!i", -1) + struct.pack("!hh", 1, 1))
    extended = (b"\x01" + message(b"P", b"s1\x00SELECT $1, $2 -- ;\x00" + struct.pack("!hii", 2, t.INT8, t.DATE))
                + message(b"B", bind) + message(b"D", b"Pp1\x00") + message(b"E", b"p1\x00" + struct.pack("!i", 0))
                + message(b"C", b"Ss1\x00") + message(b"S", b""))
    simple = b"\x01" + message(b"Q", "SELECT 'a;b', $$x$$; /* c */ SELECT \"é\" FROM t -- ;\x00".encode())
    return [login, cancel, extended, simple]


if __name__ == "__main__":
    corpus = [Path(arg) for arg in sys.argv[1:] if not arg.startswith("-")]
    for folder in corpus:
        if folder.is_dir() and not any(folder.iterdir()):
            for index, seed in enumerate(seeds()):
                (folder / f"seed-{index}").write_bytes(seed)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
