"""``lakehose up``: the whole pipeline on one machine, in separate processes.

One process serves HTTP (collector + query API), another delivers the log into
tables, so ingestion and Parquet writing each get a core. This process only
supervises: it restarts a child that dies (or, for the HTTP process, that stops
answering ``/healthz``: a frozen event loop), and on SIGTERM / Ctrl-C it stops the
collector first (no new events), then lets delivery commit everything that was
acknowledged, then exits. Children get SIGKILL if this process is killed, so a
``kill -9`` never leaves a collector behind. A third child, ``lakehose maintain``
(unless ``[maintenance] enabled = false``), compacts and expires the tables on
a schedule; it is stopped first, as it holds nothing that must be committed.

Before it prints anything or creates credentials, ``up`` locks the data folder
and listens on its ports (``lakehose.claim``), so a second instance fails at
once with the reason; the banner advertises only endpoints that listen, and its
commands carry the options ``up`` got, so they run as printed.

The children share one Prometheus multiprocess folder (``<data-dir>/metrics``,
emptied at every start; see ``lakehose.metrics``), so the HTTP process's
``/metrics`` also shows delivery's. What the supervisor has to say goes to
stderr as JSON lines (``lakehose.logs``); only the banner is for people.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.multiprocess import mark_process_dead

from lakehose.address import record as record_address
from lakehose.claim import HTTP_FD_ENV, PGWIRE_FD_ENV, PortInUse, listen, lock_data_dir
from lakehose.config import Settings
from lakehose.lake.catalog import ensure_table, open_catalog
from lakehose.lake.rejected import ensure_rejected_table
from lakehose.logs import Logger
from lakehose.metrics import MULTIPROCESS_ENV
from lakehose.private import CHECKED_ENV
from lakehose.registry.example import example_event
from lakehose.registry.store import Registry, Stream

_PR_SET_PDEATHSIG = 1
RESTART_DELAY_SECONDS = 1.0
READY_SECONDS = 60.0  # the banner waits this long for the HTTP process's /readyz
HEALTH_CHECK_SECONDS = 1.0  # how often /healthz is asked, and how long an answer may take
UNRESPONSIVE_SECONDS = 10.0  # silent this long after answering once: killed and restarted
_LOG = Logger("up")


def _child_setup() -> None:
    """Own process group (Ctrl-C reaches only the supervisor); die with the supervisor."""
    os.setpgrp()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str] | None = None  # None: this process's environment
    pass_fds: tuple[int, ...] = ()  # the listening sockets it serves (see lakehose.claim)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = field(default=0)

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, preexec_fn=_child_setup, env=self.env,
                                        pass_fds=self.pass_fds)

    def stop(self, timeout: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _LOG.warning("stop_timeout", f"{self.name} did not stop in {timeout:g} s; killing it",
                         child=self.name)
            self.process.kill()
            self.process.wait()


class HealthWatch:
    """Whether the HTTP child is stuck: it answered /healthz since it started, then went silent.

    Any answer counts (a 503 for too many connections too): only a loop that cannot answer
    at all is stuck. A child still starting has not answered yet and is left alone.
    """

    def __init__(self, url: str, answered: bool) -> None:
        self.url = url
        self.last_answer: float | None = time.monotonic() if answered else None
        self.next_check = 0.0

    def restarted(self) -> None:
        self.last_answer = None

    def stuck(self) -> bool:
        now = time.monotonic()
        if now < self.next_check:
            return False
        self.next_check = now + HEALTH_CHECK_SECONDS
        try:
            httpx.get(f"{self.url}/healthz", timeout=HEALTH_CHECK_SECONDS)
            self.last_answer = time.monotonic()
        except httpx.HTTPError:
            pass
        return self.last_answer is not None and now - self.last_answer > UNRESPONSIVE_SECONDS


@dataclass(frozen=True)
class FirstStart:
    """Secrets made on the very first start, shown once."""

    write_key: str | None
    admin_token: str | None


def prepare(settings: Settings) -> FirstStart:
    """Create the catalog and tables; on the very first start, a write key and an admin token."""
    registry = Registry(settings.catalog_uri)
    catalog = open_catalog(settings)
    ensure_rejected_table(catalog, settings)
    for stream in registry.list_streams():
        ensure_table(catalog, settings, stream)
    credentials = registry.credentials
    key = None if credentials.list("key") else credentials.create("key", "default", "write")
    token = None if credentials.list("token") else credentials.create("token", "default", "admin")
    return FirstStart(key, token)


@dataclass(frozen=True)
class Hints:
    """What the banner's commands need to run as printed: where ``up`` listens, how it was started."""

    url: str
    program: str  # how to run lakehose here: the command up was started with
    options: list[str]  # --data-dir / --config exactly as up got them
    ready: bool  # /readyz answered 200 before the banner
    send_url: bool  # up listens elsewhere than the config says: `send` needs --url
    data_dir: str
    pg_url: str | None = None  # listening
    pg_note: str | None = None  # why the PostgreSQL endpoint is not listening


def program() -> str:
    """``.venv/bin/lakehose`` as typed, else this interpreter with ``-m lakehose``."""
    if Path(sys.argv[0]).name == "lakehose":
        return shlex.quote(sys.argv[0])
    return f"{shlex.quote(sys.executable)} -m lakehose"


def banner(hints: Hints, first: FirstStart, streams: list[Stream]) -> str:
    """The commands read the secrets from $KEY and $TOKEN, so they run as printed on every start."""
    url = hints.url
    run = hints.program
    options = "".join(f" {shlex.quote(o)}" for o in hints.options)
    send_options = options + (f" --url {url}" if hints.send_url else "")
    if streams:
        stream = streams[0].name
        body = json.dumps([example_event(streams[0].schema.document)])
    else:
        stream = "level_complete"
        body = json.dumps([{"user_id": "u1", "level": 3, "score": 1200.5}])
    lines = [f"lakehose is up on {url}  (data in {hints.data_dir})" if hints.ready else
             f"lakehose is starting on {url}  (data in {hints.data_dir}), not ready after "
             f"{READY_SECONDS:g} s: the log lines above say why"]
    if first.write_key:
        lines.append(f"  write key 'default' (sends events; shown once, keep it): {first.write_key}")
    if first.admin_token:
        lines.append(f"  admin token 'default' (queries, manages; shown once, keep it): {first.admin_token}")
    if first.write_key and first.admin_token:
        lines += ["  in the shell you send and query from:",
                  f"    export KEY={first.write_key} TOKEN={first.admin_token}"]
    else:
        lines.append("  the commands below read $KEY (a write key) and $TOKEN (an admin token); "
                     "lakehose keys create / tokens create --admin make new ones")
    if not streams:
        lines += ["  no streams yet: create one (from the repository's folder), or send demo events:",
                  f"    {run} streams create level_complete --schema examples/level_complete.schema.json"
                  f"{options}",
                  f"    {run} send --demo{send_options}"]
    sql = f"SELECT count(*) FROM events.{stream}"
    lines += [
        "  send events:",
        f"    curl -H \"Authorization: Bearer $KEY\" {url}/v1/streams/{stream}/events \\",
        f"         -d {shlex.quote(body)}",
        "  query them:",
        f"    curl -H \"Authorization: Bearer $TOKEN\" {url}/v1/query \\",
        f"         -d {shlex.quote(json.dumps({'sql': sql}))}",
        f"    {run} query {shlex.quote(sql)}{options}",
        f"  web UI: {url}/ui/  (log in with the admin token)",
    ]
    if hints.pg_url:
        lines += ["  BI tools (PostgreSQL protocol; the password is a token):",
                  f"    PGPASSWORD=$TOKEN psql '{hints.pg_url}'"]
    elif hints.pg_note:
        lines.append(f"  no PostgreSQL endpoint: {hints.pg_note}")
    return "\n".join(lines)


def metrics_folder(settings: Settings) -> Path:
    """A fresh multiprocess folder for the children's metrics (values of an earlier run go)."""
    folder = Path(settings.data_dir).resolve() / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def run_up(settings: Settings, host: str, port: int, config: str | None, options: list[str]) -> int:
    """Claim the data folder and the ports first: a second ``up`` fails before it prints or creates anything."""
    lock_data_dir(settings.data_dir)  # held until this process ends
    http_socket = listen(host, port, "--port")
    pg = settings.pgwire
    pg_socket, pg_note = None, None
    if pg.enabled:
        try:
            pg_socket = listen(pg.host, pg.port, "--pg-port")
        except PortInUse as exc:  # HTTP still serves; the banner says why psql does not
            pg_note = f"{exc}, or [pgwire] enabled = false"
            _LOG.warning("pgwire_not_listening", pg_note)
    first = prepare(settings)
    folder = metrics_folder(settings)
    os.environ[MULTIPROCESS_ENV] = str(folder)  # read by the children as they start
    os.environ[CHECKED_ENV] = "1"  # the data folder's modes were checked (and warned about) here
    common = ["--data-dir", settings.data_dir] + (["--config", config] if config else [])
    http_env = {**os.environ, HTTP_FD_ENV: str(http_socket.fileno())}
    if pg_socket is not None:
        http_env[PGWIRE_FD_ENV] = str(pg_socket.fileno())
    else:
        http_env["LAKEHOSE_PGWIRE__ENABLED"] = "false"
    children = [
        Child("http", [sys.executable, "-m", "lakehose", "collector", *common, "--host", host,
                       "--port", str(port), "--with-query"], http_env,
              tuple(s.fileno() for s in (http_socket, pg_socket) if s is not None)),
        Child("delivery", [sys.executable, "-m", "lakehose", "deliver", *common]),
    ]
    if settings.maintenance.enabled:
        children.append(Child("maintenance", [sys.executable, "-m", "lakehose", "maintain", *common]))
    stopping = False

    def on_signal(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for child in children:
        child.start()
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + READY_SECONDS
    ready = False
    while not stopping and not ready and time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            ready = httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        time.sleep(0 if ready else 0.1)
    record_address(settings.data_dir, url)
    hints = Hints(url, program(), options, ready,
                  (host, port) != (settings.collector.host, settings.collector.port), settings.data_dir,
                  f"postgresql://bi@{pg.host}:{pg.port}/lakehose" if pg_socket else None, pg_note)
    if not stopping:
        print(banner(hints, first, Registry(settings.catalog_uri).list_streams()), flush=True)
    watch = HealthWatch(url, answered=ready)
    while not stopping:
        http = children[0]
        if watch.stuck() and http.process is not None and not stopping:
            _LOG.error("http_unresponsive", f"http has not answered /healthz for "
                       f"{UNRESPONSIVE_SECONDS:g} s; killing it, to restart it", child=http.name)
            http.process.kill()
            http.process.wait()
        for child in children:
            assert child.process is not None
            code = child.process.poll()
            if code is not None and not stopping:
                mark_process_dead(child.process.pid, str(folder))  # type: ignore[no-untyped-call]
                child.restarts += 1
                _LOG.error(f"{child.name}_exited", f"{child.name} exited with {code}; restarting "
                                                   f"(restart #{child.restarts})",
                           child=child.name, code=code, restarts=child.restarts)
                time.sleep(RESTART_DELAY_SECONDS)
                child.start()
                if child is http:
                    watch.restarted()
        time.sleep(0.2)
    _LOG.info("stopping", "stopping: no new events; committing what was accepted")
    for child in children[2:]:
        child.stop(timeout=30)
    children[0].stop(timeout=30)
    children[1].stop(timeout=300)
    _LOG.info("stopped", "stopped")
    return 0
