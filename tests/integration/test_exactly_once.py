"""Invariant 2: kill -9 delivery (or all of `up`) at random moments; nothing is lost or doubled."""

from __future__ import annotations

import random
import threading
import time
import uuid

import httpx

from conftest import Lakehose, Server


FAST_COMMITS = {"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3", "LAKEHOSE_DELIVERY__MAX_EVENTS": "700",
                "LAKEHOSE_LOG__SEGMENT_BYTES": "65536"}


class Load:
    """Threads that keep sending batches with client-chosen event ids and remember the acked ones."""

    def __init__(self, url: str, key: str, threads: int = 4, batch: int = 50) -> None:
        self.url, self.key, self.batch = url, key, batch
        self.acked: set[str] = set()
        self.unacked: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"},
                          timeout=10) as client:
            while not self.stop.is_set():
                ids = [str(uuid.uuid4()) for _ in range(self.batch)]
                events = [{"event_id": i, "user_id": "load", "level": 1 + n % 9} for n, i in enumerate(ids)]
                try:
                    response = client.post("/v1/streams/level_complete/events", json=events)
                    ok = response.status_code == 200 and response.json()["accepted"] == len(ids)
                except httpx.HTTPError:
                    ok = False
                with self.lock:
                    (self.acked if ok else self.unacked).update(ids)
                if not ok:
                    time.sleep(0.05)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def landed_ids(lh: Lakehose) -> list[str]:
    out = lh.run("query", "SELECT event_id FROM events.level_complete", "--format", "csv",
                 "--limit", "10000000", env={"LAKEHOSE_QUERY__ROW_LIMIT": "10000000"}).stdout
    return out.splitlines()[1:]


def wait_landed(lh: Lakehose, acked: set[str], timeout: float = 90) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        ids = [i.strip('"') for i in landed_ids(lh)]
        if acked <= set(ids) or time.monotonic() > deadline:
            return ids
        time.sleep(0.5)


def assert_exactly_once(ids: list[str], acked: set[str], unacked: set[str]) -> None:
    landed = set(ids)
    assert len(ids) == len(landed), f"{len(ids) - len(landed)} duplicate rows"
    assert not acked - landed, f"{len(acked - landed)} acknowledged events lost"
    assert landed <= acked | unacked, "rows that nobody sent"


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
