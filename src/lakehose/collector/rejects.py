"""Rejected events as log records, delivered like any stream into ``events._rejected``.

The collector appends them to the log topic ``REJECTED_TOPIC`` in the same durable
append as the accepted events of the request, so a rejection is recorded
exactly when its answer is sent. A whole request that could not be read (not
JSON, not UTF-8, too large) becomes one row holding the start of its body.
"""

from __future__ import annotations

import time

import msgspec

from lakehose.collector.ingest import Prepared
from lakehose.collector.validate import EventError
from lakehose.ids import uuid7_batch

PAYLOAD_CAP = 64 * 1024
# The reasons of requests refused as a whole (``request_rejection``): the row's payload is the start
# of the body, not an event, so a replay must skip it. Each is a BodyError code or an app.py refusal.
WHOLE_REQUEST_REASONS = frozenset({
    "bad_encoding", "body_timeout", "body_too_large", "empty_body", "invalid_utf8", "malformed_json",
    "too_deeply_nested", "too_many_events", "unsupported_encoding", "unsupported_media_type",
})
_ENCODER = msgspec.json.Encoder()


class RejectedRow(msgspec.Struct):
    rejection_id: str
    stream: str
    reason: str
    message: str
    path: str
    payload: str
    received_at: int
    key_name: str
    source: str = "collector"


def _text(payload: bytes) -> str:
    clipped = payload[:PAYLOAD_CAP]
    return clipped.decode("utf-8", "replace") + ("…[truncated]" if len(payload) > PAYLOAD_CAP else "")


def message(error: EventError) -> str:
    """A rejected row's message: the event's reason, then its other errors."""
    return error.reason + "".join(f"; also {path}: {reason}" for _, path, reason in error.more)


def event_rejections(prepared: Prepared, key_name: str) -> tuple[bytes, int] | None:
    """The NDJSON log payload recording every rejected event of a request, or None."""
    if not prepared.errors:
        return None
    now_us = time.time_ns() // 1000
    ids = uuid7_batch(len(prepared.errors), now_us // 1000)
    rows = [RejectedRow(rid, prepared.streams_of_errors.get(e.index, "_unknown"), e.code,
                        message(e),
                        e.path, _text(e.payload or b""), now_us, key_name)
            for rid, e in zip(ids, prepared.errors)]
    return _ENCODER.encode_lines(rows), len(rows)


def request_rejection(stream: str | None, code: str, reason: str, body: bytes,
                      key_name: str) -> bytes:
    """One row for a request refused as a whole; ``code`` is one of WHOLE_REQUEST_REASONS."""
    now_us = time.time_ns() // 1000
    row = RejectedRow(uuid7_batch(1, now_us // 1000)[0], stream or "_unknown", code, reason, "$",
                      _text(body), now_us, key_name)
    return _ENCODER.encode_lines([row])
