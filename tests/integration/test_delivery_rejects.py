"""Invariant 3 at delivery: an event that cannot become a row is recorded, never dropped."""

from __future__ import annotations

import asyncio
import time

from conftest import Lakehose
from lakehose.log import open_log


def test_unconvertible_events_go_to_the_rejected_table(lh: Lakehose) -> None:
    lh.create_stream("level_complete")
    good = b'{"user_id":"a","level":1,"event_id":"e1","ts":1700000000000000,"received_at":1700000000000000}\n'
    bad = b'{"user_id":"b","level":"not a number","event_id":"e2","ts":1700000000000000,"received_at":1700000000000000}\n'

    async def write() -> None:  # bypass the collector, as a corrupted producer would
        log = open_log(f"wal://{lh.data_dir / 'log'}", writer=True)
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
