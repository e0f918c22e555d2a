"""Ingestion and health: what ``lakehose collector`` serves (and ``up``, with the rest)."""

from __future__ import annotations

from typing import Any

from lakehose.openapi.common import NAME_PATTERN, WRITE_KEY, answers, path_param, ref

SCHEMAS: dict[str, Any] = {
    "IngestResult": {
        "type": "object", "required": ["accepted", "rejected", "errors"],
        "properties": {
            "accepted": {"type": "integer"},
            "rejected": {"type": "integer"},
            "errors": {"type": "array", "description": "every error of each rejected event (up to 10 "
                       "per event; several items may share an index)", "items": {
                "type": "object", "required": ["index", "code", "path", "reason"],
                "properties": {"index": {"type": "integer", "description": "position in the request"},
                               "code": {"type": "string", "description": "machine-readable reason"},
                               "path": {"type": "string", "description": "JSON path, e.g. $.level"},
                               "reason": {"type": "string"}}}},
        },
    },
}
_BODY = {
    "description": "A JSON array of events, {\"events\": [...]}, one event object, or NDJSON. "
                   "Content-Encoding gzip and zstd are accepted.",
    "required": True,
    "content": {
        "application/json": {"schema": {"oneOf": [
            {"type": "array", "items": {"type": "object"}},
            {"type": "object", "properties": {"events": {"type": "array", "items": {"type": "object"}}}},
            {"type": "object"}]}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    },
}
_ANSWERS = answers(ref("IngestResult"), 400, 401, 403, 408, 413, 415, 429, 503,
                   description="Every accepted event is durable; rejected ones are listed.")
_ANSWERS["403"]["description"] = ("unknown or revoked write key, or a token sent as a write key "
                                  "(not_a_write_key)")
_ANSWERS["503"]["description"] = ("the log is full or unavailable, or the catalog did not answer a key "
                                  "check; retry after Retry-After")
_UNKNOWN_STREAM = {
    "description": "No such stream, and this key may not create it: the closest names are in "
                   "did_you_mean. The events are recorded in events._rejected as unknown_stream.",
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["error", "reason", "did_you_mean"],
        "properties": {"error": {"const": "unknown_stream"}, "reason": {"type": "string"},
                       "did_you_mean": {"type": "array", "items": {"type": "string"}}}}}},
}
_ALIVE = {"type": "object", "properties": {"status": {"type": "string"}, "pid": {"type": "integer"}}}

INGEST_PATHS: dict[str, Any] = {
    "/v1/streams/{stream}/events": {"post": {
        "summary": "Send events of one stream", "tags": ["ingestion"],
        "parameters": [path_param("stream", "the stream's name", NAME_PATTERN)],
        "requestBody": _BODY, "responses": {**_ANSWERS, "404": _UNKNOWN_STREAM}, "security": WRITE_KEY}},
    "/v1/events": {"post": {
        "summary": "Send a mixed batch; each event names its stream in \"type\"", "tags": ["ingestion"],
        "requestBody": _BODY, "responses": _ANSWERS, "security": WRITE_KEY}},
}
HEALTH_PATHS: dict[str, Any] = {
    "/healthz": {"get": {"summary": "The process is alive", "tags": ["health"], "security": [],
                         "responses": answers(_ALIVE, description="alive")}},
    "/readyz": {"get": {"summary": "The process can take requests (the collector: the log is open "
                                   "and not full)", "tags": ["health"], "security": [],
                        "responses": answers({"type": "object"}, 503, description="ready")}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "tags": ["health"], "security": [],
                         "responses": {"200": {"description": "text exposition format",
                                               "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    "/openapi.json": {"get": {"summary": "This description", "tags": ["health"], "security": [],
                              "responses": answers({"type": "object"}, description="OpenAPI 3.1")}},
}
