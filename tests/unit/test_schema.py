"""The JSON Schema subset: what parses, and that every unsupported thing is named."""

from __future__ import annotations

import pytest

from lakehose.errors import SchemaError
from lakehose.registry.schema import (
    count_columns,
    deepest_field,
    is_valid_stream_name,
    parse_schema,
    schema_depth,
)


def test_full_subset_parses() -> None:
    schema = parse_schema({
        "type": "object", "required": ["a"],
        "properties": {
            "a": {"type": "integer", "minimum": 0, "maximum": 10},
            "b": {"type": "number"}, "c": {"type": "string", "maxLength": 3, "enum": ["x", "y"]},
            "d": {"type": "boolean"}, "e": {"type": "string", "format": "date-time"},
            "f": {"type": "array", "items": {"type": "object", "properties": {"g": {"type": "string"}}}},
            "ts": {"type": "string", "format": "date-time"}, "event_id": {"type": "string"},
        }})
    names = [f.name for f in schema.fields]
    assert names == ["a", "b", "c", "d", "e", "f"]  # envelope fields are not user columns
    assert schema.fields[0].required and not schema.fields[1].required
    assert schema.fields[4].kind == "datetime"
    assert schema.fields[5].items is not None and schema.fields[5].items.properties[0].name == "g"


def test_every_problem_is_named_with_its_path() -> None:
    with pytest.raises(SchemaError) as caught:
        parse_schema({"type": "object", "required": ["missing"], "properties": {
            "a": {"type": "integer", "pattern": "x"},
            "b": {"type": "string", "format": "email"},
            "c": {"type": "array"},
            "d": {"type": "null"},
            "received_at": {"type": "string"},
            "ts": {"type": "integer"},
            "bad name": {"type": "string"},
            "e": {"type": "string", "minimum": 1},
            "f": {"type": "integer", "enum": []},
        }})
    text = str(caught.value)
    for expected in ["$.a: unsupported keyword(s) pattern", "$.b: only format", "$.c: an array needs",
                     "$.d: type must be", "$.received_at", "$.ts", "$.bad name", "$.e: minimum/maximum",
                     "$.f: enum", "required field 'missing'"]:
        assert expected in text, expected


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(SchemaError, match="top-level"):
        parse_schema({"type": "string"})
    with pytest.raises(SchemaError):
        parse_schema([1, 2])


@pytest.mark.parametrize("name,ok", [("a", True), ("level_complete", True), ("a" * 63, True),
                                     ("a" * 64, False), ("Level", False), ("1abc", False),
                                     ("_x", False), ("a-b", False), ("", False)])
def test_stream_names(name: str, ok: bool) -> None:
    assert is_valid_stream_name(name) is ok


# size and shape: what the registry's limits count ------------------------------
def _schema(**properties: object) -> dict[str, object]:
    return {"type": "object", "properties": properties}


STRING = {"type": "string"}


def _nested_objects(levels: int) -> dict[str, object]:
    """``a.a.a...`` with ``levels`` objects, the innermost holding one string."""
    node: dict[str, object] = STRING
    for _ in range(levels):
        node = {"type": "object", "properties": {"a": node}}
    return node


@pytest.mark.parametrize("document,columns,depth,deepest", [
    ({"type": "object"}, 0, 1, "$"),
    (_schema(a=STRING, b={"type": "integer"}), 2, 1, "$.a"),
    # envelope fields are every table's, not the schema's
    (_schema(a=STRING, ts={"type": "string", "format": "date-time"}, event_id=STRING), 1, 1, "$.a"),
    # an object counts itself and each member
    (_schema(device={"type": "object", "properties": {"os": STRING, "model": STRING}}), 3, 2,
     "$.device.os"),
    (_schema(empty={"type": "object"}), 1, 2, "$.empty"),
    # an array's element is no named field; its members are
    (_schema(tags={"type": "array", "items": STRING}), 1, 2, "$.tags[]"),
    (_schema(rounds={"type": "array", "items": {"type": "object", "properties": {
        "n": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}}}), 3, 3, "$.rounds[].n"),
    (_schema(grid={"type": "array", "items": {"type": "array", "items": {"type": "number"}}}), 1, 3,
     "$.grid[][]"),
    (_schema(flat=STRING, deep=_nested_objects(3), other={"type": "boolean"}), 6, 4, "$.deep.a.a.a"),
])
def test_columns_and_depth(document: dict[str, object], columns: int, depth: int, deepest: str) -> None:
    schema = parse_schema(document)
    assert count_columns(schema) == columns
    assert schema_depth(schema) == depth
    assert deepest_field(schema) == (depth, deepest)


def test_level_schema_shape() -> None:
    from conftest import LEVEL_SCHEMA

    schema = parse_schema(LEVEL_SCHEMA)
    assert count_columns(schema) == 10  # 8 fields + device.os + device.model
    assert schema_depth(schema) == 2


def test_the_deepest_path_is_the_first_of_the_deepest() -> None:
    schema = parse_schema(_schema(x=_nested_objects(1), y=_nested_objects(2), z=_nested_objects(2)))
    assert deepest_field(schema) == (3, "$.y.a.a")


def test_columns_count_every_member_of_a_wide_schema() -> None:
    wide = _schema(**{f"f{i}": {"type": "object", "properties": {f"g{j}": STRING for j in range(9)}}
                      for i in range(50)})
    assert count_columns(parse_schema(wide)) == 500


def test_a_schema_too_deep_to_read_is_a_schema_error_not_a_crash() -> None:
    with pytest.raises(SchemaError, match="nested too deeply"):
        parse_schema(_schema(a=_nested_objects(5000)))


def test_limits_name_the_setting_to_raise() -> None:
    from lakehose.config import parse_settings
    from lakehose.errors import LimitReached
    from lakehose.streams import check_schema_limits

    settings = parse_settings({"registry": {"max_columns": 3, "max_depth": 2}}, {}, "/tmp/unused")
    check_schema_limits(settings, parse_schema(_schema(a=_nested_objects(1), b=STRING)))
    with pytest.raises(LimitReached) as caught:
        check_schema_limits(settings, parse_schema(_schema(a=_nested_objects(2), b=STRING, c=STRING)))
    assert caught.value.settings == ["max_columns", "max_depth"]
    text = str(caught.value)
    assert "5 columns" in text and "limit of 3" in text
    assert "[registry] max_columns (LAKEHOSE_REGISTRY__MAX_COLUMNS)" in text
    assert "$.a.a.a: nested 3 levels deep" in text and "limit of 2" in text
    assert "[registry] max_depth (LAKEHOSE_REGISTRY__MAX_DEPTH)" in text


def test_an_update_may_keep_but_not_grow_a_schema_over_a_lowered_limit() -> None:
    from lakehose.config import parse_settings
    from lakehose.errors import LimitReached
    from lakehose.streams import check_schema_limits

    settings = parse_settings({"registry": {"max_columns": 2, "max_depth": 2}}, {}, "/tmp/unused")
    current = parse_schema(_schema(a=_nested_objects(2), b=STRING))  # 4 columns, depth 3
    same_size = parse_schema(_schema(a=_nested_objects(2), b={"type": "string", "maxLength": 9}))
    check_schema_limits(settings, same_size, current)
    with pytest.raises(LimitReached, match="max_columns"):
        check_schema_limits(settings, parse_schema(_schema(a=_nested_objects(2), b=STRING, c=STRING)),
                            current)
    with pytest.raises(LimitReached, match="max_depth"):
        check_schema_limits(settings, parse_schema(_schema(a=_nested_objects(3))), current)
