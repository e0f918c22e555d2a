"""``/v1/streams`` and ``/v1/keys``: manage streams and write keys over HTTP (tokens required)."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lakehose.auth import TokenGuard
from lakehose.config import Settings
from lakehose.registry.credentials import Kind
from lakehose.errors import AlreadyExists, IncompatibleSchema, LimitReached, NotFound, SchemaError
from lakehose.registry.store import Registry, Stream
from lakehose.streams import create_stream, update_stream


class NewStream(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    schema: dict[str, Any]
    hints: dict[str, float] = {}


class NewKey(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    auto_create: bool = False


class StreamUpdate(msgspec.Struct, forbid_unknown_fields=True):
    schema: dict[str, Any]


def _error(status: int, code: str, reason: str, **extra: Any) -> Response:
    return JSONResponse({"error": code, "reason": reason, **extra}, status_code=status)


def _too_deep() -> Response:
    return _error(400, "too_deeply_nested", "the body's JSON is nested too deeply to read; "
                  "[registry] max_depth caps how deeply a schema may nest")


def _limit_reached(exc: LimitReached) -> Response:
    """409 when the registry is full (``max_streams``), 400 when the schema itself is too big."""
    status = 409 if "max_streams" in exc.settings else 400
    return _error(status, "limit_reached", str(exc), problems=exc.problems, settings=exc.settings)


def describe(settings: Settings, stream: Stream) -> dict[str, Any]:
    d = settings.delivery
    return {"name": stream.name, "version": stream.version, "unknown_fields": stream.unknown_fields,
            "table": f"{settings.lake.namespace}.{stream.name}",
            "hints": {"max_events": d.max_events, "max_bytes": d.max_bytes,
                      "max_seconds": d.max_seconds, **stream.hints},
            "schema": stream.schema.document}


def stream_routes(settings: Settings, guard: TokenGuard) -> list[Route]:
    registry = Registry(settings.catalog_uri)

    async def listing(request: Request) -> Response:
        if request.method == "POST":
            return await create(request)
        if (refused := await guard.check(request, "read")) is not None:
            return refused
        streams = await run_in_threadpool(registry.list_streams)
        return JSONResponse({"streams": [describe(settings, s) for s in streams]})

    async def create(request: Request) -> Response:
        if (refused := await guard.check(request, "admin")) is not None:
            return refused
        try:
            body = msgspec.json.decode(await request.body(), type=NewStream)
            stream = await run_in_threadpool(create_stream, settings, body.name, body.schema, body.hints)
        except msgspec.DecodeError as exc:
            return _error(400, "bad_request", f"expected {{\"name\", \"schema\", \"hints\"?}}: {exc}")
        except RecursionError:  # msgspec's depth guard, far beyond any [registry] max_depth
            return _too_deep()
        except SchemaError as exc:
            return _error(400, "invalid_schema", str(exc), problems=exc.problems)
        except LimitReached as exc:
            return _limit_reached(exc)
        except AlreadyExists as exc:
            return _error(409, "already_exists", str(exc))
        except ValueError as exc:
            return _error(400, "bad_request", str(exc))
        return JSONResponse(describe(settings, stream), status_code=201)

    async def one(request: Request) -> Response:
        name = request.path_params["name"]
        need: Kind = "admin" if request.method == "PUT" else "read"
        if (refused := await guard.check(request, need)) is not None:
            return refused
        try:
            if request.method == "PUT":
                body = msgspec.json.decode(await request.body(), type=StreamUpdate)
                _, stream = await run_in_threadpool(update_stream, settings, name, body.schema)
            else:
                stream = await run_in_threadpool(registry.get_stream, name)
        except msgspec.DecodeError as exc:
            return _error(400, "bad_request", f"expected {{\"schema\": {{...}}}}: {exc}")
        except RecursionError:
            return _too_deep()
        except NotFound as exc:
            return _error(404, "not_found", str(exc))
        except SchemaError as exc:
            return _error(400, "invalid_schema", str(exc), problems=exc.problems)
        except IncompatibleSchema as exc:
            return _error(409, "incompatible_schema", str(exc), problems=exc.problems)
        except LimitReached as exc:
            return _limit_reached(exc)
        except AlreadyExists as exc:  # another update moved the version meanwhile
            return _error(409, "conflict", str(exc))
        return JSONResponse(describe(settings, stream))

    async def history(request: Request) -> Response:
        if (refused := await guard.check(request, "read")) is not None:
            return refused
        try:
            versions = await run_in_threadpool(registry.history, request.path_params["name"])
        except NotFound as exc:
            return _error(404, "not_found", str(exc))
        return JSONResponse({"versions": [{"version": v.version, "created_at": v.created_at,
                                           "schema": v.schema.document} for v in versions]})

    async def keys(request: Request) -> Response:
        if (refused := await guard.check(request, "admin")) is not None:
            return refused
        credentials = registry.credentials
        if request.method == "POST":
            try:
                body = msgspec.json.decode(await request.body(), type=NewKey)
                secret = await run_in_threadpool(credentials.create, "key", body.name, "write",
                                                 body.auto_create)
            except msgspec.DecodeError as exc:
                return _error(400, "bad_request", f"expected {{\"name\", \"auto_create\"?}}: {exc}")
            except AlreadyExists as exc:
                return _error(409, "already_exists", str(exc))
            except ValueError as exc:
                return _error(400, "bad_request", str(exc))
            return JSONResponse({"name": body.name, "key": secret,
                                 "note": "shown once; only its hash is stored"}, status_code=201)
        rows = await run_in_threadpool(credentials.list, "key")
        return JSONResponse({"keys": [{"name": k.name, "prefix": k.prefix, "created_at": k.created_at,
                                       "revoked_at": k.revoked_at, "auto_create": k.auto_create}
                                      for k in rows]})

    async def revoke_key(request: Request) -> Response:
        if (refused := await guard.check(request, "admin")) is not None:
            return refused
        try:
            await run_in_threadpool(registry.credentials.revoke, "key", request.path_params["name"])
        except NotFound as exc:
            return _error(404, "not_found", str(exc))
        return JSONResponse({"revoked": request.path_params["name"]})

    return [
        Route("/v1/keys", keys, methods=["GET", "POST"]),
        Route("/v1/keys/{name}", revoke_key, methods=["DELETE"]),
        Route("/v1/streams", listing, methods=["GET", "POST"]),
        Route("/v1/streams/{name}", one, methods=["GET", "PUT"]),
        Route("/v1/streams/{name}/history", history, methods=["GET"]),
    ]
