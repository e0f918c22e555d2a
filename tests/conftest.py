"""Fixtures that run lakehose the way users do: the CLI as a subprocess, HTTP on loopback."""

from __future__ import annotations

import json
import os
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
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"{command[0]}-{port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_path: str | None = "/readyz", timeout: float = 60) -> Server:
        args = [sys.executable, "-m", "lakehose", *self.command, "--data-dir", str(self.data_dir)]
        if self.port is not None:
            args += ["--port", str(self.port)]
        log = open(self.log_path, "ab")
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


class Lakehose:
    """A data folder with a stream and a write key, and ways to run processes on it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.servers: list[Server] = []
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
        path.write_text(json.dumps(schema))
        self.run("streams", "create", name, "--schema", str(path), *extra)

    def server(self, *command: str, env: dict[str, str] | None = None, port: bool = True) -> Server:
        server = Server(list(command), self.data_dir, free_port() if port else None, env)
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            server.kill()


@pytest.fixture
def lh(tmp_path: Path) -> Iterator[Lakehose]:
    home = Lakehose(tmp_path / "data")
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
