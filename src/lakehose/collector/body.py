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
from dataclasses import dataclass
from typing import Literal

import msgspec
import zstandard

Shape = Literal["array", "lines", "object"]
_RAW = msgspec.json.Decoder(msgspec.Raw)
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
# msgspec reports a high surrogate escape with no low one after it as "truncated" or a bad escape
_LONE_HIGH_SURROGATE = re.compile(rb"(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})")
_ZSTD_SLICE = 512  # at most ~16 MiB of output per slice (zstd's best ratio is ~32768:1)


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
    """Undo ``Content-Encoding`` (identity, gzip, zstd) without producing more than ``limit`` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    if encoding in ("gzip", "x-gzip"):
        out = b""
        rest = body
        while rest:  # a gzip body may hold several members (RFC 1952); each is inflated
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                out += inflater.decompress(rest, limit + 1 - len(out))
            except zlib.error as exc:
                raise BodyError(400, "bad_encoding", f"gzip body is corrupt: {exc}") from exc
            if len(out) > limit:
                raise _too_large(limit)
            if not inflater.eof or inflater.unconsumed_tail:
                raise BodyError(400, "bad_encoding", "gzip body is truncated")
            rest = inflater.unused_data
        return out
    if encoding == "zstd":
        parts: list[bytes] = []
        size = 0
        rest = body
        try:
            while rest:  # one or more frames; input is fed in small slices so that the
                # output of one call stays small however well the data compresses
                reader = zstandard.ZstdDecompressor().decompressobj()
                for start in range(0, len(rest), _ZSTD_SLICE):
                    piece = reader.decompress(rest[start:start + _ZSTD_SLICE])
                    size += len(piece)
                    if size > limit:
                        raise _too_large(limit)
                    parts.append(piece)
                    if reader.eof:
                        break
                if not reader.eof:
                    raise BodyError(400, "bad_encoding", "zstd body is truncated")
                rest = reader.unused_data + rest[start + _ZSTD_SLICE:]
        except zstandard.ZstdError as exc:
            raise BodyError(400, "bad_encoding", f"zstd body is corrupt: {exc}") from exc
        return b"".join(parts)
    raise BodyError(415, "unsupported_encoding",
                    f"Content-Encoding {encoding!r} is not supported (use gzip or zstd)")


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
