"""Dedupe: events a client sent again (same event_id) are removed, the first copy stays."""

from __future__ import annotations

import datetime as dt

import httpx

from conftest import BOTH_BACKENDS, Lakehose
from lake_support import query, wait_for_count


def events(ids: list[str], ts: str | None = None) -> list[dict[str, object]]:
    return [{"event_id": i, "user_id": f"user-{i}", "level": 1 + n % 9, **({"ts": ts} if ts else {})}
            for n, i in enumerate(ids)]


@BOTH_BACKENDS
def test_replayed_events_are_removed_keeping_the_first_copy(lh: Lakehose) -> None:
    lh.create_stream("level_complete")
    lh.create_stream("session_start")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.2"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    reader = lh.reader(server)

    def send(batch: list[dict[str, object]], expected: int, stream: str = "level_complete") -> None:
        assert writer.post(f"/v1/streams/{stream}/events", json=batch).json()["accepted"] == len(batch)
        wait_for_count(reader, stream, expected)

    ids = [f"e{n}" for n in range(20)]
    send(events(ids), 20)
    send(events(ids[:5]), 25)  # the client retried a request
    send(events(ids[:2]), 27)  # ... and two of them once more
    send(events(["e6", "e6"]), 29)  # one request with the same event twice: equal received_at
    send(events(["s1", "s2"]), 2, "session_start")
    first = dict(query(reader, "SELECT event_id, min(received_at) FROM level_complete GROUP BY 1"))
    old_ts = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)).isoformat()
    send(events(["old"], old_ts) * 2, 31)

    out = lh.run("dedupe").stdout
    assert "level_complete: removed 9 rows" in out and "session_start: no duplicates" in out
    assert query(reader, "SELECT count(*), count(DISTINCT event_id) FROM level_complete") == [[22, 21]]
    kept = query(reader, "SELECT event_id, received_at, user_id, level FROM level_complete "
                         "WHERE event_id <> 'old'")
    assert {row[0]: row[1] for row in kept} == first, "each event keeps its first copy"
    assert sorted(row[0] for row in kept) == sorted(ids)
    assert all(row[2] == f"user-{row[0]}" for row in kept)

    assert "level_complete: no duplicates" in lh.run("dedupe", "--stream", "level_complete").stdout
    assert "removed 1 row " in lh.run("dedupe", "--window", "60d").stdout  # the 40-day-old copy
    assert query(reader, "SELECT count(*), count(DISTINCT event_id) FROM level_complete") == [[21, 21]]


def test_bad_arguments_are_refused_clearly(lh: Lakehose) -> None:
    result = lh.run("dedupe", "--stream", "nope", check=False)
    assert result.returncode == 1 and "no table events.nope" in result.stderr
    result = lh.run("dedupe", "--window", "7 days", check=False)
    assert result.returncode == 2 and "not a duration like 7d" in result.stderr
