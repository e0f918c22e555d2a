"""The ``[registry]`` limits, hit through the CLI and ``/v1/streams``: each refusal names the
limit and the setting that raises it, and nothing is half-created."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from conftest import BOTH_BACKENDS, LEVEL_SCHEMA, Lakehose, write_private

LIMITS = {"LAKEHOSE_REGISTRY__MAX_STREAMS": "2", "LAKEHOSE_REGISTRY__MAX_COLUMNS": "10",
          "LAKEHOSE_REGISTRY__MAX_DEPTH": "3"}


def with_fields(base: dict[str, Any] = LEVEL_SCHEMA, **fields: Any) -> dict[str, Any]:
    schema = copy.deepcopy(base)
    schema["properties"].update(fields)
    return schema


def nested(levels: int) -> dict[str, Any]:
    """``levels`` objects inside each other around one string: the field nests ``levels + 1`` deep."""
    node: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        node = {"type": "object", "properties": {"inner": node}}
    return node


@pytest.fixture
def admin(lh: Lakehose) -> Iterator[httpx.Client]:
    """The stream management API (``lakehose serve``) running with LIMITS."""
    server = lh.server("serve", env=LIMITS).start()
    with lh.reader(server) as client:
        yield client


def cli(lh: Lakehose, *args: str, schema: dict[str, Any] | None = None,
        env: dict[str, str] = LIMITS) -> tuple[int, str]:
    """Run ``lakehose ARGS [--schema FILE]`` with the limits; (exit code, stderr)."""
    extra: list[str] = []
    if schema is not None:
        path = lh.data_dir / "schema.json"
        write_private(path, json.dumps(schema))
        extra = ["--schema", str(path)]
    result = lh.run(*args, *extra, env=env, check=False)
    return result.returncode, result.stderr


def assert_names_the_setting(text: str, setting: str) -> None:
    assert "limit reached" in text, text
    assert f"raise [registry] {setting} (LAKEHOSE_REGISTRY__{setting.upper()})" in text, text


def assert_refused(response: httpx.Response, status: int, setting: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == "limit_reached"
    assert body["settings"] == [setting]
    assert_names_the_setting(body["reason"], setting)
    assert len(body["problems"]) == 1
    return body


def test_max_streams(lh: Lakehose, admin: httpx.Client) -> None:
    assert cli(lh, "streams", "create", "first", schema=LEVEL_SCHEMA) == (0, "")
    assert admin.post("/v1/streams", json={"name": "second", "schema": LEVEL_SCHEMA}).status_code == 201

    code, stderr = cli(lh, "streams", "create", "third", schema=LEVEL_SCHEMA)
    assert code == 1
    assert_names_the_setting(stderr, "max_streams")
    assert "stream 'third' refused: 2 streams exist, the limit is 2" in stderr

    body = assert_refused(admin.post("/v1/streams", json={"name": "third", "schema": LEVEL_SCHEMA}),
                          409, "max_streams")
    assert "2 streams exist, the limit is 2" in body["problems"][0]
    # a name that exists is still "exists", not "full"
    assert admin.post("/v1/streams", json={"name": "first", "schema": LEVEL_SCHEMA}).json()["error"] \
        == "already_exists"

    # nothing of the refused stream remains: no registry row, no version, no table
    assert [s["name"] for s in admin.get("/v1/streams").json()["streams"]] == ["first", "second"]
    assert admin.get("/v1/streams/third/history").status_code == 404
    assert "events.third" not in admin.get("/v1/tables").json()["tables"]

    # raising the setting is all it takes
    raised = {**LIMITS, "LAKEHOSE_REGISTRY__MAX_STREAMS": "3"}
    assert cli(lh, "streams", "create", "third", schema=LEVEL_SCHEMA, env=raised) == (0, "")
    assert "events.third" in admin.get("/v1/tables").json()["tables"]


def test_max_columns(lh: Lakehose, admin: httpx.Client) -> None:
    # LEVEL_SCHEMA has exactly 10 columns: 8 fields, device.os and device.model
    assert cli(lh, "streams", "create", "level_complete", schema=LEVEL_SCHEMA) == (0, "")
    eleven = with_fields(coins={"type": "integer"})

    code, stderr = cli(lh, "streams", "update", "level_complete", schema=eleven)
    assert code == 1
    assert_names_the_setting(stderr, "max_columns")
    assert "the schema has 11 columns (fields at every depth), over the limit of 10" in stderr
    body = assert_refused(admin.put("/v1/streams/level_complete", json={"schema": eleven}),
                          400, "max_columns")
    assert "11 columns" in body["problems"][0]
    # a nested member counts as much as a top-level field
    deeper = with_fields(device={"type": "object", "properties": {
        "os": {"type": "string"}, "model": {"type": "string"}, "locale": {"type": "string"}}})
    assert_refused(admin.put("/v1/streams/level_complete", json={"schema": deeper}), 400, "max_columns")
    assert admin.get("/v1/streams/level_complete").json()["version"] == 1

    code, stderr = cli(lh, "streams", "create", "wide", schema=eleven)
    assert code == 1 and "max_columns" in stderr
    assert_refused(admin.post("/v1/streams", json={"name": "wide", "schema": eleven}), 400, "max_columns")
    assert admin.get("/v1/streams/wide").status_code == 404

    # an update within the limit still goes through
    wider_enum = with_fields(mode={"type": "string", "enum": ["easy", "normal", "hard", "nightmare"]})
    response = admin.put("/v1/streams/level_complete", json={"schema": wider_enum})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2


def test_max_depth(lh: Lakehose, admin: httpx.Client) -> None:
    # rounds[].n: the event, the array, its objects: 3 levels, the limit
    rounds = {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}}
    small = {"type": "object", "properties": {"user_id": {"type": "string"}, "rounds": rounds}}
    assert cli(lh, "streams", "create", "match", schema=small) == (0, "")

    too_deep = with_fields(small, loadout=nested(3))  # loadout.inner.inner.inner: 4 levels
    code, stderr = cli(lh, "streams", "update", "match", schema=too_deep)
    assert code == 1
    assert_names_the_setting(stderr, "max_depth")
    assert "$.loadout.inner.inner.inner: nested 4 levels deep (objects and arrays), " \
           "over the limit of 3" in stderr
    # arrays count as levels too: a list of lists inside the rounds' objects
    grid = copy.deepcopy(small)
    grid["properties"]["rounds"]["items"]["properties"]["grid"] = {
        "type": "array", "items": {"type": "integer"}}
    body = assert_refused(admin.put("/v1/streams/match", json={"schema": grid}), 400, "max_depth")
    assert body["problems"][0].startswith("$.rounds[].grid[]: nested 4 levels deep")
    assert admin.get("/v1/streams/match").json()["version"] == 1

    code, stderr = cli(lh, "streams", "create", "deep", schema=too_deep)
    assert code == 1 and "max_depth" in stderr
    assert_refused(admin.post("/v1/streams", json={"name": "deep", "schema": too_deep}), 400, "max_depth")
    assert admin.get("/v1/streams/deep").status_code == 404

    # both limits at once: both named in one answer
    both = with_fields(LEVEL_SCHEMA, coins={"type": "integer"}, loadout=nested(3))
    response = admin.post("/v1/streams", json={"name": "both", "schema": both})
    assert response.status_code == 400 and response.json()["settings"] == ["max_columns", "max_depth"]

    # absurd nesting is refused as a client error, not a crash
    levels = 2000  # too deep for json.dumps too: write the JSON by hand
    absurd = ('{"type": "object", "properties": {"a": ' * levels + '{"type": "string"}' + "}}" * levels)
    response = admin.post("/v1/streams", content=f'{{"name": "absurd", "schema": {absurd}}}')
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "too_deeply_nested"
    assert admin.get("/healthz").status_code == 200


@BOTH_BACKENDS
def test_max_streams_holds_under_concurrent_creates(lh: Lakehose, admin: httpx.Client) -> None:
    def create(n: int) -> int:
        body = {"name": f"race_{n}", "schema": LEVEL_SCHEMA}
        return admin.post("/v1/streams", json=body).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(create, range(6)))
    assert statuses == [201, 201, 409, 409, 409, 409]
    assert len(admin.get("/v1/streams").json()["streams"]) == 2
