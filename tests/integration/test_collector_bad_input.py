"""Hostile and broken requests: each gets a clear 4xx (or a per-event error), never a 500 or a hang.

One collector (body timeout 1 s) serves the module. After every test it must
still answer /healthz and its output must hold no unhandled exception.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zstandard
from collector_support import (EVENTS_PATH, JSON, STREAM, alive_and_clean, dripping, proc_status, raw_connection,
                               read_events, read_http_response, wait_until)
from conftest import Lakehose, Server

PATHS = {"stream": EVENTS_PATH, "unknown_stream": "/v1/streams/nope/events", "mixed": "/v1/events"}
GOOD = [{"user_id": "good", "level": 1}]
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lakehose, Server]]:
    lh = Lakehose(tmp_path_factory.mktemp("bad-input") / "data")
    lh.create_stream(STREAM)
    server = lh.server("collector", env={"LAKEHOSE_COLLECTOR__BODY_TIMEOUT_SECONDS": "1"}).start()
    yield lh, server
    lh.close()


@pytest.fixture
def server(home: tuple[Lakehose, Server]) -> Iterator[Server]:
    """The module's collector; after the test it must be alive and free of tracebacks."""
    with alive_and_clean(home[1]) as srv:
        yield srv


@pytest.fixture
def client(home: tuple[Lakehose, Server], server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {home[0].key}"},
                      timeout=httpx.Timeout(20)) as c:
        yield c


def post(client: httpx.Client, body: bytes, path: str = EVENTS_PATH, **headers: str) -> httpx.Response:
    headers = {"content-type": "application/json", **{k.replace("_", "-"): v for k, v in headers.items()}}
    return client.post(path, content=body, headers=headers)


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert answer["error"] == code, answer
    assert isinstance(answer["reason"], str) and answer["reason"]
    return str(answer["reason"])


def reset_peak_rss(server: Server) -> None:
    """Make VmHWM (peak RSS) start again from the current RSS (Linux >= 4.0)."""
    assert server.process is not None
    Path(f"/proc/{server.process.pid}/clear_refs").write_text("5")


# --------------------------------------------------------------------------- malformed JSON
def at(body: bytes, marker: bytes, skip: int = 0) -> tuple[bytes, int, int]:
    """``body`` with the line and byte offset of the first ``marker`` in it (plus ``skip``)."""
    offset = body.index(marker) + skip
    return body, body.count(b"\n", 0, offset) + 1, offset


MALFORMED = {
    "garbage-after-event": at(b'[{"user_id":"a","level":1} x]', b"x]"),
    "missing-comma-line-3": at(b'[\n  {"user_id": "a", "level": 1},\n  {"user_id": "b" "level": 2}\n]',
                               b'"level": 2'),
    "ndjson-line-2": at(b'{"user_id":"a","level":1}\n{"user_id":"b","level":}\n', b'":}', 2),
    "trailing-comma": at(b'{"user_id": "a", "level": 1,}', b"}"),
    "unquoted-key": at(b'[{user_id: "a"}]', b"user_id"),
    "single-quotes": at(b"[{'user_id': 'a'}]", b"'user_id'"),
    "NaN": at(b'[{"user_id":"a","level":1,"score":NaN}]', b"NaN"),
    "Infinity": at(b'[{"user_id":"a","level":1,"score":Infinity}]', b"Infinity"),
    "-Infinity": at(b'[{"user_id":"a","level":1,"score":-Infinity}]', b"Infinity"),
    "ndjson-NaN-line-3": at(b'{"level":1}\n\n{"score":NaN}\n', b"NaN"),
    "js-comment": at(b'[{"user_id":"a","level":1} /* hi */]', b"/*"),
}


@pytest.mark.parametrize("where", list(PATHS))
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_json_names_line_and_offset(client: httpx.Client, case: str, where: str) -> None:
    """Broken JSON is a 400 whose reason gives the line and byte offset, whatever the endpoint."""
    body, line, offset = MALFORMED[case]
    reason = assert_error(post(client, body, PATHS[where]), 400, "malformed_json")
    assert f"line {line}, byte offset {offset}" in reason, reason
    # compressed bodies report offsets in the decompressed text
    reason = assert_error(post(client, gzip.compress(body), PATHS[where], content_encoding="gzip"),
                          400, "malformed_json")
    assert f"line {line}, byte offset {offset}" in reason, reason


@pytest.mark.parametrize("where", list(PATHS))
@pytest.mark.parametrize(("body", "line"), [
    (b'[{"user_id":"a","level":1},', 1), (b'{"user_id":"a","level":1', 1), (b'[{"user_id":"a","le', 1),
    (b'{"events": [{"user_id": "a"}', 1), (b'[\n{"user_id":"a","level":1},\n{"user_id":"b",\n', 3),
    (b'{"user_id":"a","level":1}\n{"user_id":"b","level":2}\n{"user_id":"c"', 3),
])
def test_truncated_json_names_line_and_offset(client: httpx.Client, body: bytes, line: int,
                                              where: str) -> None:
    """JSON that stops early is a 400 saying where it stopped (the last line, the body's length)."""
    reason = assert_error(post(client, body, PATHS[where]), 400, "malformed_json")
    assert f"line {line}, byte offset {len(body)}" in reason, reason


@pytest.mark.parametrize("body", [b"hello", b"null", b"5", b'"a string"', b"true", b"\xef\xbb\xbf[]"])
def test_body_that_is_not_a_list_of_events(client: httpx.Client, body: bytes) -> None:
    """Scalars, bare words and a byte-order mark are 400 malformed_json."""
    assert_error(post(client, body), 400, "malformed_json")
    assert_error(post(client, body, "/v1/events"), 400, "malformed_json")


@pytest.mark.parametrize("body", [b"", b"   \n\t  ", b"\n\n"])
def test_empty_body(client: httpx.Client, body: bytes) -> None:
    """An empty (or all-whitespace) body is 400 empty_body."""
    assert_error(post(client, body), 400, "empty_body")


def test_events_wrapper_that_is_not_a_list(client: httpx.Client) -> None:
    """{"events": 5} is not a wrapper; it is read as one event and rejected per event (each bad field)."""
    response = post(client, b'{"events": 5}')
    assert response.status_code == 200 and response.json()["rejected"] == 1
    assert [(e["code"], e["path"]) for e in response.json()["errors"]] == [
        ("unknown_field", "$.events"), ("missing_field", "$.user_id"), ("missing_field", "$.level")]


@pytest.mark.parametrize("body", [b'[{"user_id":"\\ud800","level":1}]', b'[{"user_id":"\\udc00x","level":1}]',
                                  b'[{"user_id":"\\ud800\\u0041","level":1}]',
                                  b'[{"user_id":"\\x41","level":1}]'])
def test_invalid_escapes(client: httpx.Client, body: bytes) -> None:
    """Lone UTF-16 surrogates and unknown escapes are 400 malformed_json, never a 500."""
    assert_error(post(client, body), 400, "malformed_json")
    assert_error(post(client, body, "/v1/events"), 400, "malformed_json")


@pytest.mark.parametrize("body", [b'[{"user_id":"\\ud800","level":1}]', b'{"user_id":"\\ud800x","level":1}',
                                  b'{"user_id":"a","level":1}\n{"user_id":"\\uDBFF","level":1}\n',
                                  b'[{"user_id":"\\ud800\\u0041","level":1}]'])
@pytest.mark.parametrize("path", [EVENTS_PATH, "/v1/streams/nope/events", "/v1/events"])
def test_a_lone_surrogate_is_named_not_called_truncated(client: httpx.Client, body: bytes, path: str) -> None:
    response = post(client, body, path)
    assert_error(response, 400, "malformed_json")
    reason = response.json()["reason"]
    assert "surrogate" in reason and "truncated" not in reason, reason


# --------------------------------------------------------------------------- encodings
def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_checksum=True).compress(data)


GOOD_BODY = json.dumps(GOOD * 200).encode()
BAD_ENCODINGS = {
    "gzip-truncated": ("gzip", gzip.compress(GOOD_BODY)[:-20]),
    "gzip-header-only": ("gzip", gzip.compress(GOOD_BODY)[:10]),
    "gzip-plain-text": ("gzip", GOOD_BODY),
    "gzip-flipped-bytes": ("gzip", (lambda b: b[:30] + bytes(x ^ 0xFF for x in b[30:60]) + b[60:])(
        gzip.compress(GOOD_BODY))),
    "gzip-bad-crc": ("gzip", (lambda b: b[:-8] + bytes(4) + b[-4:])(gzip.compress(GOOD_BODY))),
    "gzip-trailing-garbage": ("gzip", gzip.compress(GOOD_BODY) + b"not gzip at all"),
    "zstd-truncated": ("zstd", zstd(GOOD_BODY)[:-5]),
    "zstd-plain-text": ("zstd", GOOD_BODY),
    "zstd-corrupt-frame": ("zstd", b"\x28\xb5\x2f\xfd" + b"\xff" * 64),
    "zstd-flipped-bytes": ("zstd", (lambda b: b[:12] + bytes(x ^ 0x5A for x in b[12:40]) + b[40:])(
        zstd(GOOD_BODY))),
    "zstd-trailing-garbage": ("zstd", zstd(GOOD_BODY) + b"not zstd at all"),
}


@pytest.mark.parametrize("case", list(BAD_ENCODINGS))
def test_corrupt_compressed_body_is_400(client: httpx.Client, case: str) -> None:
    """Truncated, corrupt or mislabelled compressed bodies are 400 bad_encoding."""
    encoding, body = BAD_ENCODINGS[case]
    assert_error(post(client, body, content_encoding=encoding), 400, "bad_encoding")


@pytest.mark.parametrize("encoding", ["br", "deflate", "compress", "gzip, zstd", "zstd;q=1"])
def test_unsupported_encoding_is_415(client: httpx.Client, encoding: str) -> None:
    """A Content-Encoding the collector cannot undo is 415, not a garbled parse."""
    assert_error(post(client, GOOD_BODY, content_encoding=encoding), 415, "unsupported_encoding")


def test_concatenated_gzip_members_are_all_read(client: httpx.Client, home: tuple[Lakehose, Server]) -> None:
    """A gzip body of several members (RFC 1952; what `cat a.gz b.gz` makes) loses no event."""
    events = [{"user_id": f"gzm-{i}", "level": 1} for i in range(30)]
    ndjson = "".join(json.dumps(e) + "\n" for e in events).encode()
    body = gzip.compress(ndjson[:500]) + gzip.compress(ndjson[500:1000]) + gzip.compress(ndjson[1000:])
    response = post(client, body, content_encoding="gzip", content_type="application/x-ndjson")
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 30
    assert [e["user_id"] for e in read_events(home[0].data_dir) if e["user_id"].startswith("gzm-")] == [
        e["user_id"] for e in events]


def test_concatenated_zstd_frames_are_all_read(client: httpx.Client, home: tuple[Lakehose, Server]) -> None:
    """A zstd body of several frames (what `cat a.zst b.zst` makes) loses no event."""
    events = [{"user_id": f"zsf-{i}", "level": 1} for i in range(30)]
    ndjson = "".join(json.dumps(e) + "\n" for e in events).encode()
    body = zstd(ndjson[:500]) + zstd(ndjson[500:])
    response = post(client, body, content_encoding="zstd", content_type="application/x-ndjson")
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 30
    assert len([e for e in read_events(home[0].data_dir) if e["user_id"].startswith("zsf-")]) == 30


def test_streamed_zstd_frame_without_content_size(client: httpx.Client) -> None:
    """A zstd frame written by a streaming compressor (no content size in the header) is read."""
    out = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(out, closefd=False) as writer:
        writer.write(GOOD_BODY)
    response = post(client, out.getvalue(), content_encoding="zstd")
    assert response.status_code == 200 and response.json()["accepted"] == 200


# --------------------------------------------------------------------------- invalid UTF-8
@pytest.mark.parametrize(("raw", "bad"), [
    (b'[{"user_id":"ab\x80","level":1}]', b"\x80"),              # lone continuation byte
    (b'[{"user_id":"\xc0\xaf","level":1}]', b"\xc0"),            # overlong "/"
    (b'[{"user_id":"\xed\xa0\x80","level":1}]', b"\xed"),        # UTF-8-encoded surrogate
    (b'[{"user_id":"\xf4\x90\x80\x80","level":1}]', b"\xf4"),    # beyond U+10FFFF
    (b'[{"user_id":"caf\xe9","level":1}]', b"\xe9"),             # Latin-1, not UTF-8
    (b'[{"user_id":"a","level":1}]\xe2\x82', b"\xe2\x82"),      # cut inside a character
])
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_invalid_utf8_is_400_with_offset(client: httpx.Client, raw: bytes, bad: bytes, encoding: str) -> None:
    """Bytes that are not UTF-8 are a 400 invalid_utf8 naming the byte offset."""
    body = gzip.compress(raw) if encoding == "gzip" else raw
    for path in (EVENTS_PATH, "/v1/events"):
        reason = assert_error(post(client, body, path, content_encoding=encoding), 400, "invalid_utf8")
        assert f"byte offset {raw.index(bad)}" in reason, reason


# --------------------------------------------------------------------------- bombs and limits
def zstd_zeros(size: int) -> bytes:
    out = io.BytesIO()
    writer = zstandard.ZstdCompressor(level=1).stream_writer(out, closefd=False)
    chunk = bytes(16 * MiB)
    for _ in range(size // len(chunk)):
        writer.write(chunk)
    writer.flush(zstandard.FLUSH_FRAME)
    return out.getvalue()


def gzip_zeros(size: int) -> bytes:
    deflater = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(4 * MiB)
    return b"".join(deflater.compress(chunk) for _ in range(size // len(chunk))) + deflater.flush()


@pytest.mark.parametrize(("encoding", "size"),
                         [("gzip", 100 * MiB), ("zstd", 100 * MiB), ("zstd", 1024 * MiB)],
                         ids=["gzip-100MiB", "zstd-100MiB", "zstd-1GiB"])
def test_decompression_bomb_is_413_quickly_and_cheaply(
        client: httpx.Client, server: Server, encoding: str, size: int) -> None:
    """A small body that inflates to 100 MiB-1 GiB is refused fast, without inflating it in memory."""
    body = gzip_zeros(size) if encoding == "gzip" else zstd_zeros(size)
    assert len(body) < 2 * MiB
    reset_peak_rss(server)
    rss_before = proc_status(server, "VmRSS")
    started = time.monotonic()
    reason = assert_error(post(client, body, content_encoding=encoding), 413, "body_too_large")
    assert time.monotonic() - started < 3
    assert "after decompression" in reason
    grown = proc_status(server, "VmHWM") - rss_before
    assert grown < 64 * MiB, f"the collector's peak RSS grew by {grown // MiB} MiB for one bomb"


def test_bomb_of_valid_json_is_413(client: httpx.Client) -> None:
    """Valid NDJSON that is only too large once inflated is 413, not partly stored."""
    line = b'{"user_id":"bomb","level":1}\n'
    body = gzip.compress(line * (9 * MiB // len(line) + 1))
    assert len(body) < MiB
    assert_error(post(client, body, content_encoding="gzip"), 413, "body_too_large")


def test_body_over_limit_is_413(client: httpx.Client) -> None:
    """An identity body over max_body_bytes is 413, with Content-Length or chunked."""
    body = b"[" + b",".join([b'{"user_id":"big","level":1}'] * (9 * MiB // 28)) + b"]"
    assert len(body) > 8 * MiB
    assert_error(post(client, body), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), MiB):
            yield body[start:start + MiB]

    response = client.post(EVENTS_PATH, content=chunks(), headers=JSON)
    assert_error(response, 413, "body_too_large")


@pytest.mark.parametrize("path", [EVENTS_PATH, "/v1/events"])
@pytest.mark.parametrize("shape", ["array", "ndjson", "invalid-events"])
def test_too_many_events_is_413(client: httpx.Client, path: str, shape: str) -> None:
    """10 001 events (the default limit is 10 000) are refused whole; 10 000 valid ones pass."""
    event = {"type": STREAM, "user_id": "many", "level": 1} if shape != "invalid-events" else {"x": 1}
    over = [event] * 10_001
    body = ("\n".join(json.dumps(e) for e in over) if shape == "ndjson" else json.dumps(over)).encode()
    reason = assert_error(post(client, body, path), 413, "too_many_events")
    assert "10001" in reason and "10000" in reason
    if shape == "array":
        response = post(client, json.dumps(over[:10_000]).encode(), path)
        assert response.status_code == 200 and response.json()["accepted"] == 10_000


@pytest.mark.parametrize("path", [EVENTS_PATH, "/v1/events"])
def test_oversized_event_is_rejected_alone(client: httpx.Client, home: tuple[Lakehose, Server],
                                           path: str) -> None:
    """An event over 1 MiB is event_too_large at its index; its neighbours are kept."""
    tag = f"big-{path.count('/')}"
    huge = {"type": STREAM, "user_id": f"{tag}-huge", "level": 1, "items": ["x" * 1000] * 1100}
    batch = [{"type": STREAM, "user_id": f"{tag}-0", "level": 1}, huge,
             {"type": STREAM, "user_id": f"{tag}-2", "level": 2}]
    response = post(client, json.dumps(batch).encode(), path)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 2
    assert [(e["index"], e["code"], e["path"]) for e in answer["errors"]] == [(1, "event_too_large", "$")]
    kept = [e["user_id"] for e in read_events(home[0].data_dir) if e["user_id"].startswith(tag)]
    assert kept == [f"{tag}-0", f"{tag}-2"]


def test_oversized_single_object_body(client: httpx.Client) -> None:
    """A body that is one 1.1 MiB event object is answered 200 with that event rejected."""
    huge = {"user_id": "huge-single", "level": 1, "items": ["x" * 1000] * 1100}
    response = post(client, json.dumps(huge).encode())
    assert response.status_code == 200
    assert [(e["index"], e["code"]) for e in response.json()["errors"]] == [(0, "event_too_large")]


# --------------------------------------------------------------------------- one request cannot freeze the process
def worst_bodies() -> dict[str, tuple[str, bytes]]:
    """Bodies of the largest size allowed that cost the most work per byte (each just under 8 MiB)."""
    size = 8 * MiB - 64
    gzip_member = gzip.compress(b'{"user_id":"g","level":1}\n', mtime=0)
    zstd_frame = zstandard.ZstdCompressor().compress(b"")
    tiny = b"{}\n"
    event = json.dumps({"user_id": "u" * 700, "level": 1}).encode() + b"\n"
    return {
        "gzip-tiny-members": ("gzip", gzip_member * (size // len(gzip_member))),  # ~300 000 members
        "zstd-empty-frames": ("zstd", zstd_frame * (size // len(zstd_frame))),  # ~930 000 frames
        "tiny-events": ("identity", tiny * (size // len(tiny))),  # 2.8 M events, over the count limit
        "max-events": ("identity", event * 10_000),  # 10 000 events of 7xx bytes, all validated
        "deep-nesting": ("identity", b"[" * size),
        "gzip-of-deep-nesting": ("gzip", gzip.compress(b"[" * (8 * MiB))),
    }


@pytest.mark.parametrize("case", list(worst_bodies()))
def test_healthz_answers_within_1s_while_a_worst_body_is_processed(
        home: tuple[Lakehose, Server], server: Server, case: str) -> None:
    """While one request with the costliest body is processed, /healthz on the same process
    answers every poll within 1 s (a body of tiny gzip members used to freeze it for 179 s)."""
    encoding, body = worst_bodies()[case]
    assert len(body) <= 8 * MiB
    answer: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(base_url=server.url, headers={"X-Write-Key": home[0].key}, timeout=60) as c:
            answer.append(post(c, body, content_encoding=encoding, content_type="application/x-ndjson"))

    sender = threading.Thread(target=send)
    latencies: list[float] = []
    with httpx.Client(base_url=server.url, timeout=10) as health:
        health.get("/healthz")  # the connection is open before the body arrives
        sender.start()
        while sender.is_alive():
            started = time.monotonic()
            assert health.get("/healthz").status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.02)
    sender.join()
    assert answer and answer[0].status_code < 500, answer
    assert max(latencies, default=0) < 1.0, f"/healthz took {max(latencies):.2f} s ({len(latencies)} polls)"


# --------------------------------------------------------------------------- pathological JSON
DEEP = 100_000
DEEP_BODIES = {
    "arrays": b"[" * DEEP + b"]" * DEEP,
    "objects-in-field": b'[{"user_id":"a","level":1,"device":' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}]",
    "arrays-in-field": b'[{"user_id":"a","level":1,"items":' + b"[" * DEEP + b"]" * DEEP + b"}]",
    "single-object": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "ndjson": b'{"user_id":"a","level":1}\n{"x":' + b"[" * DEEP + b"]" * DEEP + b"}\n",
    "unclosed": b"[" * DEEP,
}


@pytest.mark.parametrize("where", list(PATHS))
@pytest.mark.parametrize("case", list(DEEP_BODIES))
def test_deeply_nested_json_is_4xx(client: httpx.Client, case: str, where: str) -> None:
    """100 000 levels of nesting are refused with a 4xx, never a 500 or a crashed process."""
    for encoding in ("identity", "gzip"):
        body = DEEP_BODIES[case]
        sent = gzip.compress(body) if encoding == "gzip" else body
        response = post(client, sent, PATHS[where], content_encoding=encoding)
        assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
        assert response.json()["error"] in ("too_deeply_nested", "malformed_json")


def test_moderate_nesting_is_a_per_event_error(client: httpx.Client) -> None:
    """500 levels fit the decoder's depth limit: the event is rejected by schema, not the request."""
    body = b'[{"user_id":"a","level":1,"device":{"os":' + b"[" * 500 + b"]" * 500 + b"}}]"
    response = post(client, body)
    assert response.status_code == 200
    assert [(e["code"], e["path"]) for e in response.json()["errors"]] == [("type_mismatch", "$.device.os")]


@pytest.mark.parametrize(("field", "literal", "code"), [
    ("level", b"18446744073709551616", "out_of_range"),          # 2**64
    ("level", b"-9223372036854775809", "out_of_range"),          # below int64
    ("level", b"1" * 5000, "invalid"),                           # 5 000-digit integer
    ("level", b"1e400", "invalid"),
    ("score", b"1e400", "invalid"),                              # overflows a double
    ("score", b"-1e400", "invalid"),
    ("score", b"1" + b"0" * 400, "invalid"),
    ("score", b"9" * 100_000, "invalid"),                        # 100 000 digits
])
def test_huge_numbers_are_rejected_per_event(client: httpx.Client, field: str, literal: bytes,
                                             code: str) -> None:
    """Numbers no int64/double can hold are a per-event error at their path, quickly."""
    event = b'{"user_id":"num","level":1,"score":1.5}'.replace(
        b'"level":1' if field == "level" else b'"score":1.5', f'"{field}":'.encode() + literal)
    started = time.monotonic()
    response = post(client, b"[" + event + b',{"user_id":"num","level":2}]')
    assert time.monotonic() - started < 2
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 1
    assert [(e["index"], e["code"], e["path"]) for e in answer["errors"]] == [(0, code, f"$.{field}")]


def test_extreme_but_representable_numbers_are_kept(client: httpx.Client,
                                                    home: tuple[Lakehose, Server]) -> None:
    """1e308, 5e-324, big integers in a number field (as doubles) and underflow to 0.0 are stored."""
    body = (b'[{"user_id":"xnum-1","level":1,"score":1e308},{"user_id":"xnum-2","level":1,"score":5e-324},'
            b'{"user_id":"xnum-3","level":1,"score":100000000000000000000000},'
            b'{"user_id":"xnum-4","level":1,"score":1e-400},{"user_id":"xnum-5","level":10000}]')
    assert post(client, body).json()["accepted"] == 5
    got = {e["user_id"]: e for e in read_events(home[0].data_dir) if e["user_id"].startswith("xnum-")}
    assert [got[f"xnum-{i}"].get("score") for i in range(1, 5)] == [1e308, 5e-324, 1e23, 0.0]
    assert got["xnum-5"]["level"] == 10000


def test_duplicate_keys_last_wins(client: httpx.Client, home: tuple[Lakehose, Server]) -> None:
    """Duplicate keys: the request is answered normally and the LAST value is the one stored.

    Every occurrence is still type-checked, so a bad earlier value rejects the event.
    """
    body = (b'[{"user_id":"dupk-1","level":1,"level":2},'
            b'{"user_id":"dupk-2","level":3,"event_id":"first","event_id":"dupk-last"},'
            b'{"user_id":"dupk-3","level":"bad","level":3}]')
    response = post(client, body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] == 2
    assert [(e["index"], e["code"], e["path"]) for e in answer["errors"]] == [(2, "type_mismatch", "$.level")]
    got = {e["user_id"]: e for e in read_events(home[0].data_dir) if e["user_id"].startswith("dupk-")}
    assert got["dupk-1"]["level"] == 2
    assert got["dupk-2"]["event_id"] == "dupk-last"
    # two different "type" values make the stream ambiguous: the event is refused, with why
    mixed = b'[{"type":"nope","user_id":"dupk-4","level":1,"type":"level_complete"},' \
            b'{"type":"level_complete","user_id":"dupk-5","level":1}]'
    answer = post(client, mixed, "/v1/events").json()
    assert answer["accepted"] == 1
    assert [(e["index"], e["code"], e["path"]) for e in answer["errors"]] == [(0, "wrong_stream", "$.type")]


# --------------------------------------------------------------------------- content types
MULTIPART = (b'--XyZ\r\nContent-Disposition: form-data; name="events"\r\n\r\n'
             + json.dumps(GOOD).encode() + b"\r\n--XyZ--\r\n")


@pytest.mark.parametrize(("content_type", "body"), [
    ("multipart/form-data; boundary=XyZ", MULTIPART),
    ("text/html", b"<html><body>[]</body></html>"),
    ("text/html; charset=utf-8", json.dumps(GOOD).encode()),
    ("application/xml", b"<events/>"),
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("text/csv", b"user_id,level\na,1\n"),
])
def test_wrong_content_type_is_415(client: httpx.Client, content_type: str, body: bytes) -> None:
    """Non-JSON media types are 415 unsupported_media_type, before the body is parsed."""
    reason = assert_error(post(client, body, content_type=content_type), 415, "unsupported_media_type")
    assert content_type.split(";")[0] in reason


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream",
                                          "application/x-www-form-urlencoded", "application/cloudevents+json",
                                          "APPLICATION/JSON; charset=UTF-8", "application/x-ndjson"])
def test_lenient_content_types_are_accepted(home: tuple[Lakehose, Server], server: Server,
                                            content_type: str | None) -> None:
    """No Content-Type, curl's default and other JSON-ish types are read as JSON."""
    headers = {"Authorization": f"Bearer {home[0].key}"}
    if content_type is not None:
        headers["content-type"] = content_type
    response = httpx.post(server.url + EVENTS_PATH, content=json.dumps(GOOD).encode(), headers=headers)
    assert response.status_code == 200 and response.json()["accepted"] == 1


# --------------------------------------------------------------------------- keys
@pytest.mark.parametrize(("headers", "status", "code"), [
    ({}, 401, "missing_key"),
    ({"Authorization": "Bearer"}, 401, "missing_key"),
    ({"Authorization": "Basic"}, 401, "missing_key"),
    ({"Authorization": "Basic !!!not-base64!!!"}, 401, "missing_key"),
    ({"Authorization": "Basic " + base64.b64encode(b":").decode()}, 401, "missing_key"),
    # the key may also come as the Basic password when the user is empty
    ({"Authorization": "Basic " + base64.b64encode(b":password").decode()}, 403, "unknown_key"),
    ({"X-Write-Key": ""}, 401, "missing_key"),
    ({"Authorization": "Token abc"}, 401, "missing_key"),
    ({"Authorization": "Bearer lh_not_a_real_key"}, 403, "unknown_key"),
    ({"X-Write-Key": "lh_not_a_real_key"}, 403, "unknown_key"),
    ({"Authorization": "Basic " + base64.b64encode(b"nobody:").decode()}, 403, "unknown_key"),
])
def test_missing_or_unknown_key(server: Server, headers: dict[str, str], status: int, code: str) -> None:
    """Requests without a usable key are 401; with a key nobody created, 403."""
    response = httpx.post(server.url + EVENTS_PATH, json=GOOD, headers=headers, timeout=10)
    assert_error(response, status, code)


def test_auth_is_checked_before_the_body_is_read(server: Server) -> None:
    """Without a key even a decompression bomb or a huge body gets 401, not 413."""
    for body, encoding in ((zstd_zeros(100 * MiB), "zstd"), (b"[" + b" " * (9 * MiB) + b"]", "identity")):
        response = httpx.post(server.url + EVENTS_PATH, content=body,
                              headers={"content-encoding": encoding, **JSON}, timeout=10)
        assert_error(response, 401, "missing_key")


def test_revoked_key_is_refused_within_seconds(home: tuple[Lakehose, Server], server: Server) -> None:
    """A key that worked is 403 revoked_key soon after `lakehose keys revoke`."""
    lh = home[0]
    key = lh.run("keys", "create", "soon-revoked").stdout.strip()
    headers = {"X-Write-Key": key}
    # a key created while the collector runs is picked up by its refresh

    def status() -> int:
        return httpx.post(server.url + EVENTS_PATH, json=GOOD, headers=headers).status_code

    assert wait_until(lambda: status() == 200, timeout=3)
    lh.run("keys", "revoke", "soon-revoked")
    revoked_at = time.monotonic()
    assert wait_until(lambda: status() == 403, timeout=3)
    assert time.monotonic() - revoked_at < 2.5
    assert_error(httpx.post(server.url + EVENTS_PATH, json=GOOD, headers=headers), 403, "revoked_key")
    # the other key still works
    response = httpx.post(server.url + EVENTS_PATH, json=GOOD, headers={"X-Write-Key": lh.key})
    assert response.status_code == 200


# --------------------------------------------------------------------------- routes
@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", EVENTS_PATH, 405), ("PUT", "/v1/events", 405), ("POST", "/v1/nothing", 404),
    ("POST", "/v1/streams//events", 404), ("POST", "/healthz", 405),
])
def test_wrong_method_or_path(client: httpx.Client, method: str, path: str, status: int) -> None:
    """Unknown routes and methods are 404/405."""
    assert client.request(method, path, json=GOOD).status_code == status


@pytest.mark.parametrize("name", ["..%2F..%2Fetc", "%2e%2e", "UPPER", "x" * 300, "%C3%A9v%C3%A9nement",
                                  "_writers", "a%00b"])
def test_strange_stream_names_touch_nothing_on_disk(client: httpx.Client, home: tuple[Lakehose, Server],
                                                    name: str) -> None:
    """Stream names from the URL are only looked up: 404, and no directory is made."""
    log_dir = home[0].data_dir / "log"
    before = sorted(p.name for p in log_dir.iterdir())
    response = client.post(f"/v1/streams/{name}/events", json=GOOD)
    assert response.status_code == 404, response.text
    if response.headers["content-type"] == "application/json":  # a route match, not a bad path
        assert response.json()["error"] in ("unknown_stream", "not_found"), response.text
    assert sorted(p.name for p in log_dir.iterdir()) == before


# --------------------------------------------------------------------------- slow and vanishing clients
def request_head(server: Server, key: str, length: int) -> bytes:
    return (f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: {server.url[7:]}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def test_slow_body_is_408_and_others_are_served(home: tuple[Lakehose, Server], server: Server) -> None:
    """A client that stalls mid-body gets 408 after body_timeout_seconds (1 s); others are not held up."""
    body = json.dumps(GOOD * 50).encode()
    with raw_connection(server.url) as sock:
        sock.sendall(request_head(server, home[0].key, len(body)) + body[:100])
        started = time.monotonic()
        # meanwhile a normal client is served at once
        fast = httpx.post(server.url + EVENTS_PATH, json=GOOD, headers={"X-Write-Key": home[0].key},
                          timeout=5)
        assert fast.status_code == 200
        assert time.monotonic() - started < 0.8
        status, headers, answer = read_http_response(sock)
        waited = time.monotonic() - started
    assert status == 408, answer
    assert json.loads(answer)["error"] == "body_timeout"
    assert 0.8 <= waited < 4, waited


def test_dripping_body_is_408(home: tuple[Lakehose, Server], server: Server) -> None:
    """The timeout bounds the whole body, so sending one byte every 0.2 s does not keep it open."""
    body = json.dumps(GOOD * 50).encode()
    with raw_connection(server.url) as sock:
        sock.sendall(request_head(server, home[0].key, len(body)))
        started = time.monotonic()
        with dripping(sock, body, 0.2):
            status, _, answer = read_http_response(sock)
        assert status == 408, answer
        assert time.monotonic() - started < 4


def test_headers_without_body_is_408(home: tuple[Lakehose, Server], server: Server) -> None:
    """Announcing a body and never sending a byte of it is 408 too."""
    with raw_connection(server.url) as sock:
        sock.sendall(request_head(server, home[0].key, 5000))
        status, _, _ = read_http_response(sock)
    assert status == 408


def test_clients_vanishing_mid_body_do_not_leak_slots(home: tuple[Lakehose, Server], server: Server) -> None:
    """100 clients (more than the in-flight cap) that hang up mid-body leave the collector fully usable."""
    key = home[0].key
    for _ in range(100):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(request_head(server, key, 10_000) + b'[{"user_id":')
            sock.shutdown(socket.SHUT_WR)
    assert wait_until(lambda: httpx.post(server.url + EVENTS_PATH, json=GOOD,
                                         headers={"X-Write-Key": key}).status_code == 200, timeout=3)
    burst = [httpx.post(server.url + EVENTS_PATH, json=GOOD, headers={"X-Write-Key": key}).status_code
             for _ in range(5)]
    assert burst == [200] * 5


def test_garbage_instead_of_http(server: Server) -> None:
    """Bytes that are not HTTP at all get the connection closed (or a 400) and nothing else."""
    with raw_connection(server.url, timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200))  # a TLS hello
        try:
            data = sock.recv(1024)
        except (ConnectionResetError, socket.timeout):
            data = b""
    assert data == b"" or data.startswith(b"HTTP/1.1 400")
