"""The HTTP server of a lakehose process: collector routes, query routes, or both (``up``)."""

from __future__ import annotations

import os

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lakehose.config import Settings


def build_app(settings: Settings, *, collect: bool, query: bool) -> Starlette:
    routes: list[Route] = []
    lifespan = None
    if collect:
        from lakehose.collector.app import Collector, routes as collector_routes

        collector = Collector(settings)
        routes += collector_routes(collector)
        lifespan = collector.lifespan
    else:
        async def healthz(_: Request) -> Response:
            return JSONResponse({"status": "alive", "pid": os.getpid()})

        async def metrics(_: Request) -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

        routes += [Route("/healthz", healthz), Route("/readyz", healthz), Route("/metrics", metrics)]
    if query:
        from lakehose.query.api import query_routes
        from lakehose.query.engine import QueryEngine

        routes += query_routes(QueryEngine(settings))
    return Starlette(routes=routes, lifespan=lifespan)


def serve(settings: Settings, host: str, port: int, *, collect: bool, query: bool) -> None:
    uvicorn.run(build_app(settings, collect=collect, query=query), host=host, port=port,
                log_level="warning", access_log=False, timeout_graceful_shutdown=10)
