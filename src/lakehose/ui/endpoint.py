"""One wrapper for the UI's JSON routes: the token check, and every expected error as a 4xx.

Why a wrapper: each route then holds only its work, and a bad request can never
reach the client as a traceback or a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from lakehose.auth import TokenGuard
from lakehose.errors import NotFound, QueryFailed, QueryRefused
from lakehose.query.api import query_error
from lakehose.registry.credentials import Kind

Handler = Callable[[Request], Awaitable[Response]]
_ENCODER = msgspec.json.Encoder(decimal_format="number")


def json_response(body: Any, status: int = 200) -> Response:
    return Response(_ENCODER.encode(body), status_code=status, media_type="application/json")


def error(status: int, code: str, reason: str) -> Response:
    return json_response({"error": code, "reason": reason}, status)


def endpoint(guard: TokenGuard, need: Kind | None, work: Handler) -> Handler:
    """``work`` behind the token check (``need=None``: read for GET, admin otherwise)."""
    async def handle(request: Request) -> Response:
        wanted: Kind = need or ("read" if request.method == "GET" else "admin")
        if (refused := await guard.check(request, wanted)) is not None:
            return refused
        try:
            return await work(request)
        except NotFound as exc:
            return error(404, "not_found", str(exc))
        except (QueryRefused, QueryFailed) as exc:
            return query_error(exc)
        except RecursionError:
            return error(400, "bad_request", "the body's JSON is nested too deeply")
        except ValueError as exc:  # msgspec's decode errors are ValueErrors too
            return error(400, "bad_request", str(exc))
    return handle
