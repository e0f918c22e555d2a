"""Replay: reject events, fix the schema, replay, count: each row lands once."""

from __future__ import annotations

import collections
import copy
import json
import time

import httpx
import pytest

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


# Every way a request is refused as a whole, as (reason, body, headers). The payload these rows keep
# is the start of a body, never an event; a replay skips and counts them.
WHOLE_REQUESTS: list[tuple[str, bytes, dict[str, str]]] = [
    ("malformed_json", b'[{"user_id": "a",}]', {}),
    ("malformed_json", b'[{"user_id": "a", "level": 2', {}),  # "Input data was truncated"
    ("empty_body", b"", {}),
    ("unsupported_media_type", b"<p>hi</p>", {"content-type": "text/html"}),
    ("body_too_large", b"[" + b'{"user_id":"big","level":1},' * 3000 + b"{}]", {}),
    ("too_many_events", json.dumps([{"user_id": "m", "level": 1}] * 60).encode(), {}),
    ("invalid_utf8", b'[{"user_id": "\xff", "level": 1}]', {}),
    ("bad_encoding", b"not gzip at all", {"content-encoding": "gzip"}),
    ("unsupported_encoding", b"[]", {"content-encoding": "br"}),
    ("too_deeply_nested", b'[{"user_id": "d", "level": 1, "items": ' + b"[" * 5000 + b"]" * 5000 + b"}]", {}),
]


def test_replay_skips_and_counts_every_whole_request_rejection(lh: Lakehose, backend: str) -> None:
    """A stream holding every kind of rejection replays: whole-request rows (and an event whose
    payload was cut at 64 KiB) are skipped and counted by reason, over the CLI and the UI's route."""
    if backend != "embedded":
        pytest.skip("the rejection kinds do not depend on the backend")
    from collector_support import raw_connection

    lh.create_stream("level_complete")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3",
                                  "LAKEHOSE_COLLECTOR__MAX_BODY_BYTES": "80000",
                                  "LAKEHOSE_COLLECTOR__MAX_EVENT_BYTES": "70000",
                                  "LAKEHOSE_COLLECTOR__MAX_EVENTS_PER_REQUEST": "50",
                                  "LAKEHOSE_COLLECTOR__BODY_TIMEOUT_SECONDS": "1"}).start()
    path = "/v1/streams/level_complete/events"
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"}, timeout=30)
    reader = lh.reader(server)
    expected = collections.Counter[str]()
    for reason, body, headers in WHOLE_REQUESTS:
        answer = writer.post(path, content=body, headers={"content-type": "application/json", **headers})
        assert 400 <= answer.status_code < 500 and answer.json()["error"] == reason, (reason, answer.text)
        expected[reason] += 1
    with raw_connection(server.url) as sock:  # a body that stalls: 408 body_timeout
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {lh.key}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[{".encode())
        assert b" 408 " in sock.recv(4096).split(b"\r\n")[0]
    expected["body_timeout"] += 1
    # per-event rejections: one fixed by the schema change, one not, one too large to keep whole
    events = [{"user_id": "c1", "level": 2, "coins": 1}, {"user_id": "bad", "level": "nope", "mode": "no"},
              {"user_id": "big", "level": 1, "items": ["x" * 100] * 720}]
    answer = writer.post(path, json=events).json()
    assert [e["code"] for e in answer["errors"]] == ["unknown_field", "type_mismatch", "invalid_enum",
                                                     "event_too_large"]
    expected["event_too_large"] += 1
    wait_rejected(reader, sum(expected.values()) + 2)

    add_coins_to_the_schema(lh)
    out = lh.run("rejected", "replay", "--stream", "level_complete").stdout
    skipped = ", ".join(f"{n} {code}" for code, n in sorted(expected.items()))
    assert out.strip() == ("replayed 1 events into events.level_complete; still rejected: "
                           f"1 type_mismatch; skipped (no event to replay): {skipped}"), out
    wait_for_count(reader, "level_complete", 1)
    only = lh.run("rejected", "replay", "--stream", "level_complete", "--reason", "empty_body").stdout
    assert only.strip() == ("replayed 0 events into events.level_complete; still rejected: none; "
                            "skipped (no event to replay): 1 empty_body"), only

    done = reader.post("/v1/rejected/replay", json={"stream": "level_complete"}, timeout=60)
    assert done.status_code == 200, done.text
    assert done.json() == {"stream": "level_complete", "replayed": 0, "recovered": 0,
                           "still_rejected": {"type_mismatch": 1}, "skipped": dict(expected)}
    # skipped rows are left as they were: pending, with their own reason
    pending = query(reader, "SELECT reason, count(*) FROM events._rejected WHERE replayed_at IS NULL "
                            "GROUP BY ALL ORDER BY ALL")
    assert pending == sorted([[code, n] for code, n in expected.items()] + [["type_mismatch", 1]])
    # the row still rejected names each of its errors
    assert query(reader, "SELECT message FROM events._rejected WHERE reason = 'type_mismatch'") == [
        ["expected integer, got string; also $.mode: invalid enum value 'no'"]]
