"""What hostile PostgreSQL clients cost a ``lakehose serve``: its RSS, and a user's login time.

Not a test: it prints numbers for a person to read (see bench/README.md). It
makes a temporary data folder and a read token through the CLI, starts
``lakehose serve`` as a subprocess, then opens ``--clients`` raw connections
that send a startup packet and a password message announcing 60 MiB, and push
``--mib`` MiB of it each as fast as the server takes them. Meanwhile a psycopg
user logs in and runs ``SELECT 1``. It prints the server's VmRSS before, its
peak (VmHWM) after, and how long the user waited.

    .venv/bin/python bench/pgwire_hostile.py --clients 40 --mib 8
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def hostile(port: int, mib: int, sent: list[int]) -> None:
    """Logs in as far as the password, announces 60 MiB, sends ``mib`` MiB until refused."""
    params = b"user\x00x\x00\x00"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        sock.recv(9)  # AuthenticationCleartextPassword
        sock.sendall(b"p" + struct.pack("!i", 60 * 2**20))
        chunk = b"x" * 65536
        try:
            for _ in range(mib * 16):
                sock.sendall(chunk)
                sent.append(len(chunk))
        except OSError:
            pass  # refused: the server closed the connection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--mib", type=int, default=8, help="MiB each client tries to send")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        lakehose = [sys.executable, "-m", "lakehose"]
        token = subprocess.run([*lakehose, "tokens", "create", "bench", "--data-dir", data], check=True,
                               capture_output=True, text=True).stdout.strip()
        http_port, pg_port = free_port(), free_port()
        server = subprocess.Popen([*lakehose, "serve", "--data-dir", data, "--port", str(http_port),
                                   "--pg-port", str(pg_port)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=os.environ.copy())
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            time.sleep(1)
            before = vm(server.pid, "VmRSS")
            sent: list[int] = []
            threads = [threading.Thread(target=hostile, args=(pg_port, args.mib, sent))
                       for _ in range(args.clients)]
            for thread in threads:
                thread.start()
            started = time.perf_counter()
            with psycopg.connect(host="127.0.0.1", port=pg_port, user="u", password=token,
                                 connect_timeout=30) as conn:
                conn.execute("SELECT 1").fetchone()
            user_wait = time.perf_counter() - started
            for thread in threads:
                thread.join()
            peak = vm(server.pid, "VmHWM")
        finally:
            server.terminate()
            server.wait(30)
    print(f"| hostile clients | MiB pushed (sum) | RSS before | peak RSS | growth | user login + SELECT 1 |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.clients} | {sum(sent) / 2**20:.1f} | {before / 2**20:.0f} MiB | {peak / 2**20:.0f} MiB "
          f"| {(peak - before) / 2**20:.1f} MiB | {user_wait:.2f} s |")


if __name__ == "__main__":
    main()
