"""Helpers for tests that send events and count them in the tables."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx

from conftest import Lakehose


def query(client: httpx.Client, sql: str) -> list[list[Any]]:
    response = client.post("/v1/query", json={"sql": sql})
    assert response.status_code == 200, response.text
    return list(response.json()["rows"])


def wait_for_count(client: httpx.Client, table: str, expected: int, timeout: float = 60) -> float:
    """Poll ``count(*)`` until it reaches ``expected``; returns the seconds it took."""
    started = time.monotonic()
    count = -1
    while time.monotonic() - started < timeout:
        count = query(client, f"SELECT count(*) FROM {table}")[0][0]
        if count >= expected:
            assert count == expected, f"{table}: {count} rows, expected {expected}"
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"{table}: {count} rows after {timeout} s, expected {expected}")


class Load:
    """Threads that keep sending batches with client-chosen event ids and remember the acked ones."""

    def __init__(self, urls: str | list[str], key: str, threads: int = 4, batch: int = 50) -> None:
        self.urls = [urls] if isinstance(urls, str) else urls
        self.key, self.batch = key, batch
        self.acked: set[str] = set()
        self.unacked: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(self.urls[n % len(self.urls)],),
                                         daemon=True) for n in range(threads)]

    def _run(self, url: str) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {self.key}"},
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
