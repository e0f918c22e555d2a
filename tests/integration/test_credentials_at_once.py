"""A key or token works the moment ``keys create`` / ``tokens create`` returns, and says what it is.

Each process holds a table of secrets refreshed every second; a secret it lacks is looked up
in the catalog again before the 403. Those lookups are shared and spaced, so a client spraying
random keys gets its 403s without turning each request into a catalog read.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

from collector_support import metric
from conftest import BOTH_BACKENDS, Lakehose, Server

EVENTS = "/v1/streams/level_complete/events"
EVENT = [{"user_id": "u", "level": 1}]


def up(lh: Lakehose) -> Server:
    lh.create_stream("level_complete")
    return lh.server("up").start()


@BOTH_BACKENDS  # scaled: the catalog is PostgreSQL, the log Kafka
def test_a_new_key_and_token_work_at_once_on_http_and_postgres(lh: Lakehose) -> None:
    server = up(lh)
    for n in range(3):  # no sleep between the CLI returning and the first request
        key = lh.run("keys", "create", f"script-{n}").stdout.strip()
        sent = httpx.post(server.url + EVENTS, json=EVENT, headers={"Authorization": f"Bearer {key}"})
        assert sent.status_code == 200 and sent.json()["accepted"] == 1, sent.text
        token = lh.run("tokens", "create", f"analyst-{n}").stdout.strip()
        asked = httpx.post(server.url + "/v1/query", json={"sql": "SELECT 42 AS x"},
                           headers={"Authorization": f"Bearer {token}"})
        assert asked.status_code == 200 and asked.json()["rows"] == [[42]], asked.text
        pg_token = lh.run("tokens", "create", f"bi-{n}").stdout.strip()
        pg_port = int(server.env["LAKEHOSE_PGWIRE__PORT"])
        with psycopg.connect(host="127.0.0.1", port=pg_port, user="bi", dbname="lake", password=pg_token,
                             connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_token_used_as_a_key_and_a_key_used_as_a_token_say_so(lh: Lakehose) -> None:
    server = up(lh)
    as_key = httpx.post(server.url + EVENTS, json=EVENT, headers={"X-Write-Key": lh.token})
    assert as_key.status_code == 403 and as_key.json()["error"] == "not_a_write_key", as_key.text
    assert as_key.json()["reason"].startswith("this is admin token 'test', not a write key")
    assert "lakehose keys create" in as_key.json()["reason"]
    as_token = httpx.post(server.url + "/v1/query", json={"sql": "SELECT 1"},
                          headers={"Authorization": f"Bearer {lh.key}"})
    assert as_token.status_code == 403 and as_token.json()["error"] == "not_a_token", as_token.text
    assert as_token.json()["reason"].startswith("this is write key 'test'")


def test_a_burst_of_random_keys_is_refused_cheaply(lh: Lakehose) -> None:
    """400 requests with random keys from 40 threads: every one 403 unknown_key, and the catalog
    is read again at most once per 0.1 s of the burst (plus the one in flight), not per request."""
    server = up(lh)

    def reloads() -> float:
        return metric(httpx.get(server.url + "/metrics").text, "lakehose_credential_reloads_total",
                      cause="miss")

    def burst(headers: Callable[[], dict[str, str]]) -> tuple[list[int], float]:
        started = time.monotonic()
        with ThreadPoolExecutor(40) as pool, httpx.Client(base_url=server.url, timeout=30,
                                                          limits=httpx.Limits(max_connections=40)) as c:
            statuses = list(pool.map(lambda _: c.post(EVENTS, json=EVENT, headers=headers()).status_code,
                                     range(400)))
        return statuses, time.monotonic() - started

    _, baseline = burst(lambda: {})  # 401 missing_key: no lookup at all
    before = reloads()
    statuses, took = burst(lambda: {"Authorization": f"Bearer lh_{secrets.token_urlsafe(32)}"})
    read = reloads() - before
    print(f"400 requests from 40 threads: without a key {baseline:.2f} s; with random keys "
          f"{took:.2f} s and {read:.0f} catalog reads")
    assert statuses == [403] * 400
    assert 1 <= read <= took / 0.1 + 2, (read, took)
    # the key the burst did not know is still served at once afterwards
    key = lh.run("keys", "create", "after-the-burst").stdout.strip()
    sent = httpx.post(server.url + EVENTS, json=EVENT, headers={"Authorization": f"Bearer {key}"})
    assert sent.status_code == 200, sent.text
