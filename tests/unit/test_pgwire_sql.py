"""The PostgreSQL endpoint's pure parts: statement splitting, catalog rewrites, value forms."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest

from lakehose.pgwire import types as t
from lakehose.pgwire.catalog import rewrite, split_statements


def test_split_respects_quotes_comments_and_dollar_quotes() -> None:
    sql = "SELECT 'a;b'; SELECT \"x;y\" FROM t -- c;\n; /* ; */ SELECT $$;$$;;  "
    assert split_statements(sql) == ["SELECT 'a;b'", " SELECT \"x;y\" FROM t -- c;\n", " /* ; */ SELECT $$;$$"]
    assert split_statements(" ; -- nothing") == []


@pytest.mark.parametrize("sql, expected", [
    ("SELECT pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c",
     "SELECT pg_compat.pg_get_userbyid(c.relowner) FROM pg_compat.pg_class c"),
    ("SELECT pg_catalog.array_to_string(x, ',')", "SELECT array_to_string(x, ',')"),
    ("WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default",
     "WHERE c.relname  ~  '(?s).*(?:^(t)$).*' "),
    ("WHERE n.nspname !~ '^pg_'", "WHERE n.nspname  !~  '(?s).*(?:^pg_).*'"),
    ("SELECT 'events.t'::regclass, c.oid::pg_catalog.regclass, x::name",
     "SELECT pg_compat.regclass_oid('events.t'), c.oid::BIGINT, x::VARCHAR"),
    ("SELECT CAST('pg_catalog.pg_class' AS REGCLASS)",
     "SELECT CAST(pg_compat.regclass_oid('pg_catalog.pg_class') AS BIGINT)"),
    ("FROM generate_series(0, 3) s, t", "FROM generate_series(0, 3) s(s), t"),
    ("SELECT unnest(ix.indkey) attnum, 1 FROM t, unnest(x) u",
     "SELECT unnest(ix.indkey) attnum, 1 FROM t, unnest(x) u(u)"),
    ("ON t.oid = a.attrelid and a.attnum = ANY(ix.indkey) WHERE relkind = ANY(ARRAY['r'])",
     "ON t.oid = a.attrelid and list_contains(ix.indkey, a.attnum) WHERE relkind = ANY(ARRAY['r'])"),
    ("SELECT json_build_object('a', 1), pg_backend_pid()", "SELECT json_object('a', 1), 42"),
    ("SELECT * FROM information_schema.\"tables\" t", "SELECT * FROM pg_compat.information_schema_tables t"),
    ("SELECT 'pg_class', \"pg_class\", a != b", "SELECT 'pg_class', \"pg_class\", a != b"),
])
def test_rewrite(sql: str, expected: str) -> None:
    assert rewrite(sql, 42) == expected


def test_pg_types_of_duckdb_types() -> None:
    assert t.pg_type("TIMESTAMP WITH TIME ZONE").oid == t.TIMESTAMPTZ
    assert t.pg_type("DECIMAL(18,3)").oid == t.NUMERIC
    assert t.pg_type("VARCHAR[]") == t.PgType(1009, t.TEXT)
    assert t.pg_type("STRUCT(a INTEGER)").oid == t.TEXT
    assert t.pg_type("INTEGER[][]").oid == t.TEXT


def test_text_forms() -> None:
    kolkata = zoneinfo.ZoneInfo("Asia/Kolkata")
    stamp = dt.datetime(2026, 1, 1, 8, 0, 0, 120000, tzinfo=dt.UTC)
    assert t.text_encoder(t.PgType(t.TIMESTAMPTZ), dt.UTC)(stamp) == b"2026-01-01 08:00:00.12+00"
    assert t.text_encoder(t.PgType(t.TIMESTAMPTZ), kolkata)(stamp) == b"2026-01-01 13:30:00.12+05:30"
    assert t.text_encoder(t.PgType(1009, t.TEXT), dt.UTC)(["a", "b c", None, "", 'q"']) == \
        b'{a,"b c",NULL,"","q\\""}'
    assert t.text_encoder(t.PgType(t.FLOAT8), dt.UTC)(float("inf")) == b"Infinity"
    assert t.text_encoder(t.PgType(t.NUMERIC), dt.UTC)(2**64 - 1) == b"18446744073709551615"  # UBIGINT
    assert t.text_encoder(t.PgType(t.TEXT), dt.UTC)({"a": [1, None]}) == b'{"a": [1, null]}'  # STRUCT
    assert t.text_encoder(t.PgType(t.INTERVAL), dt.UTC)(dt.timedelta(days=3, seconds=5)) == b"3 days 00:00:05"


@pytest.mark.parametrize("value", ["0", "1.250", "-12345.6789", "100000000", "0.0001", "NaN", "1E+3"])
def test_numeric_binary_round_trip(value: str) -> None:
    encoded = t.binary_encoder(t.PgType(t.NUMERIC))(Decimal(value))
    decoded = t.decode_parameter(t.NUMERIC, encoded, binary=True)
    assert decoded.is_nan() if value == "NaN" else decoded == Decimal(value)


def test_parameters() -> None:
    assert t.decode_parameter(t.TIMESTAMPTZ, b"2026-01-01 10:00:00+02", binary=False) == \
        dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC)
    assert t.decode_parameter(t.BOOL, b"t", binary=False) is True
    assert t.decode_parameter(0, b"text", binary=False) == "text"
    with pytest.raises(ValueError):
        t.decode_parameter(t.INT4, b"x", binary=False)
