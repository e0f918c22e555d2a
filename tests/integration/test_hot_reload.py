"""Two collectors on one data folder pick up registry changes made by the CLI while they run.

Each ``lakehose collector`` claims its own log partition and reloads streams and
keys from the catalog every second; nothing else runs (no delivery, no query
API). Schema updates, new streams and revoked keys made with the CLI reach both
within a few seconds, without a restart; a new key or stream works on both at once.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from collector_support import read_records
from conftest import LEVEL_SCHEMA, Lakehose

STREAM = "level_complete"
WITHIN = 5.0  # "a few seconds": collectors reload the registry each second


def within(seconds: float, predicate: Callable[[], bool], what: str,
           since: float | None = None) -> float:
    """Poll ``predicate`` until it holds; the seconds since ``since`` (default: now) it took,
    or fail naming ``what``."""
    started = time.monotonic() if since is None else since
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what}: still not so after {seconds} s")
        time.sleep(0.05)


def answer(client: httpx.Client, stream: str, events: list[dict[str, Any]],
           key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else None
    return client.post(f"/v1/streams/{stream}/events", json=events, headers=headers)


def accepted(client: httpx.Client, stream: str, event: dict[str, Any], key: str | None = None) -> bool:
    response = answer(client, stream, [event], key)
    assert response.status_code == 200, response.text
    return bool(response.json()["accepted"] == 1)


@pytest.fixture
def collectors(lh: Lakehose) -> Iterator[list[httpx.Client]]:
    """Two collectors on the same data folder, each with a client holding the write key."""
    lh.create_stream(STREAM)
    servers = [lh.server("collector").start(), lh.server("collector").start()]
    assert servers[0].port != servers[1].port
    clients = [httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {lh.key}"}, timeout=30)
               for s in servers]
    yield clients
    for client in clients:
        client.close()


def test_schema_update_reaches_both_collectors(lh: Lakehose, collectors: list[httpx.Client]) -> None:
    with_coins = {"user_id": "u", "level": 1, "coins": 5}
    for client in collectors:
        body = answer(client, STREAM, [with_coins]).json()
        assert body["accepted"] == 0 and body["rejected"] == 1
        assert body["errors"][0]["code"] == "unknown_field"
        assert body["errors"][0]["path"] == "$.coins"

    v2 = copy.deepcopy(LEVEL_SCHEMA)
    v2["properties"]["coins"] = {"type": "integer"}
    path = lh.data_dir / "v2.schema.json"
    path.write_text(json.dumps(v2))
    started = time.monotonic()  # the CLI's own run counts in the time it takes
    assert "version 2" in lh.run("streams", "update", STREAM, "--schema", str(path)).stdout

    took = [within(WITHIN, lambda c=client: accepted(c, STREAM, with_coins),  # type: ignore[misc]
                   f"collector {i} accepts coins", started) for i, client in enumerate(collectors)]
    print(f"schema v2 accepted {took[0]:.2f} s and {took[1]:.2f} s after the CLI started")
    # once a collector has the new version it keeps it; old-shape events still pass
    for client in collectors:
        body = answer(client, STREAM, [with_coins, {"user_id": "v", "level": 2}] * 5).json()
        assert body == {"accepted": 10, "rejected": 0, "errors": []}
        body = answer(client, STREAM, [{**with_coins, "coins": "many"}]).json()
        assert body["errors"][0]["code"] == "type_mismatch" and body["errors"][0]["path"] == "$.coins"

    # both wrote, each to its own partition, and the values are there as sent
    records = read_records(lh.data_dir, STREAM)
    assert len({r.partition for r in records}) == 2
    logged = [json.loads(line) for r in records for line in r.payload.split(b"\n") if line]
    assert sum(1 for e in logged if e.get("coins") == 5) >= 2 + 2 * 5


def test_stream_created_with_the_cli_reaches_both(lh: Lakehose, collectors: list[httpx.Client]) -> None:
    purchase = {"sku": "gems_100", "cents": 99}
    for client in collectors:
        refused = answer(client, "purchase", [purchase])
        assert refused.status_code == 404 and refused.json()["error"] == "unknown_stream"

    lh.create_stream("purchase", {"type": "object", "required": ["sku"], "properties": {
        "sku": {"type": "string"}, "cents": {"type": "integer", "minimum": 0}}})
    # at once on both: a stream a collector does not know makes it read the registry before the 404
    assert all(accepted(client, "purchase", purchase) for client in collectors)
    for client in collectors:  # and validates it by its schema
        body = answer(client, "purchase", [{"cents": -1}]).json()
        assert body["rejected"] == 1 and body["errors"][0]["code"] in ("missing_field", "out_of_range")
    assert len({r.partition for r in read_records(lh.data_dir, "purchase")}) == 2


def test_revoked_key_is_refused_by_both(lh: Lakehose, collectors: list[httpx.Client]) -> None:
    event = {"user_id": "u", "level": 1}
    mobile = lh.run("keys", "create", "mobile").stdout.strip()
    # a key created while they run works on both the moment the CLI returns: a miss reads the catalog
    assert all(accepted(c, STREAM, event, mobile) for c in collectors)

    started = time.monotonic()
    lh.run("keys", "revoke", "mobile")

    def refused(client: httpx.Client) -> bool:
        response = answer(client, STREAM, [event], mobile)
        if response.status_code == 200:
            return False
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "revoked_key"
        return True

    took = [within(WITHIN, lambda c=client: refused(c),  # type: ignore[misc]
                   f"collector {i} refuses the revoked key", started)
            for i, client in enumerate(collectors)]
    print(f"revoked key refused {took[0]:.2f} s and {took[1]:.2f} s after the CLI started")
    for client in collectors:
        assert refused(client)  # and stays refused
        assert accepted(client, STREAM, event)  # the other key is untouched
