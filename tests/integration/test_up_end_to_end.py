"""`lakehose up` end to end: POST events, then count and read them back with SQL."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx

from conftest import BOTH_BACKENDS, Lakehose
from lake_support import query, wait_for_count

pytestmark = BOTH_BACKENDS

PURCHASE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["user_id", "price"],
    "properties": {
        "user_id": {"type": "string"},
        "price": {"type": "number", "minimum": 0},
        "currency": {"type": "string", "enum": ["USD", "EUR", "JPY"]},
        "sku": {"type": "string"},
        "paid_at": {"type": "string", "format": "date-time"},
        "cart": {"type": "array", "items": {"type": "object", "properties": {
            "sku": {"type": "string"}, "qty": {"type": "integer"}}}},
        "first": {"type": "boolean"},
    },
}


def start_up(lh: Lakehose, max_seconds: str = "1") -> tuple[httpx.Client, httpx.Client]:
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": max_seconds}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"}, timeout=30)
    reader = lh.reader(server)
    return writer, reader


def test_events_to_several_streams_are_counted_and_round_trip(lh: Lakehose) -> None:
    lh.create_stream("level_complete")
    lh.create_stream("purchase", PURCHASE_SCHEMA)
    writer, reader = start_up(lh)
    levels = [{"user_id": f"ü-{i}-日本", "level": i % 50 + 1, "score": i * 1.5, "won": i % 2 == 0,
               "mode": "hard", "items": ["sword", "🛡"], "device": {"os": "ios", "model": "iPhone15,2"},
               "finished_at": "2026-03-01T12:30:00.123456+05:30"} for i in range(300)]
    purchases = [{"type": "purchase", "user_id": f"p{i}", "price": 0.99 + i, "currency": "EUR",
                  "sku": "gems_100", "paid_at": "2026-03-01T00:00:00Z",
                  "cart": [{"sku": "gems", "qty": 2}], "first": True,
                  "ts": 1772323200000 + i} for i in range(40)]
    assert writer.post("/v1/streams/level_complete/events", json=levels).json()["accepted"] == 300
    assert writer.post("/v1/events", json=purchases).json()["accepted"] == 40
    took = wait_for_count(reader, "events.level_complete", 300, timeout=30)
    wait_for_count(reader, "purchase", 40, timeout=30)
    assert took < 1 + 10, f"queryable after {took:.1f} s with max_seconds=1"

    row = query(reader, "SELECT user_id, level, score, won, mode, items, device, finished_at, "
                        "typeof(finished_at), typeof(ts) FROM events.level_complete "
                        "WHERE user_id = 'ü-7-日本'")
    assert row == [["ü-7-日本", 8, 10.5, False, "hard", ["sword", "🛡"],
                    {"os": "ios", "model": "iPhone15,2"}, "2026-03-01T07:00:00.123456Z",
                    "TIMESTAMP WITH TIME ZONE", "TIMESTAMP WITH TIME ZONE"]]
    rows = query(reader, "SELECT min(ts), max(ts), sum(price), any_value(cart), "
                         "count(DISTINCT event_id) FROM events.purchase")
    assert rows[0][0] == "2026-03-01T00:00:00Z"
    assert rows[0][1] == "2026-03-01T00:00:00.039000Z"
    assert abs(rows[0][2] - sum(p["price"] for p in purchases)) < 1e-6
    assert rows[0][3] == [{"sku": "gems", "qty": 2}]
    assert rows[0][4] == 40


def test_received_at_and_defaulted_ts(lh: Lakehose) -> None:
    lh.create_stream("level_complete")
    writer, reader = start_up(lh)
    before = dt.datetime.now(dt.timezone.utc)
    assert writer.post("/v1/streams/level_complete/events",
                       json={"user_id": "x", "level": 1}).json()["accepted"] == 1
    wait_for_count(reader, "level_complete", 1, timeout=30)
    (ts, received), = query(reader, "SELECT ts, received_at FROM level_complete")
    assert ts == received
    stamp = dt.datetime.fromisoformat(received.replace("Z", "+00:00"))
    assert before - dt.timedelta(seconds=1) <= stamp <= dt.datetime.now(dt.timezone.utc)


def test_sigterm_commits_what_was_accepted(lh: Lakehose) -> None:
    """A graceful stop must leave no acknowledged event behind in the log."""
    lh.create_stream("level_complete")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "3600"}).start()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"}) as client:
        for _ in range(5):
            batch = [{"user_id": "u", "level": 2}] * 100
            assert client.post("/v1/streams/level_complete/events", json=batch).json()["accepted"] == 100
    started = time.monotonic()
    assert server.stop(timeout=60) == 0
    assert time.monotonic() - started < 30
    out = lh.run("query", "SELECT count(*) AS n FROM events.level_complete", "--format", "csv").stdout
    assert out.splitlines() == ["\"n\"", "500"]
