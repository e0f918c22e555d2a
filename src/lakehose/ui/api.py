"""The web UI at ``/ui/`` and the JSON API only it needs: who am I, explore, saved charts, dashboards.

The pages are static files shipped in the package (ES modules, one CSS file, a
vendored chart library): they hold no data, so they load without a token, and
the login page asks ``/v1/whoami`` whether a token is good. Every route here
that returns data checks the token like the rest of the API: reading needs a
read token, saving and deleting an admin token.

``POST /v1/explore`` takes an ``ExploreSpec`` and answers the rows with the SQL
text that produced them (``?run=false``: the SQL only), so the UI can show the
query and open it in the SQL editor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from lakehose.auth import TokenGuard, authenticate_token
from lakehose.config import Settings
from lakehose.query.api import result_json
from lakehose.query.engine import QueryEngine
from lakehose.query.explore import Built, ExploreSpec, build, check_range, columns
from lakehose.registry.store import Registry
from lakehose.ui.endpoint import endpoint, error, json_response
from lakehose.ui.pipeline import pipeline_routes
from lakehose.ui.saved import Saved

STATIC = Path(__file__).parent / "static"
# Scripts, styles and fetches only from this server; the UI never builds markup from data,
# and this keeps a stored token out of reach of anything injected all the same.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                           "base-uri 'none'; frame-ancestors 'none'")
MAX_TILES, GRID_COLUMNS, MAX_TILE_ROWS, MAX_REFRESH_SECONDS = 48, 12, 12, 86_400

Viz = Literal["line", "bar", "area", "table", "number"]


class ChartBody(msgspec.Struct, forbid_unknown_fields=True):
    """A chart: an explore spec or a SQL query (first column on x, numeric columns as series)."""

    name: str
    viz: Viz = "line"
    explore: ExploreSpec | None = None
    sql: str | None = None


class Tile(msgspec.Struct, forbid_unknown_fields=True):
    chart: str
    w: int = 6  # grid columns of 12
    h: int = 4  # grid rows


class DashboardBody(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    tiles: list[Tile] = []
    range: str | None = None  # when set, every explore chart on the dashboard uses this range
    refresh: int = 0  # seconds between automatic refreshes; 0 = off


class UiFiles(StaticFiles):
    """The UI's static files, revalidated on every load (a 304 when unchanged), so an upgraded
    lakehose is never run with yesterday's scripts, and served with a content security policy."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def _name(name: str) -> str:
    name = name.strip()
    if not 0 < len(name) <= 200 or not name.isprintable():
        raise ValueError("name: between 1 and 200 characters, none of them control characters")
    return name


def ui_routes(settings: Settings, engine: QueryEngine, guard: TokenGuard) -> list[BaseRoute]:
    registry = Registry(settings.catalog_uri)
    saved = Saved(settings.catalog_uri)

    def explore_query(spec: ExploreSpec) -> Built:
        return build(spec, registry.get_stream(spec.stream).schema, settings.lake.namespace)

    def chart_definition(body: ChartBody) -> tuple[str, dict[str, Any]]:
        """The checked name and definition; an explore spec must fit its stream's schema today."""
        if (body.explore is None) == (body.sql is None):
            raise ValueError("a chart has either \"explore\" (a spec) or \"sql\", not both or neither")
        if body.explore is not None:
            explore_query(body.explore)
        else:
            engine.check(body.sql or "")
        definition = msgspec.to_builtins(body)
        del definition["name"]
        return _name(body.name), definition

    def dashboard_definition(body: DashboardBody) -> tuple[str, dict[str, Any]]:
        if len(body.tiles) > MAX_TILES:
            raise ValueError(f"tiles: at most {MAX_TILES}")
        known = {chart.id for chart in saved.charts.list()}
        for n, tile in enumerate(body.tiles):
            if tile.chart not in known:
                raise ValueError(f"tile {n + 1}: no chart with id {tile.chart!r}")
            if not (0 < tile.w <= GRID_COLUMNS and 0 < tile.h <= MAX_TILE_ROWS):
                raise ValueError(f"tile {n + 1}: w is 1 to {GRID_COLUMNS} columns, h 1 to "
                                 f"{MAX_TILE_ROWS} rows")
        if body.range is not None:
            check_range(body.range)
        if not 0 <= body.refresh <= MAX_REFRESH_SECONDS:
            raise ValueError(f"refresh: 0 (off) to {MAX_REFRESH_SECONDS} seconds")
        definition = msgspec.to_builtins(body)
        del definition["name"]
        return _name(body.name), definition

    async def whoami(request: Request) -> Response:
        holder = await authenticate_token(request.headers, guard.credentials, "read")
        return json_response({"name": holder.name, "kind": holder.kind})

    async def fields(request: Request) -> Response:
        stream = await run_in_threadpool(registry.get_stream, request.path_params["name"])
        return json_response({"stream": stream.name, "fields": [
            {"path": c.path, "kind": c.kind, "enum": c.enum, "items": c.items}
            for c in columns(stream.schema).values()]})

    async def explore(request: Request) -> Response:
        spec = msgspec.json.decode(await request.body(), type=ExploreSpec)
        built = await run_in_threadpool(explore_query, spec)
        answer: dict[str, Any] = {"sql": built.text}
        if request.query_params.get("run") != "false":
            result = await run_in_threadpool(engine.run, built.sql, None, None, built.params)
            answer.update(result_json(result))
        return json_response(answer)

    async def charts(request: Request) -> Response:
        if request.method == "POST":
            name, definition = await run_in_threadpool(
                chart_definition, msgspec.json.decode(await request.body(), type=ChartBody))
            created = await run_in_threadpool(saved.charts.create, name, definition)
            return json_response(created.to_json(), 201)
        listed = await run_in_threadpool(saved.charts.list)
        return json_response({"charts": [c.to_json() for c in listed]})

    async def chart(request: Request) -> Response:
        id_ = request.path_params["id"]
        if request.method == "PUT":
            name, definition = await run_in_threadpool(
                chart_definition, msgspec.json.decode(await request.body(), type=ChartBody))
            return json_response((await run_in_threadpool(saved.charts.update, id_, name,
                                                           definition)).to_json())
        if request.method == "DELETE":
            users = [d.name for d in await run_in_threadpool(saved.dashboards.list)
                     if any(t["chart"] == id_ for t in d.definition["tiles"])]
            if users:
                return error(409, "in_use", f"chart {id_!r} is on dashboard(s) {', '.join(users)}; "
                                            "remove it from them first")
            await run_in_threadpool(saved.charts.delete, id_)
            return json_response({"deleted": id_})
        return json_response((await run_in_threadpool(saved.charts.get, id_)).to_json())

    async def dashboards(request: Request) -> Response:
        if request.method == "POST":
            name, definition = await run_in_threadpool(
                dashboard_definition, msgspec.json.decode(await request.body(), type=DashboardBody))
            created = await run_in_threadpool(saved.dashboards.create, name, definition)
            return json_response(created.to_json(), 201)
        listed = await run_in_threadpool(saved.dashboards.list)
        return json_response({"dashboards": [d.to_json() for d in listed]})

    async def dashboard(request: Request) -> Response:
        id_ = request.path_params["id"]
        if request.method == "PUT":
            name, definition = await run_in_threadpool(
                dashboard_definition, msgspec.json.decode(await request.body(), type=DashboardBody))
            return json_response((await run_in_threadpool(saved.dashboards.update, id_, name,
                                                          definition)).to_json())
        if request.method == "DELETE":
            await run_in_threadpool(saved.dashboards.delete, id_)
            return json_response({"deleted": id_})
        return json_response((await run_in_threadpool(saved.dashboards.get, id_)).to_json())

    async def to_ui(_: Request) -> Response:
        return RedirectResponse("/ui/")

    return [
        Route("/", to_ui, methods=["GET"]),
        Mount("/ui", UiFiles(directory=STATIC, html=True)),
        Route("/v1/whoami", endpoint(guard, "read", whoami), methods=["GET"]),
        Route("/v1/streams/{name}/fields", endpoint(guard, "read", fields), methods=["GET"]),
        Route("/v1/explore", endpoint(guard, "read", explore), methods=["POST"]),
        Route("/v1/charts", endpoint(guard, None, charts), methods=["GET", "POST"]),
        Route("/v1/charts/{id}", endpoint(guard, None, chart), methods=["GET", "PUT", "DELETE"]),
        Route("/v1/dashboards", endpoint(guard, None, dashboards), methods=["GET", "POST"]),
        Route("/v1/dashboards/{id}", endpoint(guard, None, dashboard), methods=["GET", "PUT", "DELETE"]),
        *pipeline_routes(settings, engine, guard),
    ]
