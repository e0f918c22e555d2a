"""The audit: events acknowledged against rows landed, rejected and in flight, per stream and hour."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import httpx

from conftest import BOTH_BACKENDS, Lakehose
from lake_support import wait_for_count
from lakehose.collector.accepted import AcceptedCounter, hour_of
from lakehose.config import load_settings
from lakehose.lake.catalog import open_catalog
from lakehose.log import open_log
from lakehose.registry.store import make_engine

pytestmark = BOTH_BACKENDS

STREAM = "level_complete"


def books(report: dict[str, Any], stream: str = STREAM) -> dict[str, int]:
    """The stream's counts summed over its hours (a test may straddle an hour boundary)."""
    hours = [h for h in report["hours"] if h["stream"] == stream]
    keys = ("accepted", "landed", "replayed", "rejected_collector", "rejected_delivery", "in_flight",
            "discrepancy")
    return {k: sum(h[k] for h in hours) for k in keys}


def poll(check: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool],
         timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def web_audit(reader: httpx.Client) -> dict[str, Any]:
    response = reader.get("/v1/audit", params={"since": "2h"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_books_balance_after_a_load_with_rejections(lh: Lakehose) -> None:
    lh.create_stream(STREAM)
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    reader = lh.reader(server)
    for batch in range(3):
        events: list[dict[str, Any]] = [{"user_id": f"u{batch}-{i}", "level": 1 + i % 9} for i in range(200)]
        events += [{"user_id": "bad", "level": "x"}, {"user_id": "late", "level": 1, "ts": "2999-01-01T00:00:00Z"}]
        answer = writer.post(f"/v1/streams/{STREAM}/events", json=events).json()
        assert (answer["accepted"], answer["rejected"]) == (200, 2)
    assert writer.post("/v1/events", json=[{"type": "nope", "x": 1}]).json()["rejected"] == 1
    wait_for_count(reader, f"events.{STREAM}", 600)

    report = poll(lambda: web_audit(reader),
                  lambda r: books(r)["accepted"] == 600 and books(r)["rejected_collector"] == 6)
    assert books(report) == {"accepted": 600, "landed": 600, "replayed": 0, "rejected_collector": 6,
                             "rejected_delivery": 0, "in_flight": 0, "discrepancy": 0}
    assert report["ok"] and report["problems"] == [] and report["missing_files"] == []
    assert {h["stream"] for h in report["hours"]} == {STREAM}  # "nope" is no stream: not audited

    from_cli = json.loads(lh.run("audit", "--since", "2h", "--stream", STREAM, "--json").stdout)
    assert from_cli["hours"] == report["hours"]
    table = lh.run("audit", "--since", "2h").stdout
    assert re.search(rf"{STREAM}\s+\S+T\d\d:00:00Z( \(open\))?\s+600\s+600\s+0\s+6\s+0\s+0\s+0", table), table
    assert "no discrepancies" in table
    bad = reader.get("/v1/audit", params={"since": "yesterday"})
    assert bad.status_code == 400 and "24h" in bad.json()["reason"]
    forever = reader.get("/v1/audit", params={"since": "99999999999d"})  # once a 500
    assert forever.status_code == 200 and forever.json()["since"] == "1970-01-01T00:00:00Z"
    future = reader.get("/v1/audit", params={"since": "9999-12-31T23:59:59-12:00"})
    assert future.status_code == 400 and "future" in future.json()["reason"]
    assert reader.get("/v1/audit", params={"stream": "nope"}).status_code == 404
    assert httpx.get(server.url + "/v1/audit").status_code == 401


def test_in_flight_until_delivered_and_delivery_rejections(lh: Lakehose) -> None:
    """Without delivery everything acknowledged is in flight; after it, landed or rejected."""
    lh.create_stream(STREAM)
    collector = lh.server("collector", "--with-query").start()
    writer = httpx.Client(base_url=collector.url, headers={"Authorization": f"Bearer {lh.key}"})
    reader = lh.reader(collector)
    assert writer.post(f"/v1/streams/{STREAM}/events",
                       json=[{"user_id": "u", "level": 2}] * 100).json()["accepted"] == 100
    # An event the collector took but delivery cannot convert (as a collector bug would make):
    # appended to the log directly and counted the way a collector counts.
    settings = load_settings(str(lh.data_dir))
    now_us = time.time_ns() // 1000
    line = b'{"user_id":"%s","level":%s,"event_id":"%s","ts":%d,"received_at":%d}\n'
    payload = line % (b"ok", b"3", b"d1", now_us, now_us) + line % (b"bad", b'"three"', b"d2", now_us, now_us)

    async def append() -> None:
        log = open_log(settings.log_uri, writer=True, options=settings.log)
        await log.append([(STREAM, payload, 2)])
        log.close()

    asyncio.run(append())
    counter = AcceptedCounter(make_engine(settings.catalog_uri))
    counter.add({(STREAM, hour_of(now_us / 1e6)): 2})
    counter.flush()

    report = poll(lambda: web_audit(reader), lambda r: books(r)["accepted"] == 102)
    assert books(report) == {"accepted": 102, "landed": 0, "replayed": 0, "rejected_collector": 0,
                             "rejected_delivery": 0, "in_flight": 102, "discrepancy": 0}
    assert report["ok"]

    lh.server("deliver", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.2"}, port=False).start(wait_path=None)
    report = poll(lambda: web_audit(reader), lambda r: books(r)["in_flight"] == 0, timeout=60)
    assert report["ok"], report
    assert books(report) == {"accepted": 102, "landed": 101, "replayed": 0, "rejected_collector": 0,
                             "rejected_delivery": 1, "in_flight": 0, "discrepancy": 0}


def delete_a_data_file(lh: Lakehose) -> int:
    """Delete one data file of the stream's table behind the catalog's back; its row count."""
    table = open_catalog(load_settings(str(lh.data_dir))).load_table(("events", STREAM))
    files = table.inspect.files().to_pylist()
    victim = min(files, key=lambda f: f["record_count"])
    location = urlparse(victim["file_path"])
    if location.scheme == "s3":
        assert lh.services is not None
        lh.services.s3.client().delete_object(Bucket=location.netloc, Key=location.path.lstrip("/"))
    else:
        import os

        os.remove(location.path)
    return int(victim["record_count"])


def test_a_deleted_data_file_is_reported_and_alerted(lh: Lakehose) -> None:
    lh.create_stream(STREAM)
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.2",
                                  "LAKEHOSE_AUDIT__INTERVAL_SECONDS": "1"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    reader = lh.reader(server)
    for n, size in enumerate((30, 70)):  # two commits, so two data files
        assert writer.post(f"/v1/streams/{STREAM}/events",
                           json=[{"user_id": "u", "level": 1}] * size).json()["accepted"] == size
        wait_for_count(reader, f"events.{STREAM}", 30 if n == 0 else 100)
    poll(lambda: web_audit(reader), lambda r: books(r)["accepted"] == 100 and r["ok"])

    lost = delete_a_data_file(lh)
    assert lost == 30
    report = web_audit(reader)
    assert not report["ok"]
    assert books(report)["discrepancy"] == 30 and books(report)["landed"] == 70
    assert f"events.{STREAM}: 30 rows in 1 missing data files" in report["problems"]
    table = lh.run("audit", check=False)
    assert table.returncode == 1, table.stderr
    assert "30 rows in 1 missing data files" in table.stdout
    assert "30 acknowledged events are neither in the table" in table.stdout

    gauge = f'lakehose_audit_discrepancy_events{{stream="{STREAM}"}} 30.0'
    metrics = poll(lambda: {"text": httpx.get(server.url + "/metrics").text},
                   lambda m: gauge in m["text"])
    assert gauge in metrics["text"]
