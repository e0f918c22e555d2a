"""Invariant 2: kill -9 delivery (or all of `up`) at random moments; nothing is lost or doubled."""

from __future__ import annotations

import random
import time

from conftest import BOTH_BACKENDS, Lakehose, Server
from lake_support import Load, assert_exactly_once, wait_landed


FAST_COMMITS = {"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3", "LAKEHOSE_DELIVERY__MAX_EVENTS": "700",
                "LAKEHOSE_LOG__SEGMENT_BYTES": "65536"}


@BOTH_BACKENDS
def test_kill_delivery_repeatedly_under_load(lh: Lakehose) -> None:
    lh.create_stream("level_complete")
    collector = lh.server("collector").start()
    rng = random.Random(7)

    def deliver() -> Server:
        return lh.server("deliver", env=FAST_COMMITS, port=False).start(wait_path=None)

    worker = deliver()
    with Load(collector.url, lh.key) as load:
        for _ in range(6):
            time.sleep(rng.uniform(0.5, 2.5))
            worker.kill()
            worker = deliver()
        time.sleep(1)
    ids = wait_landed(lh, load.acked)
    assert len(load.acked) > 2000
    assert_exactly_once(ids, load.acked, load.unacked)
    assert not load.unacked, "the collector was never down, so every request should be acked"
    worker.stop()


def test_kill_whole_up_repeatedly_under_load(lh: Lakehose) -> None:
    lh.create_stream("level_complete")
    rng = random.Random(11)
    server = lh.server("up", env=FAST_COMMITS).start()
    port = server.port
    with Load(server.url, lh.key) as load:
        for _ in range(4):
            time.sleep(rng.uniform(0.5, 2.5))
            server.kill()
            server = lh.server("up", env=FAST_COMMITS)
            server.port = port
            server.start()
        time.sleep(1)
    ids = wait_landed(lh, load.acked)
    assert len(load.acked) > 1000
    assert_exactly_once(ids, load.acked, load.unacked)
    server.stop()
