"""The catalog in PostgreSQL and the lake on an S3-API server, run through the CLI and HTTP.

Real servers, no mocks: the session's PostgreSQL cluster and moto S3 server
(``tests/services.py``), a fresh database and bucket per data folder. The log
stays the default ``wal://`` in the data folder; only ``[catalog] uri`` and
``[lake] warehouse`` / ``s3_*`` move (the ``backend`` fixture's "scaled" set
moves the log to Kafka as well).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import Lakehose, Server, free_port
from lake_support import query, wait_for_count

CANARY = "canary-0f3c1e"  # the only value of the files outside the warehouse


@pytest.fixture(scope="module")
def postgres(postgres_service: Any) -> Any:
    return postgres_service


@pytest.fixture(scope="module")
def s3(s3_service: Any) -> Any:
    return s3_service


class ScaledHome:
    """A data folder whose config puts the catalog in a fresh database and the lake in a fresh bucket."""

    def __init__(self, data_dir: Path, postgres: Any, s3: Any) -> None:
        self.name = "lh_" + uuid.uuid4().hex[:12]
        self.data_dir = data_dir
        self.postgres = postgres
        self.s3 = s3
        self.catalog_uri = postgres.create_database(self.name)
        self.bucket = s3.create_bucket(self.name.replace("_", "-"))
        self.buckets = [self.bucket]
        self.warehouse = f"s3://{self.bucket}/wh"
        data_dir.mkdir(parents=True)
        (data_dir / "lakehose.toml").write_text(
            f'[catalog]\nuri = "{self.catalog_uri}"\n\n'
            f'[lake]\nwarehouse = "{self.warehouse}"\ns3_endpoint = "{s3.endpoint}"\n'
            f's3_region = "{s3.region}"\ns3_access_key_id = "{s3.access_key}"\n'
            f's3_secret_access_key = "{s3.secret_key}"\n')

    def close(self) -> None:
        """Drop the database and the buckets: the servers are shared by the whole session."""
        for bucket in self.buckets:
            with contextlib.suppress(Exception):
                self.s3.delete_bucket(bucket)
        with contextlib.suppress(Exception):
            self.postgres.drop_database(self.name)

    def keys(self, prefix: str = "") -> list[str]:
        client = self.s3.client()
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def iceberg_tables(self) -> list[tuple[str, str, str, str]]:
        with psycopg.connect(self.catalog_uri) as conn:
            return list(conn.execute("SELECT catalog_name, table_namespace, table_name, metadata_location "
                                     "FROM iceberg_tables ORDER BY table_name").fetchall())


def level_events(count: int, tag: str, with_type: bool = True) -> list[dict[str, Any]]:
    return [{**({"type": "level_complete"} if with_type else {}), "user_id": f"{tag}{i}",
             "level": i % 30 + 1, "score": i / 4, "device": {"os": "ios"},
             "ts": f"2026-0{i % 3 + 1}-10T08:00:00Z"} for i in range(count)]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, postgres: Any,
           s3: Any) -> Iterator[tuple[ScaledHome, Lakehose, httpx.Client]]:
    """`lakehose up` on PostgreSQL + S3 with 600 events delivered; the tests only read."""
    home = ScaledHome(tmp_path_factory.mktemp("s3pg") / "data", postgres, s3)
    lh = Lakehose(home.data_dir)
    lh.create_stream("level_complete")
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.5"}).start()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"},
                      timeout=30) as writer:
        for part in range(3):
            response = writer.post("/v1/events", json=level_events(200, f"p{part}-"))
            assert response.json()["accepted"] == 200, response.text
    reader = lh.reader(server)
    wait_for_count(reader, "level_complete", 600, timeout=60)
    yield home, lh, reader
    reader.close()
    lh.close()
    home.close()


def test_events_land_in_the_bucket_and_the_catalog_in_postgres(loaded) -> None:  # type: ignore[no-untyped-def]
    home, _, reader = loaded
    rows = query(reader, "SELECT count(*), count(DISTINCT event_id), min(level), max(level), "
                         "sum(score), any_value(device) FROM events.level_complete")
    assert rows == [[600, 600, 1, 30, 3 * sum(i / 4 for i in range(200)), {"os": "ios", "model": None}]]
    assert query(reader, "SELECT user_id FROM level_complete WHERE user_id = 'p2-7'") == [["p2-7"]]

    data = [k for k in home.keys("wh/events/level_complete/data/") if k.endswith(".parquet")]
    assert data, home.keys()
    assert {k.split("/")[4] for k in data} == {"ts_day=2026-01-10", "ts_day=2026-02-10", "ts_day=2026-03-10"}
    assert any(k.endswith(".metadata.json") for k in home.keys("wh/events/level_complete/metadata/"))
    body = home.s3.client().get_object(Bucket=home.bucket, Key=data[0])["Body"].read()
    assert pq.read_table(io.BytesIO(body)).num_rows > 0

    tables = {name: (catalog, namespace, location) for catalog, namespace, name, location in home.iceberg_tables()}
    assert tables["level_complete"][:2] == ("lakehose", "events")
    assert tables["level_complete"][2].startswith(f"{home.warehouse}/events/level_complete/metadata/")
    assert all(location.startswith(home.warehouse + "/") for _, _, location in tables.values())
    # Nothing of the catalog or the lake in the data folder: only the config and the log.
    assert not (home.data_dir / "warehouse").exists()
    assert not (home.data_dir / "catalog.db").exists()


def _outside_files(home: ScaledHome, tmp_path: Path) -> dict[str, str]:
    """Canary Parquet files around the warehouse: other bucket, other prefixes, a local file."""
    buffer = io.BytesIO()
    pq.write_table(pa.table({"secret": [CANARY]}), buffer)
    client = home.s3.client()
    other = home.s3.create_bucket(f"{home.bucket}-other")
    home.buckets.append(other)
    for bucket, key in [(other, "canary.parquet"), (other, "wh/canary.parquet"),
                        (home.bucket, "outside/canary.parquet"), (home.bucket, "wh2/canary.parquet")]:
        client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    local = tmp_path / "canary.parquet"
    local.write_bytes(buffer.getvalue())
    return {"other": other, "local": str(local)}


def test_queries_cannot_read_outside_the_warehouse_prefix(loaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home, _, reader = loaded
    where = _outside_files(home, tmp_path)
    bucket, other, endpoint = home.bucket, where["other"], home.s3.endpoint
    inside = next(k for k in home.keys("wh/events/level_complete/data/") if k.endswith(".parquet"))

    # The control: a file inside the prefix is readable by path.
    assert query(reader, f"SELECT count(*) > 0 FROM read_parquet('s3://{bucket}/{inside}')") == [[True]]

    refused = [  # stopped by DuckDB's own sandbox before any request
        f"s3://{other}/canary.parquet",
        f"s3://{other}/wh/canary.parquet",
        f"s3://{bucket}/outside/canary.parquet",
        f"s3://{bucket}/wh2/canary.parquet",  # shares the string prefix "wh", not the directory
        f"s3://{bucket}//wh/../outside/canary.parquet",
        f"S3://{bucket}/outside/canary.parquet",
        f"s3a://{bucket}/outside/canary.parquet",
        f"s3n://{other}/canary.parquet",
        f"r2://{other}/canary.parquet",
        f"gcs://{other}/canary.parquet",
        f"{endpoint}/{other}/canary.parquet",  # the S3 server spoken to as plain HTTP
        f"{endpoint}/{bucket}/{inside}",
        where["local"],
        f"file://{where['local']}",
    ]
    for path in refused:
        response = reader.post("/v1/query", json={"sql": f"SELECT * FROM read_parquet('{path}')"})
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"] == "query_refused" and CANARY not in response.text

    escapes = [  # pass the prefix check as written; must not reach the file they point at
        f"s3://{bucket}/wh/../outside/canary.parquet",
        f"s3://{bucket}/wh/../../{other}/canary.parquet",
        f"s3://{bucket}/wh/events/../../wh2/canary.parquet",
        f"s3://{bucket}/wh/%2E%2E/outside/canary.parquet",
        f"s3://{bucket}/wh/../outside/*.parquet",
        # query parameters would override the secret (endpoint, keys, URL style)
        f"s3://{bucket}/{inside}?s3_endpoint=127.0.0.1:{free_port()}",
        f"s3://{bucket}/wh/canary.parquet?s3_endpoint=127.0.0.1:{home.s3.port}/{other}",
    ]
    for path in escapes:
        response = reader.post("/v1/query", json={"sql": f"SELECT * FROM read_parquet('{path}')"})
        assert response.status_code in (400, 403), (path, response.text)
        assert CANARY not in response.text, path
        assert "Could not establish connection" not in response.text, (path, response.text)
    # Built at run time, so no check of the query text could see the path.
    dynamic = (f"SELECT * FROM read_parquet('s3://{bucket}/wh/' || repeat('../', 2) || "
               f"'{other}/canary.parquet')")
    response = reader.post("/v1/query", json={"sql": dynamic})
    assert response.status_code in (400, 403) and CANARY not in response.text, response.text

    for sql in [f"SELECT * FROM glob('s3://{other}/*')", f"SELECT * FROM glob('s3://{bucket}/*')",
                f"SELECT * FROM read_text('s3://{bucket}/outside/canary.parquet')",
                f"SELECT * FROM read_blob('s3://{other}/canary.parquet')",
                "SELECT secret_string FROM duckdb_secrets(redact := false)",
                "SET s3_url_compatibility_mode = false",
                "SET httpfs_client_implementation = 'curl'",
                "CREATE SECRET other (TYPE s3, KEY_ID 'test', SECRET 'test')"]:
        response = reader.post("/v1/query", json={"sql": sql})
        assert response.status_code in (400, 403), (sql, response.text)
        assert CANARY not in response.text
    # The table still answers after all that.
    assert query(reader, "SELECT count(*) FROM level_complete") == [[600]]


def _start_all(servers: list[Server]) -> None:
    """Start every process at once, then wait for each: they race on the fresh database."""
    for server in servers:
        server.start(wait_path=None)
    deadline = time.monotonic() + 90
    for server in servers:
        assert server.process is not None
        while True:
            if server.process.poll() is not None:
                raise AssertionError(f"{server.command} exited:\n{server.log_path.read_text()}")
            if server.port is None:
                break
            try:
                if httpx.get(server.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, server.log_path.read_text()
            time.sleep(0.1)


def test_collectors_delivery_and_query_server_start_together_on_a_fresh_database(
        tmp_path: Path, postgres: Any, s3: Any) -> None:
    """2 collectors, the delivery worker and a query server against an empty database and bucket.

    One ``wal://`` log has one delivery process (it holds a lock on the log);
    several workers need the Kafka log.
    """
    home = ScaledHome(tmp_path / "data", postgres, s3)
    env = {"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.5"}
    servers = [Server(["collector"], home.data_dir, free_port(), env),
               Server(["collector", "--with-query"], home.data_dir, free_port(), env),
               Server(["deliver", "--max-seconds", "0.5"], home.data_dir, None, env),
               Server(["serve"], home.data_dir, free_port(), env)]
    try:
        _start_all(servers)
        time.sleep(2)  # the workers opened the catalog by now, or are about to
        for server in servers:
            assert server.process is not None and server.process.poll() is None, server.log_path.read_text()
        # The catalog tables exist; the only Iceberg table is the one for rejected events.
        assert [row[2] for row in home.iceberg_tables()] in ([], ["_rejected"])

        lh = Lakehose(home.data_dir)
        lh.servers += servers
        lh.create_stream("level_complete")
        collectors = servers[:2]
        for number, collector in enumerate(collectors):
            with httpx.Client(base_url=collector.url, headers={"Authorization": f"Bearer {lh.key}"},
                              timeout=30) as writer:
                deadline = time.monotonic() + 30
                while True:  # until the collector's registry refresh has seen the new stream
                    response = writer.post("/v1/events", json=level_events(150, f"c{number}-"))
                    if response.status_code == 200 and response.json()["accepted"] == 150:
                        break
                    assert time.monotonic() < deadline, response.text
                    time.sleep(0.3)
        for query_server in (servers[3], servers[1]):
            with lh.reader(query_server) as reader:
                wait_for_count(reader, "level_complete", 300, timeout=60)
                assert query(reader, "SELECT count(DISTINCT user_id) FROM level_complete") == [[300]]
        for server in servers:
            assert server.process is not None and server.process.poll() is None, server.log_path.read_text()
        assert any(k.endswith(".parquet") for k in home.keys("wh/events/level_complete/data/"))
        assert not (home.data_dir / "warehouse").exists()
    finally:
        for server in servers:
            server.kill()
        home.close()


def test_cli_commands_at_once_on_a_fresh_database(tmp_path: Path, postgres: Any, s3: Any) -> None:
    """Registry tables, catalog tables and the namespace created by whichever process comes first."""
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "object", "properties": {"user_id": {"type": "string"}}}')
    for round_ in range(2):
        home = ScaledHome(tmp_path / f"data{round_}", postgres, s3)
        commands = [["streams", "create", f"s{i}", "--schema", str(schema)] for i in range(4)]
        commands += [["keys", "create", "k0"], ["tokens", "create", "t0", "--admin"]]
        processes = [subprocess.Popen([sys.executable, "-m", "lakehose", *command,
                                       "--data-dir", str(home.data_dir)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for command in commands]
        try:
            for command, process in zip(commands, processes):
                out, err = process.communicate(timeout=120)
                assert process.returncode == 0, (command, out, err)
            names = sorted(row[2] for row in home.iceberg_tables() if row[2] != "_rejected")
            assert names == ["s0", "s1", "s2", "s3"]
        finally:
            home.close()
