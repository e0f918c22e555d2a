"""The JSON Schema subset: what parses, and that every unsupported thing is named."""

from __future__ import annotations

import pytest

from lakehose.errors import SchemaError
from lakehose.registry.schema import is_valid_stream_name, parse_schema


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
