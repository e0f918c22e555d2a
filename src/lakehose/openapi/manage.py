"""Routes that change things, with an admin token (their GETs take a read token): streams,
write keys, saved charts and dashboards, replaying rejected rows. Tokens are made only by
the CLI (``lakehose tokens``), never over HTTP."""

from __future__ import annotations

from typing import Any

from lakehose.openapi.common import NAME_PATTERN, TOKEN, answers, body, path_param, ref

_SAVED = {"id": {"type": "string"}, "name": {"type": "string"},
          "created_at": {"type": "number"}, "updated_at": {"type": "number"}}
SCHEMAS: dict[str, Any] = {
    "Stream": {"type": "object", "required": ["name", "version", "table", "schema"], "properties": {
        "name": {"type": "string"}, "version": {"type": "integer"},
        "unknown_fields": {"type": "string"}, "table": {"type": "string"},
        "hints": {"type": "object"}, "schema": {"type": "object", "description": "JSON Schema"}}},
    "Key": {"type": "object", "properties": {
        "name": {"type": "string"}, "prefix": {"type": "string"}, "created_at": {"type": "number"},
        "revoked_at": {"type": ["number", "null"]}, "auto_create": {"type": "boolean"}}},
    "Chart": {"type": "object", "required": ["id", "name"], "properties": {
        **_SAVED, "viz": {"type": "string"}, "explore": {"type": ["object", "null"]},
        "sql": {"type": ["string", "null"]}}},
    "Dashboard": {"type": "object", "required": ["id", "name"], "properties": {
        **_SAVED, "tiles": {"type": "array", "items": {"type": "object"}},
        "range": {"type": ["string", "null"]}, "refresh": {"type": "integer"}}},
}


def _listing(key: str, item: str) -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": "array", "items": ref(item)}}}


def _op(summary: str, ok: dict[str, Any] | None, *errors: int, status: str = "200",
        request: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": ["manage"], "security": TOKEN,
                          "responses": answers(ok, 401, 403, *errors, status=status), **extra}
    if request is not None:
        op["requestBody"] = body(request)
    return op


def _documents(kind: str, item: str, request: dict[str, Any]) -> dict[str, Any]:
    """``/v1/charts`` and ``/v1/dashboards``: the same five operations."""
    one = [path_param("id", f"the {kind}'s id")]
    return {
        f"/v1/{kind}s": {
            "get": _op(f"Saved {kind}s", _listing(f"{kind}s", item)),
            "post": _op(f"Save a {kind}", ref(item), 400, 404, status="201", request=request)},
        f"/v1/{kind}s/{{id}}": {
            "get": _op(f"One {kind}", ref(item), 404, parameters=one),
            "put": _op(f"Change a {kind}", ref(item), 400, 404, request=request, parameters=one),
            "delete": _op(f"Delete a {kind}", {"type": "object", "properties": {"deleted": {"type": "string"}}},
                          400, 404, parameters=one)},
    }


def paths(body_schemas: dict[str, Any]) -> dict[str, Any]:
    """The management routes; ``body_schemas``: name → component ref of each request body type."""
    stream = [path_param("name", "the stream", NAME_PATTERN)]
    return {
        "/v1/streams": {
            "get": _op("Every stream with its current schema", _listing("streams", "Stream")),
            "post": _op("Create a stream (and its table)", ref("Stream"), 400, 409, status="201",
                        request=body_schemas["NewStream"])},
        "/v1/streams/{name}": {
            "get": _op("One stream", ref("Stream"), 404, parameters=stream),
            "put": _op("Change a stream's schema (compatible changes only)", ref("Stream"), 400, 404, 409,
                       request=body_schemas["StreamUpdate"], parameters=stream)},
        "/v1/streams/{name}/history": {"get": _op(
            "Every schema version of a stream",
            {"type": "object", "properties": {"versions": {"type": "array", "items": {"type": "object"}}}},
            404, parameters=stream)},
        "/v1/keys": {
            "get": _op("Write keys (never the secrets)", _listing("keys", "Key")),
            "post": _op("Create a write key; the answer shows it once", {"type": "object", "properties": {
                "name": {"type": "string"}, "key": {"type": "string"}, "note": {"type": "string"}}},
                400, 409, status="201", request=body_schemas["NewKey"])},
        "/v1/keys/{name}": {"delete": _op(
            "Revoke a write key (refused within a second everywhere)",
            {"type": "object", "properties": {"revoked": {"type": "string"}}}, 404,
            parameters=[path_param("name", "the key's name")])},
        **_documents("chart", "Chart", body_schemas["ChartBody"]),
        **_documents("dashboard", "Dashboard", body_schemas["DashboardBody"]),
        "/v1/rejected/replay": {"post": _op(
            "Validate a stream's rejected rows again and land those that pass",
            {"type": "object", "properties": {"stream": {"type": "string"}, "replayed": {"type": "integer"},
                                              "still_rejected": {"type": "integer"},
                                              "recovered": {"type": "integer"},
                                              "skipped": {"type": "object", "description":
                                                          "rows that hold no event (whole-request "
                                                          "rejections), by reason",
                                                          "additionalProperties": {"type": "integer"}}}},
            400, 404, request=body_schemas["ReplayBody"])},
    }
