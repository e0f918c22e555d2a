"""The read-only check: a query is accepted only if what DuckDB will execute is a plain read.

Why not the statement's type alone: DuckDB's ``EXPLAIN ANALYZE <statement>``
*runs* the statement (COPY over a live data file, DROP VIEW, CREATE MACRO all
ran), and a SELECT can call functions that run SQL or change the database
(``query('...')``, ``json_execute_serialized_sql``, ``checkpoint()``,
``enable_profiling()``, which then printed every later query's plan).

What is accepted, decided on DuckDB's own parse tree:

* exactly one statement, of type SELECT (``FROM t``, ``VALUES``, ``DESCRIBE``,
  ``SHOW``, ``SUMMARIZE`` are SELECTs too), or ``EXPLAIN [ANALYZE]`` followed by
  text that is itself one accepted SELECT; any other EXPLAIN form is refused;
* the SELECT is serialized by ``json_serialize_sql`` (it serializes SELECTs
  only, so a statement it cannot serialize is refused: fail closed), and every
  function named anywhere in that tree, table functions included, is checked:
  those in :data:`REFUSED` run SQL given as text, write, or change state shared
  by every query, and so are any DuckDB itself flags as having side effects,
  except the few in :data:`HARMLESS_VOLATILE` (random numbers, ids, sleep
  within the query timeout). A function DuckDB does not know cannot run.

The engine adds its own walls (external access off, files only under the
warehouse, configuration locked, a cursor per query so temporary objects die
with it); this check is what keeps the shared views and the warehouse's files
out of a reader's reach, since ``allowed_directories`` allows writes too.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import duckdb
import msgspec

from lakehose.errors import QueryFailed, QueryRefused

REFUSED = frozenset({
    # run SQL given as text or as a serialized plan: the text is not in the tree checked here
    # (query_table takes table names only, and DuckDB's own histogram() macros call it; refused
    # when named in a query all the same: an allow-list of what is known to be a read)
    "query", "query_table", "json_execute_serialized_sql",
    # write the database or its files
    "checkpoint", "force_checkpoint", "nextval",
    # change state every other query shares (global logging and profiling)
    "enable_logging", "disable_logging", "truncate_duckdb_logs", "write_log",
    "enable_profiling", "disable_profiling",
    # scan Python objects or raw memory pointers of this process
    "arrow_scan", "arrow_scan_dumb", "pandas_scan", "python_map_function",
    # secrets: names and scopes of credentials
    "duckdb_secrets", "which_secret",
})
HARMLESS_VOLATILE = frozenset({
    "random", "setseed", "uuid", "uuidv4", "uuidv7", "gen_random_uuid", "error", "stats", "sleep_ms",
    "current_query", "current_query_id", "current_transaction_id", "current_connection_id", "currval",
})
# EXPLAIN or EXPLAIN ANALYZE, after any comments; the rest must pass as a SELECT of its own
_EXPLAIN = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*EXPLAIN\s+(?:ANALY[SZ]E\s+)?", re.I | re.S)


def _functions(tree: Any) -> Iterator[str]:
    """Every function name in a ``json_serialize_sql`` tree (scalar, aggregate, window, table)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            name = node.get("function_name")
            if isinstance(name, str):
                yield name.lower()
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


class ReadOnlyCheck:
    """Refuses any SQL but one plain read; callable from many threads at once."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._parser = con.cursor()  # its own session: parsing never touches a query's cursor
        self._lock = threading.Lock()
        flagged = self._parser.execute(
            "SELECT DISTINCT lower(function_name) FROM duckdb_functions() WHERE has_side_effects").fetchall()
        self.refused = REFUSED | ({name for (name,) in flagged} - HARMLESS_VOLATILE)

    def __call__(self, sql: str) -> None:
        if "\x00" in sql:  # DuckDB reads up to a NUL, what it runs and what is checked alike: refuse it
            raise QueryRefused("the query contains a NUL character")
        statement = self._one_statement(sql)
        if statement.type == duckdb.StatementType.EXPLAIN:
            prefix = _EXPLAIN.match(statement.query)
            if prefix is None:
                raise QueryRefused("only EXPLAIN <select> and EXPLAIN ANALYZE <select> are allowed")
            statement = self._one_statement(statement.query[prefix.end():])
            if statement.type != duckdb.StatementType.SELECT:
                raise QueryRefused("EXPLAIN is allowed only of a read-only query; "
                                   f"{statement.type.name} statements are refused")
        elif statement.type != duckdb.StatementType.SELECT:
            raise QueryRefused(f"only read-only queries are allowed; {statement.type.name} statements are refused")
        self._check_select(statement.query)

    @staticmethod
    def _one_statement(sql: str) -> duckdb.Statement:
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryFailed(str(exc)) from exc
        if len(statements) != 1:
            raise QueryRefused(f"send exactly one statement (got {len(statements)})")
        return statements[0]

    def _check_select(self, sql: str) -> None:
        try:  # bound as a parameter: the text checked never becomes SQL of this cursor
            with self._lock:
                (serialized,) = self._parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchone() or ("{}",)
        except duckdb.Error as exc:
            raise QueryFailed(str(exc)) from exc
        tree = msgspec.json.decode(serialized)
        if tree.get("error") or len(tree.get("statements", ())) != 1:
            raise QueryRefused("this form of query cannot be checked as read-only and is refused "
                               f"({tree.get('error_message', 'not one statement')}); write it as a plain SELECT")
        for name in _functions(tree["statements"]):
            if name in self.refused:
                raise QueryRefused(f"{name}() is not allowed: it runs SQL, writes or changes shared state")
