"""Coverage-guided fuzzing (atheris) of what the collector does with a request body.

The same steps as ``Collector._ingest`` between reading the body and the log:
``decompress`` (identity, gzip, zstd; valid and corrupt streams, several
members), then ``Ingestor.prepare_stream`` or ``prepare_mixed`` (UTF-8 check,
shape, split, validation against three stream schemas with every field kind,
stamping, encoding), then the rejected-table records of ``event_rejections``.
The only ways out are the ones the collector answers as a 4xx: ``BodyError``
and ``RecursionError`` (its depth guard). Anything else raised is a crash, and
so is a result that breaks the bookkeeping (accepted + rejected != received).

    .venv/bin/pip install atheris        # not a lakehose dependency
    .venv/bin/python bench/fuzz/body_fuzz.py -atheris_runs=1000000 bench/fuzz/corpus-body

The first byte of an input picks the encoding and the route; the rest is the
body. A crashing input is written by libFuzzer as ``crash-<sha1>``; keep it in
``tests/unit/test_body_fuzz_cases.py`` (the test runs every input through
``check`` below).
"""

from __future__ import annotations

import gzip
import sys
from typing import Any

import zstandard

from lakehose.collector.body import BodyError, Limits, decompress
from lakehose.collector.ingest import Ingestor, Prepared
from lakehose.collector.rejects import event_rejections
from lakehose.collector.validate import StreamValidator
from lakehose.registry.schema import parse_schema

LIMITS = Limits(max_body_bytes=1 << 20, max_events=1000, max_event_bytes=64 << 10)
SCHEMAS: dict[str, tuple[dict[str, Any], str]] = {
    "level_complete": ({
        "type": "object", "required": ["user_id", "level"],
        "properties": {
            "user_id": {"type": "string", "maxLength": 64},
            "level": {"type": "integer", "minimum": 1, "maximum": 10000},
            "score": {"type": "number"}, "won": {"type": "boolean"},
            "mode": {"type": "string", "enum": ["easy", "normal", "hard"]},
            "items": {"type": "array", "items": {"type": "string"}},
            "device": {"type": "object", "properties": {"os": {"type": "string"},
                                                         "model": {"type": "string"}}},
            "finished_at": {"type": "string", "format": "date-time"},
            "laps": {"type": "array", "items": {"type": "object", "properties": {
                "at": {"type": "string", "format": "date-time"}, "n": {"type": "integer"}}}},
        }}, "reject"),
    "typed": ({"type": "object", "properties": {"type": {"type": "string"}, "x": {"type": "number"}}}, "reject"),
    "loose": ({"type": "object", "properties": {"a": {"type": "integer"}}}, "keep"),
}
ENCODINGS = ("", "gzip", "gzip+valid", "gzip+members", "zstd", "zstd+valid", "zstd+frames", "identity",
             "br")


def make_ingestor() -> Ingestor:
    ingestor = Ingestor(LIMITS, future_window_seconds=3600)
    ingestor.set_validators({
        name: StreamValidator(name, parse_schema(document), 1, unknown_fields)
        for name, (document, unknown_fields) in SCHEMAS.items()})
    return ingestor


INGESTOR = make_ingestor()


def encode(encoding: str, body: bytes) -> tuple[bytes, str]:
    """The bytes a client would send for ``body``: as given (often corrupt), or really compressed."""
    half = len(body) // 2
    if encoding == "gzip+valid":
        return gzip.compress(body, mtime=0), "gzip"
    if encoding == "gzip+members":
        return gzip.compress(body[:half], mtime=0) + gzip.compress(body[half:], mtime=0), "gzip"
    if encoding == "zstd+valid":
        return zstandard.ZstdCompressor().compress(body), "zstd"
    if encoding == "zstd+frames":
        zc = zstandard.ZstdCompressor()
        return zc.compress(body[:half]) + zc.compress(body[half:]), "zstd"
    return body, encoding


def check(data: bytes) -> None:
    """One input: raises on a crash, returns quietly for every answer the collector gives."""
    if not data:
        return
    encoding = ENCODINGS[data[0] % len(ENCODINGS)]
    mixed = data[0] & 0x80
    stream = ("level_complete", "typed", "loose", "nope")[(data[0] >> 4) & 3]
    sent, header = encode(encoding, data[1:])
    try:
        body = decompress(sent, header, LIMITS.max_body_bytes)
        prepared = INGESTOR.prepare_mixed(body) if mixed else INGESTOR.prepare_stream(stream, body)
    except (BodyError, RecursionError):
        return
    verify(prepared)
    event_rejections(prepared, "fuzz")


def verify(prepared: Prepared) -> None:
    accepted = sum(prepared.accepted.values())
    if accepted + len(prepared.errors) != prepared.received:
        raise AssertionError(f"{accepted} accepted + {len(prepared.errors)} rejected "
                             f"!= {prepared.received} received")
    if len({e.index for e in prepared.errors}) != len(prepared.errors):
        raise AssertionError("one event rejected twice")
    if sum(count for _, _, count in prepared.batches) != accepted:
        raise AssertionError("records appended differ from the accepted count")


def main() -> None:
    import atheris

    atheris.instrument_all()  # every Python function loaded so far: lakehose's collector and below
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
