"""Scaled out on real Kafka, PostgreSQL and an S3-API server: faults under load.

Two collectors and two delivery workers share the backends. Killing any of
them with SIGKILL, or the Kafka broker itself, must neither lose an
acknowledged event nor land one twice; while Kafka is down the collectors
answer 503 with Retry-After and acknowledge nothing.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from conftest import Lakehose, Server
from lake_support import Load, assert_exactly_once, query, wait_landed

pytestmark = pytest.mark.parametrize("backend", ["scaled"], indirect=True)

FAST_COMMITS = {"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.5", "LAKEHOSE_DELIVERY__MAX_EVENTS": "2000"}


def deliver(lh: Lakehose) -> Server:
    return lh.server("deliver", env=FAST_COMMITS, port=False).start(wait_path=None)


def restart(lh: Lakehose, server: Server) -> Server:
    again = lh.server(*server.command, env=FAST_COMMITS, port=server.port is not None)
    again.port = server.port
    return again.start(wait_path="/readyz" if server.port is not None else None)


def test_kill_a_worker_a_collector_and_the_broker_under_load(lh: Lakehose) -> None:
    assert lh.services is not None
    lh.create_stream("level_complete")
    collectors = [lh.server("collector").start(), lh.server("collector").start()]
    workers = [deliver(lh), deliver(lh)]
    with Load([c.url for c in collectors], lh.key, threads=6) as load:
        time.sleep(4)
        workers[0].kill()
        time.sleep(1)
        collectors[0].kill()
        time.sleep(2)
        workers[0] = restart(lh, workers[0])
        collectors[0] = restart(lh, collectors[0])
        time.sleep(2)
        lh.services.kafka.kill()
        lh.services.kafka.start()
        time.sleep(4)
    ids = wait_landed(lh, load.acked, timeout=120)
    assert len(load.acked) > 2000
    assert load.unacked, "the collector and the broker were down a while: some requests must fail"
    assert_exactly_once(ids, load.acked, load.unacked)
    for server in collectors + workers:
        server.stop()


def test_collectors_answer_503_while_kafka_is_down_and_recover(lh: Lakehose) -> None:
    assert lh.services is not None
    lh.create_stream("level_complete")
    collector = lh.server("collector").start()
    worker = deliver(lh)
    server = lh.server("serve").start()
    client = httpx.Client(base_url=collector.url, headers={"Authorization": f"Bearer {lh.key}"},
                          timeout=30)

    acked: set[str] = set()
    maybe: set[str] = set()  # refused while Kafka was coming back: may or may not have landed

    def send(n: int) -> tuple[httpx.Response, set[str]]:
        ids = {str(uuid.uuid4()) for _ in range(n)}
        events = [{"event_id": i, "user_id": "u", "level": 1} for i in ids]
        response = client.post("/v1/streams/level_complete/events", json=events)
        if response.status_code == 200:
            acked.update(ids)
        return response, ids

    assert send(10)[0].status_code == 200
    lh.services.kafka.kill()
    started = time.monotonic()
    refused, never_taken = send(10)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "log_unavailable"
    assert "Kafka" in refused.json()["reason"]
    assert int(refused.headers["retry-after"]) > 0
    assert time.monotonic() - started < 15, "a request must not hang longer than the Kafka timeout"

    lh.services.kafka.start()
    deadline = time.monotonic() + 60
    while (attempt := send(10))[0].status_code != 200:
        assert attempt[0].status_code == 503, attempt[0].text
        assert time.monotonic() < deadline, "the collector did not recover after Kafka came back"
        maybe |= attempt[1]
        time.sleep(0.5)
    with lh.reader(server) as reader:
        deadline = time.monotonic() + 60
        while not acked <= (landed := {r[0] for r in query(reader, "SELECT event_id FROM level_complete")}):
            assert time.monotonic() < deadline, f"{len(acked - landed)} acknowledged events missing"
            time.sleep(0.5)
        time.sleep(2)  # a refused event must not turn up late either
        rows = [r[0] for r in query(reader, "SELECT event_id FROM level_complete")]
    assert len(rows) == len(set(rows)), "duplicates"
    assert not set(rows) & never_taken, "events refused while Kafka was down were stored"
    assert set(rows) <= acked | maybe
    for process in (collector, worker, server):
        process.stop()
