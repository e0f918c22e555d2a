"""The JSON Schema subset a stream is declared with, parsed into a field tree.

Supported: ``type`` object / string / integer / number / boolean / array (with
``items``), nested objects (``properties``), ``format: date-time``, ``enum``,
``required``, ``minimum`` / ``maximum``, ``maxLength``, and ``description`` /
``title`` as documentation. Anything else is refused with the path of the
keyword, so a schema never means something other than what it says.

``event_id``, ``ts`` and ``received_at`` are envelope columns that every table
has; a schema may declare ``event_id`` (string) and ``ts`` (date-time) to
document them, but not with other types, and never ``received_at``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from lakehose.errors import SchemaError

Kind = Literal["string", "integer", "number", "boolean", "datetime", "array", "object"]

STREAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
ENVELOPE_FIELDS = ("event_id", "ts", "received_at")
EXTRA_COLUMN = "_extra"  # unknown fields as JSON text, for streams whose policy is "keep"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_KNOWN_KEYWORDS = {
    "type", "properties", "required", "items", "format", "enum", "minimum", "maximum",
    "maxLength", "description", "title", "$schema", "$id", "additionalProperties",
}


@dataclass(frozen=True)
class Field:
    """One field of an event, at any depth."""

    name: str
    kind: Kind
    required: bool = False
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    items: Field | None = None
    properties: tuple[Field, ...] = field(default=())


@dataclass(frozen=True)
class StreamSchema:
    """A parsed stream schema: its top-level fields (envelope fields excluded)."""

    fields: tuple[Field, ...]
    document: dict[str, Any]


def is_valid_stream_name(name: str) -> bool:
    return STREAM_NAME.fullmatch(name) is not None


def parse_schema(document: Any) -> StreamSchema:
    """Parse and check a schema document; raises SchemaError naming every problem."""
    problems: list[str] = []
    if not isinstance(document, dict):
        raise SchemaError(["$: a schema must be a JSON object"])
    try:
        root = _parse_node("$", "$", document, False, problems)
    except RecursionError:
        raise SchemaError(["$: the schema is nested too deeply to read"]) from None
    if root is not None and root.kind != "object":
        problems.append("$: the top-level type must be \"object\"")
    fields = root.properties if root is not None else ()
    kept: list[Field] = []
    for f in fields:
        if f.name == "received_at":
            problems.append("$.received_at: set by the collector; a schema cannot declare it")
        elif f.name == "event_id" and f.kind != "string":
            problems.append("$.event_id: must be a string if declared")
        elif f.name == "ts" and f.kind not in ("datetime",):
            problems.append("$.ts: must be {\"type\": \"string\", \"format\": \"date-time\"} if declared")
        elif f.name not in ENVELOPE_FIELDS:
            kept.append(f)
    if problems:
        raise SchemaError(problems)
    return StreamSchema(fields=tuple(kept), document=document)


def _number(path: str, node: dict[str, Any], key: str, problems: list[str]) -> float | None:
    value = node.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{path}: {key} must be a number")
        return None
    return value


def _parse_node(
    path: str, name: str, node: Any, required: bool, problems: list[str]
) -> Field | None:
    if not isinstance(node, dict):
        problems.append(f"{path}: expected a schema object")
        return None
    unknown = sorted(set(node) - _KNOWN_KEYWORDS)
    if unknown:
        problems.append(f"{path}: unsupported keyword(s) {', '.join(unknown)}")
    declared = node.get("type")
    if declared not in ("object", "string", "integer", "number", "boolean", "array"):
        problems.append(f"{path}: type must be one of object, string, integer, number, "
                        f"boolean, array (got {declared!r})")
        return None
    kind: Kind = declared
    fmt = node.get("format")
    if fmt is not None:
        if kind == "string" and fmt == "date-time":
            kind = "datetime"
        else:
            problems.append(f"{path}: only format \"date-time\" on strings is supported")
    enum = node.get("enum")
    if enum is not None:
        ok_types = {"string": (str,), "integer": (int,), "number": (int, float)}.get(kind)
        if (not isinstance(enum, list) or not enum or ok_types is None
                or any(isinstance(v, bool) or not isinstance(v, ok_types) for v in enum)):
            problems.append(f"{path}: enum must be a non-empty list of {kind} values "
                            "(strings, integers or numbers only)")
            enum = None
    minimum = _number(path, node, "minimum", problems)
    maximum = _number(path, node, "maximum", problems)
    if (minimum is not None or maximum is not None) and kind not in ("integer", "number"):
        problems.append(f"{path}: minimum/maximum apply to integer and number only")
    max_length = node.get("maxLength")
    if max_length is not None and (kind != "string" or not isinstance(max_length, int)
                                   or isinstance(max_length, bool) or max_length < 0):
        problems.append(f"{path}: maxLength must be a non-negative integer on a string")
        max_length = None
    additional = node.get("additionalProperties")
    if additional not in (None, False) and kind == "object":
        problems.append(f"{path}: additionalProperties may only be false "
                        "(unknown fields are rejected)")
    items: Field | None = None
    properties: list[Field] = []
    if kind == "array":
        if "items" not in node:
            problems.append(f"{path}: an array needs \"items\"")
        else:
            items = _parse_node(f"{path}[]", "element", node["items"], True, problems)
    elif "items" in node:
        problems.append(f"{path}: \"items\" applies to arrays only")
    if kind == "object":
        props = node.get("properties", {})
        req = node.get("required", [])
        if not isinstance(props, dict):
            problems.append(f"{path}: properties must be an object")
            props = {}
        if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
            problems.append(f"{path}: required must be a list of field names")
            req = []
        for missing in sorted(set(req) - set(props)):
            problems.append(f"{path}: required field {missing!r} is not in properties")
        for prop_name, prop_node in props.items():
            prop_path = f"{path}.{prop_name}"
            if FIELD_NAME.fullmatch(prop_name) is None:
                problems.append(f"{prop_path}: field names must match {FIELD_NAME.pattern}")
                continue
            child = _parse_node(prop_path, prop_name, prop_node, prop_name in req, problems)
            if child is not None:
                properties.append(child)
    elif "properties" in node or "required" in node:
        problems.append(f"{path}: properties/required apply to objects only")
    return Field(
        name=name, kind=kind, required=required,
        enum=tuple(enum) if enum is not None else None,
        minimum=minimum, maximum=maximum, max_length=max_length,
        items=items, properties=tuple(properties),
    )


# size and shape, for the registry's limits -----------------------------------
def count_columns(schema: StreamSchema) -> int:
    """Every named field at every depth: top-level fields, object members (also inside arrays).

    An object or array field counts itself and its members, so ``device: {os, model}``
    is three columns; an array's element is not a named field, only its members
    are counted. Envelope fields (``event_id``, ``ts``, ``received_at``) are not.
    """
    return sum(_columns(f) for f in schema.fields)


def _columns(f: Field) -> int:
    return 1 + _members(f)


def _members(f: Field) -> int:
    if f.kind == "object":
        return sum(_columns(p) for p in f.properties)
    if f.kind == "array" and f.items is not None:
        return _members(f.items)
    return 0


def schema_depth(schema: StreamSchema) -> int:
    """How deeply objects and arrays nest: a flat event is 1, ``device.os`` makes it 2,
    an array of objects (``rounds[].n``) 3, an array of arrays of strings 3."""
    return deepest_field(schema)[0]


def deepest_field(schema: StreamSchema) -> tuple[int, str]:
    """The schema's depth (as ``schema_depth``) and the path of a field that deep."""
    return _deepest_member(schema.fields, "$")


def _deepest(f: Field, path: str) -> tuple[int, str]:
    """Levels of containers ``f`` opens (0 for a scalar) and the path of its deepest member."""
    if f.kind == "object":
        return _deepest_member(f.properties, path)
    if f.kind == "array" and f.items is not None:
        depth, deeper = _deepest(f.items, f"{path}[]")
        return 1 + depth, deeper
    return 0, path


def _deepest_member(members: tuple[Field, ...], path: str) -> tuple[int, str]:
    """One level for the object at ``path``, plus its deepest member's (the first one if tied)."""
    best = (1, path)
    for i, m in enumerate(members):
        depth, deeper = _deepest(m, f"{path}.{m.name}")
        if i == 0 or 1 + depth > best[0]:
            best = (1 + depth, deeper)
    return best
