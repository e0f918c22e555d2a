"""What ``lakehose up`` claims before it says anything: its data folder and its ports.

A second ``up`` must fail before it prints a banner or makes credentials, so the
supervisor itself takes an exclusive ``flock`` on ``<data-dir>/up.lock`` (the file
holds its pid, for the message) and binds and listens on the HTTP and PostgreSQL
ports. The children get the listening sockets as inherited file descriptors,
named by ``LAKEHOSE_HTTP_FD`` / ``LAKEHOSE_PGWIRE_FD``: a restarted child serves
the same socket, and connections made while it restarts wait in the backlog
instead of being refused. The lock goes with the supervisor's process, however
it ends.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

from lakehose.errors import LakehoseError

HTTP_FD_ENV = "LAKEHOSE_HTTP_FD"
PGWIRE_FD_ENV = "LAKEHOSE_PGWIRE_FD"
LOCK_FILE_NAME = "up.lock"


class AlreadyRunning(LakehoseError):
    """Another ``lakehose up`` holds this data folder."""


class PortInUse(LakehoseError):
    """A port ``up`` needs cannot be listened on; names the option that changes it."""


def lock_data_dir(data_dir: str) -> int:
    """Hold ``<data-dir>/up.lock`` for this process's life; returns its (non-inheritable) fd."""
    path = Path(data_dir) / LOCK_FILE_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise AlreadyRunning(f"already running on {data_dir} (pid {holder}); "
                             "stop it first, or use another --data-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def listen(host: str, port: int, option: str) -> socket.socket:
    """A listening TCP socket on host:port; ``option`` is the flag that picks another port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not past a listener: TIME_WAIT only
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} is in use (use {option})") from None
        raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror} (use {option})") from None
    return sock


def inherited(env_name: str) -> socket.socket | None:
    """The listening socket ``up`` passed down under ``env_name``, if any."""
    fd = os.environ.get(env_name)
    return socket.socket(fileno=int(fd)) if fd else None
