"""The pipeline's state for people: table sizes, rejected rows (browse, read, replay).

``GET /v1/lake/tables``: per Iceberg table, its rows, data files, bytes and last
commit, from each table's current snapshot summary (what any Iceberg reader
sees; no file is listed), and the newest snapshot a maintenance job made; with
the maintenance schedule, so Health can say when runs come. Maintenance runs in
``up``'s own process and its run counters start again at every start, so the
table metadata is what still shows a run from before. ``/v1/rejected``: the rows of ``events._rejected``,
filtered by stream, reason and state, payloads cut to a preview in lists and
whole for one row; ``POST /v1/rejected/replay`` runs ``lakehose rejected
replay`` (admin token). Live rates, lag and disk come from ``/metrics``, which
the UI reads itself, so these routes read only the lake.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import msgspec
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lakehose.auth import TokenGuard
from lakehose.config import Settings
from lakehose.errors import NotFound
from lakehose.lake.catalog import open_catalog
from lakehose.lake.rejected import REJECTED_TABLE
from lakehose.maintenance.rewrite import JOB_PROPERTY
from lakehose.query.api import result_json
from lakehose.query.engine import QueryEngine, QueryResult
from lakehose.replay import replay
from lakehose.ui.endpoint import endpoint, json_response

PREVIEW_CHARS = 2048
MAX_PAGE = 500
STATES = {"pending": "replayed_at IS NULL", "replayed": "replayed_at IS NOT NULL", "all": None}
_LISTED = ("rejection_id, stream, reason, message, path, received_at, key_name, source, replayed_at, "
           f"left(payload, {PREVIEW_CHARS}) AS payload, length(payload) AS payload_length")


class ReplayBody(msgspec.Struct, forbid_unknown_fields=True):
    stream: str
    reason: str | None = None


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    try:
        value = default if text is None else int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ValueError(f"{name}: between {low} and {high}")
    return value


def pipeline_routes(settings: Settings, engine: QueryEngine, guard: TokenGuard) -> list[BaseRoute]:
    namespace = settings.lake.namespace
    rejected = f'"{namespace}"."{REJECTED_TABLE}"'

    @functools.cache
    def catalog() -> SqlCatalog:
        return open_catalog(settings)

    def table_stats() -> list[dict[str, Any]]:
        out = []
        for identifier in sorted(catalog().list_tables(namespace)):
            table = catalog().load_table(identifier)
            snapshot = table.current_snapshot()
            summary = snapshot.summary if snapshot is not None else None

            def total(key: str) -> int:
                return int(summary.get(key) or 0) if summary is not None else 0

            last = max(((s.timestamp_ms, s.summary[JOB_PROPERTY]) for s in table.metadata.snapshots
                        if s.summary is not None and JOB_PROPERTY in s.summary.additional_properties),
                       default=None)
            out.append({"name": identifier[-1], "records": total("total-records"),
                        "data_files": total("total-data-files"), "bytes": total("total-files-size"),
                        "snapshots": len(table.metadata.snapshots),
                        "last_commit": snapshot.timestamp_ms / 1000 if snapshot is not None else None,
                        "last_maintenance": None if last is None else {"job": last[1], "at": last[0] / 1000}})
        return out

    def query_rejected(sql: str, params: Sequence[object]) -> QueryResult | None:
        """None while there is no rejected table yet (nothing was ever delivered)."""
        if REJECTED_TABLE not in engine.tables():
            return None
        return engine.run(sql, params=params)

    async def tables(_: Request) -> Response:
        schedule = {"enabled": settings.maintenance.enabled,
                    "interval_seconds": settings.maintenance.interval_seconds}
        return json_response({"tables": await run_in_threadpool(table_stats), "maintenance": schedule})

    async def summary(_: Request) -> Response:
        result = await run_in_threadpool(query_rejected, (
            "SELECT stream, reason, count(*) FILTER (WHERE replayed_at IS NULL) AS pending, "
            "count(*) FILTER (WHERE replayed_at IS NOT NULL) AS replayed, "
            f"max(received_at) AS last_received FROM {rejected} "
            "GROUP BY ALL ORDER BY pending DESC, stream NULLS FIRST, reason"), [])
        return json_response(result_json(result) if result else {"columns": [], "rows": []})

    async def listing(request: Request) -> Response:
        state = request.query_params.get("state", "pending")
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        condition = STATES[state]
        conditions: list[str] = [condition] if condition else []
        params: list[object] = []
        for column in ("stream", "reason"):
            if value := request.query_params.get(column):
                conditions.append(f"{column} = ?")
                params.append(value)
        limit = _int(request, "limit", 50, 1, MAX_PAGE)
        offset = _int(request, "offset", 0, 0, 10**9)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        result = await run_in_threadpool(query_rejected, (
            f"SELECT {_LISTED} FROM {rejected}{where} "
            f"ORDER BY received_at DESC, rejection_id LIMIT {limit} OFFSET {offset}"), params)
        return json_response(result_json(result) if result else {"columns": [], "rows": []})

    async def one(request: Request) -> Response:
        rejection = request.path_params["id"]
        result = await run_in_threadpool(
            query_rejected, f"SELECT * FROM {rejected} WHERE rejection_id = ?", [rejection])
        if result is None or result.table.num_rows == 0:
            raise NotFound(f"no rejected row with id {rejection!r}")
        return json_response(result.table.to_pylist()[0])

    async def replay_rows(request: Request) -> Response:
        body = msgspec.json.decode(await request.body(), type=ReplayBody)
        try:
            done = await run_in_threadpool(replay, settings, body.stream, None, body.reason)
        except NoSuchTableError as exc:
            raise NotFound(f"stream {body.stream!r} has no table: {exc}") from None
        return json_response({"stream": body.stream, "replayed": done.replayed,
                              "still_rejected": done.still_rejected, "recovered": done.recovered,
                              "skipped": done.skipped})

    return [
        Route("/v1/lake/tables", endpoint(guard, "read", tables), methods=["GET"]),
        Route("/v1/rejected", endpoint(guard, "read", listing), methods=["GET"]),
        Route("/v1/rejected/summary", endpoint(guard, "read", summary), methods=["GET"]),
        Route("/v1/rejected/replay", endpoint(guard, "admin", replay_rows), methods=["POST"]),
        Route("/v1/rejected/{id}", endpoint(guard, "read", one), methods=["GET"]),
    ]
