"""Forget: a user's rows leave every table, rejected events included, and their bytes leave the disk."""

from __future__ import annotations

from typing import Any

import httpx

from conftest import BOTH_BACKENDS, Backend, Lakehose
from lake_support import Load, assert_exactly_once, query, wait_for_count, wait_landed

USER = "forget-me-7f3a9c2e"  # a distinctive id: its bytes are searched for in every file
CHAT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"text": {"type": "string"}}}


def level(user: str, n: int = 1) -> list[dict[str, Any]]:
    return [{"user_id": user, "level": 1 + i % 9, "score": 10.0 * i} for i in range(n)]


def warehouse_files(lh: Lakehose, backend: Backend) -> dict[str, bytes]:
    """Every file of the lake, with its bytes: the folder, or the bucket on S3."""
    if lh.services is None:
        return {str(p): p.read_bytes() for p in (lh.data_dir / "warehouse").rglob("*") if p.is_file()}
    client = lh.services.s3.client()
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=backend.tag)
            for item in page.get("Contents", [])]
    return {key: client.get_object(Bucket=backend.tag, Key=key)["Body"].read() for key in keys}


@BOTH_BACKENDS
def test_forget_removes_the_users_rows_and_bytes_and_nothing_else(lh: Lakehose, backend: Backend) -> None:
    lh.create_stream("level_complete")
    lh.create_stream("session_start")
    lh.create_stream("chat", CHAT_SCHEMA, "--unknown-fields", "keep")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.2"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    reader = lh.reader(server)

    def send(stream: str, batch: list[dict[str, Any]], expected: int) -> None:
        assert writer.post(f"/v1/streams/{stream}/events", json=batch).json()["accepted"] == len(batch)
        wait_for_count(reader, stream, expected)

    send("level_complete", level(USER, 3) + level("keep-1", 5), 8)  # files holding both users
    send("level_complete", level(USER, 2), 10)  # a file of the user alone
    send("level_complete", level("keep-2", 4), 14)
    send("session_start", level(USER) + level("keep-1", 2), 3)
    send("chat", [{"text": "hi", "user_id": USER}, {"text": "yo", "user_id": "keep-1"}], 2)  # in _extra
    answer = writer.post("/v1/streams/level_complete/events",
                         json=[{"user_id": USER, "level": "x"}, {"user_id": "keep-2", "level": "y"}])
    assert answer.json()["rejected"] == 2
    cut = writer.post("/v1/streams/level_complete/events", content=f'{{"user_id": "{USER}", "level": 1')
    assert cut.status_code == 400  # a body that is not JSON: one rejected row with the raw text
    wait_for_count(reader, "events._rejected", 3)
    assert any(USER.encode() in data for data in warehouse_files(lh, backend).values())

    out = lh.run("forget", "--user-id", USER).stdout
    for table, removed in [("_rejected", "2 rows"), ("chat", "1 row"), ("level_complete", "5 rows"),
                           ("session_start", "1 row")]:
        assert f"events.{table}: removed {removed}; expired" in out, out
    assert query(reader, "SELECT user_id, count(*) FROM level_complete GROUP BY 1 ORDER BY 1") == \
        [["keep-1", 5], ["keep-2", 4]]
    assert query(reader, "SELECT user_id FROM session_start") == [["keep-1"], ["keep-1"]]
    assert query(reader, "SELECT text FROM chat") == [["yo"]]
    assert query(reader, "SELECT payload FROM events._rejected") == \
        [['{"user_id":"keep-2","level":"y"}']]
    holding = [name for name, data in warehouse_files(lh, backend).items() if USER.encode() in data]
    assert not holding, f"files still holding the user's bytes: {holding}"

    again = lh.run("forget", "--where", f"user_id={USER}").stdout
    assert f"nothing matches user_id={USER}: nothing removed" in again


def test_forget_racing_delivery_loses_no_acknowledged_event(lh: Lakehose) -> None:
    lh.create_stream("level_complete")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.1"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    for _ in range(3):
        assert writer.post("/v1/streams/level_complete/events", json=level(USER, 20)).status_code == 200
    wait_for_count(lh.reader(server), "level_complete", 60)

    with Load(server.url, lh.key, threads=2) as load:
        while not load.acked:  # delivery is committing while forget runs
            load.stop.wait(0.05)
        result = lh.run("forget", "--user-id", USER)
    assert "events.level_complete: removed 60 rows" in result.stdout
    print(result.stderr)
    assert_exactly_once(wait_landed(lh, load.acked), load.acked, load.unacked)


def test_bad_conditions_are_refused_clearly(lh: Lakehose) -> None:
    lh.create_stream("level_complete")
    for args, message in [(["--where", "level=high"], "level is a long column and 'high' is not a long"),
                          (["--where", "nope=1"], "no table has a column 'nope'"),
                          ([], "give --user-id ID or --where COLUMN=VALUE")]:
        result = lh.run("forget", *args, check=False)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)

