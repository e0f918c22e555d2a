"""Replay: reject events, fix the schema, replay, count: each row lands once."""

from __future__ import annotations

import copy
import json
import time

import httpx

from conftest import BOTH_BACKENDS, LEVEL_SCHEMA, Lakehose
from lake_support import query, wait_for_count

pytestmark = BOTH_BACKENDS


def wait_rejected(reader: httpx.Client, expected: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if query(reader, "SELECT count(*) FROM events._rejected")[0][0] >= expected:
            return
        time.sleep(0.3)
    raise AssertionError("rejected rows did not land")


def add_coins_to_the_schema(lh: Lakehose) -> None:
    v2 = copy.deepcopy(LEVEL_SCHEMA)
    v2["properties"]["coins"] = {"type": "integer"}
    path = lh.data_dir / "v2.json"
    path.write_text(json.dumps(v2))
    lh.run("streams", "update", "level_complete", "--schema", str(path))


def test_fix_the_schema_then_replay_lands_each_event_once(lh: Lakehose) -> None:
    lh.create_stream("level_complete")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    reader = lh.reader(server)
    events = [{"user_id": f"c{i}", "level": 2, "coins": i} for i in range(5)] + \
             [{"user_id": "own-id", "level": 2, "coins": 9, "event_id": "client-42"},
              {"user_id": "still-bad", "level": "nope", "coins": 1},
              {"user_id": "fine", "level": 3}]
    answer = writer.post("/v1/streams/level_complete/events", json=events).json()
    assert answer["accepted"] == 1 and answer["rejected"] == 7
    wait_for_count(reader, "level_complete", 1)
    wait_rejected(reader, 7)

    add_coins_to_the_schema(lh)

    out = lh.run("rejected", "replay", "--stream", "level_complete").stdout
    assert "replayed 6 events" in out and "1 type_mismatch" in out
    again = lh.run("rejected", "replay", "--stream", "level_complete").stdout
    assert "replayed 0 events" in again

    wait_for_count(reader, "level_complete", 7)
    rows = query(reader, "SELECT user_id, coins, event_id FROM level_complete WHERE coins IS NOT NULL "
                         "ORDER BY user_id")
    assert [r[:2] for r in rows] == [[f"c{i}", i] for i in range(5)] + [["own-id", 9]]
    assert rows[-1][2] == "client-42"
    assert query(reader, "SELECT count(DISTINCT event_id) FROM level_complete") == [[7]]
    states = query(reader, "SELECT reason, replayed_at IS NOT NULL, count(*) FROM events._rejected "
                           "GROUP BY ALL ORDER BY ALL")
    assert states == [["type_mismatch", False, 1], ["unknown_field", True, 6]]


def test_a_replay_interrupted_after_its_append_is_finished_not_repeated(lh: Lakehose) -> None:
    """Crash between the append (step 1) and the marking (step 2): the batch property left on
    the table tells the next replay those rows already landed, so they are marked, not re-added."""
    from lakehose.config import load_settings
    from lakehose.lake.catalog import open_catalog
    from lakehose.replay import BATCH_PROPERTY

    lh.create_stream("level_complete")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    reader = lh.reader(server)
    answer = writer.post("/v1/streams/level_complete/events",
                         json=[{"user_id": f"c{i}", "level": 2, "coins": i} for i in range(3)]).json()
    assert answer["rejected"] == 3
    wait_rejected(reader, 3)
    first_id = query(reader, "SELECT min(rejection_id) FROM events._rejected")[0][0]
    # as if a replay had appended this row and died before marking it
    catalog = open_catalog(load_settings(str(lh.data_dir)))
    table = catalog.load_table(("events", "level_complete"))
    table.transaction().set_properties({BATCH_PROPERTY + "crashed": json.dumps([first_id])}) \
        .commit_transaction()

    add_coins_to_the_schema(lh)
    out = lh.run("rejected", "replay", "--stream", "level_complete").stdout
    assert "replayed 2 events" in out and "finished 1 from an interrupted replay" in out
    table.refresh()
    assert not [k for k in table.properties if k.startswith(BATCH_PROPERTY)]
    assert query(reader, "SELECT count(*) FROM events._rejected WHERE replayed_at IS NOT NULL") == [[3]]
    wait_for_count(reader, "level_complete", 2)
