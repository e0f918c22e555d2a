"""The read-only check in process, over every wrapper of a write found so far (fast: no server).

The same list is sent over HTTP and the PostgreSQL endpoint in
tests/integration/test_readonly_sql.py, which also checks that the lake is unchanged.
"""

from __future__ import annotations

import time

import duckdb
import pytest

from lakehose.errors import QueryFailed, QueryRefused
from lakehose.query.readonly import HARMLESS_VOLATILE, REFUSED, ReadOnlyCheck

DATA_FILE = "/data/warehouse/events/level_complete/data/00000-0-x.parquet"
# every form that wrote, ran SQL or changed shared state in DuckDB 1.5, or could
ATTACKS = [
    f"EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{DATA_FILE}' (FORMAT parquet)",
    "EXPLAIN ANALYZE DROP VIEW events.level_complete",
    "EXPLAIN ANALYZE CREATE OR REPLACE VIEW events.level_complete AS SELECT 1 AS x",
    "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1 AS x",
    "EXPLAIN ANALYZE CREATE MACRO m() AS 1",
    "EXPLAIN ANALYZE INSERT INTO t VALUES (1)",
    "EXPLAIN DROP VIEW events.level_complete",
    "explain analyse drop view events.level_complete",
    "/* x */ EXPLAIN /* y */ ANALYZE DROP VIEW events.level_complete",
    "-- note\nEXPLAIN ANALYZE DROP VIEW events.level_complete",
    "EXPLAIN (ANALYZE) DROP VIEW events.level_complete",
    "EXPLAIN (FORMAT JSON) DROP VIEW events.level_complete",
    "EXPLAIN ANALYZE EXPLAIN ANALYZE DROP VIEW events.level_complete",
    "EXPLAIN ANALYZE SELECT * FROM query('SELECT 1')",
    "EXPLAIN ANALYZE (DROP VIEW events.level_complete)",
    "SELECT * FROM query('SELECT * FROM events.level_complete')",
    "WITH x AS (SELECT 1) SELECT * FROM query('SELECT 2')",
    "SELECT * FROM (SELECT * FROM (SELECT * FROM query('SELECT 3')))",
    "SELECT 1 WHERE EXISTS (SELECT * FROM query('SELECT 3'))",
    "SELECT * FROM system.main.query('SELECT 1')",
    'SELECT * FROM "QUERY"(\'SELECT 1\')',
    "SELECT * FROM query_table('events.level_complete')",
    "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
    "SELECT * FROM checkpoint()",
    "SELECT * FROM force_checkpoint()",
    "SELECT nextval('s')",
    "SELECT * FROM enable_profiling()",
    "SELECT * FROM enable_logging()",
    "SELECT * FROM truncate_duckdb_logs()",
    "SELECT write_log('x')",
    "SELECT * FROM duckdb_secrets()",
    "DESCRIBE SELECT * FROM query('SELECT 1')",
    "SUMMARIZE SELECT * FROM query('SELECT 1')",
    "FROM query('SELECT 1')",
    "PREPARE p AS SELECT 1",
    "PREPARE p AS DROP VIEW events.level_complete",
    "EXECUTE p",
    "PRAGMA enable_profiling",
    "PRAGMA import_database('/tmp/x')",
    "PRAGMA copy_database(memory, other)",
    "PRAGMA force_checkpoint",
    "PRAGMA json_execute_serialized_sql('{}')",
    "PRAGMA show_tables; DROP VIEW events.level_complete",
    "CALL checkpoint()",
    "CALL enable_profiling()",
    "SET memory_limit = '100GB'",
    "SET GLOBAL enable_external_access = true",
    "SET VARIABLE v = 1",
    "RESET memory_limit",
    "ATTACH ':memory:' AS m",
    "DETACH memory",
    "USE system",
    "INSTALL httpfs",
    "LOAD httpfs",
    "EXPORT DATABASE '/tmp/x'",
    "IMPORT DATABASE '/tmp/x'",
    f"COPY (SELECT 1 AS x) TO '{DATA_FILE}' (FORMAT parquet)",
    "COPY events.level_complete FROM '/tmp/x.csv'",
    "COPY FROM DATABASE memory TO other",
    "CREATE TEMP TABLE t AS SELECT 1 AS x",
    "CREATE TEMP VIEW v AS SELECT 1 AS x",
    "CREATE TEMP MACRO m() AS 1",
    "CREATE OR REPLACE VIEW events.level_complete AS SELECT 1 AS x",
    "CREATE SEQUENCE s",
    "CREATE SECRET (TYPE s3, KEY_ID 'x', SECRET 'y')",
    "CREATE TYPE e AS ENUM ('a')",
    "CREATE SCHEMA s",
    "DROP VIEW events.level_complete",
    "ALTER VIEW events.level_complete RENAME TO x",
    "INSERT INTO t VALUES (1)",
    "UPDATE t SET x = 1",
    "DELETE FROM t",
    "TRUNCATE t",
    "VACUUM",
    "CHECKPOINT",
    "ANALYZE",
    "BEGIN",
    "SELECT 1; DROP VIEW events.level_complete",
    "SELECT 1; SELECT 2",
    "/* a comment */ DROP VIEW events.level_complete",
    "-- a comment\nDROP VIEW events.level_complete",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
]
READS = [
    "SELECT 1",
    "FROM events.level_complete",
    "SELECT level, count(*) FROM events.level_complete WHERE ts > now() - INTERVAL 1 DAY GROUP BY ALL ORDER BY 1",
    "WITH x AS (SELECT 1 AS a) SELECT a, row_number() OVER () FROM x",
    "SELECT list_transform([1, 2], v -> v + 1), random() < 2, uuid() IS NOT NULL",
    "VALUES (1), (2)",
    "DESCRIBE events.level_complete",
    "SHOW TABLES",
    "SUMMARIZE SELECT 1 AS x",
    "EXPLAIN SELECT 1",
    "EXPLAIN ANALYZE SELECT 1",
    "/* why */ EXPLAIN\n  ANALYZE SELECT count(*) FROM range(10)",
    "SELECT * FROM iceberg_scan('/data/warehouse/x/metadata/v1.metadata.json')",
    "SELECT * FROM read_parquet('/data/warehouse/x/data/*.parquet')",
    "SELECT 1 AS x -- trailing comment",
    "SELECT 1;",
    "SELECT ? + $2",
    "PRAGMA version",  # DuckDB runs a PRAGMA that returns rows as SELECT * FROM pragma_version()
]


@pytest.fixture(scope="module")
def check() -> ReadOnlyCheck:
    return ReadOnlyCheck(duckdb.connect())


@pytest.mark.parametrize("sql", ATTACKS)
def test_every_wrapper_of_a_write_is_refused(check: ReadOnlyCheck, sql: str) -> None:
    with pytest.raises((QueryRefused, QueryFailed)):
        check(sql)


@pytest.mark.parametrize("sql", READS)
def test_plain_reads_pass(check: ReadOnlyCheck, sql: str) -> None:
    check(sql)


def test_duckdbs_side_effect_functions_are_all_reviewed(check: ReadOnlyCheck) -> None:
    """A DuckDB upgrade that adds a function with side effects fails here until it is looked at."""
    flagged = {name for (name,) in duckdb.connect().execute(
        "SELECT DISTINCT lower(function_name) FROM duckdb_functions() WHERE has_side_effects").fetchall()}
    assert flagged <= REFUSED | HARMLESS_VOLATILE
    assert flagged - HARMLESS_VOLATILE <= check.refused


def test_the_check_costs_under_a_few_milliseconds(check: ReadOnlyCheck) -> None:
    sql = READS[2]
    started = time.perf_counter()
    for _ in range(200):
        check(sql)
    per_query = (time.perf_counter() - started) / 200
    assert per_query < 0.02, f"{per_query * 1000:.2f} ms per check"
