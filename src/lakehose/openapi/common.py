"""Pieces every part of the OpenAPI description shares: errors, security, parameters, answers.

Request bodies are not written here by hand: they are the JSON Schemas of the
msgspec types that decode them (``msgspec.json.schema_components``), so the
description cannot drift from what the server accepts.
"""

from __future__ import annotations

from typing import Any

ERROR: dict[str, Any] = {
    "type": "object", "required": ["error", "reason"],
    "properties": {"error": {"type": "string", "description": "machine-readable code"},
                   "reason": {"type": "string", "description": "what went wrong and what to change"}}}
SECURITY_SCHEMES: dict[str, Any] = {
    "writeKey": {"type": "http", "scheme": "bearer", "description": "a write key (ingestion only)"},
    "writeKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Write-Key",
                       "description": "a write key (ingestion only)"},
    "writeKeyBasic": {"type": "http", "scheme": "basic",
                      "description": "a write key as the user (ingestion only)"},
    "token": {"type": "http", "scheme": "bearer",
              "description": "a read or admin token (lakehose tokens create NAME [--admin])"},
}
WRITE_KEY: list[dict[str, list[str]]] = [{"writeKey": []}, {"writeKeyHeader": []}, {"writeKeyBasic": []}]
TOKEN: list[dict[str, list[str]]] = [{"token": []}]
NAME_PATTERN = "^[a-z][a-z0-9_]{0,62}$"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def body(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"required": True, "description": description, "content": json_content(schema)}


def path_param(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def query_param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def answers(ok: dict[str, Any] | None, *errors: int, status: str = "200",
            description: str = "done") -> dict[str, Any]:
    """The 2xx answer (JSON ``ok``) and the listed error statuses, each with the error object."""
    out: dict[str, Any] = {status: {"description": description}}
    if ok is not None:
        out[status]["content"] = json_content(ok)
    for code in errors:
        out[str(code)] = {"description": _WHY.get(code, "refused"), "content": json_content(ref("Error"))}
    return out


_WHY = {400: "bad request: the reason names the field or setting", 401: "no key or token",
        403: "unknown or revoked key or token, a write key sent as a token (not_a_token), "
             "or a read token where an admin one is needed",
        404: "no such thing", 408: "the body did not arrive in time", 409: "conflict",
        413: "over a size or count limit (the reason names the setting)",
        415: "unsupported Content-Type or Content-Encoding",
        429: "too many requests in progress; retry after Retry-After",
        503: "temporarily unavailable; retry after Retry-After"}
