"""The query layer: read-only refusals, formats, limits, and agreement with pyiceberg."""

from __future__ import annotations

import io
import json

import httpx
import pyarrow as pa
import pytest

from conftest import Lakehose, backend_for
from lake_support import wait_for_count


@pytest.fixture(scope="module", params=["embedded", "scaled"])
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One loaded `up` per backend set, shared by the module: the tests only read."""
    with backend_for(request.param, request) as backend:
        yield from load(Lakehose(tmp_path_factory.mktemp("query") / "data", backend.config,
                                 backend.services))


def load(lh: Lakehose):  # type: ignore[no-untyped-def]
    lh.create_stream("level_complete")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.5",
                                  "LAKEHOSE_QUERY__ROW_LIMIT": "100",
                                  "LAKEHOSE_QUERY__TIMEOUT_SECONDS": "2"}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    for day in range(3):  # several batches, several partitions
        events = [{"user_id": f"u{i}", "level": i % 20 + 1, "score": i / 3, "items": ["a", "b"][: i % 3],
                   "device": {"os": "android" if i % 2 else "ios"},
                   "ts": f"2026-0{day + 1}-15T10:{i % 60:02d}:00Z"} for i in range(250)]
        assert writer.post("/v1/streams/level_complete/events", json=events).json()["accepted"] == 250
    reader = lh.reader(server)
    wait_for_count(reader, "level_complete", 750)
    yield lh, reader
    lh.close()


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "ATTACH '/tmp/x.duckdb' AS x",
    "COPY (SELECT 1) TO '/tmp/out.csv'",
    "CREATE TABLE t AS SELECT 1",
    "INSERT INTO events.level_complete (user_id) VALUES ('x')",
    "DELETE FROM events.level_complete",
    "DROP VIEW events.level_complete",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SELECT 1; SELECT 2",
    "PRAGMA enable_profiling",
])
def test_writes_and_outside_reads_are_refused(loaded, sql: str) -> None:  # type: ignore[no-untyped-def]
    _, reader = loaded
    response = reader.post("/v1/query", json={"sql": sql})
    assert response.status_code in (400, 403), response.text
    body = response.json()
    assert body["error"] in ("query_refused", "query_failed") and body["reason"]
    assert reader.post("/v1/query", json={"sql": "SELECT count(*) FROM level_complete"}).json()["rows"] == [[750]]


def test_cli_refuses_with_a_clear_message(loaded) -> None:  # type: ignore[no-untyped-def]
    lh, _ = loaded
    result = lh.run("query", "SELECT * FROM read_csv('/etc/passwd')", check=False)
    assert result.returncode == 1
    assert "not allowed" in result.stderr


def test_row_limit_timeout_and_errors(loaded) -> None:  # type: ignore[no-untyped-def]
    _, reader = loaded
    body = reader.post("/v1/query", json={"sql": "SELECT * FROM level_complete"}).json()
    assert body["row_count"] == 100 and body["truncated"] is True
    body = reader.post("/v1/query", json={"sql": "SELECT * FROM level_complete", "limit": 7}).json()
    assert body["row_count"] == 7
    slow = reader.post("/v1/query", json={"sql": "SELECT count(*) FROM range(100000000000) a, range(10) b"})
    assert slow.status_code == 400 and "longer than 2 s" in slow.json()["reason"]
    bad = reader.post("/v1/query", json={"sql": "SELEC 1"})
    assert bad.status_code == 400 and "syntax" in bad.json()["reason"]
    missing = reader.post("/v1/query", json={"sql": "SELECT * FROM events.nope"})
    assert missing.status_code == 400 and "nope" in missing.json()["reason"]
    assert reader.post("/v1/query", content=b"not json").status_code == 400


def test_json_csv_and_arrow_agree(loaded) -> None:  # type: ignore[no-untyped-def]
    _, reader = loaded
    sql = ("SELECT level, count(*) AS n, round(sum(score), 6) AS s FROM events.level_complete "
           "GROUP BY 1 ORDER BY 1")  # a float sum's last bit depends on the order DuckDB adds in
    as_json = reader.post("/v1/query", json={"sql": sql}).json()
    assert [c["type"] for c in as_json["columns"]] == ["BIGINT", "BIGINT", "DOUBLE"]
    as_csv = reader.post("/v1/query", json={"sql": sql, "format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    lines = as_csv.text.splitlines()
    assert lines[0] == '"level","n","s"' and len(lines) == 21
    as_arrow = reader.post("/v1/query", json={"sql": sql},
                           headers={"Accept": "application/vnd.apache.arrow.stream"})
    table = pa.ipc.open_stream(io.BytesIO(as_arrow.content)).read_all()
    assert table.to_pylist() == [dict(zip(["level", "n", "s"], row)) for row in as_json["rows"]]


def test_pyiceberg_sees_exactly_what_the_query_layer_sees(loaded) -> None:  # type: ignore[no-untyped-def]
    """Invariant 5: any Iceberg reader gets the same rows."""
    lh, reader = loaded
    from lakehose.config import load_settings
    from lakehose.lake.catalog import open_catalog

    table = open_catalog(load_settings(str(lh.data_dir))).load_table(("events", "level_complete"))
    theirs = sorted(json.dumps(row, default=str, sort_keys=True) for row in table.scan(
        selected_fields=("event_id", "user_id", "level", "score", "items", "device")).to_arrow().to_pylist())
    ours_rows = reader.post("/v1/query", json={
        "sql": "SELECT event_id, user_id, level, score, items, device FROM events.level_complete",
        "limit": 100}).json()
    assert ours_rows["truncated"]  # the default limit applies; ask the CLI for everything
    out = lh.run("query", "SELECT event_id, user_id, level, score, items, device FROM events.level_complete",
                 "--format", "json", env={"LAKEHOSE_QUERY__ROW_LIMIT": "100000"}).stdout
    body = json.loads(out)
    names = [c["name"] for c in body["columns"]]
    ours = sorted(json.dumps(dict(zip(names, row)), default=str, sort_keys=True) for row in body["rows"])
    assert len(theirs) == 750
    assert ours == theirs
    assert len(table.inspect.files()) >= 3  # one file per day partition at least


@pytest.mark.parametrize("sql", ["SELECT 'infinity'::TIMESTAMP AS t", "SELECT '-infinity'::DATE AS t",
                                 "SELECT '294247-01-10'::TIMESTAMP AS t", "SELECT ['infinity'::TIMESTAMPTZ] AS t"])
def test_dates_python_cannot_hold_are_a_400_in_json(loaded, sql: str) -> None:  # type: ignore[no-untyped-def]
    """DuckDB's infinity and years past 9999 were a 500: JSON says what to do, CSV and Arrow carry them."""
    _, reader = loaded
    as_json = reader.post("/v1/query", json={"sql": sql})
    assert as_json.status_code == 400, as_json.text
    assert "VARCHAR" in as_json.json()["reason"] and as_json.json()["error"] == "query_failed"
    nested = sql.startswith("SELECT [")  # CSV writes a list as its JSON text: the same 400
    assert reader.post("/v1/query", json={"sql": sql, "format": "csv"}).status_code == (400 if nested else 200)
    assert reader.post("/v1/query", json={"sql": sql, "format": "arrow"}).status_code == 200
    as_text = reader.post("/v1/query", json={"sql": f"SELECT t::VARCHAR FROM ({sql})"})
    assert as_text.status_code == 200 and ("infinity" in as_text.text or "294247" in as_text.text)


def test_csv_writes_nested_values_and_intervals_as_json_text(loaded) -> None:  # type: ignore[no-untyped-def]
    """Arrow's CSV writer has no form for them: that was a 500."""
    _, reader = loaded
    sql = ("SELECT [1, 2] AS l, {'a': 1, 'b': ['x']} AS s, map([1], [2]) AS m, union_value(a := 1) AS u, "
           "INTERVAL 1 DAY AS i, 1::VARINT AS v, NULL::INT[] AS n")
    as_csv = reader.post("/v1/query", json={"sql": sql, "format": "csv"})
    assert as_csv.status_code == 200, as_csv.text
    header, row = as_csv.text.splitlines()
    assert header == '"l","s","m","u","i","v","n"'
    assert row.startswith('"[1,2]","{""a"":1,""b"":[""x""]}","[[1,2]]","1","[0,1,0]",') and row.endswith(",")
