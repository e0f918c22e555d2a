"""Explore specs become SQL whose shown text and bound form give the same rows; bad specs say why."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import duckdb
import msgspec
import pytest

from lakehose.query.explore import ExploreSpec, build, columns
from lakehose.registry.schema import parse_schema

SCHEMA = parse_schema({"type": "object", "properties": {
    "user_id": {"type": "string"}, "level": {"type": "integer"}, "score": {"type": "number"},
    "won": {"type": "boolean"}, "mode": {"type": "string", "enum": ["easy", "hard"]},
    "items": {"type": "array", "items": {"type": "string"}},
    "finished_at": {"type": "string", "format": "date-time"},
    "device": {"type": "object", "properties": {"os": {"type": "string"}}}}})

ROWS = [  # ts, user_id, level, score, won, mode, os
    ("2026-01-01 10:05:00+00", "u1", 1, 10.5, True, "easy", "iOS"),
    ("2026-01-01 10:35:00+00", "u2", 2, 20.0, False, "hard", "Android"),
    ("2026-01-01 11:05:00+00", "u1", 3, 30.0, True, "hard", "iOS"),
    ("2026-01-02 09:00:00+00", "it's", 4, None, None, None, None),
    ("2026-01-03 09:00:00+00", "u3", 5, 50.0, False, "easy", "Android"),
]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE SCHEMA events")
    con.execute("CREATE TABLE events.games (event_id VARCHAR, ts TIMESTAMPTZ, received_at TIMESTAMPTZ, "
                "user_id VARCHAR, level BIGINT, score DOUBLE, won BOOLEAN, mode VARCHAR, items VARCHAR[], "
                "finished_at TIMESTAMPTZ, device STRUCT(os VARCHAR))")
    for n, (ts, user, level, score, won, mode, os) in enumerate(ROWS):
        con.execute("INSERT INTO events.games VALUES (?, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ, ?, ?, ?, ?, ?, "
                    "[], NULL, {'os': ?})", [f"e{n}", ts, ts, user, level, score, won, mode, os])
    return con


def spec(**fields: Any) -> ExploreSpec:
    return msgspec.convert({"stream": "games", "range": "all", **fields}, ExploreSpec)


def both(con: duckdb.DuckDBPyConnection, question: ExploreSpec) -> list[tuple[Any, ...]]:
    """Run the bound form and the shown text; they must agree."""
    built = build(question, SCHEMA, "events")
    bound = con.execute(built.sql, built.params).fetchall()
    shown = con.execute(built.text).fetchall()
    assert bound == shown, built.text
    return bound


def test_fields_are_every_leaf_at_any_depth_plus_the_envelope() -> None:
    known = columns(SCHEMA)
    assert {"event_id", "ts", "received_at", "user_id", "device.os", "finished_at", "items"} <= set(known)
    assert "device" not in known and (known["items"].kind, known["items"].items) == ("array", "string")
    assert known["mode"].enum == ("easy", "hard") and known["score"].kind == "number"


def test_counts_per_hour_by_a_nested_field(con: duckdb.DuckDBPyConnection) -> None:
    rows = both(con, spec(grain="hour", group_by=["device.os"], range="2026-01-01T00:00Z/2026-01-02T00:00Z"))
    utc = dt.timezone.utc
    assert [(r[0].astimezone(utc).hour, r[1], r[2]) for r in rows] == [
        (10, "Android", 1), (10, "iOS", 1), (11, "iOS", 1)]


@pytest.mark.parametrize(("metric", "field", "expected"), [
    ("count", None, 5), ("unique", None, 4), ("unique", "mode", 2), ("sum", "level", 15),
    ("avg", "score", 27.625), ("min", "level", 1), ("max", "score", 50.0), ("p50", "level", 3.0),
])
def test_metrics(con: duckdb.DuckDBPyConnection, metric: str, field: str | None, expected: float) -> None:
    assert both(con, spec(metric=metric, field=field)) == [(expected,)]


@pytest.mark.parametrize(("filters", "expected"), [
    ([{"field": "mode", "op": "=", "value": "hard"}], 2),
    ([{"field": "level", "op": ">=", "value": "3"}], 3),  # typed in a form: parsed as an integer
    ([{"field": "score", "op": "<", "value": 25}], 2),
    ([{"field": "won", "op": "=", "value": "true"}], 2),
    ([{"field": "user_id", "op": "in", "value": ["u1", "it's"]}], 3),
    ([{"field": "user_id", "op": "not_in", "value": ["u1"]}], 3),
    ([{"field": "user_id", "op": "contains", "value": "'"}], 1),
    ([{"field": "mode", "op": "is_null"}], 1),
    ([{"field": "device.os", "op": "!=", "value": "iOS"}], 2),
    ([{"field": "ts", "op": ">", "value": "2026-01-02"}], 2),
    ([{"field": "mode", "op": "=", "value": "easy"}, {"field": "level", "op": ">", "value": 1}], 1),
])
def test_filters(con: duckdb.DuckDBPyConnection, filters: list[dict[str, Any]], expected: int) -> None:
    assert both(con, spec(filters=filters)) == [(expected,)]


def test_values_never_become_sql(con: duckdb.DuckDBPyConnection) -> None:
    hostile = "x') OR 1=1; DROP TABLE events.games; --"
    built = build(spec(filters=[{"field": "user_id", "op": "=", "value": hostile}]), SCHEMA, "events")
    assert hostile not in built.sql and built.params == [hostile]
    assert both(con, spec(filters=[{"field": "user_id", "op": "=", "value": hostile}])) == [(0,)]
    assert con.execute("SELECT count(*) FROM events.games").fetchone() == (5,)


def test_categories_come_biggest_first_with_ties_in_order(con: duckdb.DuckDBPyConnection) -> None:
    assert both(con, spec(group_by=["mode"])) == [("easy", 2), ("hard", 2), (None, 1)]


def test_a_relative_range_is_written_as_now_minus_an_interval() -> None:
    built = build(spec(range="7d"), SCHEMA, "events")
    assert "\"ts\" >= now() - INTERVAL '7 days'" in built.text and built.params == []


@pytest.mark.parametrize(("fields", "problem"), [
    ({"group_by": ["nope"]}, "group_by: the stream has no field 'nope'"),
    ({"group_by": ["items"]}, "group_by: 'items' is an array (scalar fields: "),
    ({"metric": "unique", "field": "items"}, "'items' is an array"),
    ({"filters": [{"field": "items", "op": "=", "value": "a"}]}, "filter 1: 'items' is an array"),
    ({"metric": "avg", "field": "user_id"}, "needs a numeric field; 'user_id' is string"),
    ({"metric": "count", "field": "level"}, "count counts events"),
    ({"filters": [{"field": "level", "op": "contains", "value": "1"}]}, "contains works on text"),
    ({"filters": [{"field": "level", "op": "=", "value": "one"}]}, "'one' is not a valid integer"),
    ({"filters": [{"field": "score", "op": "=", "value": "nan"}]}, "not a valid number"),
    ({"filters": [{"field": "won", "op": ">", "value": True}]}, "a boolean can only be = or !="),
    ({"filters": [{"field": "mode", "op": "="}]}, "= needs a value"),
    ({"filters": [{"field": "mode", "op": "in", "value": []}]}, "in takes 1 to"),
    ({"filters": [{"field": "ts", "op": ">", "value": "yesterday"}]}, "not an ISO 8601 date-time"),
    ({"range": "last week"}, "is not one of 15m"),
    ({"range": "2026-01-01/soon"}, "range end: 'soon' is not an ISO 8601 date-time"),
    ({"group_by": ["mode", "level", "won", "user_id"]}, "at most 3"),
    ({"limit": 0}, "limit: between 1 and"),
])
def test_bad_specs_say_what_is_wrong(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        build(spec(**fields), SCHEMA, "events")
