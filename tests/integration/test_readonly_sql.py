"""Attacks on the read-only promise and the per-query caps, over HTTP and the PostgreSQL endpoint.

A read token sends every wrapper of a write in tests/unit/test_readonly.py (with the path of
a live data file in the COPY ones) to ``/v1/query``, ``/v1/charts`` (saved, then run) and,
through psycopg and psql, to the PostgreSQL endpoint; afterwards every file under the
warehouse has the same bytes, every table the same count, and the views still answer.
The same server runs with small ``[query]`` caps, and each cap is attacked.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from lakehose.ui.saved import Saved

from conftest import Lakehose, backend_for
from lake_support import query
from readonly_attacks import ATTACKS, DATA_FILE
from test_pgwire import Lake, start

SLOW = "SELECT sum(hash(a.range + b.range)) FROM range(100000000) a, range(100) b"
CAPS = {"LAKEHOSE_QUERY__MEMORY_LIMIT_BYTES": str(96 << 20), "LAKEHOSE_QUERY__SPILL_LIMIT_BYTES": str(16 << 20),
        "LAKEHOSE_QUERY__MAX_RESULT_BYTES": str(1 << 20), "LAKEHOSE_QUERY__MAX_CONCURRENT": "2",
        "LAKEHOSE_QUERY__QUEUE_SECONDS": "0.2", "LAKEHOSE_QUERY__TIMEOUT_SECONDS": "30",
        "LAKEHOSE_MAINTENANCE__INTERVAL_SECONDS": "86400"}
TABLES = ["events.level_complete", "events._rejected"]
# answered by the PostgreSQL endpoint itself (session state of its own), never sent to DuckDB
SESSION_COMMANDS = ("SET", "RESET", "BEGIN")


@pytest.fixture(scope="module")
def lake(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    with backend_for("embedded", request) as backend:
        lh = Lakehose(tmp_path_factory.mktemp("readonly") / "data", backend.config, backend.services)
        yield from start(lh, CAPS)


@pytest.fixture(scope="module")
def reader(lake: Lake) -> httpx.Client:
    """A client with a read token (not admin), once the server knows the token (it reloads each second)."""
    token = lake.lh.run("tokens", "create", "reader").stdout.strip()
    client = httpx.Client(base_url=str(lake.http.base_url), headers={"Authorization": f"Bearer {token}"},
                          timeout=30)
    deadline = time.monotonic() + 15
    while client.get("/v1/tables").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    return client


def token_of(reader: httpx.Client) -> str:
    return reader.headers["Authorization"].removeprefix("Bearer ")


def warehouse_state(lake: Lake) -> tuple[dict[str, str], dict[str, int]]:
    files = {str(p.relative_to(lake.lh.data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((lake.lh.data_dir / "warehouse").rglob("*")) if p.is_file()}
    counts = {table: query(lake.http, f"SELECT count(*) FROM {table}")[0][0] for table in TABLES}
    return files, counts


def with_live_file(sql: str, lake: Lake) -> str:
    live = next((lake.lh.data_dir / "warehouse").rglob("*.parquet"))
    return sql.replace(DATA_FILE, str(live))


def test_no_wrapper_writes_over_http_psycopg_psql_or_a_saved_chart(lake: Lake, reader: httpx.Client) -> None:
    before = warehouse_state(lake)
    assert any(path.endswith(".parquet") for path in before[0]) and before[1]["events.level_complete"] == 2
    for sql in ATTACKS:
        answer = reader.post("/v1/query", json={"sql": with_live_file(sql, lake)})
        assert answer.status_code in (400, 403), (sql, answer.text)
        assert answer.json()["error"] in ("query_refused", "query_failed"), sql
    with lake.connect(autocommit=True, password=token_of(reader)) as conn:
        for sql in ATTACKS:
            try:
                conn.execute(with_live_file(sql, lake).encode())
            except psycopg.Error:
                continue
            # a simple query may hold several statements, each checked: two SELECTs are two reads
            harmless = sql.split()[0].upper() in SESSION_COMMANDS or sql == "SELECT 1; SELECT 2"
            assert harmless, f"{sql!r} ran over the PostgreSQL endpoint"
    explain_copy = with_live_file(ATTACKS[0], lake)
    for sql in (explain_copy, "EXPLAIN ANALYZE DROP VIEW events.level_complete",
                "SELECT * FROM query('SELECT 1')"):
        psql = lake.psql(sql, token=token_of(reader))
        assert psql.returncode != 0 and "read-only" in psql.stderr, psql.stderr
    # a saved chart is checked when saved, and its SQL again whenever it runs (the UI runs it
    # through /v1/query); the saved form of an attack is refused at both points
    admin = lake.http
    refused = admin.post("/v1/charts", json={"name": "x", "sql": "EXPLAIN ANALYZE DROP VIEW events.level_complete"})
    assert refused.status_code == 403 and refused.json()["error"] == "query_refused"
    assert warehouse_state(lake) == before
    assert query(reader, "SELECT count(*) FROM level_complete") == [[2]]
    with lake.connect(password=token_of(reader)) as conn:
        assert conn.execute("SELECT count(*) FROM events.level_complete").fetchone() == (2,)


def test_a_chart_saved_before_the_check_is_refused_when_it_runs(lake: Lake, reader: httpx.Client) -> None:
    """A chart row written straight into the catalog (as an older lakehose could have saved it)
    is run as the UI runs it, its SQL through /v1/query, and refused there."""
    before = warehouse_state(lake)
    attack = with_live_file(ATTACKS[0], lake)
    stored = Saved(f"sqlite:///{lake.lh.data_dir / 'catalog.db'}").charts.create("old", {"viz": "table", "sql": attack})
    chart = reader.get(f"/v1/charts/{stored.id}").json()
    answer = reader.post("/v1/query", json={"sql": chart["sql"]})
    assert answer.status_code == 403 and answer.json()["error"] == "query_refused"
    assert warehouse_state(lake) == before


def test_temporary_objects_die_with_their_query(lake: Lake, reader: httpx.Client) -> None:
    answer = reader.post("/v1/query", json={"sql": "SELECT count(*) FROM duckdb_tables() WHERE temporary"})
    assert answer.json()["rows"] == [[0]]


def test_result_bytes_over_the_cap_are_refused_naming_the_setting(lake: Lake, reader: httpx.Client) -> None:
    answer = reader.post("/v1/query", json={"sql": "SELECT repeat('x', 3000000) AS big"})
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "limit_reached" and body["setting"] == "query.max_result_bytes"
    assert "[query] max_result_bytes" in body["reason"]
    assert query(reader, "SELECT length(repeat('x', 1000))") == [[1000]]


@pytest.mark.parametrize(("sql", "setting"), [
    ("SELECT list(repeat('y', 100)) FROM range(3000000)", "memory_limit_bytes"),
    ("SELECT count(*) FROM (SELECT * FROM range(20000000) ORDER BY random())", "spill_limit_bytes"),
])
def test_memory_and_spill_over_the_cap_fail_clearly_and_the_server_stays_up(
        lake: Lake, reader: httpx.Client, sql: str, setting: str) -> None:
    answer = reader.post("/v1/query", json={"sql": sql})
    assert answer.status_code == 400, answer.text
    assert answer.json()["setting"] == f"query.{setting}"
    assert query(reader, "SELECT 1") == [[1]]
    spill = lake.lh.data_dir / "query-spill"
    assert spill.is_dir() and sum(p.stat().st_size for p in spill.rglob("*") if p.is_file()) <= 16 << 20


def run_until_canceled(conn: psycopg.Connection[Any]) -> None:
    with contextlib.suppress(psycopg.errors.QueryCanceled):
        conn.execute(SLOW)


def test_concurrent_queries_are_capped_for_http_and_postgres_alike(lake: Lake, reader: httpx.Client) -> None:
    """Two slow queries over the PostgreSQL endpoint take both slots; HTTP and a third session wait
    0.2 s and are refused; the slow ones are then canceled (CancelRequest) and everyone is served."""
    holders = [lake.connect(autocommit=True) for _ in range(2)]
    slow = [threading.Thread(target=run_until_canceled, args=(conn,)) for conn in holders]
    for thread in slow:
        thread.start()
    deadline = time.monotonic() + 10
    busy = reader.post("/v1/query", json={"sql": "SELECT 1"})
    while busy.status_code == 200 and time.monotonic() < deadline:
        busy = reader.post("/v1/query", json={"sql": "SELECT 1"})
    assert busy.status_code == 429, busy.text
    assert busy.headers["Retry-After"] == "1" and "max_concurrent" in busy.json()["reason"]
    with lake.connect(autocommit=True) as conn, pytest.raises(psycopg.Error) as refused:
        conn.execute("SELECT 1")
    assert refused.value.sqlstate == "53300"
    for conn, thread in zip(holders, slow):
        conn.cancel()
        thread.join(timeout=30)
        conn.close()
    assert query(reader, "SELECT 1") == [[1]]
    with lake.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_spill_folder_is_inside_the_data_folder(lake: Lake) -> None:
    assert Path(query(lake.http, "SELECT current_setting('temp_directory')")[0][0]) == \
        lake.lh.data_dir.resolve() / "query-spill"
