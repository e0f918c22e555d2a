"""Request bodies: bounded decompression and the three accepted shapes.

A body is a JSON array of events, an object ``{"events": [...]}``, a single
event object, or NDJSON (one event per line). Decompression (gzip, zstd) is
streamed with a cap on the output, so a small bomb cannot inflate past the
body limit. Syntax errors reject the whole request (400) naming the line and
byte offset, because a client that sends broken JSON must learn it at once.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec
import zstandard

Shape = Literal["array", "lines", "object"]
_RAW = msgspec.json.Decoder(msgspec.Raw)
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
# msgspec reports a high surrogate escape with no low one after it as "truncated" or a bad escape
_LONE_HIGH_SURROGATE = re.compile(rb"(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})")
_FIRST_SLICE = 512
# zstd's output per call is not capped, so its slices stay small: at most ~16 MiB of output
# per 512 bytes (its best ratio is ~32768:1); gzip's output is capped per call instead.
_MAX_SLICE = {"gzip": 1 << 20, "zstd": 512}


class BodyError(Exception):
    """The request as a whole cannot be taken; carries the HTTP status and reason."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


class _Wrapper(msgspec.Struct, forbid_unknown_fields=True):  # exactly {"events": [...]}
    events: list[msgspec.Raw]


_WRAPPER = msgspec.json.Decoder(_Wrapper)


def _too_large(limit: int) -> BodyError:
    return BodyError(413, "body_too_large", f"body is larger than {limit} bytes after decompression")


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (identity, gzip, zstd) without producing more than ``limit`` bytes.

    Work is linear in the body whatever its members or frames: the input is fed from a
    moving offset in slices that start small and double, so a body of 400 000 tiny gzip
    members (or 900 000 zstd frames) is never copied once per member. Callers run it off
    the event loop (it takes about a second for such a body).
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    if encoding in ("gzip", "x-gzip"):
        return _inflate_all(body, limit, "gzip", _GzipMember)
    if encoding == "zstd":
        return _inflate_all(body, limit, "zstd", _ZstdFrames().next_frame)
    raise BodyError(415, "unsupported_encoding",
                    f"Content-Encoding {encoding!r} is not supported (use gzip or zstd)")


class _Frame(Protocol):
    """One gzip member or zstd frame being decompressed."""

    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: memoryview, room: int) -> bytes: ...


class _GzipMember:
    """zlib caps the output of each call at ``room``, so a bomb stops one byte past the limit."""

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)

    @property
    def eof(self) -> bool:
        return self._inflater.eof

    @property
    def unused_data(self) -> bytes:
        return self._inflater.unused_data

    def decompress(self, data: memoryview, room: int) -> bytes:
        return self._inflater.decompress(data, room)


class _ZstdFrames:
    """zstd frames of one body, sharing one context (not shared between threads)."""

    def __init__(self) -> None:
        self._context = zstandard.ZstdDecompressor()

    def next_frame(self) -> _Frame:
        return _ZstdFrame(self._context.decompressobj())


class _ZstdFrame:
    """zstandard cannot cap a call's output; the small slices of ``_MAX_SLICE`` bound it instead."""

    def __init__(self, inflater: zstandard.ZstdDecompressionObj) -> None:
        self._inflater = inflater

    @property
    def eof(self) -> bool:
        return bool(self._inflater.eof)

    @property
    def unused_data(self) -> bytes:
        return bytes(self._inflater.unused_data)

    def decompress(self, data: memoryview, room: int) -> bytes:
        return bytes(self._inflater.decompress(data))


def _inflate_all(body: bytes, limit: int, name: str, start: Callable[[], _Frame]) -> bytes:
    """Decompress every member/frame of ``body`` in turn; 413 past ``limit``, 400 if corrupt."""
    out = bytearray()
    view = memoryview(body)
    position = 0
    try:
        while position < len(body):  # one member (RFC 1952) or frame per turn, as `cat` makes
            frame = start()
            step = _FIRST_SLICE
            while not frame.eof:
                if position >= len(body):
                    raise BodyError(400, "bad_encoding", f"{name} body is truncated")
                piece = view[position:position + step]
                out += frame.decompress(piece, limit + 1 - len(out))
                if len(out) > limit:
                    raise _too_large(limit)
                # unused_data is only what this slice held past the frame's end
                position += len(piece) - len(frame.unused_data)
                step = min(2 * step, _MAX_SLICE[name])
    except (zlib.error, zstandard.ZstdError) as exc:
        raise BodyError(400, "bad_encoding", f"{name} body is corrupt: {exc}") from exc
    return bytes(out)


def _syntax_error(body: bytes, exc: msgspec.DecodeError, base: int = 0) -> BodyError:
    text = str(exc)
    offset = None
    if "(byte " in text:
        offset = base + int(text.rsplit("(byte ", 1)[1].rstrip(")"))
    misread = "truncated" in text or "escape" in text or "surrogate" in text
    if misread and (lone := _LONE_HIGH_SURROGATE.search(body)):
        at = lone.end() - 6
        line = body.count(b"\n", 0, at) + 1
        return BodyError(400, "malformed_json", "body is not valid JSON: a lone UTF-16 surrogate escape "
                         f"{lone[0][-6:].decode()} (a high surrogate must be followed by a low one, "
                         f"\\udc00 to \\udfff) at line {line}, byte offset {at}")
    if offset is None and "truncated" in text:
        last_line = body.count(b"\n", 0, max(len(body) - 1, 0)) + 1
        return BodyError(400, "malformed_json", "body is not valid JSON: it ends before the JSON "
                         f"is complete (truncated at line {last_line}, byte offset {len(body)})")
    if offset is None:
        where = ""
    else:
        line = body.count(b"\n", 0, offset) + 1
        where = f"at line {line}, byte offset {offset}"
    reason = text.replace("JSON is malformed: ", "").split(" (byte ")[0]
    return BodyError(400, "malformed_json", f"body is not valid JSON: {reason} {where}".strip())


def classify(body: bytes) -> Shape:
    """Which of the accepted shapes the body has, from its first bytes."""
    start = body.lstrip()[:1]
    if start == b"[":
        return "array"
    if start == b"{":
        try:
            _RAW.decode(body)
        except msgspec.DecodeError as exc:
            if "trailing characters" in str(exc):
                return "lines"
            raise _syntax_error(body, exc) from exc
        return "object"
    if not start:
        raise BodyError(400, "empty_body", "the body holds no events")
    raise BodyError(400, "malformed_json",
                    "body must be a JSON array, an object {\"events\": [...]}, or NDJSON")


def split(body: bytes, shape: Shape) -> list[msgspec.Raw]:
    """The raw bytes of every event; raises BodyError on a syntax error."""
    try:
        if shape == "array":
            return _RAW_LIST.decode(body)
        if shape == "lines":
            return _RAW.decode_lines(body)
        try:
            return _WRAPPER.decode(body).events
        except msgspec.ValidationError:
            return [msgspec.Raw(body)]
    except msgspec.ValidationError as exc:
        raise BodyError(400, "malformed_json", f"body is not a list of events: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise _syntax_error(body, exc) from exc


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_events: int
    max_event_bytes: int
