"""The OpenAPI 3.1 description of a lakehose process's HTTP interface, served at ``/openapi.json``.

It describes exactly the routes the process serves: ``lakehose collector``
ingestion and health, ``lakehose serve`` the token routes and health, ``lakehose
up`` all of them. Fuzzers (the test suite runs schemathesis over it) and client
generators read it, so every route is in it with its parameters, bodies,
answers and security scheme.
"""

from __future__ import annotations

from typing import Any

import msgspec

from lakehose import __version__
from lakehose.openapi import ingest, manage, read
from lakehose.openapi.common import ERROR, SECURITY_SCHEMES


def _request_bodies() -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON Schemas of the types that decode request bodies, and a ref to each by name."""
    from lakehose.query.api import QueryRequest
    from lakehose.query.explore import ExploreSpec
    from lakehose.registry.api import NewKey, NewStream, StreamUpdate
    from lakehose.ui.api import ChartBody, DashboardBody
    from lakehose.ui.pipeline import ReplayBody

    types = [QueryRequest, ExploreSpec, NewStream, StreamUpdate, NewKey, ChartBody, DashboardBody, ReplayBody]
    refs, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    return components, {t.__name__: r for t, r in zip(types, refs)}


def document(*, collect: bool, query: bool) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR}
    paths: dict[str, Any] = {}
    if collect:
        schemas.update(ingest.SCHEMAS)
        paths.update(ingest.INGEST_PATHS)
    paths.update(ingest.HEALTH_PATHS)
    if query:
        components, bodies = _request_bodies()
        schemas.update(components)
        schemas.update(read.SCHEMAS)
        schemas.update(manage.SCHEMAS)
        paths.update(read.paths(bodies))
        for path, operations in manage.paths(bodies).items():
            paths.setdefault(path, {}).update(operations)
        paths["/"] = {"get": {"summary": "Redirects to the web UI", "tags": ["ui"], "security": [],
                              "responses": {"307": {"description": "to /ui/"}}}}
        paths["/ui/"] = {"get": {"summary": "The web UI (static files; they hold no data)", "tags": ["ui"],
                                 "security": [], "responses": {"200": {"description": "HTML",
                                                                       "content": {"text/html": {}}}}}}
    title = "lakehose " + ("collector and query API" if collect and query else
                           "collector" if collect else "query API")
    return {"openapi": "3.1.0", "info": {"title": title, "version": __version__},
            "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
            "paths": paths}
