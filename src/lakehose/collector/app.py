"""The collector's HTTP interface (ASGI, served by uvicorn).

A request is answered 200 only after every event it accepted is durable in the
log; invalid events are named in the answer and the valid ones kept. Whole-
request problems get a 4xx with a JSON reason; overload gets 429/503 with
``Retry-After``. Memory stays bounded whatever clients do: bodies still
arriving are capped in bytes (all together), and requests being worked on in
number; a body that trickles holds bytes, not one of those request slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from lakehose import metrics
from lakehose.auth import MISS_RELOAD_SECONDS, AuthError, CredentialCache, authenticate_write
from lakehose.collector.accepted import AcceptedCounter
from lakehose.collector.adapt import Adapter
from lakehose.collector.body import BodyError, Limits, decompress
from lakehose.collector.ingest import Ingestor, Prepared, unknown_stream
from lakehose.collector.rejects import event_rejections, request_rejection
from lakehose.collector.validate import StreamValidator
from lakehose.config import Settings
from lakehose.errors import LogUnavailable
from lakehose.http_limits import ENDED_BY
from lakehose.log import REJECTED_TOPIC, Log, open_log
from lakehose.logs import Logger
from lakehose.registry.store import Registry
from lakehose.reload import SpacedReload

_ENCODER = msgspec.json.Encoder()
_LOG = Logger("collector")
REFRESH_SECONDS = 1.0
_ACCEPTED_TYPES = ("", "application/json", "application/x-ndjson", "application/ndjson",
                   "application/jsonl", "application/x-jsonlines", "text/plain",
                   "application/x-www-form-urlencoded", "application/octet-stream")


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(_ENCODER.encode(body), status_code=status, headers=headers,
                    media_type="application/json")


def error_response(status: int, code: str, reason: str, retry_after: int | None = None) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return json_response(status, {"error": code, "reason": reason}, headers)


@dataclass
class Pressure:
    """Whether the log can take more, refreshed once a second."""

    log_bytes: int = 0
    free_bytes: int = 1 << 62
    full_reason: str | None = None


class Collector:
    """State shared by the collector's requests: registry caches, log, limits."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        c = settings.collector
        self.ingestor = Ingestor(Limits(c.max_body_bytes, c.max_events_per_request, c.max_event_bytes),
                                 c.future_window_seconds)
        self.registry = Registry(settings.catalog_uri)
        self.accepted = AcceptedCounter(self.registry.engine)
        self.adapter = Adapter(settings, self.registry, self.ingestor, self.refresh)
        self.credentials = CredentialCache(self.registry.credentials.holders)
        # a stream named in a URL but not known here: read the registry again before the 404
        self.streams_on_miss = SpacedReload(self.refresh_streams, MISS_RELOAD_SECONDS)
        self.pressure = Pressure()
        self.inflight = 0  # requests decoded, validated or appended now
        self.receiving = 0  # bytes of bodies still arriving
        self.receiving_by_key: dict[str, int] = {}  # the same, per write key (only keys with bytes)
        self.log: Log | None = None
        self._fingerprint: tuple[int, float] | None = None
        self._topics_ready = False
        self._log_dir = settings.log_uri.removeprefix("wal://")

    # background refresh ---------------------------------------------------
    def refresh(self) -> None:
        """Reload streams (if changed) and keys; measure the log and the disk."""
        self.refresh_streams()
        self.credentials.refresh()
        assert self.log is not None
        log_settings = self.settings.log
        self.pressure.log_bytes = self.log.size_bytes()
        with contextlib.suppress(OSError):
            self.pressure.free_bytes = shutil.disk_usage(self._log_dir).free
        metrics.LOG_SIZE.set(self.pressure.log_bytes)
        metrics.DISK_FREE.set(self.pressure.free_bytes)
        if self.pressure.log_bytes >= log_settings.max_bytes:
            self.pressure.full_reason = (f"the log holds {self.pressure.log_bytes} bytes, over its "
                                         f"limit of {log_settings.max_bytes}; delivery is behind")
        elif self.pressure.free_bytes < log_settings.min_free_disk_bytes:
            self.pressure.full_reason = (f"only {self.pressure.free_bytes} bytes free on disk, under "
                                         f"the floor of {log_settings.min_free_disk_bytes}")
        else:
            self.pressure.full_reason = None

    def refresh_streams(self) -> None:
        """Validators for the registry's streams (rebuilt only when it changed), and their topics."""
        started = time.monotonic()
        fingerprint = self.registry.streams_fingerprint()
        if fingerprint != self._fingerprint:
            current = self.ingestor.validators
            fresh: dict[str, StreamValidator] = {}
            for stream in self.registry.list_streams():
                old = current.get(stream.name)
                fresh[stream.name] = old if old is not None and old.version == stream.version \
                    and old.unknown_fields == stream.unknown_fields \
                    else StreamValidator(stream.name, stream.schema, stream.version, stream.unknown_fields)
            self.ingestor.set_validators(fresh)
            self._fingerprint = fingerprint
            self._topics_ready = False
        assert self.log is not None
        if not self._topics_ready:
            try:  # appends to a stream without its topic fail (503) until this succeeds
                self.log.ensure_topics([*self.ingestor.validators, REJECTED_TOPIC])
                self._topics_ready = True
            except LogUnavailable as exc:
                _LOG.warning("topics_unavailable", str(exc))
        self.streams_on_miss.ran(started)

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as exc:  # keep serving with the last good view
                _LOG.warning("refresh_failed", f"refresh failed: {exc!r}")

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        self.log = open_log(self.settings.log_uri, writer=True, options=self.settings.log)
        await asyncio.to_thread(self.refresh)
        task = asyncio.create_task(self.refresh_forever())
        flusher = asyncio.create_task(self.accepted.flush_forever())
        try:
            yield
        finally:
            task.cancel()
            flusher.cancel()
            self.accepted.flush_or_report()  # requests are over: the last counts are final
            self.log.close()

    # requests -------------------------------------------------------------
    async def read_body(self, request: Request, key_name: str) -> bytes:
        """The whole body, counted against the buffered-bytes budgets while it arrives.

        No request slot is held meanwhile, so clients that trickle their bodies cannot take
        the slots from everyone else; the HTTP layer ends them after ``body_timeout_seconds``.
        One key holds at most ``max_buffered_body_bytes_per_key`` of the budget, so the
        clients of one (public) key that send big bodies and stall cannot take it all.
        """
        c = self.settings.collector
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > c.max_body_bytes:
            raise BodyError(413, "body_too_large", f"body is larger than {c.max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                if size + len(chunk) > c.max_body_bytes:
                    raise BodyError(413, "body_too_large", f"body is larger than {c.max_body_bytes} bytes")
                if self.receiving + len(chunk) > c.max_buffered_body_bytes:
                    raise BodyError(429, "too_many_requests", "bodies still arriving hold more than "
                                    f"{c.max_buffered_body_bytes} bytes (collector.max_buffered_body_bytes)")
                held = self.receiving_by_key.get(key_name, 0)
                if held + len(chunk) > c.max_buffered_body_bytes_per_key:
                    raise BodyError(429, "too_many_requests", f"bodies of key {key_name!r} still arriving "
                                    f"hold more than {c.max_buffered_body_bytes_per_key} bytes "
                                    "(collector.max_buffered_body_bytes_per_key)")
                size += len(chunk)
                self.receiving += len(chunk)
                self.receiving_by_key[key_name] = held + len(chunk)
                chunks.append(chunk)
        finally:
            self.receiving -= size
            left = self.receiving_by_key.pop(key_name, 0) - size
            if left:
                self.receiving_by_key[key_name] = left
        metrics.REQUEST_BYTES.inc(size)
        return b"".join(chunks)

    async def ingest(self, request: Request, stream: str | None) -> Response:
        route = "stream_events" if stream is not None else "mixed_events"
        response = await self._ingest(request, stream)
        metrics.HTTP_REQUESTS.labels(route, str(response.status_code)).inc()
        return response

    async def _ingest(self, request: Request, stream: str | None) -> Response:
        c = self.settings.collector
        started_at = time.monotonic()  # a stream created before this is known once the registry is read
        try:
            holder = await authenticate_write(request.headers, self.credentials)
            key_name = holder.name
        except AuthError as exc:
            return error_response(exc.status, exc.code, exc.reason)
        if stream is not None and stream not in self.ingestor.validators:
            try:  # created a moment ago? (the refresh each second may not have seen it yet)
                await self.streams_on_miss.since(started_at)
            except Exception as exc:  # judged on the streams known so far
                _LOG.warning("refresh_failed", f"reading the streams failed: {exc!r}")
        if self.pressure.full_reason is not None:
            _LOG.warning("log_full", f"refusing events (503): {self.pressure.full_reason}")
            return error_response(503, "log_full", self.pressure.full_reason, c.retry_after_seconds)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in _ACCEPTED_TYPES and not content_type.endswith("+json"):
            reason = (f"Content-Type {content_type!r} is not JSON; send application/json "
                      "or application/x-ndjson")
            await self._record_refusal(stream, "unsupported_media_type", reason, b"", key_name)
            return error_response(415, "unsupported_media_type", reason)
        raw = b""
        try:
            raw = await self.read_body(request, key_name)
        except BodyError as exc:
            return await self._refuse(exc, stream, b"", key_name)
        except ClientDisconnect:  # or the HTTP layer ended the body (ENDED_BY), and answered itself
            if request.scope.get(ENDED_BY) == "body_timeout":
                await self._record_refusal(stream, "body_timeout", "the body did not arrive within "
                                           f"{c.body_timeout_seconds} s", b"", key_name)
            return error_response(400, "client_disconnected", "the client went away mid-body")
        if self.inflight >= c.max_inflight_requests:
            return error_response(429, "too_many_requests", f"more than {c.max_inflight_requests} "
                                  "requests in progress (collector.max_inflight_requests)", 1)
        self.inflight += 1
        try:
            started = time.perf_counter()
            encoding = request.headers.get("content-encoding", "")
            body = raw if encoding.strip().lower() in ("", "identity") \
                else await asyncio.to_thread(decompress, raw, encoding, c.max_body_bytes)
            prepared = (self.ingestor.prepare_stream(stream, body) if stream is not None
                        else self.ingestor.prepare_mixed(body))
            if stream is None and any(e.code == "unknown_stream" for e in prepared.errors):
                known = self.ingestor.validators
                try:  # created a moment ago (`streams create`, then a send at once)? read the registry
                    await self.streams_on_miss.since(started_at)
                except Exception as exc:  # judged on the streams known so far
                    _LOG.warning("refresh_failed", f"reading the streams failed: {exc!r}")
                if self.ingestor.validators is not known:
                    prepared = self.ingestor.prepare_mixed(body)
            if self.adapter.wanted(prepared, holder.auto_create):
                prepared = await asyncio.to_thread(self.adapter.adapt, prepared, holder.auto_create)
            del raw, body  # only the encoded records stay in memory while the fsync is awaited
            raw = b""
            batches = list(prepared.batches)
            rejections = event_rejections(prepared, key_name)
            if rejections is not None:
                batches.append((REJECTED_TOPIC, *rejections))
            if batches:
                assert self.log is not None
                try:
                    await self.log.append(batches)
                except (OSError, LogUnavailable) as exc:
                    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                    _LOG.error("log_unavailable", f"refusing events (503): the log could not "
                                                  f"store them: {reason}")
                    return error_response(503, "log_unavailable",
                                          f"the log could not store the events: {reason}",
                                          c.retry_after_seconds)
            self._count(prepared, key_name)
            self.accepted.add(prepared.accepted_hours)
            metrics.ACK_LATENCY.observe(time.perf_counter() - started)
            if stream is not None and stream not in self.ingestor.validators \
                    and not self.adapter.may_create(stream, holder.auto_create):
                # its events are recorded in events._rejected as unknown_stream, as in a mixed batch
                return json_response(404, unknown_stream(stream, list(self.ingestor.validators)))
            return json_response(200, {
                "accepted": sum(prepared.accepted.values()),
                "rejected": len(prepared.errors),
                "errors": [item for e in prepared.errors for item in e.as_json()],
            })
        except BodyError as exc:
            return await self._refuse(exc, stream, raw, key_name)
        except RecursionError:  # the JSON decoder's depth guard
            reason = "the body's JSON is nested too deeply"
            await self._record_refusal(stream, "too_deeply_nested", reason, raw, key_name)
            return error_response(400, "too_deeply_nested", reason)
        finally:
            self.inflight -= 1

    async def _refuse(self, exc: BodyError, stream: str | None, raw: bytes, key_name: str) -> Response:
        if exc.status == 429:  # overload, not the request's fault: nothing to record
            return error_response(exc.status, exc.code, exc.reason, 1)
        await self._record_refusal(stream, exc.code, exc.reason, raw, key_name)
        return error_response(exc.status, exc.code, exc.reason)

    async def _record_refusal(self, stream: str | None, code: str, reason: str, body: bytes,
                              key_name: str) -> None:
        """A request refused as a whole still leaves a row in ``events._rejected``, and counts once."""
        label = stream if stream in self.ingestor.validators else None
        metrics.EVENTS_REJECTED.labels(label or metrics.UNKNOWN_STREAM_LABEL, code, key_name).inc()
        if self.log is None or self.pressure.full_reason is not None:
            return
        with contextlib.suppress(OSError, LogUnavailable):  # the 4xx answer matters more than its record
            await self.log.append([(REJECTED_TOPIC,
                                    request_rejection(label, code, reason, body, key_name), 1)])

    def _count(self, prepared: Prepared, key_name: str) -> None:
        for name, count in prepared.accepted.items():
            metrics.EVENTS_ACCEPTED.labels(name, key_name).inc(count)
        known = self.ingestor.validators
        for (name, code), count in prepared.rejections.items():
            label = name if name in known else metrics.UNKNOWN_STREAM_LABEL
            metrics.EVENTS_REJECTED.labels(label, code, key_name).inc(count)


def routes(collector: Collector) -> list[Route]:
    async def stream_events(request: Request) -> Response:
        return await collector.ingest(request, request.path_params["stream"])

    async def mixed_events(request: Request) -> Response:
        return await collector.ingest(request, None)

    async def healthz(_: Request) -> Response:
        return json_response(200, {"status": "alive", "pid": os.getpid()})

    async def readyz(_: Request) -> Response:
        if collector.log is None:
            return error_response(503, "starting", "the log is not open yet", 1)
        if collector.pressure.full_reason is not None:
            return error_response(503, "log_full", collector.pressure.full_reason,
                                  collector.settings.collector.retry_after_seconds)
        return json_response(200, {"status": "ready"})

    async def metrics_endpoint(_: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/v1/streams/{stream}/events", stream_events, methods=["POST"]),
        Route("/v1/events", mixed_events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]


def create_app(settings: Settings) -> Starlette:
    collector = Collector(settings)
    return Starlette(routes=routes(collector), lifespan=collector.lifespan)
