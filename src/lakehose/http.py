"""The HTTP server of a lakehose process: collector routes, query and management routes, or both.

``lakehose collector`` serves ingestion; ``lakehose serve`` serves queries and
stream management, and the web UI at ``/ui/``; ``lakehose up`` serves all of
it on one port. Only ingestion (write keys), health (``/healthz``, ``/readyz``,
``/metrics``, ``/openapi.json``) and the UI's static files (which hold no data)
answer without a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lakehose import logs, openapi
from lakehose.auth import CredentialCache, TokenGuard
from lakehose.claim import HTTP_FD_ENV, PGWIRE_FD_ENV, inherited
from lakehose.config import Settings
from lakehose.http_limits import protocol_with
from lakehose.metrics import exposition
from lakehose.registry.store import Registry

REFRESH_SECONDS = 1.0


def build_app(settings: Settings, *, collect: bool, query: bool) -> Starlette:
    routes: list[BaseRoute] = []
    lifespans = []
    if collect:
        from lakehose.collector.app import Collector, routes as collector_routes

        collector = Collector(settings)
        routes += collector_routes(collector)
        lifespans.append(collector.lifespan)
    else:
        async def healthz(_: Request) -> Response:
            return JSONResponse({"status": "alive", "pid": os.getpid()})

        async def metrics(_: Request) -> Response:
            return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

        routes += [Route("/healthz", healthz), Route("/readyz", healthz), Route("/metrics", metrics)]
    if query:
        from lakehose.audit import Auditor, audit_forever
        from lakehose.query.api import audit_routes, query_routes
        from lakehose.query.engine import QueryEngine
        from lakehose.registry.api import stream_routes
        from lakehose.ui.api import ui_routes

        registry = Registry(settings.catalog_uri)
        guard = TokenGuard(CredentialCache(registry.credentials.holders))
        guard.credentials.refresh()
        auditor = Auditor(settings)
        engine = QueryEngine(settings)
        routes += (query_routes(engine, guard) + audit_routes(auditor, guard)
                   + stream_routes(settings, guard))
        routes += ui_routes(settings, engine, guard)

        @contextlib.asynccontextmanager
        async def refresh_tokens(_: Starlette) -> AsyncIterator[None]:
            async def forever() -> None:
                while True:
                    await asyncio.sleep(REFRESH_SECONDS)
                    with contextlib.suppress(Exception):  # keep the last good table
                        await asyncio.to_thread(guard.credentials.refresh)

            task = asyncio.create_task(forever())
            try:
                yield
            finally:
                task.cancel()

        lifespans.append(refresh_tokens)

        @contextlib.asynccontextmanager
        async def postgres_endpoint(_: Starlette) -> AsyncIterator[None]:
            """The PostgreSQL protocol for BI tools, over the same engine and tokens."""
            if not settings.pgwire.enabled:
                yield
                return
            from lakehose.pgwire.server import PgServer

            host, port = settings.pgwire.host, settings.pgwire.port
            try:
                server = await PgServer(engine, guard, settings.pgwire).start(
                    host, port, inherited(PGWIRE_FD_ENV))
            except OSError as exc:  # HTTP still serves; say what to change
                logs.Logger("pgwire").error(
                    "pgwire_listen_failed", f"the PostgreSQL endpoint cannot listen on {host}:{port} "
                    f"({exc.strerror}); set --pg-port or [pgwire] port, or [pgwire] enabled = false")
                yield
                return
            try:
                yield
            finally:
                server.close()

        lifespans.append(postgres_endpoint)

        @contextlib.asynccontextmanager
        async def audit_periodically(_: Starlette) -> AsyncIterator[None]:
            """Keeps lakehose_audit_discrepancy_events current, so an alert can fire on it."""
            interval = settings.audit.interval_seconds
            task = asyncio.create_task(audit_forever(auditor, interval)) if interval else None
            try:
                yield
            finally:
                if task is not None:
                    task.cancel()
                auditor.close()

        lifespans.append(audit_periodically)

    description = openapi.document(collect=collect, query=query)

    async def openapi_json(_: Request) -> Response:
        return JSONResponse(description)

    routes.append(Route("/openapi.json", openapi_json, methods=["GET"]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(logs.flush)  # uvicorn ends the process by the signal: no atexit
            for each in lifespans:
                await stack.enter_async_context(each(app))
            yield

    async def client_gone(_: Request, __: Exception) -> Response:
        """The client left, or the HTTP layer ended its body (and answered it): nobody reads this."""
        return Response(status_code=400)

    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={ClientDisconnect: client_gone})


def serve(settings: Settings, host: str, port: int, *, collect: bool, query: bool) -> None:
    """Run the app; uvicorn's own warnings and errors become JSON lines (``log_config=None``).

    The HTTP layer's limits (connections, header size and time, body time) apply to every
    route, before authentication: see ``lakehose.http_limits``. Under ``lakehose up`` the socket is the one ``up`` already listens on (see ``lakehose.claim``).
    """
    logs.capture_library_logs()
    config = uvicorn.Config(build_app(settings, collect=collect, query=query), host=host, port=port,
                            http=protocol_with(settings.collector), log_level="warning", log_config=None,
                            access_log=False, timeout_graceful_shutdown=10)
    sock = inherited(HTTP_FD_ENV)
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=None if sock is None else [sock])
    if not server.started:  # could not listen, or the app failed to start: as uvicorn.run says it
        raise SystemExit(STARTUP_FAILURE)
