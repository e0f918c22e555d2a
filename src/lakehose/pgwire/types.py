"""PostgreSQL type OIDs for DuckDB result types, and the text/binary forms of values.

Clients decode a column by its OID, so each DuckDB type maps to the PostgreSQL
type whose wire form matches it exactly: ``TIMESTAMP WITH TIME ZONE`` is sent as
``timestamptz`` with its offset (in the session's TimeZone), never as a plain
``timestamp`` that would lose the zone. Types PostgreSQL has no match for
(structs, maps, unsigned 64-bit) go as text or numeric.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import struct
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BOOL, BYTEA, INT8, INT2, INT4, TEXT, OID, JSON = 16, 17, 20, 21, 23, 25, 26, 114
FLOAT4, FLOAT8, VARCHAR, DATE, TIME = 700, 701, 1043, 1082, 1083
TIMESTAMP, TIMESTAMPTZ, INTERVAL, NUMERIC, UUID, JSONB, NAME, CHAR = 1114, 1184, 1186, 1700, 2950, 3802, 19, 18

ARRAY_OF = {BOOL: 1000, BYTEA: 1001, INT2: 1005, INT4: 1007, TEXT: 1009, INT8: 1016, FLOAT4: 1021,
            FLOAT8: 1022, VARCHAR: 1015, DATE: 1182, TIME: 1183, TIMESTAMP: 1115, TIMESTAMPTZ: 1185,
            INTERVAL: 1187, NUMERIC: 1231, UUID: 2951, JSON: 199}
SIZE = {BOOL: 1, INT2: 2, INT4: 4, INT8: 8, FLOAT4: 4, FLOAT8: 8, DATE: 4, TIME: 8, TIMESTAMP: 8,
        TIMESTAMPTZ: 8, INTERVAL: 16, UUID: 16, OID: 4}
DUCKDB_SCALARS = {
    "BOOLEAN": BOOL, "TINYINT": INT2, "SMALLINT": INT2, "UTINYINT": INT2, "INTEGER": INT4,
    "USMALLINT": INT4, "BIGINT": INT8, "UINTEGER": INT8, "UBIGINT": NUMERIC, "HUGEINT": NUMERIC,
    "UHUGEINT": NUMERIC, "FLOAT": FLOAT4, "DOUBLE": FLOAT8, "VARCHAR": TEXT, "BLOB": BYTEA,
    "DATE": DATE, "TIME": TIME, "TIMESTAMP": TIMESTAMP, "TIMESTAMP_S": TIMESTAMP,
    "TIMESTAMP_MS": TIMESTAMP, "TIMESTAMP_NS": TIMESTAMP, "TIMESTAMP WITH TIME ZONE": TIMESTAMPTZ,
    "INTERVAL": INTERVAL, "UUID": UUID, "JSON": JSON,
}
PG_EPOCH = dt.datetime(2000, 1, 1)
PG_EPOCH_UTC = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
PG_EPOCH_DATE = dt.date(2000, 1, 1)


@dataclass(frozen=True)
class PgType:
    oid: int
    element: int | None = None  # the element OID of an array


def pg_type(duckdb_type: str) -> PgType:
    """The PostgreSQL type a DuckDB column travels as."""
    if duckdb_type.endswith("[]") and not duckdb_type.startswith(("STRUCT", "MAP")):
        inner = pg_type(duckdb_type[:-2])
        if inner.element is None and inner.oid in ARRAY_OF:
            return PgType(ARRAY_OF[inner.oid], inner.oid)
        return PgType(TEXT)
    if duckdb_type.startswith("DECIMAL"):
        return PgType(NUMERIC)
    return PgType(DUCKDB_SCALARS.get(duckdb_type, TEXT))


def type_size(oid: int) -> int:
    return SIZE.get(oid, -1)


# --- text form ---------------------------------------------------------------------------

def _fraction(micros: int) -> str:
    return f".{micros:06d}".rstrip("0") if micros else ""


def _offset(value: dt.datetime) -> str:
    offset = value.utcoffset() or dt.timedelta()
    sign = "-" if offset < dt.timedelta() else "+"
    seconds = int(abs(offset).total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{sign}{hours:02d}"
    if minutes or secs:
        text += f":{minutes:02d}"
    if secs:
        text += f":{secs:02d}"
    return text


def _timestamp_text(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S").rjust(19, "0") + _fraction(value.microsecond)


def _interval_parts(value: Any) -> tuple[int, int, int]:
    """(months, days, microseconds) of an Arrow MonthDayNano or a timedelta."""
    if isinstance(value, dt.timedelta):
        return 0, value.days, value.seconds * 1_000_000 + value.microseconds
    return int(value.months), int(value.days), int(value.nanoseconds) // 1000


def _interval_text(value: Any) -> str:
    months, days, micros = _interval_parts(value)
    parts = []
    years, months = divmod(months, 12) if months >= 0 else (-((-months) // 12), -((-months) % 12))
    if years:
        parts.append(f"{years} year{'s' if abs(years) != 1 else ''}")
    if months:
        parts.append(f"{months} mon{'s' if abs(months) != 1 else ''}")
    if days:
        parts.append(f"{days} day{'s' if abs(days) != 1 else ''}")
    if micros or not parts:
        sign = "-" if micros < 0 else ""
        seconds, fraction = divmod(abs(micros), 1_000_000)
        hours, rest = divmod(seconds, 3600)
        parts.append(f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}{_fraction(fraction)}")
    return " ".join(parts)


def _float_text(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


_ARRAY_SPECIAL = re.compile(r'[{},"\\\s]')


def _array_element(text: str) -> str:
    if text == "" or text.upper() == "NULL" or _ARRAY_SPECIAL.search(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def text_encoder(kind: PgType, zone: dt.tzinfo) -> Callable[[Any], bytes]:
    """Value to its PostgreSQL text form (what ``psql`` shows), as UTF-8."""
    scalar = _text_scalar(kind.element if kind.element is not None else kind.oid, zone)
    if kind.element is not None:
        def array(value: Any) -> bytes:
            items = ("NULL" if item is None else _array_element(scalar(item)) for item in value)
            return ("{" + ",".join(items) + "}").encode()
        return array
    return lambda value: scalar(value).encode()


def _text_scalar(oid: int, zone: dt.tzinfo) -> Callable[[Any], str]:
    if oid == BOOL:
        return lambda v: "t" if v else "f"
    if oid in (FLOAT4, FLOAT8):
        return _float_text
    if oid == NUMERIC:
        return lambda v: str(v) if isinstance(v, int) else "NaN" if v.is_nan() else format(v, "f")
    if oid == TIMESTAMPTZ:
        return lambda v: _timestamp_text(v.astimezone(zone)) + _offset(v.astimezone(zone))
    if oid == TIMESTAMP:
        return _timestamp_text
    if oid == DATE:
        return lambda v: v.isoformat()
    if oid == TIME:
        return lambda v: v.strftime("%H:%M:%S") + _fraction(v.microsecond)
    if oid == INTERVAL:
        return _interval_text
    if oid == BYTEA:
        return lambda v: "\\x" + bytes(v).hex()
    if oid in (INT2, INT4, INT8, UUID):
        return str
    # text, json, and what has no PostgreSQL type (structs, maps, nested lists): JSON
    return lambda v: v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False)


# --- binary form -------------------------------------------------------------------------

def _numeric_binary(value: decimal.Decimal) -> bytes:
    """PostgreSQL's base-10000 numeric: ndigits, weight, sign, dscale, digits."""
    if value.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    dscale = max(0, -exponent)
    text = "".join(map(str, digits))
    if exponent > 0:
        text += "0" * exponent
        exponent = 0
    text = text.rjust(-exponent, "0")  # 0.0001: the fraction's leading zeros
    integer = text[:len(text) + exponent] if exponent else text
    fraction = text[len(text) + exponent:] if exponent else ""
    integer = integer.lstrip("0")
    integer = "0" * (-len(integer) % 4) + integer
    fraction = fraction + "0" * (-len(fraction) % 4)
    groups = [int(integer[i:i + 4]) for i in range(0, len(integer), 4)]
    weight = len(groups) - 1
    groups += [int(fraction[i:i + 4]) for i in range(0, len(fraction), 4)]
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    return struct.pack(f"!hhHh{len(groups)}H", len(groups), weight, 0x4000 if sign else 0, dscale,
                       *groups)


def _binary_scalar(oid: int) -> Callable[[Any], bytes]:
    packers: dict[int, Callable[[Any], bytes]] = {
        BOOL: lambda v: b"\x01" if v else b"\x00",
        INT2: lambda v: struct.pack("!h", v),
        INT4: lambda v: struct.pack("!i", v),
        INT8: lambda v: struct.pack("!q", v),
        OID: lambda v: struct.pack("!I", v),
        FLOAT4: lambda v: struct.pack("!f", v),
        FLOAT8: lambda v: struct.pack("!d", v),
        NUMERIC: lambda v: _numeric_binary(decimal.Decimal(v)),
        DATE: lambda v: struct.pack("!i", (v - PG_EPOCH_DATE).days),
        TIME: lambda v: struct.pack("!q", ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000
                                    + v.microsecond),
        TIMESTAMP: lambda v: struct.pack("!q", (v - PG_EPOCH) // dt.timedelta(microseconds=1)),
        TIMESTAMPTZ: lambda v: struct.pack("!q", (v - PG_EPOCH_UTC) // dt.timedelta(microseconds=1)),
        INTERVAL: lambda v: (lambda p: struct.pack("!qii", p[2], p[1], p[0]))(_interval_parts(v)),
        UUID: lambda v: uuid.UUID(str(v)).bytes,
        BYTEA: bytes,
    }
    if oid in packers:
        return packers[oid]
    text = _text_scalar(oid, dt.UTC)
    return lambda v: text(v).encode()


def binary_encoder(kind: PgType) -> Callable[[Any], bytes]:
    """Value to its PostgreSQL binary form (what ``psycopg`` asks for with ``binary=True``)."""
    if kind.element is None:
        return _binary_scalar(kind.oid)
    element, scalar = kind.element, _binary_scalar(kind.element)

    def array(value: Any) -> bytes:
        items = [None if item is None else scalar(item) for item in value]
        head = struct.pack("!iiiii", 1, int(None in items), element, len(items), 1)
        return head + b"".join(struct.pack("!i", -1) if item is None
                               else struct.pack("!i", len(item)) + item for item in items)
    return array


# --- parameters ----------------------------------------------------------------------------

def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("t", "true", "y", "yes", "on", "1"):
        return True
    if lowered in ("f", "false", "n", "no", "off", "0"):
        return False
    raise ValueError(f"invalid input syntax for type boolean: {text!r}")


def _timestamptz(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.strip())
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


_TEXT_PARAMS: dict[int, Callable[[str], Any]] = {
    BOOL: _bool, INT2: int, INT4: int, INT8: int, OID: int, FLOAT4: float, FLOAT8: float,
    NUMERIC: decimal.Decimal, DATE: dt.date.fromisoformat, TIME: dt.time.fromisoformat,
    TIMESTAMP: lambda t: dt.datetime.fromisoformat(t.strip()), TIMESTAMPTZ: _timestamptz,
    UUID: uuid.UUID, BYTEA: lambda t: bytes.fromhex(t[2:]) if t.startswith("\\x") else t.encode(),
}


def _numeric_from_binary(data: bytes) -> decimal.Decimal:
    ndigits, weight, sign, dscale = struct.unpack_from("!hhHh", data)
    if sign == 0xC000:
        return decimal.Decimal("NaN")
    digits = struct.unpack_from(f"!{ndigits}H", data, 8)
    value = sum(decimal.Decimal(d) * decimal.Decimal(10000) ** (weight - i) for i, d in enumerate(digits))
    value = decimal.Decimal(value).quantize(decimal.Decimal(1).scaleb(-dscale))
    return -value if sign == 0x4000 else value


_BINARY_PARAMS: dict[int, Callable[[bytes], Any]] = {
    BOOL: lambda b: b != b"\x00", INT2: lambda b: struct.unpack("!h", b)[0],
    INT4: lambda b: struct.unpack("!i", b)[0], INT8: lambda b: struct.unpack("!q", b)[0],
    OID: lambda b: struct.unpack("!I", b)[0],
    FLOAT4: lambda b: struct.unpack("!f", b)[0], FLOAT8: lambda b: struct.unpack("!d", b)[0],
    NUMERIC: _numeric_from_binary,
    DATE: lambda b: PG_EPOCH_DATE + dt.timedelta(days=struct.unpack("!i", b)[0]),
    TIMESTAMP: lambda b: PG_EPOCH + dt.timedelta(microseconds=struct.unpack("!q", b)[0]),
    TIMESTAMPTZ: lambda b: PG_EPOCH_UTC + dt.timedelta(microseconds=struct.unpack("!q", b)[0]),
    UUID: lambda b: uuid.UUID(bytes=b), BYTEA: bytes,
}


def decode_parameter(oid: int, data: bytes, binary: bool) -> Any:
    """A bound parameter as the Python value DuckDB binds; unknown types as text.

    Raises ValueError, and only that, for bytes that do not read as the type: they
    come from the client, and the session answers 22P02 and goes on.
    """
    try:
        if binary:
            if oid in _BINARY_PARAMS:
                return _BINARY_PARAMS[oid](data)
            if oid == JSONB:
                return data[1:].decode()
            return data.decode()
        text = data.decode()
        return _TEXT_PARAMS[oid](text) if oid in _TEXT_PARAMS else text
    except (struct.error, ArithmeticError) as exc:  # short binary values, decimal and date overflows
        raise ValueError(f"{exc} (a value of type {oid})") from exc


def session_zone(name: str) -> dt.tzinfo:
    """The zone a ``SET TimeZone`` names; raises ValueError for an unknown one."""
    if name.upper() in ("UTC", "GMT", "Z"):
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f'invalid value for parameter "TimeZone": "{name}"') from exc
