"""`lakehose up` fails fast and honestly; its banner's commands run as printed.

Each test runs real ``up`` processes: a second one on the same data folder, one
whose port another socket holds, one whose PostgreSQL port is taken. The banner
tests copy the banner's shell lines and run them with bash, unchanged.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import Lakehose, Server, free_port, lakehose

REPO = Path(__file__).resolve().parents[2]
PURCHASE = {"type": "object", "required": ["user_id", "price"],
            "properties": {"user_id": {"type": "string"}, "price": {"type": "number", "minimum": 0},
                           "currency": {"type": "string", "enum": ["EUR", "USD"]},
                           "paid_at": {"type": "string", "format": "date-time"}}}


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def banner_of(server: Server, timeout: float = 60) -> str:
    """The banner's lines from the server's output (its other lines are JSON logs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for line in server.log_path.read_text().splitlines() if not line.startswith("{")]
        if any("web UI:" in line for line in lines):
            return "\n".join(lines[next(i for i, line in enumerate(lines) if "lakehose is up" in line):])
        time.sleep(0.1)
    raise AssertionError(f"no banner:\n{server.log_path.read_text()}")


def shell_commands(banner: str) -> list[str]:
    """Each command the banner shows (its lines indented by 4), continuation lines joined."""
    text = re.sub(r"\\\n\s*", "", banner)
    return [line.strip() for line in text.splitlines() if line.startswith("    ")]


def bash(command: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


def test_a_second_up_on_the_same_data_folder_says_who_runs_it(lh: Lakehose) -> None:
    first = lh.server("up").start()
    assert first.process is not None
    second = lh.run("up", "--port", str(free_port()), check=False, timeout=60)
    assert second.returncode == 1
    assert f"lakehose: already running on {lh.data_dir} (pid {first.process.pid})" in second.stderr
    assert second.stdout == ""  # no banner
    assert first.process.poll() is None


def test_a_taken_port_fails_before_any_credential_is_made(tmp_path: Path, held_port: int) -> None:
    fresh = tmp_path / "fresh"
    started = time.monotonic()
    result = lakehose("up", "--port", str(held_port), data_dir=fresh, check=False, timeout=60)
    assert result.returncode == 1
    assert f"lakehose: port {held_port} is in use (use --port)" in result.stderr
    assert result.stdout == ""
    assert time.monotonic() - started < 30  # no restart loop
    assert not (fresh / "catalog.db").exists()  # no catalog, so no credentials


def test_a_taken_postgres_port_is_said_not_advertised(lh: Lakehose, held_port: int) -> None:
    server = lh.server("up", env={"LAKEHOSE_PGWIRE__PORT": str(held_port)}).start()
    banner = banner_of(server)
    assert "psql" not in banner
    assert f"no PostgreSQL endpoint: port {held_port} is in use (use --pg-port)" in banner
    commands = shell_commands(banner)
    assert '"Authorization: Bearer $KEY"' in next(c for c in commands if "/events" in c)
    assert "write key 'default'" not in banner  # the data folder had keys: none made, none shown
    time.sleep(2)  # the HTTP child keeps serving: it never tried the taken port
    assert server.process is not None and server.process.poll() is None
    assert "_exited" not in server.log_path.read_text()


def test_first_banner_runs_as_printed_with_non_default_options(tmp_path: Path) -> None:
    data_dir = tmp_path / "my data"
    data_dir.mkdir()
    server = Server(["up"], data_dir, free_port()).start()
    try:
        banner = banner_of(server)
        assert f"on http://127.0.0.1:{server.port}" in banner
        commands = shell_commands(banner)
        export, create, send, ask, cli_query, psql = (
            next(c for c in commands if c.startswith("export KEY=lh_")),
            next(c for c in commands if " streams create " in c),
            next(c for c in commands if "/events" in c),
            next(c for c in commands if "/v1/query" in c),
            next(c for c in commands if " query '" in c),
            next(c for c in commands if c.startswith("PGPASSWORD=")))
        for command in (create, cli_query):
            assert f"--data-dir '{data_dir}'" in command
        assert f"--url http://127.0.0.1:{server.port}" in banner  # send needs it: not the config's port
        bash(create, REPO)  # the examples/ path is the repository's
        assert json.loads(bash(f"{export}\n{send}", tmp_path).stdout)["accepted"] == 1
        assert "rows" in json.loads(bash(f"{export}\n{ask}", tmp_path).stdout)
        bash(cli_query, tmp_path)  # elsewhere than up's folder: --data-dir carries it
        psql_out = bash(f"{export}\n{psql} -c 'SELECT 1 AS one'", tmp_path).stdout
        assert psql_out.split()[:3] == ["one", "-----", "1"]
    finally:
        server.kill()


def test_after_a_restart_the_example_posts_to_a_stream_that_accepts_it(lh: Lakehose) -> None:
    lh.create_stream("purchase", PURCHASE)  # the only stream: no level_complete
    server = lh.server("up").start()
    commands = shell_commands(banner_of(server))
    send = next(c for c in commands if "/events" in c)
    assert "/v1/streams/purchase/events" in send
    answer = json.loads(bash(send, lh.data_dir, env={"KEY": lh.key}).stdout)
    assert answer["accepted"] == 1, answer


def test_a_killed_http_process_comes_back_on_the_same_socket(lh: Lakehose) -> None:
    """The supervisor holds the listening sockets: a restarted child serves them again, and a
    request sent while it restarts waits in the backlog instead of being refused."""
    server = lh.server("up").start()
    pid = httpx.get(f"{server.url}/healthz").json()["pid"]
    os.kill(pid, signal.SIGKILL)
    answer = httpx.get(f"{server.url}/readyz", timeout=60)  # sent at once: queued, then answered
    assert answer.status_code in (200, 503)
    assert httpx.get(f"{server.url}/healthz").json()["pid"] != pid
    with socket.socket() as sock:  # still up's, not free for another program
        with pytest.raises(OSError):
            sock.bind(("127.0.0.1", server.port))
