"""Helpers shared by the collector integration tests: reading the log back, metrics, raw HTTP."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from conftest import Server
from lakehose.log import Record, open_log

STREAM = "level_complete"
EVENTS_PATH = f"/v1/streams/{STREAM}/events"
JSON = {"content-type": "application/json"}


def log_uri(data_dir: Path) -> str:
    return f"wal://{data_dir / 'log'}"


def read_records(data_dir: Path, stream: str = STREAM) -> list[Record]:
    """Every readable (checksummed) record of ``stream``, over all partitions, in log order."""
    log = open_log(log_uri(data_dir))
    try:
        records: list[Record] = []
        for partition in log.partitions(stream):
            offset = 0
            while True:
                batch = log.read(stream, partition, offset, 64 * 1024 * 1024)
                if not batch:
                    break
                records.extend(batch)
                offset = batch[-1].next_offset
        return records
    finally:
        log.close()


def parse_record(record: Record) -> list[dict[str, Any]]:
    """The events of one record; fails the test if the payload is not NDJSON of objects."""
    # split on b"\n" only: str.splitlines() would also split inside strings holding U+2028 etc.
    lines = record.payload.split(b"\n")
    assert lines[-1] == b"", "a record's NDJSON ends with a newline"
    events = [json.loads(line) for line in lines[:-1]]
    assert all(isinstance(e, dict) for e in events), record
    assert len(events) == record.event_count, (len(events), record.event_count)
    return events


def read_events(data_dir: Path, stream: str = STREAM) -> list[dict[str, Any]]:
    return [event for record in read_records(data_dir, stream) for event in parse_record(record)]


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format; 0.0 if it is absent."""
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group("name") != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group("labels") or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group("value"))
    return 0.0


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def assert_alive(url: str) -> None:
    """The collector still answers /healthz promptly."""
    response = httpx.get(url + "/healthz", timeout=5)
    assert response.status_code == 200, response.text


@contextmanager
def raw_connection(url: str, timeout: float = 10) -> Iterator[socket.socket]:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        yield sock
    finally:
        sock.close()


@contextmanager
def alive_and_clean(srv: Server, settle_seconds: float = 0) -> Iterator[Server]:
    """Yield the server; after the block it must still run, answer /healthz (retried for up to
    ``settle_seconds`` when the test's hostile connections may still linger) and have logged no
    traceback meanwhile."""
    since = log_end(srv.log_path)
    yield srv
    assert srv.process is not None and srv.process.poll() is None, "the collector died"
    if settle_seconds:
        assert wait_until(lambda: httpx.get(srv.url + "/healthz", timeout=5).status_code == 200,
                          timeout=settle_seconds)
    else:
        assert_alive(srv.url)
    assert collector_log_tracebacks(srv.log_path, since) == []


@contextmanager
def dripping(sock: socket.socket, data: bytes, every: float) -> Iterator[None]:
    """Send ``data`` one byte every ``every`` seconds in the background (slowloris) while the block runs."""
    stop = threading.Event()

    def drip() -> None:
        for i in range(len(data)):
            if stop.wait(every):
                return
            try:
                sock.sendall(data[i:i + 1])
            except OSError:
                return

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        yield
    finally:
        stop.set()
        dripper.join()


def read_http_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response with a Content-Length from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def log_end(log_path: Path) -> int:
    """Where the collector's output ends now, to look only at what a test adds."""
    return log_path.stat().st_size if log_path.exists() else 0


def collector_log_tracebacks(log_path: Path, since: int = 0) -> list[str]:
    """Lines of the collector's output (from byte ``since`` on) that report an unhandled exception."""
    if not log_path.exists():
        return []
    with open(log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    return [line for line in text.splitlines()
            if "Exception in ASGI application" in line or line.startswith("Traceback")]


def proc_status(server: Server, field: str) -> int:
    """A memory figure (bytes) from /proc/<pid>/status of the collector (VmRSS, VmHWM)."""
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field}")
