"""Ingestion through the running collector: what a client sends is what the log holds.

One collector serves the whole module; every test tags its events with a unique
``user_id`` prefix and reads the write-ahead log back to compare.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import zstandard
from collector_support import (EVENTS_PATH, JSON, STREAM, assert_alive, collector_log_tracebacks, log_end,
                               metric, read_events, wait_until)
from conftest import Lakehose, Server

PURCHASE_SCHEMA = {
    "type": "object",
    "required": ["sku", "cents"],
    "properties": {"sku": {"type": "string"}, "cents": {"type": "integer", "minimum": 0}},
}
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ENVELOPE = ("event_id", "ts", "received_at", "type")  # "type": the stream, tagged in the log
_tags = itertools.count()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lakehose, Server]]:
    lh = Lakehose(tmp_path_factory.mktemp("ingest") / "data")
    lh.create_stream(STREAM)
    lh.create_stream("purchase", PURCHASE_SCHEMA)
    server = lh.server("collector").start()
    yield lh, server
    lh.close()


@pytest.fixture
def client(home: tuple[Lakehose, Server]) -> Iterator[httpx.Client]:
    lh, server = home
    since = log_end(server.log_path)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"},
                      timeout=30) as c:
        yield c
    assert_alive(server.url)
    assert collector_log_tracebacks(server.log_path, since) == []


@pytest.fixture
def data_dir(home: tuple[Lakehose, Server]) -> Path:
    return Path(home[0].data_dir)


def new_tag() -> str:
    return f"t{next(_tags)}-{uuid.uuid4().hex[:8]}"


def stored(data_dir: Path, tag: str, stream: str = STREAM, key: str = "user_id") -> list[dict[str, Any]]:
    """Events of ``stream`` in the log whose ``key`` starts with this test's tag, in log order."""
    return [e for e in read_events(data_dir, stream) if str(e.get(key, "")).startswith(tag)]


def without_envelope(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in ENVELOPE}


def now_us() -> int:
    return time.time_ns() // 1000


def valid(tag: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"user_id": f"{tag}-{n}", "level": n + 1, **extra}


# --------------------------------------------------------------------------- body shapes
def as_array(events: list[Any]) -> tuple[bytes, str]:
    return json.dumps(events).encode(), "application/json"


def as_wrapper(events: list[Any]) -> tuple[bytes, str]:
    return json.dumps({"events": events}).encode(), "application/json"


def as_ndjson(events: list[Any]) -> tuple[bytes, str]:
    # blank lines before, between (LF and CRLF) and after the events are skipped
    lines = [json.dumps(e) for e in events]
    return ("\n\n" + "\r\n\n".join(lines) + "\n\n").encode(), "application/x-ndjson"


SHAPES: dict[str, Callable[[list[Any]], tuple[bytes, str]]] = {
    "array": as_array, "wrapper": as_wrapper, "ndjson": as_ndjson}
ENCODINGS: dict[str, Callable[[bytes], bytes]] = {
    "identity": lambda b: b,
    "gzip": gzip.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}


def post(client: httpx.Client, body: bytes, content_type: str, encoding: str = "identity",
         path: str = EVENTS_PATH) -> httpx.Response:
    headers = {"content-type": content_type}
    if encoding != "identity":
        headers["content-encoding"] = encoding
    return client.post(path, content=ENCODINGS[encoding](body), headers=headers)


# --------------------------------------------------------------------------- tests
def test_full_valid_batch_is_stored_exactly_with_envelope(client: httpx.Client, data_dir: Path) -> None:
    """Every field of every accepted event reaches the log unchanged; the envelope is stamped."""
    tag = new_tag()
    client_id = f"client-{tag}"
    events = [
        valid(tag, 0, score=12.5, won=True, mode="hard", items=["sword", "shield"],
              device={"os": "ios", "model": "14"}, finished_at="2024-05-01T10:00:00Z"),
        valid(tag, 1, event_id=client_id),
        valid(tag, 2, score=None, items=[]),
    ]
    before = now_us()
    response = client.post(EVENTS_PATH, json=events)
    after = now_us()
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3, "rejected": 0, "errors": []}
    got = stored(data_dir, tag)
    assert [without_envelope(e) for e in got] == events[:1] + [valid(tag, 1)] + events[2:]
    for event in got:
        assert before <= event["received_at"] <= after
        assert event["ts"] == event["received_at"]  # no ts sent: the arrival time
    assert got[1]["event_id"] == client_id
    for event in (got[0], got[2]):
        assert UUID7.match(event["event_id"]), event["event_id"]
        assert abs(int(event["event_id"].replace("-", "")[:12], 16) - event["received_at"] // 1000) <= 1
    assert got[0]["event_id"] != got[2]["event_id"]


def test_client_cannot_set_received_at_or_another_type(client: httpx.Client, data_dir: Path) -> None:
    """``received_at`` is the collector's clock: a client's is refused, as is a foreign ``type``."""
    tag = new_tag()
    events = [valid(tag, 0, type=STREAM), valid(tag, 1, received_at="yesterday"),
              valid(tag, 2, type="purchase"), valid(tag, 3, received_at=0)]
    before = now_us()
    answer = client.post(EVENTS_PATH, json=events).json()
    assert answer["accepted"] == 1
    assert [(e["index"], e["code"], e["path"]) for e in answer["errors"]] == [
        (1, "reserved_field", "$.received_at"), (2, "wrong_stream", "$.type"),
        (3, "reserved_field", "$.received_at")]
    got = stored(data_dir, tag)
    assert [without_envelope(e) for e in got] == [valid(tag, 0)]
    assert all(e["received_at"] >= before for e in got)
    assert all(e["type"] == STREAM for e in got)


def test_stream_created_while_running_is_picked_up(home: tuple[Lakehose, Server],
                                                   client: httpx.Client, data_dir: Path) -> None:
    """A stream created with the CLI while the collector runs takes events as soon as the CLI returns."""
    lh, _ = home
    path = "/v1/streams/late_stream/events"
    assert client.post(path, json=[{"sku": "a", "cents": 1}]).json()["error"] == "unknown_stream"
    lh.create_stream("late_stream", PURCHASE_SCHEMA)
    assert client.post(path, json=[{"sku": "late", "cents": 1}]).json()["accepted"] == 1
    assert stored(data_dir, "late", "late_stream", key="sku")


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_partially_valid_batch_in_every_shape_and_encoding(
        client: httpx.Client, data_dir: Path, shape: str, encoding: str) -> None:
    """Invalid events are named (index, path, reason) and only the valid ones are stored."""
    tag = new_tag()
    events = [valid(tag, 0), {"user_id": f"{tag}-x1"}, valid(tag, 2, mode="easy"),
              {"user_id": f"{tag}-x3", "level": "7"}, valid(tag, 4)]
    body, content_type = SHAPES[shape](events)
    response = post(client, body, content_type, encoding)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 3 and answer["rejected"] == 2
    assert [(e["index"], e["code"], e["path"]) for e in answer["errors"]] == [
        (1, "missing_field", "$.level"), (3, "type_mismatch", "$.level")]
    assert all(e["reason"] for e in answer["errors"])
    assert [without_envelope(e) for e in stored(data_dir, tag)] == [events[0], events[2], events[4]]


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_fully_valid_batch_in_every_shape_and_encoding(
        client: httpx.Client, data_dir: Path, shape: str, encoding: str) -> None:
    """The fast path (whole batch decoded at once) stores every event, in order."""
    tag = new_tag()
    events = [valid(tag, i, score=i / 3) for i in range(50)]
    body, content_type = SHAPES[shape](events)
    response = post(client, body, content_type, encoding)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 50, "rejected": 0, "errors": []}
    assert [without_envelope(e) for e in stored(data_dir, tag)] == events


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_single_object_body(client: httpx.Client, data_dir: Path, encoding: str) -> None:
    """A body that is one event object (not a wrapper) is one event; an invalid one is index 0."""
    tag = new_tag()
    good = valid(tag, 0, device={"os": "android"})
    response = post(client, json.dumps(good).encode(), "application/json", encoding)
    assert response.json() == {"accepted": 1, "rejected": 0, "errors": []}
    bad = {"user_id": f"{tag}-bad", "level": 1, "device": {"os": 5}}
    response = post(client, json.dumps(bad).encode(), "application/json", encoding)
    assert response.status_code == 200
    assert response.json()["accepted"] == 0
    [error] = response.json()["errors"]
    assert (error["index"], error["code"], error["path"]) == (0, "type_mismatch", "$.device.os")
    assert [without_envelope(e) for e in stored(data_dir, tag)] == [good]


def test_object_with_events_and_other_keys_is_one_event_not_a_wrapper(
        client: httpx.Client, data_dir: Path) -> None:
    """Only exactly {"events": [...]} is a wrapper. An event that also has an "events" key must
    not be read as a wrapper (which silently dropped it, answering accepted 0 / rejected 0)."""
    tag = new_tag()
    for body in ({**valid(tag, 0), "events": []}, {**valid(tag, 1), "events": [valid(tag, 2)]},
                 {"events": [valid(tag, 3)], "sent_at": "2024-01-01T00:00:00Z"}):
        answer = client.post(EVENTS_PATH, json=body).json()
        assert answer["accepted"] + answer["rejected"] == 1, (body, answer)
        assert answer["errors"][0]["code"] == "unknown_field", answer
    assert stored(data_dir, tag) == []


def test_all_invalid_batch_stores_nothing(client: httpx.Client, data_dir: Path) -> None:
    """A batch with no valid event is still a 200 naming every event, and nothing is appended."""
    tag = new_tag()
    events = [{"user_id": f"{tag}-{i}", "level": 0} for i in range(3)]
    response = client.post(EVENTS_PATH, json=events)
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] == 0 and answer["rejected"] == 3
    assert [e["index"] for e in answer["errors"]] == [0, 1, 2]
    assert stored(data_dir, tag) == []


def test_empty_array_is_accepted_as_nothing(client: httpx.Client) -> None:
    """``[]`` and ``{"events": []}`` are answered 200 with nothing accepted (not an error)."""
    for body in (b"[]", b'{"events": []}'):
        response = client.post(EVENTS_PATH, content=body, headers=JSON)
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 0, "rejected": 0, "errors": []}


@pytest.mark.parametrize(("event", "code", "path"), [
    ({"user_id": "U"}, "missing_field", "$.level"),
    ({"user_id": "U", "level": 1.5}, "type_mismatch", "$.level"),
    ({"user_id": "U", "level": 0}, "out_of_range", "$.level"),
    ({"user_id": "U", "level": 10001}, "out_of_range", "$.level"),
    ({"user_id": "U" * 65, "level": 1}, "too_long", "$.user_id"),
    ({"user_id": "U", "level": 1, "mode": "nightmare"}, "invalid_enum", "$.mode"),
    ({"user_id": "U", "level": 1, "extra": True}, "unknown_field", "$.extra"),
    ({"user_id": "U", "level": 1, "device": {"os": "x", "cpu": 4}}, "unknown_field", "$.device.cpu"),
    ({"user_id": "U", "level": 1, "items": ["a", 2]}, "type_mismatch", "$.items[1]"),
    ({"user_id": "U", "level": 1, "won": 1}, "type_mismatch", "$.won"),
    ({"user_id": "U", "level": 1, "finished_at": "yesterday"}, "invalid_datetime", "$.finished_at"),
    ({"user_id": "U", "level": 1, "ts": "2024-13-01T00:00:00Z"}, "invalid_datetime", "$.ts"),
    ({"user_id": "U", "level": 1, "ts": 1.5}, "type_mismatch", "$.ts"),
    ({"user_id": "U", "level": 1, "ts": -5}, "out_of_range", "$.ts"),
    ({"user_id": "U", "level": 1, "event_id": 7}, "type_mismatch", "$.event_id"),
    ({"user_id": "U", "level": 1, "event_id": "E" * 65}, "too_long", "$.event_id"),
    ({"user_id": "U", "level": 1, "event_id": ""}, "too_short", "$.event_id"),
    ("not an object", "type_mismatch", "$"),
])
def test_each_error_names_index_path_and_reason(
        client: httpx.Client, event: Any, code: str, path: str) -> None:
    """Each kind of invalid event is reported at its index with a code, a JSON path and words."""
    batch = [{"user_id": "ok", "level": 1}, event, {"user_id": "ok", "level": 2}]
    response = client.post(EVENTS_PATH, json=batch)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 2 and answer["rejected"] == 1
    [error] = answer["errors"]
    assert (error["index"], error["code"], error["path"]) == (1, code, path), error
    assert isinstance(error["reason"], str) and len(error["reason"]) > 5


def test_every_error_of_a_batch_is_reported_in_index_order(client: httpx.Client) -> None:
    """With many bad events, every one is listed once, sorted by index."""
    batch = [{"user_id": "ok", "level": 1} if i % 3 else {"user_id": "bad", "level": -i}
             for i in range(30)]
    answer = client.post(EVENTS_PATH, json=batch).json()
    assert answer["accepted"] == 20 and answer["rejected"] == 10
    assert [e["index"] for e in answer["errors"]] == list(range(0, 30, 3))


def test_mixed_endpoint_routes_each_event_by_type(client: httpx.Client, data_dir: Path) -> None:
    """/v1/events splits by "type"; unknown, missing type and non-object items are named."""
    tag = new_tag()
    batch = [
        {"type": STREAM, **valid(tag, 0)},
        {"type": "purchase", "sku": f"{tag}-sku1", "cents": 499},
        {"type": "no_such_stream", "x": 1},
        {**valid(tag, 3)},
        {"type": "purchase", "sku": f"{tag}-sku4", "cents": -1},
        42,
        {"type": STREAM, **valid(tag, 6, mode="normal")},
        {"type": "purchase", "sku": f"{tag}-sku7", "cents": 0, "event_id": f"{tag}-own-id"},
    ]
    for encoding in ("identity", "zstd"):
        response = post(client, json.dumps(batch).encode(), "application/json", encoding,
                        path="/v1/events")
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["accepted"] == 4 and answer["rejected"] == 4
        assert [(e["index"], e["code"], e["path"]) for e in answer["errors"]] == [
            (2, "unknown_stream", "$"), (3, "missing_type", "$.type"),
            (4, "out_of_range", "$.cents"), (5, "type_mismatch", "$")]
    levels = stored(data_dir, tag)
    assert [without_envelope(e) for e in levels] == [valid(tag, 0), valid(tag, 6, mode="normal")] * 2
    purchases = stored(data_dir, tag, "purchase", key="sku")
    assert [without_envelope(e) for e in purchases] == [
        {"sku": f"{tag}-sku1", "cents": 499}, {"sku": f"{tag}-sku7", "cents": 0}] * 2
    assert purchases[1]["event_id"] == f"{tag}-own-id"
    assert all(e["type"] == STREAM for e in levels) and all(e["type"] == "purchase" for e in purchases)


def test_mixed_endpoint_in_ndjson(client: httpx.Client, data_dir: Path) -> None:
    """Mixed batches may be NDJSON too."""
    tag = new_tag()
    batch = [{"type": STREAM, **valid(tag, 0)}, {"type": "purchase", "sku": f"{tag}-s", "cents": 1}]
    body, content_type = as_ndjson(batch)
    response = post(client, body, content_type, "gzip", path="/v1/events")
    assert response.json() == {"accepted": 2, "rejected": 0, "errors": []}
    assert len(stored(data_dir, tag)) == 1
    assert len(stored(data_dir, tag, "purchase", key="sku")) == 1


def test_unknown_stream_is_404_with_the_closest_names(client: httpx.Client) -> None:
    """A typo in the URL is a 404 naming the streams it most looks like; none at all: how to list them."""
    response = client.post("/v1/streams/levl_complete/events", json=[{"a": 1}, {"b": 2}])
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown_stream", "did_you_mean": ["level_complete"],
        "reason": "no stream named 'levl_complete'; did you mean 'level_complete'? "
                  "(create one with: lakehose streams create NAME --schema FILE)"}
    response = client.post("/v1/streams/zzz/events", json=[{"a": 1}])
    assert response.status_code == 404 and response.json()["did_you_mean"] == []
    assert "list them with: lakehose streams list" in response.json()["reason"]
    # in a mixed batch the event is rejected alone, with the same hint
    mixed = client.post("/v1/events", json=[{"type": "level_complet", "user_id": "u", "level": 1}]).json()
    assert mixed["errors"][0]["reason"] == "no stream named 'level_complet'; did you mean 'level_complete'?"


def test_every_bad_field_of_an_event_is_reported_up_to_ten(client: httpx.Client) -> None:
    """msgspec stops at the first error; the answer still names each bad field, capped at 10 per event,
    while the event counts once as rejected."""
    several = {"user_id": 5, "level": "x", "mode": "no", "zz": 1, "device": {"os": 3}}
    many = {f"extra_{i:02}": i for i in range(15)}
    answer = client.post(EVENTS_PATH, json=[several, {"user_id": "ok", "level": 1}, many]).json()
    assert answer["accepted"] == 1 and answer["rejected"] == 2
    assert [(e["index"], e["code"], e["path"]) for e in answer["errors"] if e["index"] == 0] == [
        (0, "type_mismatch", "$.user_id"), (0, "type_mismatch", "$.level"), (0, "invalid_enum", "$.mode"),
        (0, "unknown_field", "$.zz"), (0, "type_mismatch", "$.device.os")]
    assert [e["path"] for e in answer["errors"] if e["index"] == 2] == [
        f"$.extra_{i:02}" for i in range(10)]  # 15 unknown and 2 missing fields: the first 10


def test_ts_is_normalised_to_epoch_microseconds(client: httpx.Client, data_dir: Path) -> None:
    """ISO with offset, ISO with Z, naive ISO (UTC), epoch ms, null and absent ts all become µs."""
    tag = new_tag()
    cases = [
        ("2024-01-02T03:04:05.123456+02:00", 1704157445123456),
        ("2024-01-02T03:04:05.5-05:30", 1704184445500000),
        ("2024-01-02T03:04:05Z", 1704164645000000),
        ("2024-01-02T03:04:05", 1704164645000000),
        (1704164645123, 1704164645123000),
        (0, 0),
    ]
    events = [valid(tag, i, ts=ts) for i, (ts, _) in enumerate(cases)]
    events += [valid(tag, 10, ts=None), valid(tag, 11)]
    response = client.post(EVENTS_PATH, json=events)
    assert response.json() == {"accepted": 8, "rejected": 0, "errors": []}
    got = stored(data_dir, tag)
    assert [e["ts"] for e in got[:len(cases)]] == [expected for _, expected in cases]
    assert got[-2]["ts"] == got[-2]["received_at"] and got[-1]["ts"] == got[-1]["received_at"]
    assert all(type(e["ts"]) is int and type(e["received_at"]) is int for e in got)


def test_ts_too_far_in_the_future_is_rejected(client: httpx.Client, data_dir: Path) -> None:
    """ts beyond the future window (24 h by default) is ts_in_future; within it is kept."""
    tag = new_tag()
    now_s = time.time()

    def iso(seconds: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))

    events = [
        valid(tag, 0, ts=iso(now_s + 3600)),
        valid(tag, 1, ts=iso(now_s + 2 * 86400)),
        valid(tag, 2, ts=int((now_s + 2 * 86400) * 1000)),
        valid(tag, 3, ts="9999-12-31T23:59:59Z"),
        valid(tag, 4, ts=int((now_s + 60) * 1000)),
    ]
    answer = client.post(EVENTS_PATH, json=events).json()
    assert answer["accepted"] == 2
    assert [(e["index"], e["code"], e["path"]) for e in answer["errors"]] == [
        (1, "ts_in_future", "$.ts"), (2, "ts_in_future", "$.ts"), (3, "ts_in_future", "$.ts")]
    assert [e["user_id"] for e in stored(data_dir, tag)] == [f"{tag}-0", f"{tag}-4"]
    # the reason names the window, the latest time allowed and the setting
    reason = answer["errors"][2]["reason"]
    assert reason.startswith("event time 9999-12-31T23:59:59Z is more than 24 h ahead of the collector's clock; "
                             f"the latest allowed now is {time.strftime('%Y-%m-%dT', time.gmtime(now_s + 86400))}")
    assert reason.endswith("([collector] future_window_seconds = 86400)")


UNICODE_ITEMS = ["naïve café", "עברית", "中文字符", "e\u0301", "🎮🕹️👾", "𝄞",
                 "\u0000nul",
                 "quote \" backslash \\ slash /", "\u2028\u2029", "\t\n\r", "\ufeffbom", "\uffff"]


@pytest.mark.parametrize("ensure_ascii", [False, True], ids=["raw-utf8", "escaped"])
def test_unicode_round_trips(client: httpx.Client, data_dir: Path, ensure_ascii: bool) -> None:
    """Non-ASCII text, raw UTF-8 or \\u-escaped (surrogate pairs), comes back identical."""
    tag = new_tag()
    event = {"user_id": f"{tag}-ユーザー🎮", "level": 5, "items": UNICODE_ITEMS,
             "device": {"os": "ÆØÅ", "model": "Ñandú"}, "event_id": f"{tag}-ïd-🚀"}
    body = json.dumps([event], ensure_ascii=ensure_ascii).encode("utf-8")
    response = client.post(EVENTS_PATH, content=body,
                           headers={"content-type": "application/json; charset=utf-8"})
    assert response.json() == {"accepted": 1, "rejected": 0, "errors": []}
    [got] = stored(data_dir, tag)
    assert without_envelope(got) == without_envelope(event)
    assert got["event_id"] == event["event_id"]


def test_max_length_counts_characters_not_bytes(client: httpx.Client, data_dir: Path) -> None:
    """maxLength 64 admits 64 four-byte characters (256 bytes) and rejects 65."""
    tag = new_tag()[:8]
    ok = {"user_id": tag + "🎮" * (64 - len(tag)), "level": 1}
    too_long = {"user_id": tag + "🎮" * (65 - len(tag)), "level": 1}
    answer = client.post(EVENTS_PATH, json=[ok, too_long]).json()
    assert answer["accepted"] == 1
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [(1, "too_long")]
    assert [e["user_id"] for e in stored(data_dir, tag)] == [ok["user_id"]]


@pytest.mark.parametrize("style", ["bearer", "x-write-key", "basic-user", "basic-user-password"])
def test_every_auth_style_is_accepted(home: tuple[Lakehose, Server], style: str) -> None:
    """The write key works as Bearer token, X-Write-Key and the user of HTTP Basic."""
    lh, server = home
    headers = {
        "bearer": {"Authorization": f"Bearer {lh.key}"},
        "x-write-key": {"X-Write-Key": lh.key},
        "basic-user": {"Authorization": "Basic " + base64.b64encode(f"{lh.key}:".encode()).decode()},
        "basic-user-password": {
            "Authorization": "Basic " + base64.b64encode(f"{lh.key}:pw".encode()).decode()},
    }[style]
    response = httpx.post(server.url + EVENTS_PATH, json=[{"user_id": "auth", "level": 1}],
                          headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1


def test_metrics_counters_move(home: tuple[Lakehose, Server], client: httpx.Client) -> None:
    """Accepted/rejected counters, the ack latency histogram and the log size gauge all move."""
    _, server = home
    before = client.get("/metrics").text
    batch = [{"user_id": "m", "level": 1}, {"user_id": "m"}, {"user_id": "m", "level": 2}]
    assert client.post(EVENTS_PATH, json=batch).json()["accepted"] == 2
    assert client.post("/v1/streams/nowhere/events", json=[{"a": 1}]).status_code == 404
    after = client.get("/metrics")
    assert after.status_code == 200 and after.headers["content-type"].startswith("text/plain")
    text = after.text

    def delta(name: str, **labels: str) -> float:
        return metric(text, name, **labels) - metric(before, name, **labels)

    assert delta("lakehose_events_accepted_total", stream=STREAM) == 2
    assert delta("lakehose_events_rejected_total", stream=STREAM, reason="missing_field") == 1
    assert delta("lakehose_events_rejected_total", stream="_unknown", reason="unknown_stream") == 1
    assert delta("lakehose_ack_latency_seconds_count") == 2
    assert delta("lakehose_http_requests_total", route="stream_events", status="200") == 1
    assert delta("lakehose_http_requests_total", route="stream_events", status="404") == 1
    assert 'stream="nowhere"' not in text  # client-chosen names never become label values
    assert wait_until(lambda: metric(httpx.get(server.url + "/metrics").text,
                                     "lakehose_log_size_bytes") > 0, timeout=3)


def test_openapi_document(client: httpx.Client) -> None:
    """/openapi.json is valid JSON describing the ingestion and health paths."""
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    doc = json.loads(response.content)
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert "post" in paths["/v1/streams/{stream}/events"] and "post" in paths["/v1/events"]
    for path in ("/healthz", "/readyz", "/metrics"):
        assert "get" in paths[path]
    answers = paths["/v1/streams/{stream}/events"]["post"]["responses"]
    assert {"200", "400", "401", "403", "404", "408", "413", "415", "429", "503"} <= set(answers)


def test_health_endpoints(client: httpx.Client) -> None:
    """/healthz and /readyz answer 200 JSON without a key."""
    bare = httpx.get(str(client.base_url) + "/healthz", timeout=5)
    assert bare.status_code == 200 and bare.json()["status"] == "alive"
    ready = httpx.get(str(client.base_url) + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
