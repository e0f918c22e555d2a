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

The children share one Prometheus multiprocess folder (``<data-dir>/metrics``,
emptied at every start; see ``lakehose.metrics``), so the HTTP process's
``/metrics`` also shows delivery's. What the supervisor has to say goes to
stderr as JSON lines (``lakehose.logs``); only the banner is for people.
"""

from __future__ import annotations

import ctypes
import os
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
from lakehose.config import Settings
from lakehose.lake.catalog import ensure_table, open_catalog
from lakehose.lake.rejected import ensure_rejected_table
from lakehose.logs import Logger
from lakehose.metrics import MULTIPROCESS_ENV
from lakehose.private import CHECKED_ENV
from lakehose.registry.store import Registry

_PR_SET_PDEATHSIG = 1
RESTART_DELAY_SECONDS = 1.0
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
    process: subprocess.Popen[bytes] | None = None
    restarts: int = field(default=0)

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, preexec_fn=_child_setup)

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


def banner(url: str, first: FirstStart, streams: list[str], data_dir: str, pg_url: str | None = None) -> str:
    key = first.write_key or "<your write key>"
    token = first.admin_token or "<your token>"
    stream = streams[0] if streams else "level_complete"
    lines = [f"lakehose is up on {url}  (data in {data_dir})"]
    if first.write_key:
        lines.append(f"  write key 'default' (sends events; shown once, keep it): {first.write_key}")
    if first.admin_token:
        lines.append(f"  admin token 'default' (queries, manages; shown once, keep it): {first.admin_token}")
    if not streams:
        lines.append("  no streams yet: lakehose streams create level_complete --schema examples/"
                     "level_complete.schema.json   (or: lakehose send --demo)")
    lines += [
        "  send events:",
        f"    curl -H 'Authorization: Bearer {key}' {url}/v1/streams/{stream}/events \\",
        "         -d '[{\"user_id\": \"u1\", \"level\": 3, \"score\": 1200.5}]'",
        "  query them:",
        f"    curl -H 'Authorization: Bearer {token}' {url}/v1/query \\",
        f"         -d '{{\"sql\": \"SELECT count(*) FROM events.{stream}\"}}'",
        f"    lakehose query \"SELECT count(*) FROM events.{stream}\" --data-dir {data_dir}",
        f"  web UI: {url}/ui/  (log in with the admin token)",
    ]
    if pg_url:
        lines.append(f"  BI tools (PostgreSQL protocol; the password is a token): PGPASSWORD={token} psql '{pg_url}'")
    return "\n".join(lines)


def metrics_folder(settings: Settings) -> Path:
    """A fresh multiprocess folder for the children's metrics (values of an earlier run go)."""
    folder = Path(settings.data_dir).resolve() / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def run_up(settings: Settings, host: str, port: int, config: str | None) -> int:
    first = prepare(settings)
    folder = metrics_folder(settings)
    os.environ[MULTIPROCESS_ENV] = str(folder)  # read by the children as they start
    os.environ[CHECKED_ENV] = "1"  # the data folder's modes were checked (and warned about) here
    common = ["--data-dir", settings.data_dir] + (["--config", config] if config else [])
    children = [
        Child("http", [sys.executable, "-m", "lakehose", "collector", *common, "--host", host,
                       "--port", str(port), "--with-query"]),
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
    deadline = time.monotonic() + 60
    ready = False
    while not stopping and not ready and time.monotonic() < deadline:
        try:
            ready = httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            time.sleep(0.1)
    record_address(settings.data_dir, url)
    streams = [s.name for s in Registry(settings.catalog_uri).list_streams()]
    pg = settings.pgwire
    pg_url = f"postgresql://bi@{pg.host}:{pg.port}/lakehose" if pg.enabled else None
    print(banner(url, first, streams, settings.data_dir, pg_url), flush=True)
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
