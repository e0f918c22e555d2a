"""`lakehose up` restarts its HTTP process when /healthz stops answering (a frozen event loop)."""

from __future__ import annotations

import os
import signal
import time

import httpx
from collector_support import wait_until
from conftest import Lakehose

from lakehose.up import UNRESPONSIVE_SECONDS


def healthz_pid(url: str) -> int | None:
    try:
        return int(httpx.get(url + "/healthz", timeout=1).json()["pid"])
    except httpx.HTTPError:
        return None


def test_frozen_http_process_is_restarted(lh: Lakehose) -> None:
    """SIGSTOP freezes the HTTP child as a stuck event loop would: up kills it once it has not
    answered for UNRESPONSIVE_SECONDS and starts another, which takes events again."""
    lh.create_stream("level_complete")
    server = lh.server("up").start()
    frozen = healthz_pid(server.url)
    assert frozen is not None
    os.kill(frozen, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        assert wait_until(lambda: healthz_pid(server.url) not in (None, frozen),
                          timeout=UNRESPONSIVE_SECONDS + 40, interval=0.5)
    finally:
        try:
            os.kill(frozen, signal.SIGCONT)  # if it is still there, let the supervisor reap it
        except ProcessLookupError:
            pass
    assert time.monotonic() - stopped_at >= UNRESPONSIVE_SECONDS
    answer = httpx.post(server.url + "/v1/streams/level_complete/events", timeout=10,
                        json=[{"user_id": "after", "level": 1}], headers={"X-Write-Key": lh.key})
    assert answer.status_code == 200, answer.text
    assert "http_unresponsive" in server.log_path.read_text()
