"""The UI's JSON API on both backend sets: explore equals its own SQL, charts and dashboards
are kept in the catalog database, rejected rows are listed and replayed over HTTP."""

from __future__ import annotations

import copy
import json
import time

import httpx

from conftest import BOTH_BACKENDS, LEVEL_SCHEMA, Lakehose
from lake_support import query, wait_for_count

pytestmark = BOTH_BACKENDS


def events() -> list[dict[str, object]]:
    return [{"user_id": f"u{i % 7}", "level": i % 5 + 1, "score": i * 1.5,
             "device": {"os": "ios" if i % 3 else "android"}} for i in range(40)]


def test_explore_charts_and_dashboards(lh: Lakehose) -> None:
    lh.create_stream("level_complete")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    assert writer.post("/v1/streams/level_complete/events", json=events()).json()["accepted"] == 40
    admin = lh.reader(server)
    wait_for_count(admin, "level_complete", 40)

    spec = {"stream": "level_complete", "metric": "avg", "field": "score", "group_by": ["device.os"],
            "grain": "hour", "range": "24h",
            "filters": [{"field": "level", "op": ">=", "value": "2"},
                        {"field": "user_id", "op": "not_in", "value": ["u1", "x'); DROP TABLE y; --"]}]}
    answer = admin.post("/v1/explore", json=spec).json()
    assert answer["rows"] and answer["rows"] == query(admin, answer["sql"])
    assert [c["name"] for c in answer["columns"]] == ["time", "device.os", "avg score"]
    assert admin.post("/v1/explore?run=false", json=spec).json() == {"sql": answer["sql"]}
    fields = admin.get("/v1/streams/level_complete/fields").json()["fields"]
    assert {"path": "device.os", "kind": "string", "enum": None, "items": None} in fields
    assert {"path": "items", "kind": "array", "enum": None, "items": "string"} in fields  # listed, not charted
    bad = admin.post("/v1/explore", json={**spec, "group_by": ["nope"]})
    assert bad.status_code == 400 and "no field 'nope'" in bad.json()["reason"]
    assert admin.post("/v1/explore", json={"stream": "missing"}).status_code == 404
    assert admin.post("/v1/explore", json={"stream": "level_complete", "colour": 1}).status_code == 400

    chart = admin.post("/v1/charts", json={"name": "Score by OS", "viz": "bar", "explore": spec})
    assert chart.status_code == 201, chart.text
    chart_id = chart.json()["id"]
    sql_chart = admin.post("/v1/charts", json={"name": "Levels", "viz": "table",
                                               "sql": "SELECT level, count(*) FROM level_complete GROUP BY 1"})
    assert sql_chart.status_code == 201
    for refused, status in [({"name": "x", "sql": "DROP VIEW level_complete"}, 403),
                            ({"name": "x", "sql": "SELECT 1", "explore": spec}, 400),
                            ({"name": " ", "sql": "SELECT 1"}, 400),
                            ({"name": "x", "explore": {**spec, "field": "user_id"}}, 400)]:
        assert admin.post("/v1/charts", json=refused).status_code == status, refused
    renamed = admin.put(f"/v1/charts/{chart_id}", json={"name": "Avg score by OS", "viz": "line", "explore": spec})
    assert renamed.json()["name"] == "Avg score by OS" and renamed.json()["explore"]["group_by"] == ["device.os"]

    board = admin.post("/v1/dashboards", json={"name": "Game", "range": "7d", "refresh": 30,
                                               "tiles": [{"chart": chart_id, "w": 8, "h": 5},
                                                         {"chart": sql_chart.json()["id"]}]})
    assert board.status_code == 201, board.text
    assert admin.post("/v1/dashboards", json={"name": "x", "tiles": [{"chart": "nope"}]}).status_code == 400
    assert admin.post("/v1/dashboards", json={"name": "x", "range": "soon"}).status_code == 400
    in_use = admin.delete(f"/v1/charts/{chart_id}")
    assert in_use.status_code == 409 and "Game" in in_use.json()["reason"]

    read_token = lh.run("tokens", "create", "viewer").stdout.strip()  # works at once
    viewer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {read_token}"})
    assert viewer.get("/v1/whoami").json() == {"name": "viewer", "kind": "read"}
    assert viewer.get(f"/v1/dashboards/{board.json()['id']}").json()["tiles"][0] == {"chart": chart_id, "w": 8, "h": 5}
    assert viewer.post("/v1/explore", json=spec).status_code == 200
    assert viewer.post("/v1/charts", json={"name": "x", "sql": "SELECT 1"}).status_code == 403
    assert httpx.get(f"{server.url}/v1/charts").status_code == 401
    assert httpx.get(f"{server.url}/ui/").status_code == 200  # the pages hold no data

    elsewhere = lh.server("serve").start()  # another process on the same catalog sees them
    kept = lh.reader(elsewhere).get("/v1/dashboards").json()["dashboards"]
    assert [(d["name"], d["range"], d["refresh"], len(d["tiles"])) for d in kept] == [("Game", "7d", 30, 2)]


def test_rejected_rows_are_listed_shown_and_replayed(lh: Lakehose) -> None:
    lh.create_stream("level_complete")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    admin = lh.reader(server)
    bad = [{"user_id": "c1", "level": 2, "coins": 5}, {"user_id": "c2", "level": "x"}]
    assert writer.post("/v1/streams/level_complete/events", json=bad).json()["rejected"] == 2
    deadline = time.monotonic() + 30
    while admin.get("/v1/rejected/summary").json()["rows"] == [] and time.monotonic() < deadline:
        time.sleep(0.2)
    summary = admin.get("/v1/rejected/summary").json()
    assert sorted(r[:4] for r in summary["rows"]) == [["level_complete", "type_mismatch", 1, 0],
                                                      ["level_complete", "unknown_field", 1, 0]]
    listed = admin.get("/v1/rejected", params={"stream": "level_complete", "reason": "unknown_field"}).json()
    names = [c["name"] for c in listed["columns"]]
    [row] = listed["rows"]
    one = admin.get(f"/v1/rejected/{row[names.index('rejection_id')]}").json()
    assert json.loads(one["payload"])["coins"] == 5 and one["path"] == "$.coins"
    assert admin.get("/v1/rejected/nope").status_code == 404
    assert admin.get("/v1/rejected", params={"state": "gone"}).status_code == 400
    assert admin.get("/v1/rejected", params={"limit": "x"}).status_code == 400

    v2 = copy.deepcopy(LEVEL_SCHEMA)
    v2["properties"]["coins"] = {"type": "integer"}
    assert admin.put("/v1/streams/level_complete", json={"schema": v2}).status_code == 200
    read_token = lh.run("tokens", "create", "viewer").stdout.strip()
    viewer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {read_token}"})
    assert viewer.post("/v1/rejected/replay", json={"stream": "level_complete"}).status_code == 403
    assert admin.post("/v1/rejected/replay", json={"stream": "nope"}).status_code == 404
    odd = admin.post("/v1/rejected/replay", json={"stream": "level_complete", "reason": "it's\n\u00da"})
    assert odd.status_code == 200 and odd.json()["replayed"] == 0, odd.text  # a newline was a 500
    done = admin.post("/v1/rejected/replay", json={"stream": "level_complete"}, timeout=60).json()
    assert done == {"stream": "level_complete", "replayed": 1, "still_rejected": {"type_mismatch": 1},
                    "recovered": 0, "skipped": {}}
    wait_for_count(admin, "level_complete", 1)
    replayed = admin.get("/v1/rejected", params={"state": "replayed"}).json()["rows"]
    assert len(replayed) == 1
