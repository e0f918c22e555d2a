"""An event a stream's schema accepts, for hints such as ``up``'s example curl.

A hint that posts a body its stream rejects teaches the wrong thing, so the body
is made from the schema: every required field (at every depth) and, at the top,
optional scalar fields until there are three, each with a value its keywords
allow (``enum``, ``minimum``, ``format``).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

TOP_LEVEL_FIELDS = 3


def _type(spec: dict[str, Any]) -> str:
    kind = spec.get("type", "string")
    if isinstance(kind, list):
        return next((k for k in kind if k != "null"), "null")
    return str(kind)


def example_value(name: str, spec: dict[str, Any]) -> Any:
    if spec.get("enum"):
        return spec["enum"][0]
    kind = _type(spec)
    if kind == "integer":
        return min(math.ceil(spec.get("minimum", 1)), math.floor(spec.get("maximum", 2**31)))
    if kind == "number":
        return float(spec.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return example_event(spec, optional_fields=0)
    if kind == "null":
        return None
    if spec.get("format") == "date-time":
        return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return "u1" if name.endswith("id") else "x"


def example_event(document: dict[str, Any], optional_fields: int = TOP_LEVEL_FIELDS) -> dict[str, Any]:
    properties: dict[str, dict[str, Any]] = document.get("properties", {})
    required = [name for name in document.get("required", []) if name in properties]
    optional = [name for name, spec in properties.items()
                if name not in required and _type(spec) in ("string", "integer", "number", "boolean")
                and spec.get("format") is None]
    chosen = required + optional[:max(optional_fields - len(required), 0)]
    return {name: example_value(name, properties[name]) for name in chosen}
