"""The OpenAPI 3.1 description of the collector's HTTP interface, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from lakehose import __version__

_ERROR = {"type": "object", "required": ["error", "reason"],
          "properties": {"error": {"type": "string"}, "reason": {"type": "string"}}}
_RESULT = {
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
}
_UNKNOWN_STREAM = {
    "description": "No such stream, and this key may not create it: the closest names are in "
                   "did_you_mean. The events are recorded in events._rejected as unknown_stream.",
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["error", "reason", "did_you_mean"],
        "properties": {"error": {"const": "unknown_stream"}, "reason": {"type": "string"},
                       "did_you_mean": {"type": "array", "items": {"type": "string"}}}}}},
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


def _answers() -> dict[str, Any]:
    err = {"content": {"application/json": {"schema": _ERROR}}}
    return {
        "200": {"description": "Every accepted event is durable; rejected ones are listed.",
                "content": {"application/json": {"schema": _RESULT}}},
        "400": {"description": "The body is not JSON (line and byte offset given).", **err},
        "401": {"description": "No write key.", **err},
        "403": {"description": "Unknown or revoked write key, or a token sent as a write key "
                       "(not_a_write_key).", **err},
        "408": {"description": "The body did not arrive in time.", **err},
        "413": {"description": "Body or event count over the limit.", **err},
        "415": {"description": "Unsupported Content-Type or Content-Encoding.", **err},
        "429": {"description": "Too many requests in progress; retry after Retry-After.", **err},
        "503": {"description": "The log is full or unavailable, or the catalog did not answer "
                       "a key check; retry after Retry-After.", **err},
    }


_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"writeKey": []}, {"basic": []}]

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "lakehose collector", "version": __version__},
    "components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer"},
        "writeKey": {"type": "apiKey", "in": "header", "name": "X-Write-Key"},
        "basic": {"type": "http", "scheme": "basic", "description": "the write key as the user"},
    }},
    "paths": {
        "/v1/streams/{stream}/events": {"post": {
            "summary": "Send events of one stream",
            "parameters": [{"name": "stream", "in": "path", "required": True,
                            "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"}}],
            "requestBody": _BODY, "responses": {**_answers(), "404": _UNKNOWN_STREAM},
            "security": _SECURITY}},
        "/v1/events": {"post": {
            "summary": "Send a mixed batch; each event names its stream in \"type\"",
            "requestBody": _BODY, "responses": _answers(), "security": _SECURITY}},
        "/healthz": {"get": {"summary": "The process is alive", "responses": {"200": {"description": "alive"}}}},
        "/readyz": {"get": {"summary": "The collector can accept events",
                            "responses": {"200": {"description": "ready"},
                                          "503": {"description": "log full or starting"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics",
                             "responses": {"200": {"description": "text exposition format"}}}},
    },
}
