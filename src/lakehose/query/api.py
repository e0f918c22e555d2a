"""``POST /v1/query``: SQL in, rows out as JSON, CSV or Arrow IPC; ``GET /v1/audit``.

Queries and audits run in a worker thread (DuckDB and Arrow release the GIL),
so a long one never stalls ingestion served by the same process.
"""

from __future__ import annotations

import io
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.csv as pacsv
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lakehose.audit import DEFAULT_SINCE, Auditor, parse_since
from lakehose.auth import TokenGuard
from lakehose.errors import LakehoseError, NotFound, QueryBusy, QueryFailed, QueryLimit, QueryRefused
from lakehose.query.engine import QueryEngine, QueryResult

_ENCODER = msgspec.json.Encoder(decimal_format="number")
ARROW_STREAM = "application/vnd.apache.arrow.stream"


class QueryRequest(msgspec.Struct, forbid_unknown_fields=True):
    sql: str
    format: str = "json"
    limit: int | None = None


def _error(status: int, code: str, reason: str, **extra: Any) -> Response:
    headers = {"Retry-After": "1"} if status == 429 else None
    return Response(_ENCODER.encode({"error": code, "reason": reason, **extra}), status_code=status,
                    media_type="application/json", headers=headers)


def query_error(exc: QueryRefused | QueryFailed) -> Response:
    """The answer to a query that did not run: 403 refused, 429 busy, 400 over a cap or failed."""
    if isinstance(exc, QueryRefused):
        return _error(403, "query_refused", str(exc))
    if isinstance(exc, QueryBusy):
        return _error(429, "too_many_queries", str(exc))
    if isinstance(exc, QueryLimit):
        return _error(400, "limit_reached", str(exc), setting=f"query.{exc.setting}")
    return _error(400, "query_failed", str(exc))


def _pylist(column: pa.ChunkedArray) -> list[Any]:
    """A column's Python values; QueryFailed (a 400) for a date or time Python cannot hold."""
    try:
        return list(column.to_pylist())
    except (OverflowError, ValueError) as exc:  # DuckDB's 'infinity' dates, years past 9999
        raise QueryFailed(f"the result holds a date or time outside the years 1 to 9999 ({exc}), "
                          "which JSON cannot carry: cast it to VARCHAR, or ask for format arrow "
                          "(or csv, where it is not inside a list or struct)") from None


def result_json(result: QueryResult) -> dict[str, Any]:
    table = result.table
    columns = [_pylist(column) for column in table.columns]
    return {
        "columns": [{"name": name, "type": kind} for name, kind in zip(table.column_names, result.duckdb_types)],
        "rows": [list(row) for row in zip(*columns)] if columns else [],
        "row_count": table.num_rows,
        "truncated": result.truncated,
        "elapsed_ms": round(result.elapsed_ms, 3),
    }


def _csv_column(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """Lists, structs, maps, unions, intervals and DuckDB's own types as their JSON text: Arrow's
    CSV writer has no form for them (it raised, and that was a 500)."""
    kind = column.type
    if not (pa.types.is_nested(kind) or pa.types.is_interval(kind) or isinstance(kind, pa.BaseExtensionType)):
        return column
    return pa.array([None if v is None else _ENCODER.encode(v).decode() for v in _pylist(column)], pa.string())


def result_csv(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(pa.table([_csv_column(c) for c in table.columns], names=table.column_names), sink)
    return sink.getvalue()


def result_arrow(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def query_routes(engine: QueryEngine, guard: TokenGuard) -> list[Route]:
    async def query(request: Request) -> Response:
        if (refused := await guard.check(request, "read")) is not None:
            return refused
        try:
            body = msgspec.json.decode(await request.body(), type=QueryRequest)
        except msgspec.DecodeError as exc:
            return _error(400, "bad_request", f"expected {{\"sql\": \"...\"}}: {exc}")
        accept = request.headers.get("accept", "")
        fmt = body.format
        if "text/csv" in accept:
            fmt = "csv"
        elif ARROW_STREAM in accept:
            fmt = "arrow"
        if fmt not in ("json", "csv", "arrow"):
            return _error(400, "bad_request", "format must be json, csv or arrow")
        if body.limit is not None and body.limit <= 0:
            return _error(400, "bad_request", "limit must be positive")
        limit = min(body.limit or engine.settings.query.row_limit, engine.settings.query.row_limit)
        try:
            result = await run_in_threadpool(engine.run, body.sql, limit)
        except (QueryRefused, QueryFailed) as exc:
            return query_error(exc)
        headers = {"X-Lakehose-Truncated": str(result.truncated).lower()}
        if fmt == "arrow":
            return Response(result_arrow(result.table), media_type=ARROW_STREAM, headers=headers)
        try:
            if fmt == "csv":
                return Response(result_csv(result.table), media_type="text/csv", headers=headers)
            return Response(_ENCODER.encode(result_json(result)), media_type="application/json",
                            headers=headers)
        except QueryFailed as exc:
            return _error(400, "query_failed", str(exc))

    async def tables(request: Request) -> Response:
        if (refused := await guard.check(request, "read")) is not None:
            return refused
        names = await run_in_threadpool(engine.tables)
        return Response(_ENCODER.encode({"tables": [f"{engine.namespace}.{n}" for n in names]}),
                        media_type="application/json")

    return [Route("/v1/query", query, methods=["POST"]), Route("/v1/tables", tables, methods=["GET"])]


def audit_routes(auditor: Auditor, guard: TokenGuard) -> list[Route]:
    async def audit(request: Request) -> Response:
        """``?since=24h&stream=S``: the report of ``lakehose audit --json`` (200 whether it balances)."""
        if (refused := await guard.check(request, "read")) is not None:
            return refused
        try:
            since = parse_since(request.query_params.get("since", DEFAULT_SINCE))
        except ValueError as exc:
            return _error(400, "bad_request", str(exc))
        try:
            report = await run_in_threadpool(auditor.run, since, request.query_params.get("stream"))
        except NotFound as exc:
            return _error(404, "not_found", str(exc))
        except LakehoseError as exc:  # the log or the lake did not answer: try again later
            return _error(503, "audit_failed", str(exc))
        return Response(_ENCODER.encode(report.as_json()), media_type="application/json")

    return [Route("/v1/audit", audit, methods=["GET"])]
