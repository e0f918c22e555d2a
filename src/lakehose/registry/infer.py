"""Schemas inferred from events: for new event types and for new fields (policy ``evolve``).

Every inferred field is optional. Integers that also appear as floats become
``number``; strings that all parse as RFC 3339 date-times become
``date-time``; objects are inferred field by field, arrays from their elements.
A field whose values disagree in kind (a string here, an object there), or
that is only ever null, cannot be inferred: it is left out and named, so the
events that carry it are rejected with that reason instead of guessed at.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from lakehose.registry.schema import ENVELOPE_FIELDS, FIELD_NAME

_CLIENT_ONLY = {"type"}  # names the stream in mixed batches; never a column of its own


def _is_datetime(text: str) -> bool:
    if len(text) < 10 or text[4:5] != "-":
        return False
    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "datetime" if _is_datetime(value) else "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def infer_node(values: list[Any], path: str, problems: list[str]) -> dict[str, Any] | None:
    """The schema of one field from all the values seen for it, or None (problem noted)."""
    kinds = {_kind(v) for v in values} - {"null"}
    if kinds == {"integer", "number"}:
        kinds = {"number"}
    if kinds == {"datetime", "string"}:
        kinds = {"string"}
    if not kinds:
        problems.append(f"{path}: only null values; its type cannot be inferred")
        return None
    if len(kinds) > 1:
        problems.append(f"{path}: values of different types ({', '.join(sorted(kinds))})")
        return None
    kind = kinds.pop()
    if kind == "datetime":
        return {"type": "string", "format": "date-time"}
    if kind == "array":
        items = [item for v in values if isinstance(v, list) for item in v]
        item_schema = infer_node(items, f"{path}[]", problems)
        return None if item_schema is None else {"type": "array", "items": item_schema}
    if kind == "object":
        return infer_object([v for v in values if isinstance(v, dict)], path, problems, top=False)
    return {"type": kind}


def infer_object(objects: Iterable[Mapping[str, Any]], path: str, problems: list[str],
                 top: bool = True) -> dict[str, Any]:
    seen: dict[str, list[Any]] = {}
    for obj in objects:
        for name, value in obj.items():
            seen.setdefault(name, []).append(value)
    properties: dict[str, Any] = {}
    for name, values in seen.items():
        if top and (name in ENVELOPE_FIELDS or name in _CLIENT_ONLY):
            continue
        if FIELD_NAME.fullmatch(name) is None:
            problems.append(f"{path}.{name}: field names must match {FIELD_NAME.pattern}")
            continue
        node = infer_node(values, f"{path}.{name}", problems)
        if node is not None:
            properties[name] = node
    return {"type": "object", "properties": properties}


def infer_schema(events: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """A schema document for a new stream, and the fields that could not be inferred."""
    problems: list[str] = []
    document = infer_object(events, "$", problems)
    document["properties"]["ts"] = {"type": "string", "format": "date-time"}
    return document, problems


def with_new_fields(document: Mapping[str, Any], events: Iterable[Mapping[str, Any]]
                    ) -> tuple[dict[str, Any], list[str]]:
    """``document`` plus optional fields for what the events carry and it lacks (any depth)."""
    problems: list[str] = []
    merged = _merge(dict(document), list(events), "$", problems, top=True)
    return merged, problems


def _merge(node: dict[str, Any], objects: list[Mapping[str, Any]], path: str, problems: list[str],
           top: bool) -> dict[str, Any]:
    properties = dict(node.get("properties", {}))
    for name, child in list(properties.items()):
        if child.get("type") == "object":
            nested = [o[name] for o in objects if isinstance(o.get(name), dict)]
            if nested:
                properties[name] = _merge(dict(child), nested, f"{path}.{name}", problems, top=False)
    unknown = [{k: v for k, v in o.items() if k not in properties} for o in objects]
    inferred = infer_object(unknown, path, problems, top=top)["properties"]
    properties.update(inferred)
    return {**node, "properties": properties}
