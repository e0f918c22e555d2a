"""Fixtures that run lakehose the way users do: the CLI as a subprocess, HTTP on loopback.

Backends: tests run on the embedded backends (wal:// log, SQLite catalog, file://
warehouse) unless they opt in to both sets with

    pytestmark = pytest.mark.parametrize("backend", ["embedded", "scaled"], indirect=True)

(or ``pytestmark = BOTH_BACKENDS``). The "scaled" run gets real Kafka, PostgreSQL and
S3 servers (see services.py), shared by the session, with a fresh database, bucket
and topic prefix per test; ``lh.services.kafka`` (``.postgres``, ``.s3``) can be
killed and restarted by fault tests, and are revived after the test if left down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from services import KafkaService, PostgresService, S3Service, Service

LEVEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["user_id", "level"],
    "properties": {
        "user_id": {"type": "string", "maxLength": 64},
        "level": {"type": "integer", "minimum": 1, "maximum": 10000},
        "score": {"type": "number"},
        "won": {"type": "boolean"},
        "mode": {"type": "string", "enum": ["easy", "normal", "hard"]},
        "items": {"type": "array", "items": {"type": "string"}},
        "device": {"type": "object", "properties": {"os": {"type": "string"},
                                                     "model": {"type": "string"}}},
        "finished_at": {"type": "string", "format": "date-time"},
    },
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_private(path: Path, text: str) -> None:
    """A file the test puts in a data folder, as private as lakehose's own (else lakehose warns)."""
    path.touch(mode=0o600)
    path.write_text(text)


def lakehose(*args: str, data_dir: Path, env: dict[str, str] | None = None,
             check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``lakehose ARGS --data-dir DIR`` to completion."""
    result = subprocess.run([sys.executable, "-m", "lakehose", *args, "--data-dir", str(data_dir)],
                            capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"lakehose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


class Server:
    """A long-running lakehose process (collector, up, deliver) on a free port."""

    def __init__(self, command: list[str], data_dir: Path, port: int | None,
                 env: dict[str, str] | None = None) -> None:
        self.command = command
        self.data_dir = data_dir
        self.port = port
        # each server's PostgreSQL endpoint on a port of its own, so parallel runs do not collide
        self.env = {**os.environ, "LAKEHOSE_PGWIRE__PORT": str(free_port()), **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"{command[0]}-{port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_path: str | None = "/readyz", timeout: float = 60) -> Server:
        args = [sys.executable, "-m", "lakehose", *self.command, "--data-dir", str(self.data_dir)]
        if self.port is not None:
            args += ["--port", str(self.port)]
        log = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                        start_new_session=True)
        if wait_path is not None:
            deadline = time.monotonic() + timeout
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.command} exited early:\n{self.log_path.read_text()}")
                try:
                    if httpx.get(self.url + wait_path, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.command} not ready:\n{self.log_path.read_text()}")
                time.sleep(0.05)
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup, like a power cut for the process."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait: the graceful path."""
        assert self.process is not None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"{self.command} did not stop on SIGTERM") from None
        return int(self.process.returncode)


@dataclasses.dataclass(frozen=True)
class Services:
    """The servers behind a "scaled" backend."""

    kafka: KafkaService
    postgres: PostgresService
    s3: S3Service

    def __iter__(self) -> Iterator[Service]:
        return iter((self.kafka, self.postgres, self.s3))


class Backend(str):
    """The backend name ("embedded" or "scaled"), with its lakehose config and servers."""

    config: str
    services: Services | None
    tag: str  # the database, bucket and topic-prefix name of a scaled run

    def __new__(cls, name: str, config: str = "", services: Services | None = None,
                tag: str = "") -> Backend:
        self = super().__new__(cls, name)
        self.config, self.services, self.tag = config, services, tag
        return self


SCALED_CONFIG = """\
[log]
uri = "kafka://127.0.0.1:{kafka_port}"
topic_prefix = "{tag}."
partitions = 4
kafka_timeout_seconds = 5
[catalog]
uri = "postgresql://postgres@127.0.0.1:{postgres_port}/{tag}"
[lake]
warehouse = "s3://{tag}/warehouse"
s3_endpoint = "http://127.0.0.1:{s3_port}"
s3_region = "us-east-1"
s3_access_key_id = "test"
s3_secret_access_key = "test"
"""

BOTH_BACKENDS = pytest.mark.parametrize("backend", ["embedded", "scaled"], indirect=True)


class Lakehose:
    """A data folder with a stream and a write key, and ways to run processes on it.

    ``config`` is written to ``<data_dir>/lakehose.toml`` first; ``services`` are the
    servers of a scaled backend (None when embedded).
    """

    def __init__(self, data_dir: Path, config: str = "", services: Services | None = None) -> None:
        self.data_dir = data_dir
        self.services = services
        self.servers: list[Server] = []
        if config:
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_private(data_dir / "lakehose.toml", config)
        self.key = lakehose("keys", "create", "test", data_dir=data_dir).stdout.strip()
        self.token = lakehose("tokens", "create", "test", "--admin", data_dir=data_dir).stdout.strip()

    def reader(self, server: Server) -> httpx.Client:
        """A client with the admin token, for /v1/query and /v1/streams."""
        return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {self.token}"},
                            timeout=30)

    def run(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return lakehose(*args, data_dir=self.data_dir, **kwargs)

    def create_stream(self, name: str, schema: dict[str, Any] = LEVEL_SCHEMA, *extra: str) -> None:
        path = self.data_dir / f"{name}.schema.json"
        write_private(path, json.dumps(schema))
        self.run("streams", "create", name, "--schema", str(path), *extra)

    def server(self, *command: str, env: dict[str, str] | None = None, port: bool = True) -> Server:
        server = Server(list(command), self.data_dir, free_port() if port else None, env)
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            server.kill()


@pytest.fixture(scope="session")
def kafka_service() -> Iterator[KafkaService]:
    service = KafkaService()
    try:
        yield service.start()
    finally:
        service.close()


@pytest.fixture(scope="session")
def postgres_service() -> Iterator[PostgresService]:
    service = PostgresService()
    try:
        yield service.start()
    finally:
        service.close()


@pytest.fixture(scope="session")
def s3_service() -> Iterator[S3Service]:
    service = S3Service()
    try:
        yield service.start()
    finally:
        service.close()


@contextlib.contextmanager
def backend_for(name: str, request: pytest.FixtureRequest) -> Iterator[Backend]:
    """"embedded", or "scaled": then fresh places on the real servers, removed afterwards."""
    if name == "embedded":
        yield Backend(name)
        return
    if name != "scaled":
        raise ValueError(f"unknown backend {name!r}: embedded or scaled")
    services = Services(request.getfixturevalue("kafka_service"),
                        request.getfixturevalue("postgres_service"),
                        request.getfixturevalue("s3_service"))
    _revive(services)
    tag = f"t{secrets.token_hex(5)}"  # a valid database, bucket and topic name
    services.postgres.create_database(tag)
    services.s3.create_bucket(tag)
    config = SCALED_CONFIG.format(kafka_port=services.kafka.port, postgres_port=services.postgres.port,
                                  s3_port=services.s3.port, tag=tag)
    try:
        yield Backend(name, config, services, tag)
    finally:
        _revive(services)  # a fault test may have left one down
        with contextlib.suppress(Exception):
            services.postgres.drop_database(tag)
        with contextlib.suppress(Exception):
            services.s3.delete_bucket(tag)
        with contextlib.suppress(Exception):
            _delete_topics(services.kafka, f"{tag}.")


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """"embedded" unless parametrized (indirect) with "scaled"."""
    with backend_for(getattr(request, "param", "embedded"), request) as chosen:
        yield chosen


def _revive(services: Services) -> None:
    for service in services:
        if service.running:
            service.resume()  # harmless unless a test paused it
        else:
            service.start()


def _delete_topics(kafka: KafkaService, prefix: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": kafka.bootstrap, "log_level": 0})
    names = [name for name in admin.list_topics(timeout=5).topics if name.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=10).values():
            future.result(15)


@pytest.fixture
def lh(tmp_path: Path, backend: Backend) -> Iterator[Lakehose]:
    home = Lakehose(tmp_path / "data", backend.config, backend.services)
    yield home
    home.close()


@pytest.fixture
def collector(lh: Lakehose) -> Iterator[tuple[Lakehose, httpx.Client]]:
    """A running collector with stream ``level_complete`` and an authorised client."""
    lh.create_stream("level_complete")
    server = lh.server("collector").start()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"},
                      timeout=30) as client:
        yield lh, client
