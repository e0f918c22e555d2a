"""The PostgreSQL endpoint under hostile clients: memory, time and session state stay bounded.

Raw sockets play the attackers (announcing 60 MiB messages, never finishing a
login, holding connections); psql and psycopg play the users who must still be
served meanwhile. One ``serve`` process answers both HTTP and PostgreSQL, so its
RSS and its ``/healthz`` show what an attack costs everyone.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from collector_support import proc_status, wait_until
from conftest import Lakehose, Server, free_port

AUTH_TIMEOUT = 3.0
MAX_CONNECTIONS = 50
MAX_CURSORS = 5
MAX_PREPARED = 5
MAX_MESSAGE = 1024 * 1024
HUGE = 60 * 1024 * 1024


class Endpoint:
    def __init__(self, lh: Lakehose, server: Server, port: int) -> None:
        self.lh = lh
        self.server = server
        self.port = port

    def connect(self, password: str | None = None, **kwargs: object) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(host="127.0.0.1", port=self.port, user="bi", dbname="lake",
                               password=password or self.lh.token, connect_timeout=10, **kwargs)  # type: ignore[arg-type]

    def psql(self, sql: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(self.port), "-U", "bi", "-d", "lake",
                               "-tA", "-c", sql], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "PGPASSWORD": self.lh.token})

    def raw(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    lh = Lakehose(tmp_path_factory.mktemp("pglimits") / "data")
    port = free_port()
    server = lh.server("serve", env={
        "LAKEHOSE_PGWIRE__PORT": str(port),
        "LAKEHOSE_PGWIRE__AUTH_TIMEOUT_SECONDS": str(AUTH_TIMEOUT),
        "LAKEHOSE_PGWIRE__MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "LAKEHOSE_PGWIRE__MAX_CURSORS": str(MAX_CURSORS),
        "LAKEHOSE_PGWIRE__MAX_PREPARED_STATEMENTS": str(MAX_PREPARED),
        "LAKEHOSE_PGWIRE__MAX_MESSAGE_BYTES": str(MAX_MESSAGE)}).start()
    yield Endpoint(lh, server, port)
    lh.close()


# --- the protocol, by hand ------------------------------------------------------------------

def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def startup_packet() -> bytes:
    body = struct.pack("!i", 196608) + b"user\x00bi\x00database\x00lake\x00\x00"
    return struct.pack("!i", len(body) + 4) + body


def read_message(sock: socket.socket) -> tuple[bytes, bytes]:
    header = recv_exactly(sock, 5)
    (length,) = struct.unpack("!i", header[1:])
    return header[:1], recv_exactly(sock, length - 4)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def error_fields(body: bytes) -> dict[str, str]:
    return {field[:1].decode(): field[1:].decode() for field in body.split(b"\x00") if field}


def until_ready(sock: socket.socket) -> list[tuple[bytes, bytes]]:
    """Messages up to and including ReadyForQuery."""
    seen = []
    while not seen or seen[-1][0] != b"Z":
        seen.append(read_message(sock))
    return seen


def logged_in(pg: Endpoint) -> socket.socket:
    sock = pg.raw()
    sock.sendall(startup_packet())
    assert read_message(sock) == (b"R", struct.pack("!i", 3))
    sock.sendall(message(b"p", pg.lh.token.encode() + b"\x00"))
    until_ready(sock)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (whatever it said before)."""
    sock.setblocking(False)
    try:
        while True:
            if sock.recv(65536) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def fatal(sock: socket.socket) -> dict[str, str]:
    kind, body = read_message(sock)
    assert kind == b"E", (kind, body)
    fields = error_fields(body)
    assert fields["S"] == "FATAL"
    return fields


# --- limits before login, connection cap, memory ------------------------------------------------

def test_hostile_connections_cost_no_memory_and_are_dropped(pg: Endpoint, record_property: Any) -> None:
    """40 attackers: 60 MiB announcements before and after login, logins that never finish."""
    rss_before = proc_status(pg.server, "VmRSS")
    chunk = b"x" * 65536

    huge_startups = [pg.raw() for _ in range(10)]
    for sock in huge_startups:
        sock.sendall(struct.pack("!i", HUGE))
    huge_passwords = [pg.raw() for _ in range(10)]
    for sock in huge_passwords:
        sock.sendall(startup_packet())
        assert read_message(sock)[0] == b"R"
        sock.sendall(b"p" + struct.pack("!i", HUGE))
    silent = [pg.raw() for _ in range(10)]  # half a startup packet, then nothing
    for sock in silent:
        sock.sendall(startup_packet()[:6])
    no_password = [pg.raw() for _ in range(5)]
    for sock in no_password:
        sock.sendall(startup_packet())
    huge_queries = [logged_in(pg) for _ in range(5)]
    for sock in huge_queries:
        sock.sendall(b"Q" + struct.pack("!i", HUGE))

    # the announced bodies are refused from their length alone, before any byte of them is read
    for sock in huge_startups + huge_passwords:
        assert fatal(sock)["C"] == "08P01"
    for sock in huge_queries:
        error = fatal(sock)
        assert error["C"] == "54000" and "max_message_bytes" in error["M"], error

    # they keep sending and trickling; users are served meanwhile, the process does not grow
    def blast(sock: socket.socket) -> None:
        sock.settimeout(1)
        try:
            for _ in range(64):  # 4 MiB each, 80 MiB in all, if the server took it
                sock.sendall(chunk)
        except OSError:
            pass  # reset by the server, as it should be

    def trickle() -> None:  # the rest of the startup packets, a byte at a time, never all of it
        for index in range(6, 16):
            for sock in silent:
                sock.sendall(startup_packet()[index:index + 1])
            time.sleep(0.2)

    samples = [rss_before]
    attacking = True

    def sample() -> None:
        while attacking:
            samples.append(proc_status(pg.server, "VmRSS"))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    blasters = [threading.Thread(target=blast, args=(s,)) for s in huge_startups + huge_passwords]
    blasters.append(threading.Thread(target=trickle))
    for thread in blasters:
        thread.start()
    started = time.monotonic()
    out = pg.psql("SELECT 40 + 2")
    assert out.returncode == 0 and out.stdout.strip() == "42", out.stderr
    assert httpx.get(pg.server.url + "/healthz", timeout=1).status_code == 200
    assert time.monotonic() - started < 5
    for thread in blasters:
        thread.join(10)
    attacking = False
    sampler.join()
    grown = max(samples) - rss_before
    record_property("rss_growth_mib", round(grown / 2**20, 1))
    assert grown < 30 * 1024 * 1024, f"grew by {grown / 2**20:.1f} MiB"

    # the half-logged-in ones are dropped after [pgwire] auth_timeout_seconds, with a reason
    for sock in silent + no_password:
        sock.settimeout(AUTH_TIMEOUT + 10)
    dropped = time.monotonic()
    for sock in no_password:
        kind, body = read_message(sock)
        assert kind == b"R"  # the password request the client never answered
        error = fatal(sock)
        assert error["C"] == "08006" and "auth_timeout_seconds" in error["M"], error
    assert all(wait_until(lambda: closed_by_server(s), timeout=AUTH_TIMEOUT + 5) for s in silent)
    assert time.monotonic() - dropped < AUTH_TIMEOUT + 5
    for sock in huge_startups + huge_passwords + silent + no_password + huge_queries:
        sock.close()
    assert pg.psql("SELECT 1").stdout.strip() == "1"


def test_connections_over_the_cap_are_refused_with_53300(pg: Endpoint) -> None:
    held = [pg.raw() for _ in range(MAX_CONNECTIONS)]  # none logs in: each still counts
    try:
        time.sleep(0.2)  # let the server accept them all
        with pytest.raises(psycopg.OperationalError, match="too many clients.*max_connections"):
            pg.connect()
        out = pg.psql("SELECT 1")
        assert out.returncode != 0 and "too many clients" in out.stderr
        with pg.raw() as extra:
            extra.sendall(startup_packet())
            assert fatal(extra)["C"] == "53300"
    finally:
        for sock in held:
            sock.close()
    assert wait_until(lambda: pg.psql("SELECT 1").returncode == 0, timeout=10)


# --- per-session caps -------------------------------------------------------------------------

def test_held_cursors_are_capped_per_session(pg: Endpoint) -> None:
    with pg.connect() as conn:  # named cursors live in a transaction
        cursors = [conn.cursor(name=f"c{i}") for i in range(MAX_CURSORS)]
        for cur in cursors:
            cur.execute("SELECT * FROM range(10)")
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded, match=r"\[pgwire\] max_cursors"):
            conn.cursor(name="one_too_many").execute("SELECT 1")
        conn.rollback()
        cursors = [conn.cursor(name=f"d{i}") for i in range(MAX_CURSORS)]
        for cur in cursors:  # the transaction's end freed them
            cur.execute("SELECT 1")
        cursors[0].close()
        with conn.cursor(name="after_close") as cur:
            cur.execute("SELECT 7")
            assert cur.fetchone() == (7,)


def test_prepared_statements_and_portals_are_capped_per_session(pg: Endpoint) -> None:
    with pg.connect(autocommit=True, prepare_threshold=0) as conn:
        for i in range(MAX_PREPARED):
            assert conn.execute(f"SELECT {i}").fetchone() == (i,)
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded,
                           match=r"\[pgwire\] max_prepared_statements"):
            conn.execute("SELECT 'one too many'")
        assert conn.execute("SELECT 2").fetchone() == (2,)  # already prepared: still fine
    # named portals by hand: Bind over the cap is refused, the session goes on after Sync
    sock = logged_in(pg)
    try:
        batch = message(b"P", b"\x00SELECT 1\x00\x00\x00")
        for i in range(MAX_CURSORS + 1):
            batch += message(b"B", f"p{i}".encode() + b"\x00\x00" + b"\x00\x00" * 3)
        sock.sendall(batch + message(b"S"))
        replies = until_ready(sock)
        assert [k for k, _ in replies] == [b"1"] + [b"2"] * MAX_CURSORS + [b"E", b"Z"]
        error = error_fields(replies[-2][1])
        assert error["C"] == "53400" and "max_cursors" in error["M"], error
        sock.sendall(message(b"Q", b"SELECT 5\x00"))
        assert [k for k, _ in until_ready(sock)] == [b"T", b"D", b"C", b"Z"]
    finally:
        sock.close()


def test_malformed_message_bodies_are_errors_not_crashes(pg: Endpoint) -> None:
    log_size = pg.server.log_path.stat().st_size
    sock = logged_in(pg)
    try:
        bad = [message(b"P", b"no terminator"), message(b"B", b"\x00\x00\x00\x02\x00\x01\x00\x01"),
               message(b"D", b"X\x00"), message(b"E", b"\x00\x00"), message(b"C", b"S")]
        for each in bad:
            sock.sendall(each + message(b"S"))
            replies = until_ready(sock)
            assert [k for k, _ in replies] == [b"E", b"Z"]
            assert error_fields(replies[0][1])["C"] == "08P01"
        out_of_range_date = struct.pack("!ii", 4, 2**31 - 1)  # binary DATE: 2**31 days after 2000
        sock.sendall(message(b"P", b"\x00SELECT $1\x00" + struct.pack("!hi", 1, 1082))
                     + message(b"B", b"\x00\x00" + struct.pack("!hh", 1, 1) + struct.pack("!h", 1)
                               + out_of_range_date + struct.pack("!h", 0)) + message(b"S"))
        replies = until_ready(sock)
        assert [k for k, _ in replies] == [b"1", b"E", b"Z"]
        assert error_fields(replies[1][1])["C"] == "22P02"
        sock.sendall(message(b"P", b"\x00SELECT 1, 2, 3\x00\x00\x00") + message(b"B", b"\x00\x00" + struct.pack(
            "!hhhhh", 0, 0, 2, 0, 1)) + message(b"E", b"\x00\x00\x00\x00\x00") + message(b"S"))
        replies = until_ready(sock)  # two result formats for three columns
        assert [k for k, _ in replies] == [b"1", b"2", b"E", b"Z"]
        assert error_fields(replies[2][1])["C"] == "08P01"
        sock.sendall(message(b"Q", b"BEGIN; DECLARE c CURSOR FOR SELECT 1; FETCH 1.5 FROM c\x00"))
        replies = until_ready(sock)
        assert error_fields(replies[-2][1])["C"] == "42601"
        sock.sendall(message(b"Q", b"ROLLBACK\x00"))
        until_ready(sock)
        sock.sendall(message(b"Q", b"SELECT 1\xff\x00"))
        replies = until_ready(sock)
        assert error_fields(replies[0][1])["C"] == "08P01"
        sock.sendall(message(b"Q", b"SELECT 5\x00"))
        assert [k for k, _ in until_ready(sock)] == [b"T", b"D", b"C", b"Z"]
    finally:
        sock.close()
    cancel = pg.raw()  # a cancel request of the wrong size
    cancel.sendall(struct.pack("!ii", 12, 80877102) + b"\x00\x00\x00\x01")
    assert fatal(cancel)["C"] == "08P01"
    cancel.close()
    with open(pg.server.log_path, "rb") as log:
        log.seek(log_size)
        assert b"session_failed" not in log.read()


# --- revocation --------------------------------------------------------------------------------

def test_a_revoked_token_ends_its_open_sessions_within_two_seconds(pg: Endpoint, record_property: Any) -> None:
    doomed = pg.lh.run("tokens", "create", "doomed").stdout.strip()
    kept = pg.lh.run("tokens", "create", "kept").stdout.strip()
    time.sleep(1.5)  # the server's token table refreshes each second
    idle = pg.connect(doomed, autocommit=True)
    busy = pg.connect(doomed, autocommit=True)
    other = pg.connect(kept, autocommit=True)
    try:
        for conn in (idle, busy, other):
            assert conn.execute("SELECT 1").fetchone() == (1,)
        failures: list[BaseException] = []

        def long_query() -> None:
            try:
                busy.execute("SELECT sum(hash(a.range + b.range)) FROM range(100000000) a, range(100) b")
            except psycopg.Error as exc:
                failures.append(exc)

        runner = threading.Thread(target=long_query)
        runner.start()
        revoking = time.monotonic()
        pg.lh.run("tokens", "revoke", "doomed")
        revoked = time.monotonic()  # the CLI has committed; it started a Python process first

        def idle_refused() -> bool:
            try:
                idle.execute("SELECT 1")
            except psycopg.OperationalError as exc:
                failures.append(exc)
                return True
            return False

        assert wait_until(idle_refused, timeout=5, interval=0.05)
        elapsed = time.monotonic() - revoked
        record_property("ended_after_cli_exit_s", round(elapsed, 2))
        record_property("ended_after_cli_start_s", round(time.monotonic() - revoking, 2))
        runner.join(10)
        assert elapsed < 2.5, f"took {elapsed:.2f} s"
        assert len(failures) == 2 and all("token 'doomed' has been revoked" in str(f) for f in failures), failures
        assert idle.closed and busy.closed
        assert other.execute("SELECT 2").fetchone() == (2,)
        with pytest.raises(psycopg.OperationalError, match="revoked"):
            pg.connect(doomed)
        refused = httpx.post(pg.server.url + "/v1/query", json={"sql": "SELECT 1"},
                             headers={"Authorization": f"Bearer {doomed}"})
        assert refused.status_code == 403
    finally:
        for conn in (idle, busy, other):
            conn.close()
