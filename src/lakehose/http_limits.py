"""Limits of the HTTP layer, applied before authentication and before anything is buffered.

uvicorn's httptools protocol reads request headers without bound (64 MiB were
taken before any key was checked), has no header or body read timeout, no cap
on open connections, and closes at once after an early answer, so a client
that sends its whole body before reading (Python's ``urllib``) gets
"connection reset" instead of its 413. ``LimitedHttpProtocol`` adds, per
connection:

- a cap on open connections: one more is answered 503 and closed at once,
  before a byte of it is read;
- 431 past ``max_header_bytes`` of request line and headers (counted as they
  arrive, so an endless header costs at most that plus one read) or past
  ``max_headers`` headers;
- 408 when the headers take longer than ``header_timeout_seconds``, or the body
  longer than ``body_timeout_seconds`` (a total bound: trickling does not
  extend it), for every route;
- 413 past ``max_request_bytes`` of body on every route but ingestion (queries,
  charts, schemas are small; ingestion bodies have the collector's own
  ``max_body_bytes``, checked where a refusal is also recorded);
- a lingering close, as nginx does: after an answer sent before the body
  ended, the rest is read and discarded (up to ``linger_bytes`` or
  ``linger_seconds``) before closing, so every client can read the answer.

Answers are JSON ``{"error": code, "reason": ...}`` naming the setting.
"""

from __future__ import annotations

import asyncio
import http
import re
from typing import Any, cast

import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from lakehose.config import CollectorSettings


# Scope key set to the refusal's code when this layer ends a request mid-body: the app's ``receive()``
# only says "disconnected", and the collector records a body_timeout in events._rejected like every
# other whole-request refusal.
ENDED_BY = "lakehose.ended_by"


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; answered by ``send_400_response``."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.code, self.reason = status, code, reason


def answer(status: int, code: str, reason: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection."""
    body = msgspec.json.encode({"error": code, "reason": reason})
    return (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode() + body


class _Transport:
    """The real transport, except that ``close()`` lingers while a request body is still arriving.

    uvicorn closes right after an answer when the client asked ``Connection: close``;
    this is the one place where it can be turned into a lingering close.
    """

    def __init__(self, transport: asyncio.Transport, protocol: LimitedHttpProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        self._protocol.close_or_linger()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of ``CollectorSettings`` (see the module)."""

    limits: CollectorSettings  # set by ``protocol_with``

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._raw: asyncio.Transport | None = None
        self._in_head = True  # between two requests or inside a request's headers
        self._in_body = False  # headers done, body not yet complete
        self._head_bytes = 0  # of headers not yet complete, counted per read
        self._body_bytes = 0
        self._body_cap: int | None = None  # max_request_bytes, except on ingestion routes
        self._heads_done = 0
        self._timer: asyncio.TimerHandle | None = None
        self._refusal: _Refused | None = None
        self._lingering = False
        self._drained = 0

    # connections ------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self.transport = transport  # what connection_lost closes; never read from
            transport.write(answer(503, "too_many_connections", "more than "
                                   f"{self.limits.max_connections} connections are open "
                                   "(collector.max_connections)"))
            transport.close()
            return
        self._raw = transport
        super().connection_made(cast(asyncio.Transport, _Transport(transport, self)))
        self._arm(self.limits.header_timeout_seconds, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._raw is None:  # refused in connection_made
            return
        if self._lingering:
            self._drained += len(data)
            if self._drained > self.limits.linger_bytes:
                self._close_now()
            return
        in_head, heads_done = self._in_head, self._heads_done
        super().data_received(data)
        if in_head and heads_done == self._heads_done and not self._lingering:  # still in the headers
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(self._headers_too_large())

    def eof_received(self) -> None:
        if self._lingering:
            self._close_now()

    # parser callbacks -------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self.limits.max_headers:
            raise self._stop(_Refused(431, "too_many_headers", f"more than {self.limits.max_headers} "
                                      "headers (collector.max_headers)"))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            raise self._stop(self._headers_too_large())
        self._body_cap = None if _INGESTION.fullmatch(self.url.split(b"?")[0]) \
            else self.limits.max_request_bytes
        declared = [value for name, value in self.headers if name == b"content-length"]
        if self._body_cap is not None and declared and declared[0].isdigit() \
                and int(declared[0]) > self._body_cap:
            raise self._stop(self._body_too_large_refusal())  # before the app starts
        self._in_head, self._in_body, self._head_bytes, self._body_bytes = False, True, 0, 0
        self._heads_done += 1
        self._arm(self.limits.body_timeout_seconds, self._body_late)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_cap is not None and self._body_bytes > self._body_cap:
            self._end_body(self._body_too_large_refusal())
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_head, self._in_body = True, False
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._in_head and not self._lingering:  # the next request's headers get the same time
            self._arm(self.limits.header_timeout_seconds, self._headers_late)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, which is how a callback's refusal arrives."""
        if self._refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse(self._refusal)

    # refusing and closing ---------------------------------------------------
    def _stop(self, refusal: _Refused) -> _Refused:
        """Remember why parsing is stopped: the parser reports only that a callback failed."""
        self._refusal = refusal
        return refusal

    def _headers_too_large(self) -> _Refused:
        return _Refused(431, "headers_too_large", f"the request line and headers exceed "
                        f"{self.limits.max_header_bytes} bytes (collector.max_header_bytes)")

    def _headers_late(self) -> None:
        if self._in_head:
            self._refuse(_Refused(408, "header_timeout", "the request headers did not arrive within "
                                  f"{self.limits.header_timeout_seconds} s (collector.header_timeout_seconds)"))

    def _body_late(self) -> None:
        if self._in_body:
            self._end_body(_Refused(408, "body_timeout", "the body did not arrive within "
                                    f"{self.limits.body_timeout_seconds} s (collector.body_timeout_seconds)"))

    def _body_too_large_refusal(self) -> _Refused:
        return _Refused(413, "body_too_large", f"the body is larger than "
                        f"{self.limits.max_request_bytes} bytes (collector.max_request_bytes)")

    def _end_body(self, refusal: _Refused) -> None:
        """Stop a request mid-body: answer it unless the app already did, and take no more of it."""
        if self._lingering:
            return
        if self.cycle is not None and not self.cycle.response_started:
            cast(dict[str, Any], self.cycle.scope)[ENDED_BY] = refusal.code  # the app records why
            self.cycle.disconnected = True  # the app's receive() now says the client is gone
            self.cycle.message_event.set()
            self._refuse(refusal)
        else:
            self.close_or_linger()

    def _refuse(self, refusal: _Refused) -> None:
        """Answer (unless a response is half sent) and linger: the connection takes no more requests."""
        self._refusal = refusal
        assert self._raw is not None
        cycle = self.cycle  # the current request's, or the last one's (then complete)
        if cycle is None or not cycle.response_started or cycle.response_complete:
            self._raw.write(answer(refusal.status, refusal.code, refusal.reason))
        self._linger()

    def close_or_linger(self) -> None:
        if self._in_body or self._refusal is not None:
            self._linger()
        else:
            self._close_now()

    def _linger(self) -> None:
        if self._lingering:
            return
        self._lingering = True
        self.flow.resume_reading()  # flow control may have paused it while the app was busy
        self._arm(self.limits.linger_seconds, self._close_now)

    def _close_now(self) -> None:
        self._disarm()
        if self._raw is not None:
            self._raw.close()

    def _arm(self, seconds: float, then: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, then)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


_INGESTION = re.compile(rb"/v1/events|/v1/streams/[^/]+/events")


def protocol_with(limits: CollectorSettings) -> type[LimitedHttpProtocol]:
    """The protocol class to give ``uvicorn.run(http=...)``, bound to these limits."""
    return cast(type[LimitedHttpProtocol],
                type("LimitedHttpProtocol", (LimitedHttpProtocol,), {"limits": limits}))
