"""Routes that read with a read (or admin) token: SQL, explore, audit, the lake, rejected rows."""

from __future__ import annotations

from typing import Any

from lakehose.openapi.common import NAME_PATTERN, TOKEN, answers, body, path_param, query_param, ref

_COLUMNS = {"type": "array", "items": {"type": "object", "required": ["name", "type"], "properties": {
    "name": {"type": "string"}, "type": {"type": "string", "description": "DuckDB type"}}}}
SCHEMAS: dict[str, Any] = {
    "QueryResult": {"type": "object", "required": ["columns", "rows", "row_count", "truncated"], "properties": {
        "columns": _COLUMNS, "rows": {"type": "array", "items": {"type": "array"}},
        "row_count": {"type": "integer"},
        "truncated": {"type": "boolean", "description": "more rows than the limit ([query] row_limit)"},
        "elapsed_ms": {"type": "number"}}},
    "ExploreResult": {"allOf": [ref("QueryResult"), {"type": "object", "required": ["sql"], "properties": {
        "sql": {"type": "string", "description": "the query, runnable as it is in /v1/query"}}}]},
    "Rows": {"type": "object", "required": ["columns", "rows"],
             "properties": {"columns": _COLUMNS, "rows": {"type": "array", "items": {"type": "array"}}}},
    "AuditReport": {"type": "object", "required": ["since", "ok", "hours", "problems"], "properties": {
        "since": {"type": "string", "format": "date-time"}, "checked_at": {"type": "string"},
        "ok": {"type": "boolean"}, "hours": {"type": "array", "items": {"type": "object"}},
        "missing_files": {"type": "array", "items": {"type": "object"}},
        "problems": {"type": "array", "items": {"type": "string"}},
        "notes": {"type": "array", "items": {"type": "string"}}}},
}
_ROWS_LIMIT = {"type": "integer", "minimum": 1, "maximum": 500}


def paths(body_schemas: dict[str, Any]) -> dict[str, Any]:
    """The read routes; ``body_schemas``: name → component ref of each request body type."""
    def get(summary: str, ok: dict[str, Any], *errors: int, **extra: Any) -> dict[str, Any]:
        return {"get": {"summary": summary, "tags": ["read"], "security": TOKEN,
                        "responses": answers(ok, 400, 401, 403, *errors), **extra}}

    query_answers = answers(ref("QueryResult"), 400, 401, 403, description="the rows (JSON, CSV or Arrow)")
    query_answers["200"]["content"].update({
        "text/csv": {"schema": {"type": "string"}},
        "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary"}}})
    return {
        "/v1/query": {"post": {
            "summary": "Run one read-only SQL statement (DuckDB) over the tables", "tags": ["read"],
            "security": TOKEN, "requestBody": body(body_schemas["QueryRequest"]),
            "responses": query_answers}},
        "/v1/tables": get("The tables SQL can read", {"type": "object", "properties": {
            "tables": {"type": "array", "items": {"type": "string"}}}}),
        "/v1/audit": get("Do accepted, landed and rejected counts balance, per stream and hour?",
                         ref("AuditReport"), 404, 503, parameters=[
                             query_param("since", "a duration (24h, 90m, 7d) or an ISO 8601 time",
                                         {"type": "string", "default": "24h"}),
                             query_param("stream", "one stream only", {"type": "string"})]),
        "/v1/explore": {"post": {
            "summary": "A chart question as SQL, and its rows", "tags": ["read"], "security": TOKEN,
            "parameters": [query_param("run", "false: the SQL only", {"type": "string", "enum": ["true", "false"]})],
            "requestBody": body(body_schemas["ExploreSpec"]),
            "responses": answers(ref("ExploreResult"), 400, 401, 403, 404)}},
        "/v1/whoami": get("The token's name and kind", {"type": "object", "properties": {
            "name": {"type": "string"}, "kind": {"type": "string", "enum": ["read", "admin"]}}}),
        "/v1/streams/{name}/fields": get(
            "The fields a chart can use", {"type": "object", "properties": {
                "stream": {"type": "string"}, "fields": {"type": "array", "items": {"type": "object"}}}},
            404, parameters=[path_param("name", "the stream", NAME_PATTERN)]),
        "/v1/lake/tables": get("Rows, files and bytes of every table", {"type": "object", "properties": {
            "tables": {"type": "array", "items": {"type": "object"}}}}),
        "/v1/rejected": get("Rejected rows, newest first (payloads cut to a preview)", ref("Rows"), parameters=[
            query_param("state", "which rows", {"type": "string", "enum": ["pending", "replayed", "all"]}),
            query_param("stream", "one stream", {"type": "string"}),
            query_param("reason", "one reason code", {"type": "string"}),
            query_param("limit", "rows per page", _ROWS_LIMIT),
            query_param("offset", "rows to skip", {"type": "integer", "minimum": 0, "maximum": 10**9})]),
        "/v1/rejected/summary": get("Rejected rows counted by stream and reason", ref("Rows")),
        "/v1/rejected/{id}": get("One rejected row, whole", {"type": "object"}, 404,
                                 parameters=[path_param("id", "its rejection_id")]),
    }
