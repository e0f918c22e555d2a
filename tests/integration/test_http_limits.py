"""Limits of the HTTP layer, attacked over real sockets: they hold before authentication and
before anything is buffered, and the server's memory stays flat while hostile connections stay open.

One collector serves the module, with short timeouts (headers 2 s, bodies 4 s) and a cap
of 100 connections. After every test it must answer /healthz and log no traceback.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import httpx
import pytest
from collector_support import (EVENTS_PATH, STREAM, alive_and_clean, assert_alive, collector_log_tracebacks, dripping, log_end,
                               proc_status, raw_connection, read_http_response, wait_until)
from conftest import Lakehose, Server

MiB = 1024 * 1024
GOOD = [{"user_id": "good", "level": 1}]
MAX_CONNECTIONS = 100
RSS_GROWTH = 30 * MiB


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lakehose, Server]]:
    lh = Lakehose(tmp_path_factory.mktemp("http-limits") / "data")
    lh.create_stream(STREAM)
    server = lh.server("collector", env={"LAKEHOSE_COLLECTOR__HEADER_TIMEOUT_SECONDS": "2",
                                         "LAKEHOSE_COLLECTOR__BODY_TIMEOUT_SECONDS": "4",
                                         "LAKEHOSE_COLLECTOR__MAX_CONNECTIONS": str(MAX_CONNECTIONS),
                                         "LAKEHOSE_COLLECTOR__LINGER_SECONDS": "3"}).start()
    yield lh, server
    lh.close()


@pytest.fixture
def server(home: tuple[Lakehose, Server]) -> Iterator[Server]:
    with alive_and_clean(home[1], settle_seconds=10) as srv:  # hostile connections may linger a moment
        yield srv


def assert_refusal(status: int, body: bytes, expected: int, code: str, setting: str) -> None:
    assert status == expected, (status, body)
    answer = json.loads(body)
    assert answer["error"] == code, answer
    assert setting in answer["reason"], answer


class RssSampler:
    """The server's VmRSS, sampled every 20 ms from a thread while hostile clients run."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.start = proc_status(server, "VmRSS")
        self.peak = self.start
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, proc_status(self.server, "VmRSS"))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


def run_all(count: int, work: Callable[[int], object]) -> list[object]:
    """``work(i)`` for i < count, each in its own thread; their results (or exceptions) in order."""
    results: list[object] = [None] * count

    def one(i: int) -> None:
        try:
            results[i] = work(i)
        except Exception as exc:  # reported by the caller's assertions
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


# --------------------------------------------------------------------------- headers
def test_huge_header_is_431_before_authentication(server: Server) -> None:
    """One 100 KiB header (over max_header_bytes, 64 KiB) is 431 naming the setting; no key was sent."""
    with raw_connection(server.url) as sock:
        sock.sendall(f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 100 * 1024}\r\n"
                     "Content-Length: 2\r\n\r\n[]".encode())
        status, _, body = read_http_response(sock)
    assert_refusal(status, body, 431, "headers_too_large", "collector.max_header_bytes")


def test_too_many_headers_is_431(server: Server) -> None:
    """101 small headers (over max_headers, 100) are 431."""
    headers = "".join(f"X-H{i}: {i}\r\n" for i in range(101))
    with raw_connection(server.url) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        status, _, body = read_http_response(sock)
    assert_refusal(status, body, 431, "too_many_headers", "collector.max_headers")


def test_endless_headers_from_40_connections_keep_memory_flat(server: Server) -> None:
    """40 connections each sending 8 MiB of one header (64 MiB was read before auth before):
    each gets 431 and the server's RSS grows by less than 30 MiB meanwhile."""
    chunk = b"a" * 65536

    def endless_header(_: int) -> tuple[int, bytes]:
        with raw_connection(server.url, timeout=20) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ")
            try:
                for _ in range(128):
                    sock.sendall(chunk)
            except OSError:  # closed once the lingering bound was reached: the answer was sent first
                pass
            status, _, body = read_http_response(sock)
            return status, body

    with RssSampler(server) as rss:
        answers = run_all(40, endless_header)
    for answer in answers:
        assert isinstance(answer, tuple), answer
        assert_refusal(*answer, 431, "headers_too_large", "collector.max_header_bytes")
    assert rss.growth < RSS_GROWTH, f"RSS grew by {rss.growth / MiB:.1f} MiB"


def test_slow_headers_are_408(server: Server) -> None:
    """Headers dripping one byte every 0.1 s (slowloris) get 408 after header_timeout_seconds (2 s)."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    with raw_connection(server.url) as sock:
        started = time.monotonic()
        with dripping(sock, head, 0.1):
            status, _, body = read_http_response(sock)
        waited = time.monotonic() - started
    assert_refusal(status, body, 408, "header_timeout", "collector.header_timeout_seconds")
    assert 1.8 <= waited < 6, waited


def test_silent_connection_is_closed(server: Server) -> None:
    """A connection that never sends a byte is answered 408 and closed after the header timeout."""
    with raw_connection(server.url) as sock:
        started = time.monotonic()
        status, _, body = read_http_response(sock)
        assert sock.recv(1) == b""  # closed
    assert_refusal(status, body, 408, "header_timeout", "collector.header_timeout_seconds")
    assert 1.8 <= time.monotonic() - started < 6


def test_keep_alive_connection_still_works(home: tuple[Lakehose, Server], server: Server) -> None:
    """The limits do not disturb ordinary use: 50 requests on one keep-alive connection."""
    with httpx.Client(base_url=server.url, headers={"X-Write-Key": home[0].key}, timeout=10) as client:
        for _ in range(50):
            assert client.post(EVENTS_PATH, json=GOOD).status_code == 200
            assert client.get("/healthz").status_code == 200


# --------------------------------------------------------------------------- connections
def test_connections_over_the_cap_are_refused_at_once(server: Server) -> None:
    """With max_connections open, one more is answered 503 naming the setting and closed at once;
    once they close, the server serves again."""
    held: list[socket.socket] = []
    try:
        with RssSampler(server) as rss:
            for _ in range(MAX_CONNECTIONS):
                held.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
            # every held connection is known to the server once a request on one more is refused
            def refused() -> bool:
                with raw_connection(server.url) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    try:
                        status, _, body = read_http_response(sock)
                    except ConnectionError:
                        return False
                return status == 503 and json.loads(body)["error"] == "too_many_connections"

            assert wait_until(refused, timeout=1.5, interval=0.05)
            started = time.monotonic()
            with raw_connection(server.url) as sock:
                status, _, body = read_http_response(sock)  # without sending anything
                assert sock.recv(1) == b""
            assert time.monotonic() - started < 1
            assert_refusal(status, body, 503, "too_many_connections", "collector.max_connections")
        assert rss.growth < RSS_GROWTH, f"RSS grew by {rss.growth / MiB:.1f} MiB"
    finally:
        for sock in held:
            sock.close()
    assert wait_until(lambda: httpx.get(server.url + "/healthz", timeout=5).status_code == 200, timeout=5)


# --------------------------------------------------------------------------- bodies
def test_urllib_reads_the_413_of_a_20_mib_body(home: tuple[Lakehose, Server], server: Server) -> None:
    """urllib sends the whole body before reading; the server lingers, so it reads the 413 JSON
    (it used to get "connection reset")."""
    request = urllib.request.Request(server.url + EVENTS_PATH, data=b"[" + b" " * (20 * MiB) + b"]",
                                     headers={"X-Write-Key": home[0].key,
                                              "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 413
    answer = json.loads(caught.value.read())
    assert answer["error"] == "body_too_large", answer


def trickle(server: Server, key: str, count: int, stop: threading.Event) -> list[socket.socket]:
    """``count`` uploads that announce 1000 bytes and send one every 0.1 s until ``stop``."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: x\r\nX-Write-Key: {key}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[".encode())
        socks.append(sock)

    def drip() -> None:
        while not stop.wait(0.1):
            for sock in socks:
                try:
                    sock.sendall(b" ")
                except OSError:
                    pass

    threading.Thread(target=drip, daemon=True).start()
    return socks


def test_trickling_bodies_of_one_key_do_not_lock_out_another(home: tuple[Lakehose, Server],
                                                              server: Server) -> None:
    """40 bodies trickling from one key (more than the 32 request slots, which they used to hold
    until their timeout) while another key sends 30 requests: all 30 are 200, memory stays flat,
    and the tricklers get 408 body_timeout after body_timeout_seconds (4 s), which bounds them."""
    lh = home[0]
    other = lh.run("keys", "create", "fair-share-other").stdout.strip()
    assert wait_until(lambda: httpx.post(server.url + EVENTS_PATH, json=GOOD,
                                         headers={"X-Write-Key": other}).status_code == 200, timeout=3)
    stop = threading.Event()
    with RssSampler(server) as rss:
        started = time.monotonic()
        socks = trickle(server, lh.key, 40, stop)
        try:
            statuses = []
            with httpx.Client(base_url=server.url, headers={"X-Write-Key": other}, timeout=10) as client:
                while len(statuses) < 30 and time.monotonic() - started < 3:
                    statuses.append(client.post(EVENTS_PATH, json=GOOD).status_code)
            assert statuses == [200] * 30, statuses
            answers = [read_http_response(sock) for sock in socks]
            waited = time.monotonic() - started
        finally:
            stop.set()
            for sock in socks:
                sock.close()
    for status, _, body in answers:
        assert_refusal(status, body, 408, "body_timeout", "collector.body_timeout_seconds")
    assert 3.5 <= waited < 10, waited
    assert rss.growth < RSS_GROWTH, f"RSS grew by {rss.growth / MiB:.1f} MiB"


def test_buffered_body_bytes_are_capped(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Bodies still arriving share max_buffered_body_bytes: past it a request is 429 with
    Retry-After, naming the setting, and the bytes come back once those bodies end."""
    lh = Lakehose(tmp_path_factory.mktemp("buffered") / "data")
    try:
        lh.create_stream(STREAM)
        server = lh.server("collector", env={"LAKEHOSE_COLLECTOR__MAX_BUFFERED_BODY_BYTES": str(MiB),
                                             "LAKEHOSE_COLLECTOR__BODY_TIMEOUT_SECONDS": "3"}).start()
        half = json.dumps([{"user_id": "x" * 100, "level": 1}] * 6000).encode()[:700_000]
        with raw_connection(server.url) as holder:
            holder.sendall(f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: x\r\nX-Write-Key: {lh.key}\r\n"
                           f"Content-Type: application/json\r\nContent-Length: {len(half) + 10}\r\n\r\n"
                           .encode() + half)
            time.sleep(0.3)  # the server reads what was sent
            body = json.dumps([{"user_id": "y" * 100, "level": 1}] * 4000).encode()
            response = httpx.post(server.url + EVENTS_PATH, content=body, timeout=10,
                                  headers={"X-Write-Key": lh.key, "Content-Type": "application/json"})
            assert response.status_code == 429, response.text
            assert response.json()["error"] == "too_many_requests"
            assert "collector.max_buffered_body_bytes" in response.json()["reason"]
            assert int(response.headers["retry-after"]) >= 1
        assert wait_until(lambda: httpx.post(server.url + EVENTS_PATH, content=body, timeout=10, headers={
            "X-Write-Key": lh.key, "Content-Type": "application/json"}).status_code == 200, timeout=5)
        assert_alive(server.url)
    finally:
        lh.close()


def test_one_keys_stalled_bodies_leave_the_budget_to_other_keys(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A key's bodies still arriving hold at most max_buffered_body_bytes_per_key: past it that key
    gets 429 naming the setting, while another key's bodies of the same size are taken."""
    lh = Lakehose(tmp_path_factory.mktemp("per-key") / "data")
    try:
        lh.create_stream(STREAM)
        other = lh.run("keys", "create", "per-key-other").stdout.strip()
        server = lh.server("collector", env={"LAKEHOSE_COLLECTOR__MAX_BUFFERED_BODY_BYTES": str(4 * MiB),
                                             "LAKEHOSE_COLLECTOR__MAX_BUFFERED_BODY_BYTES_PER_KEY": str(MiB),
                                             "LAKEHOSE_COLLECTOR__BODY_TIMEOUT_SECONDS": "5"}).start()
        half = json.dumps([{"user_id": "x" * 100, "level": 1}] * 6000).encode()[:700_000]
        body = json.dumps([{"user_id": "y" * 100, "level": 1}] * 4000).encode()

        def send(key: str) -> httpx.Response:
            return httpx.post(server.url + EVENTS_PATH, content=body, timeout=10,
                              headers={"X-Write-Key": key, "Content-Type": "application/json"})

        with raw_connection(server.url) as holder:
            holder.sendall(f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: x\r\nX-Write-Key: {lh.key}\r\n"
                           f"Content-Type: application/json\r\nContent-Length: {len(half) + 10}\r\n\r\n"
                           .encode() + half)
            assert wait_until(lambda: send(lh.key).status_code == 429, timeout=5)
            refused = send(lh.key)
            assert refused.json()["error"] == "too_many_requests"
            assert "collector.max_buffered_body_bytes_per_key" in refused.json()["reason"]
            assert all(send(other).status_code == 200 for _ in range(3))
        assert wait_until(lambda: send(lh.key).status_code == 200, timeout=8)
        assert_alive(server.url)
    finally:
        lh.close()


# --------------------------------------------------------------------------- routes other than ingestion
@pytest.fixture(scope="module")
def query_server(home: tuple[Lakehose, Server]) -> Iterator[Server]:
    """``lakehose serve`` on the module's data folder, body timeout 2 s."""
    lh = home[0]
    srv = lh.server("serve", env={"LAKEHOSE_COLLECTOR__BODY_TIMEOUT_SECONDS": "2",
                                  "LAKEHOSE_PGWIRE__ENABLED": "false"}).start()
    yield srv
    srv.kill()


def test_query_body_over_max_request_bytes_is_413(home: tuple[Lakehose, Server], query_server: Server) -> None:
    """/v1/query bodies are capped at max_request_bytes (1 MiB) whether announced or chunked;
    a normal query still works."""
    headers = {"Authorization": f"Bearer {home[0].token}", "Content-Type": "application/json"}
    big = json.dumps({"sql": "SELECT 1 -- " + "x" * (2 * MiB)}).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    since = log_end(query_server.log_path)
    with httpx.Client(base_url=query_server.url, headers=headers, timeout=10) as client:
        for content in (big, chunks()):
            response = client.post("/v1/query", content=content)
            assert response.status_code == 413, response.text
            assert response.json()["error"] == "body_too_large"
            assert "collector.max_request_bytes" in response.json()["reason"]
        assert client.post("/v1/query", json={"sql": "SELECT 1 AS one"}).status_code == 200
    assert collector_log_tracebacks(query_server.log_path, since) == []


def test_trickling_query_body_is_408_without_a_traceback(home: tuple[Lakehose, Server],
                                                          query_server: Server) -> None:
    """The body timeout holds on query routes too: 408 body_timeout, and the route's own
    handler sees only a departed client (no unhandled exception in the log)."""
    since = log_end(query_server.log_path)
    with raw_connection(query_server.url) as sock:
        sock.sendall(f"POST /v1/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {home[0].token}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"sql\"".encode())
        started = time.monotonic()
        status, _, body = read_http_response(sock)
    assert_refusal(status, body, 408, "body_timeout", "collector.body_timeout_seconds")
    assert 1.8 <= time.monotonic() - started < 6
    time.sleep(0.2)  # the handler's end is logged after the answer
    assert collector_log_tracebacks(query_server.log_path, since) == []
