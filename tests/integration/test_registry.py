"""Schema versions and safe evolution, tokens, and the /v1/streams management API."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import httpx
import pytest

from conftest import LEVEL_SCHEMA, Lakehose
from lake_support import query, wait_for_count


def evolved(**changes: Any) -> dict[str, Any]:
    schema = copy.deepcopy(LEVEL_SCHEMA)
    for path, value in changes.items():
        node = schema
        *parents, last = path.split("__")
        for part in parents:
            node = node["properties"][part]
        if value is None:
            node["properties"].pop(last)
        else:
            node["properties"][last] = value
    return schema


@pytest.fixture
def running(lh: Lakehose):  # type: ignore[no-untyped-def]
    lh.create_stream("level_complete")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.5"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"}, timeout=30)
    yield lh, server, writer, lh.reader(server)


def test_allowed_changes_evolve_the_table_and_old_rows_still_read(running) -> None:  # type: ignore[no-untyped-def]
    lh, _, writer, reader = running
    assert writer.post("/v1/streams/level_complete/events",
                       json=[{"user_id": "old", "level": 3, "device": {"os": "ios"}}]).json()["accepted"] == 1
    wait_for_count(reader, "level_complete", 1)
    v2 = evolved(coins={"type": "integer"}, device__locale={"type": "string"},
                 mode={"type": "string", "enum": ["easy", "normal", "hard", "nightmare"]},
                 level={"type": "integer", "minimum": 0})
    v2["required"] = ["user_id"]  # level: required -> optional is a relaxation
    response = reader.put("/v1/streams/level_complete", json={"schema": v2})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    time.sleep(1.5)  # collectors reload the registry each second
    answer = writer.post("/v1/streams/level_complete/events", json=[
        {"user_id": "new", "coins": 7, "device": {"os": "android", "locale": "fr"}, "mode": "nightmare"}]).json()
    assert answer == {"accepted": 1, "rejected": 0, "errors": []}
    wait_for_count(reader, "level_complete", 2)
    rows = query(reader, "SELECT user_id, level, coins, device.locale, mode FROM level_complete ORDER BY user_id")
    assert rows == [["new", None, 7, "fr", "nightmare"], ["old", 3, None, None, None]]
    history = reader.get("/v1/streams/level_complete/history").json()["versions"]
    assert [v["version"] for v in history] == [1, 2]
    assert "coins" in lh.run("streams", "show", "level_complete").stdout
    assert lh.run("streams", "history", "level_complete").stdout.count("version ") == 2


@pytest.mark.parametrize("change,expected", [
    ({"level": {"type": "string"}}, "$.level: type cannot change from integer to string"),
    ({"score": {"type": "integer"}}, "$.score: type cannot change from number to integer"),
    ({"level": {"type": "number"}}, "$.level: type cannot change from integer to number"),
    ({"won": None}, "$.won: fields cannot be removed"),
    ({"device__model": None}, "$.device.model: fields cannot be removed"),
    ({"items": {"type": "array", "items": {"type": "integer"}}}, "$.items[]: type cannot change"),
    ({"mode": {"type": "string", "enum": ["easy"]}}, "$.mode: enum values cannot be removed"),
    ({"user_id": {"type": "string", "maxLength": 8}}, "$.user_id: maxLength cannot be lowered"),
])
def test_refused_changes_name_each_field(running, change: dict[str, Any], expected: str) -> None:  # type: ignore[no-untyped-def]
    lh, _, _, reader = running
    response = reader.put("/v1/streams/level_complete", json={"schema": evolved(**change)})
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"] == "incompatible_schema"
    assert any(p.startswith(expected) for p in body["problems"]), body["problems"]
    assert reader.get("/v1/streams/level_complete").json()["version"] == 1


def test_rename_and_new_required_field_are_refused_by_the_cli(running) -> None:  # type: ignore[no-untyped-def]
    lh, _, _, _ = running
    renamed = evolved(score=None, points={"type": "number"})
    renamed["required"] = ["user_id", "level", "coins"]
    renamed["properties"]["coins"] = {"type": "integer"}
    path = lh.data_dir / "renamed.json"
    path.write_text(json.dumps(renamed))
    result = lh.run("streams", "update", "level_complete", "--schema", str(path), check=False)
    assert result.returncode == 1
    assert "$.score: fields cannot be removed (renamed to 'points'?" in result.stderr
    assert "$.coins: a new field must be optional" in result.stderr


def test_tokens_guard_everything_but_ingestion_and_health(running) -> None:  # type: ignore[no-untyped-def]
    lh, server, writer, admin = running
    anonymous = httpx.Client(base_url=server.url)
    sql = {"sql": "SELECT 1"}
    missing = anonymous.post("/v1/query", json=sql)
    assert missing.status_code == 401 and missing.json()["error"] == "missing_token"
    as_key = anonymous.post("/v1/query", json=sql, headers={"Authorization": f"Bearer {lh.key}"})
    assert as_key.status_code == 403 and as_key.json()["error"] == "not_a_token"
    assert "write key 'test'" in as_key.json()["reason"] and "lakehose tokens create" in as_key.json()["reason"]
    assert anonymous.get("/v1/streams").status_code == 401
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert anonymous.get(path).status_code == 200, path
    read_token = lh.run("tokens", "create", "analyst").stdout.strip()  # works at once
    reader = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {read_token}"})
    assert reader.post("/v1/query", json=sql).status_code == 200
    assert reader.get("/v1/streams").json()["streams"][0]["name"] == "level_complete"
    refused = reader.put("/v1/streams/level_complete", json={"schema": LEVEL_SCHEMA})
    assert refused.status_code == 403 and refused.json()["error"] == "admin_required"
    create = reader.post("/v1/streams", json={"name": "x", "schema": LEVEL_SCHEMA})
    assert create.status_code == 403
    lh.run("tokens", "revoke", "analyst")
    time.sleep(1.5)
    revoked = reader.post("/v1/query", json=sql)
    assert revoked.status_code == 403 and revoked.json()["error"] == "revoked_token"
    listing = lh.run("tokens", "list").stdout
    assert "analyst" in listing and "admin" in listing


def test_streams_are_created_over_http(running) -> None:  # type: ignore[no-untyped-def]
    lh, _, writer, admin = running
    schema = {"type": "object", "properties": {"sku": {"type": "string"}, "cents": {"type": "integer"}}}
    created = admin.post("/v1/streams", json={"name": "purchase", "schema": schema,
                                              "hints": {"max_seconds": 0.5}})
    assert created.status_code == 201, created.text
    assert created.json()["table"] == "events.purchase"
    assert admin.post("/v1/streams", json={"name": "purchase", "schema": schema}).status_code == 409
    bad = admin.post("/v1/streams", json={"name": "bad", "schema": {"type": "object", "properties": {
        "a": {"type": "strin"}}}})
    assert bad.status_code == 400 and bad.json()["problems"]
    assert admin.post("/v1/streams", json={"name": "Bad-Name", "schema": schema}).status_code == 400
    assert admin.get("/v1/streams/nope").status_code == 404
    assert writer.post("/v1/streams/purchase/events", json={"sku": "a", "cents": 5}).json()["accepted"] == 1
    wait_for_count(admin, "events.purchase", 1)


def test_admin_tokens_manage_write_keys_over_http(running) -> None:  # type: ignore[no-untyped-def]
    lh, server, _, admin = running
    created = admin.post("/v1/keys", json={"name": "game-server", "auto_create": True})
    assert created.status_code == 201
    key = created.json()["key"]
    listed = {k["name"]: k for k in admin.get("/v1/keys").json()["keys"]}
    assert listed["game-server"]["auto_create"] is True and "key" not in listed["game-server"]
    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"})
    assert client.post("/v1/streams/level_complete/events",
                       json={"user_id": "k", "level": 1}).json()["accepted"] == 1
    assert admin.delete("/v1/keys/game-server").status_code == 200
    assert admin.delete("/v1/keys/nobody").status_code == 404
    time.sleep(1.5)
    assert client.post("/v1/streams/level_complete/events", json={"user_id": "k", "level": 1}).status_code == 403
    read_token = lh.run("tokens", "create", "viewer").stdout.strip()
    viewer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {read_token}"})
    assert viewer.get("/v1/keys").status_code == 403
