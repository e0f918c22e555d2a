"""The PostgreSQL endpoint, driven by real clients: psql, psycopg 3, psycopg2 + SQLAlchemy, pgJDBC."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from conftest import BOTH_BACKENDS, Lakehose, backend_for, free_port
from lake_support import wait_for_count

EVENTS = [
    {"user_id": "u1", "level": 3, "score": 1.5, "items": ["a", "b c"],
     "finished_at": "2026-01-01T10:00:00+02:00", "ts": "2026-01-01T08:00:00.123456Z"},
    {"user_id": "ünï-😀", "level": 4, "ts": "2026-01-02T00:00:00Z"},
]

SLOW = "SELECT sum(hash(a.range + b.range)) FROM range(100000000) a, range(100) b"


class Lake:
    def __init__(self, lh: Lakehose, pg_port: int, http: httpx.Client) -> None:
        self.lh = lh
        self.pg_port = pg_port
        self.http = http

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        kwargs.setdefault("password", self.lh.token)
        return psycopg.connect(host="127.0.0.1", port=self.pg_port, user="bi", dbname="lake",
                               connect_timeout=10, **kwargs)

    def psql(self, *commands: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        args = ["psql", "-X", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "bi", "-d", "lake",
                "-v", "ON_ERROR_STOP=1"]
        for command in commands:
            args += ["-c", command]
        return subprocess.run(args, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PGPASSWORD": token or self.lh.token})


def start(lh: Lakehose, env: dict[str, str] | None = None) -> Iterator[Lake]:
    """An `up` with two events landed; ``env`` adds settings (tests/integration/test_readonly_sql.py)."""
    lh.create_stream("level_complete")
    pg_port = free_port()
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.5",
                                  "LAKEHOSE_QUERY__ROW_LIMIT": "100000",
                                  "LAKEHOSE_QUERY__TIMEOUT_SECONDS": "3",
                                  "LAKEHOSE_PGWIRE__PORT": str(pg_port), **(env or {})}).start()
    writer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    assert writer.post("/v1/streams/level_complete/events", json=EVENTS).json()["accepted"] == 2
    reader = lh.reader(server)
    wait_for_count(reader, "level_complete", 2)
    yield Lake(lh, pg_port, reader)
    lh.close()


@pytest.fixture(scope="module")
def lake(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    """One loaded `up` shared by the module: the tests only read."""
    with backend_for("embedded", request) as backend:
        yield from start(Lakehose(tmp_path_factory.mktemp("pgwire") / "data", backend.config,
                                  backend.services))


# --- psql -----------------------------------------------------------------------------------

def test_psql_queries_and_meta_commands(lake: Lake) -> None:
    out = lake.psql("SELECT user_id, level FROM events.level_complete ORDER BY level; SELECT 2 AS two")
    assert out.returncode == 0, out.stderr
    assert "ünï-😀" in out.stdout and " two" in out.stdout and "(2 rows)" in out.stdout
    out = lake.psql(r"\l", r"\dn", r"\dt events.*", r"\d events.level_complete")
    assert out.returncode == 0, out.stderr
    assert "lakehose" in out.stdout  # \l
    assert " events " in out.stdout  # \dn
    assert "level_complete | table" in out.stdout  # \dt
    assert 'Table "events.level_complete"' in out.stdout
    assert "finished_at | timestamp with time zone" in out.stdout.replace("  ", " ").replace("  ", " ")


def test_bad_password_is_refused_clearly(lake: Lake) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed.*read token"):
        psycopg.connect(host="127.0.0.1", port=lake.pg_port, user="bi", password="nope", connect_timeout=5)
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(lake.pg_port), "-U", "bi", "-c", "SELECT 1"],
                         capture_output=True, text=True, env={**os.environ, "PGPASSWORD": lake.lh.key})
    assert out.returncode != 0 and "password authentication failed" in out.stderr


# --- psycopg 3 --------------------------------------------------------------------------------

@pytest.mark.parametrize("binary", [False, True])
def test_psycopg_types_round_trip(lake: Lake, binary: bool) -> None:
    with lake.connect(autocommit=True) as conn:
        cur = conn.cursor(binary=binary)
        row = cur.execute(
            "SELECT 1::SMALLINT, 2::INTEGER, 3::BIGINT, 1.5::FLOAT, 2.5::DOUBLE, 1.25::DECIMAL(10,3), "
            "true, 'héllo', DATE '2024-01-02', TIMESTAMP '2024-01-02 03:04:05.5', "
            "TIMESTAMPTZ '2024-01-02 03:04:05.25+05:30', '6f1c8e4e-0c4b-4b7e-9a7e-1c1c1c1c1c1c'::UUID, "
            "'{\"a\": [1, null]}'::JSON, [1, 2, NULL], ['a', 'b c', NULL], NULL::INTEGER, "
            "INTERVAL 3 DAY").fetchone()
        assert row == (1, 2, 3, 1.5, 2.5, Decimal("1.250"), True, "héllo", dt.date(2024, 1, 2),
                       dt.datetime(2024, 1, 2, 3, 4, 5, 500000),
                       dt.datetime(2024, 1, 1, 21, 34, 5, 250000, tzinfo=dt.UTC),
                       uuid.UUID("6f1c8e4e-0c4b-4b7e-9a7e-1c1c1c1c1c1c"), {"a": [1, None]},
                       [1, 2, None], ["a", "b c", None], None, dt.timedelta(days=3))
        oids = [d.type_code for d in cur.description]
        assert oids == [21, 23, 20, 700, 701, 1700, 16, 25, 1082, 1114, 1184, 2950, 114, 1007, 1009, 23, 1186]
        # DuckDB types PostgreSQL lacks: the nearest exact form (numeric, microseconds, JSON text)
        assert cur.execute("SELECT 18446744073709551615::UBIGINT, TIMESTAMP_NS '2024-01-01 10:00:00.123456789', "
                           "{'a': 1, 'b': [1, 2]}, 'abc'::BLOB").fetchone() == (
            Decimal("18446744073709551615"), dt.datetime(2024, 1, 1, 10, 0, 0, 123456),
            '{"a": 1, "b": [1, 2]}', b"abc")


def test_psycopg_lake_rows_keep_zones_unicode_and_nulls(lake: Lake) -> None:
    with lake.connect(autocommit=True) as conn:
        rows = conn.execute("SELECT user_id, items, finished_at, ts, score FROM events.level_complete "
                            "ORDER BY level").fetchall()
        assert rows[0] == ("u1", ["a", "b c"], dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC),
                           dt.datetime(2026, 1, 1, 8, 0, 0, 123456, tzinfo=dt.UTC), 1.5)
        assert rows[1][0] == "ünï-😀" and rows[1][1:3] == (None, None)
        conn.execute("SET TimeZone TO 'Asia/Kolkata'")
        (stamp,) = conn.execute("SELECT finished_at FROM events.level_complete WHERE level = 3").fetchone()
        assert stamp.utcoffset() == dt.timedelta(hours=5, minutes=30)
        assert stamp == dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC)
        assert conn.execute("SHOW TimeZone").fetchone() == ("Asia/Kolkata",)


def test_psycopg_server_side_parameters_and_prepared_statements(lake: Lake) -> None:
    with lake.connect(autocommit=True) as conn:
        sql = "SELECT count(*) FROM events.level_complete WHERE level >= %s AND user_id <> %s"
        for _ in range(3):
            assert conn.execute(sql, [3, "nobody"], prepare=True).fetchone() == (2,)
        assert conn.execute(sql, [4, "nobody"], prepare=True).fetchone() == (1,)
        stamp = dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
        assert conn.execute("SELECT %s::TIMESTAMPTZ, %s, %b::BIGINT, %s::DATE",
                            [stamp, "ü'x", 7, dt.date(2024, 2, 29)]).fetchone() == (
            stamp, "ü'x", 7, dt.date(2024, 2, 29))


def test_psycopg_named_cursor_fetches_in_chunks(lake: Lake) -> None:
    with lake.connect() as conn:  # a transaction: named cursors live in one
        with conn.cursor(name="chunks") as cur:
            cur.itersize = 1000
            cur.execute("SELECT i FROM range(2500) t(i) WHERE i >= %s ORDER BY i", [100])
            assert cur.fetchmany(10) == [(i,) for i in range(100, 110)]
            assert [r[0] for r in cur.fetchall()] == list(range(110, 2500))


def test_large_result_up_to_the_row_limit(lake: Lake) -> None:
    with lake.connect(autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        started = time.perf_counter()
        rows = conn.execute("SELECT i, 'row ' || i, TIMESTAMPTZ '2026-01-01' + i * INTERVAL 1 SECOND "
                            "FROM range(100001) t(i) ORDER BY i").fetchall()
        elapsed = time.perf_counter() - started
        assert len(rows) == 100_000 and notices == ["the result was cut to 100000 rows (the server's "
                                                    "query row_limit)"]
        assert rows[-1] == (99_999, "row 99999", dt.datetime(2026, 1, 2, 3, 46, 39, tzinfo=dt.UTC))
        assert elapsed < 30


def test_writes_and_errors_get_sqlstates(lake: Lake) -> None:
    with lake.connect(autocommit=True) as conn:
        for sql in ("INSERT INTO events.level_complete (user_id) VALUES ('x')",
                    "DROP VIEW events.level_complete", "CREATE TABLE t AS SELECT 1"):
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute(sql)
        with pytest.raises(psycopg.errors.SyntaxError):
            conn.execute("SELEC 1")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM events.nope")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM read_csv('/etc/passwd')")
        with pytest.raises(psycopg.errors.QueryCanceled, match="longer than 3 s"):
            conn.execute(SLOW)
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the session goes on


def test_cancel_request_interrupts_the_query(lake: Lake) -> None:
    with lake.connect(autocommit=True) as conn:
        timer = threading.Timer(0.5, conn.cancel_safe)
        timer.start()
        started = time.perf_counter()
        with pytest.raises(psycopg.errors.QueryCanceled, match="user request"):
            conn.execute(SLOW)
        assert time.perf_counter() - started < 4
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_transactions_and_session_commands(lake: Lake) -> None:
    with lake.connect() as conn:  # psycopg opens a transaction (BEGIN) before the first query
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM nope")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT version(), current_schema(), current_database()").fetchone() == (
            "PostgreSQL 16.0 (lakehose on DuckDB 1.5.5)", "events", "lakehose")
        assert conn.execute("SHOW transaction isolation level").fetchone() == ("read committed",)
        assert conn.info.backend_pid == conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        conn.commit()


def test_information_schema_as_bi_tools_read_it(lake: Lake) -> None:
    """Grafana and Superset list tables and columns from information_schema."""
    with lake.connect(autocommit=True) as conn:
        tables = conn.execute("SELECT quote_ident(table_name), table_type FROM information_schema.tables "
                              "WHERE table_schema = 'events' ORDER BY 1").fetchall()
        assert tables == [("_rejected", "BASE TABLE"), ("level_complete", "BASE TABLE")]
        columns = conn.execute("SELECT column_name, data_type, udt_name FROM information_schema.columns "
                               "WHERE table_schema = 'events' AND table_name = 'level_complete' "
                               "ORDER BY ordinal_position").fetchall()
        assert ("finished_at", "timestamp with time zone", "timestamptz") in columns
        assert ("items", "ARRAY", "_text") in columns
        assert conn.execute("SELECT schema_name FROM information_schema.schemata").fetchall() == [("events",)]


def test_many_concurrent_clients(lake: Lake) -> None:
    results: list[int] = []

    def client() -> None:
        with lake.connect(autocommit=True) as conn:
            for _ in range(5):
                (count,) = conn.execute("SELECT count(*) FROM events.level_complete").fetchone()  # type: ignore[misc]
                results.append(count)

    threads = [threading.Thread(target=client) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [2] * 100


# --- psycopg2 + SQLAlchemy ----------------------------------------------------------------------

def test_sqlalchemy_reflection_with_psycopg2(lake: Lake) -> None:
    engine = sa.create_engine(f"postgresql+psycopg2://bi:{lake.lh.token}@127.0.0.1:{lake.pg_port}/lake")
    try:
        inspector = sa.inspect(engine)
        assert "events" in inspector.get_schema_names()
        assert set(inspector.get_table_names(schema="events")) == {"level_complete", "_rejected"}
        columns = {c["name"]: c["type"] for c in inspector.get_columns("level_complete", schema="events")}
        assert isinstance(columns["level"], sa.BIGINT)
        assert isinstance(columns["finished_at"], sa.TIMESTAMP) and columns["finished_at"].timezone
        assert isinstance(columns["items"], sa.ARRAY)
        # what Superset's metadata browser asks besides: the lake has no keys, indexes or views
        assert inspector.has_table("level_complete", schema="events")
        assert inspector.default_schema_name == "events"
        assert inspector.get_pk_constraint("level_complete", schema="events")["constrained_columns"] == []
        assert inspector.get_foreign_keys("level_complete", schema="events") == []
        assert inspector.get_indexes("level_complete", schema="events") == []
        assert inspector.get_view_names(schema="events") == []
        assert inspector.get_table_comment("level_complete", schema="events") == {"text": None}
        table = sa.Table("level_complete", sa.MetaData(), autoload_with=engine, schema="events")
        with engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(table).where(table.c.level >= sa.bindparam("lv"))
            assert conn.execute(query, {"lv": 4}).scalar() == 1
    finally:
        engine.dispose()


# --- pgJDBC -----------------------------------------------------------------------------------

JDBC_JAR = Path("/usr/share/java/postgresql.jar")
JAVA_TEST = """
import java.sql.*;
public class PgTest {
  public static void main(String[] a) throws Exception {
    try (Connection c = DriverManager.getConnection(a[0], "bi", a[1])) {
      DatabaseMetaData md = c.getMetaData();
      try (ResultSet rs = md.getTables(null, "events", "%", new String[]{"TABLE"})) {
        while (rs.next()) System.out.println("table " + rs.getString("TABLE_NAME"));
      }
      try (ResultSet rs = md.getColumns(null, "events", "level_complete", "%")) {
        while (rs.next()) System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME"));
      }
      try (PreparedStatement ps = c.prepareStatement(
          "SELECT user_id, finished_at FROM events.level_complete WHERE level = ?")) {
        ps.setInt(1, 3);
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) System.out.println("row " + rs.getString(1) + " " + rs.getObject(2, java.time.OffsetDateTime.class));
        }
      }
    }
  }
}
"""


@pytest.mark.skipif(not JDBC_JAR.exists() or shutil.which("java") is None,
                    reason="pgJDBC (Debian libpostgresql-jdbc-java) or java is not installed")
def test_jdbc_metadata_and_prepared_statement(lake: Lake, tmp_path: Path) -> None:
    source = tmp_path / "PgTest.java"
    source.write_text(JAVA_TEST)
    out = subprocess.run(["java", "-cp", str(JDBC_JAR), str(source),
                          f"jdbc:postgresql://127.0.0.1:{lake.pg_port}/lake", lake.lh.token],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "table level_complete" in lines
    assert "column finished_at timestamptz" in lines and "column level int8" in lines
    assert "row u1 2026-01-01T08:00Z" in lines


# --- Superset (opt-in: its own venv, a 2-minute install; scripts/test builds and caches it) ------

SUPERSET_PYTHON = os.environ.get("LAKEHOSE_TEST_SUPERSET_PYTHON", "")
SUPERSET_CONFIG = """
SECRET_KEY = "test-only-not-secret-0123456789abcdef"
SQLALCHEMY_DATABASE_URI = "sqlite:///{home}/superset.db"
CACHE_CONFIG = DATA_CACHE_CONFIG = {{"CACHE_TYPE": "SimpleCache"}}
FILTER_STATE_CACHE_CONFIG = EXPLORE_FORM_DATA_CACHE_CONFIG = {{"CACHE_TYPE": "SimpleCache"}}
WTF_CSRF_ENABLED = False
TALISMAN_ENABLED = False
"""


@contextlib.contextmanager
def superset_server(home: Path) -> Iterator[httpx.Client]:
    """A real Superset web server on a loopback port, and an httpx client logged in as its admin.

    `superset init` stays: without it the admin role has no permissions and every API call is 403.
    """
    (home / "superset_config.py").write_text(SUPERSET_CONFIG.format(home=home))
    env = {**os.environ, "SUPERSET_CONFIG_PATH": str(home / "superset_config.py")}
    superset = str(Path(SUPERSET_PYTHON).parent / "superset")
    log_path = home / "superset.log"
    with open(log_path, "ab") as log:
        for command in (["db", "upgrade"], ["fab", "create-admin", "--username", "admin", "--password", "admin",
                                            "--firstname", "a", "--lastname", "b", "--email", "a@b.c"], ["init"]):
            done = subprocess.run([superset, *command], stdout=log, stderr=subprocess.STDOUT, env=env, timeout=300)
            assert done.returncode == 0, log_path.read_text()[-3000:]
        port = free_port()
        process = subprocess.Popen([superset, "run", "-h", "127.0.0.1", "-p", str(port), "--with-threads"],
                                   stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        login = client.post("/api/v1/security/login",
                            json={"username": "admin", "password": "admin", "provider": "db", "refresh": False})
        assert login.status_code == 200, login.text
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.skipif(not SUPERSET_PYTHON, reason="set LAKEHOSE_TEST_SUPERSET_PYTHON to the python of a venv "
                                                "with apache-superset, psycopg2-binary, flask-caching==2.3.0")
def test_superset_connects_browses_and_charts_the_lake(lake: Lake, tmp_path: Path) -> None:
    """Superset's REST API, as its web UI drives it: connect, list tables, a dataset, SQL Lab, chart data."""
    uri = f"postgresql+psycopg2://bi:{lake.lh.token}@127.0.0.1:{lake.pg_port}/lakehose"
    with superset_server(tmp_path) as api:
        tested = api.post("/api/v1/database/test_connection/", json={"database_name": "lake", "sqlalchemy_uri": uri})
        assert tested.status_code == 200, tested.text
        created = api.post("/api/v1/database/", json={"database_name": "lake", "sqlalchemy_uri": uri})
        assert created.status_code == 201, created.text
        database_id = created.json()["id"]

        tables = api.get(f"/api/v1/database/{database_id}/tables/", params={"q": "(schema_name:events)"})
        assert tables.status_code == 200, tables.text
        assert {t["value"] for t in tables.json()["result"]} == {"_rejected", "level_complete"}

        dataset = api.post("/api/v1/dataset/", json={"database": database_id, "schema": "events",
                                                     "table_name": "level_complete"})
        assert dataset.status_code == 201, dataset.text
        columns = {c["column_name"]: c for c in api.get(f"/api/v1/dataset/{dataset.json()['id']}").json()
                   ["result"]["columns"]}
        assert columns["ts"]["is_dttm"] and columns["level"]["type"] == "BIGINT"

        lab = api.post("/api/v1/sqllab/execute/", json={
            "database_id": database_id, "schema": "events", "runAsync": False,
            "sql": "SELECT user_id, level FROM events.level_complete ORDER BY level"})
        assert lab.status_code == 200, lab.text
        assert lab.json()["data"] == [{"user_id": "u1", "level": 3}, {"user_id": "ünï-😀", "level": 4}]

        chart = api.post("/api/v1/chart/data", json={
            "datasource": {"id": dataset.json()["id"], "type": "table"},
            "queries": [{"columns": ["level"], "metrics": ["count"], "orderby": [["level", True]]}],
            "result_format": "json", "result_type": "full"})
        assert chart.status_code == 200, chart.text
        with lake.connect(autocommit=True) as conn:
            expected = conn.execute("SELECT level, count(*) FROM events.level_complete GROUP BY level "
                                    "ORDER BY level").fetchall()
        assert [(r["level"], r["count"]) for r in chart.json()["result"][0]["data"]] == expected == [(3, 1), (4, 1)]


# --- the CLI ---------------------------------------------------------------------------------

def test_serve_pg_port_flag_and_a_busy_port(lh: Lakehose) -> None:
    """--pg-port chooses the port; a port in use is logged and HTTP serves on regardless."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        blocked = lh.server("serve", "--pg-port", str(taken)).start()
        assert lh.reader(blocked).get("/v1/tables").status_code == 200
        assert "pgwire_listen_failed" in blocked.log_path.read_text()
    port = free_port()
    lh.server("serve", "--pg-port", str(port)).start()
    with psycopg.connect(host="127.0.0.1", port=port, user="bi", password=lh.token) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("lakehose",)


# --- both backends ------------------------------------------------------------------------------

@BOTH_BACKENDS
def test_lake_is_served_on_both_backends(lh: Lakehose) -> None:
    for lake in start(lh):
        with lake.connect(autocommit=True) as conn:
            assert conn.execute("SELECT count(*), max(level) FROM events.level_complete").fetchone() == (2, 4)
