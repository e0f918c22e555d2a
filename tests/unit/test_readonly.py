"""The read-only check in process, over every wrapper of a write found so far (fast: no server).

The same list (tests/readonly_attacks.py) is sent over HTTP and the PostgreSQL endpoint in
tests/integration/test_readonly_sql.py, which also checks that the lake is unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest

from lakehose.config import parse_settings
from lakehose.errors import QueryFailed, QueryRefused
from lakehose.query.engine import QueryEngine
from lakehose.query.readonly import HARMLESS_VOLATILE, REFUSED, ReadOnlyCheck
from readonly_attacks import ATTACKS, READS

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


def test_the_engine_keeps_shared_views_even_past_the_check(tmp_path: Path) -> None:
    """Defence in depth: with the check switched off, DuckDB's READ ONLY transaction still refuses to
    drop or replace a shared view, and what a query makes for itself dies with its cursor."""
    engine = QueryEngine(parse_settings({}, {}, str(tmp_path)))
    engine.con.execute("CREATE VIEW events.shared AS SELECT 42 AS answer")
    engine.check = lambda sql: None  # type: ignore[method-assign,assignment]
    for sql in ("EXPLAIN ANALYZE DROP VIEW events.shared",
                "EXPLAIN ANALYZE CREATE OR REPLACE VIEW events.shared AS SELECT 0 AS answer",
                "EXPLAIN ANALYZE CREATE MACRO events.m() AS 1",
                "EXPLAIN ANALYZE CREATE TABLE events.t AS SELECT 1 AS x"):
        with pytest.raises(QueryFailed, match="read-only"):
            engine.run(sql)
    engine.run("EXPLAIN ANALYZE CREATE TEMP TABLE mine AS SELECT 1 AS x")
    assert engine.run("SELECT * FROM events.shared").table.to_pylist() == [{"answer": 42}]
    assert engine.run("SELECT count(*) AS n FROM duckdb_tables() WHERE temporary").table.to_pylist() == [{"n": 0}]
    assert (tmp_path / "query-spill").is_dir()
