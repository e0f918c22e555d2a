"""Invariant 3 at delivery: an event that cannot become a row is recorded, never dropped."""

from __future__ import annotations

import asyncio
import time

from conftest import BOTH_BACKENDS, Lakehose
from lakehose.config import load_settings
from lakehose.log import open_log

pytestmark = BOTH_BACKENDS


def test_unconvertible_events_go_to_the_rejected_table(lh: Lakehose) -> None:
    lh.create_stream("level_complete")
    good = b'{"user_id":"a","level":1,"event_id":"e1","ts":1700000000000000,"received_at":1700000000000000}\n'
    bad = b'{"user_id":"b","level":"not a number","event_id":"e2","ts":1700000000000000,"received_at":1700000000000000}\n'

    async def write() -> None:  # bypass the collector, as a corrupted producer would
        settings = load_settings(str(lh.data_dir))
        log = open_log(settings.log_uri, writer=True, options=settings.log)
        await log.append([("level_complete", good + bad + good.replace(b"e1", b"e3"), 3)])
        log.close()

    asyncio.run(write())
    worker = lh.server("deliver", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.2"}, port=False)
    worker.start(wait_path=None)
    deadline = time.monotonic() + 60
    while True:
        out = lh.run("query", "SELECT (SELECT count(*) FROM level_complete) || ',' || "
                     "(SELECT count(*) FROM events._rejected)", "--format", "csv").stdout.splitlines()[1]
        if out.strip('"') == "2,1" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert out.strip('"') == "2,1"
    row = lh.run("query", "SELECT stream, reason, source, payload, message FROM events._rejected",
                 "--format", "json").stdout
    assert '"level_complete", "unconvertible", "delivery"' in row
    assert "not a number" in row
    worker.stop()
    # a restart must not record the rejection twice, nor the rows
    worker = lh.server("deliver", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.2"}, port=False)
    worker.start(wait_path=None)
    time.sleep(3)
    worker.stop()
    again = lh.run("query", "SELECT (SELECT count(*) FROM level_complete) || ',' || "
                   "(SELECT count(*) FROM events._rejected)", "--format", "csv").stdout.splitlines()[1]
    assert again.strip('"') == "2,1"


def test_collector_rejections_land_in_the_rejected_table(lh: Lakehose) -> None:
    """Invariant 3 at the collector: each rejected event, and a request refused whole, is a row."""
    import httpx

    lh.create_stream("level_complete")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    answer = writer.post("/v1/streams/level_complete/events", json=[
        {"user_id": "ok", "level": 1}, {"user_id": "bad", "level": "x"}, {"user_id": "odd", "level": 2, "zz": 1},
        {"user_id": "late", "level": 3, "ts": "2999-01-01T00:00:00Z"}]).json()
    assert answer["accepted"] == 1 and answer["rejected"] == 3
    assert writer.post("/v1/events", json=[{"type": "nope", "x": 1}]).json()["rejected"] == 1
    assert writer.post("/v1/events", content=b'[{"broken"').status_code == 400
    reader = lh.reader(server)
    deadline = time.monotonic() + 30
    rows: list[list[object]] = []
    while time.monotonic() < deadline and len(rows) < 5:
        rows = reader.post("/v1/query", json={"sql": "SELECT stream, reason, path, payload, key_name, source "
                                              "FROM events._rejected ORDER BY received_at, reason"}).json()["rows"]
        time.sleep(0.3)
    assert sorted(map(tuple, rows)) == sorted([
        ("level_complete", "type_mismatch", "$.level", '{"user_id":"bad","level":"x"}', "test", "collector"),
        ("level_complete", "unknown_field", "$.zz", '{"user_id":"odd","level":2,"zz":1}', "test", "collector"),
        ("level_complete", "ts_in_future", "$.ts", rows_payload(rows, "ts_in_future"), "test", "collector"),
        ("nope", "unknown_stream", "$", '{"type":"nope","x":1}', "test", "collector"),
        ("_unknown", "malformed_json", "$", '[{"broken"', "test", "collector"),
    ])
    assert '"user_id":"late"' in rows_payload(rows, "ts_in_future")


def rows_payload(rows: list[list[object]], reason: str) -> str:
    return next(str(r[3]) for r in rows if r[1] == reason)
