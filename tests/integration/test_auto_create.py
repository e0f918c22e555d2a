"""New event types on the fly, and the evolve / reject policies for unknown fields."""

from __future__ import annotations

import json
import time

import httpx

from conftest import LEVEL_SCHEMA, Lakehose
from lake_support import query, wait_for_count


def start_up(lh: Lakehose) -> tuple[httpx.Client, httpx.Client]:
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.5"}).start()
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"}), lh.reader(server)


def test_auto_created_stream_is_queryable_with_inferred_types(lh: Lakehose) -> None:
    auto_key = lh.run("keys", "create", "sdk", "--auto-create").stdout.strip()
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.5"}).start()
    reader = lh.reader(server)
    plain = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    event = {"type": "boss_fight", "boss": "dragon", "hp": 100, "won": True,
             "started": "2026-01-01T10:00:00+01:00", "loot": ["gem"], "player": {"id": "p1", "lvl": 3}}
    refused = plain.post("/v1/events", json=[event]).json()
    assert refused["errors"][0]["code"] == "unknown_stream"  # this key may not create streams
    sdk = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {auto_key}"})
    answer = sdk.post("/v1/events", json=[event, {**event, "boss": "orc", "hp": 12.5},
                                          {"type": "Bad-Name", "x": 1}]).json()
    assert answer["accepted"] == 2, answer
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [(2, "unknown_stream")]
    wait_for_count(reader, "boss_fight", 2)
    types = dict(query(reader, "SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_name = 'boss_fight'"))
    assert types["hp"] == "DOUBLE"  # integers that also appear as floats become number
    assert types["won"] == "BOOLEAN" and types["started"] == "TIMESTAMP WITH TIME ZONE"
    assert types["loot"] == "VARCHAR[]" and types["player"].startswith("STRUCT(id VARCHAR, lvl BIGINT")
    rows = query(reader, "SELECT boss, hp, started FROM boss_fight ORDER BY boss")
    assert rows == [["dragon", 100.0, "2026-01-01T09:00:00Z"], ["orc", 12.5, "2026-01-01T09:00:00Z"]]
    # a value whose type conflicts with the inferred schema is rejected, never coerced
    clash = sdk.post("/v1/events", json=[{"type": "boss_fight", "boss": "troll", "hp": "lots"}]).json()
    assert clash["errors"][0]["code"] == "type_mismatch" and clash["errors"][0]["path"] == "$.hp"
    # a stream named in the URL is created too for this key; for the other it is a 404
    assert plain.post("/v1/streams/side_quest/events", json=[{"quest": "q1"}]).status_code == 404
    made = sdk.post("/v1/streams/side_quest/events", json=[{"quest": "q1"}])
    assert made.status_code == 200 and made.json()["accepted"] == 1, made.text


def test_evolve_adds_fields_and_keeps_the_values(lh: Lakehose) -> None:
    lh.create_stream("level_complete", LEVEL_SCHEMA, "--unknown-fields", "evolve")
    writer, reader = start_up(lh)
    answer = writer.post("/v1/streams/level_complete/events", json=[
        {"user_id": "a", "level": 1, "coins": 5, "device": {"os": "ios", "locale": "fr"}},
        {"user_id": "b", "level": 2, "nothing": None}]).json()
    assert answer["accepted"] == 1
    assert answer["errors"][0]["index"] == 1 and answer["errors"][0]["path"] == "$.nothing"
    wait_for_count(reader, "level_complete", 1)
    assert query(reader, "SELECT coins, device.locale FROM level_complete") == [[5, "fr"]]
    assert '"coins"' in lh.run("streams", "show", "level_complete").stdout
    assert lh.run("streams", "history", "level_complete").stdout.count("version ") == 2


def test_reject_policy_names_the_field(lh: Lakehose) -> None:
    lh.create_stream("level_complete")
    server = lh.server("collector").start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    answer = writer.post("/v1/streams/level_complete/events",
                         json=[{"user_id": "a", "level": 1, "coins": 5}]).json()
    assert answer["errors"] == [{"index": 0, "code": "unknown_field", "path": "$.coins",
                                 "reason": "field 'coins' is not in the stream's schema"}]
    lh.run("streams", "update", "level_complete", "--unknown-fields", "evolve")
    time.sleep(1.5)
    assert writer.post("/v1/streams/level_complete/events",
                       json=[{"user_id": "a", "level": 1, "coins": 5}]).json()["accepted"] == 1


def test_keep_policy_stores_unknown_fields_as_json(lh: Lakehose) -> None:
    lh.create_stream("level_complete", LEVEL_SCHEMA, "--unknown-fields", "keep")
    writer, reader = start_up(lh)
    answer = writer.post("/v1/events", json=[
        {"type": "level_complete", "user_id": "a", "level": 1, "coins": 5, "tags": ["x"], "ünï": {"k": 1}},
        {"type": "level_complete", "user_id": "b", "level": "two", "coins": 1},
        {"type": "level_complete", "user_id": "c", "level": 3}]).json()
    assert answer["accepted"] == 2
    assert [(e["index"], e["code"], e["path"]) for e in answer["errors"]] == [(1, "type_mismatch", "$.level")]
    wait_for_count(reader, "level_complete", 2)
    rows = query(reader, "SELECT user_id, _extra FROM level_complete ORDER BY user_id")
    assert rows[1] == ["c", None]
    assert rows[0][0] == "a" and json.loads(rows[0][1]) == {"coins": 5, "tags": ["x"], "ünï": {"k": 1}}
