"""Read-only SQL over the Iceberg tables with DuckDB.

Each table is a view ``events.<stream>`` (and ``<stream>``) over
``iceberg_scan(<current metadata file>)``, so DuckDB reads exactly the
snapshot the catalog points to, as any Iceberg reader would. The Iceberg and
Avro extensions (and httpfs, for a lake on S3) are loaded from their PyPI
wheels; nothing is downloaded.

Read-only is enforced twice: :mod:`lakehose.query.readonly` accepts only one
plain read, judged on DuckDB's parse tree (so ``EXPLAIN ANALYZE <write>`` and
functions that run SQL are refused), and DuckDB itself runs with external access
off, file access allowed only under the warehouse, and its configuration
locked, so ``read_csv('/etc/passwd')``, ``ATTACH``, ``COPY ... TO`` and
``INSTALL`` fail inside the engine too. Each query runs on a cursor of its own,
in a ``READ ONLY`` transaction, so DuckDB itself refuses to drop or replace the
shared views (or create tables, macros, schemas), and nothing the query could
make for itself (a temporary object, a variable) outlives its cursor. What that
transaction does not stop (``COPY ... TO`` a file under the warehouse, global
switches such as ``enable_profiling()``) only the check stops.

Work per query is bounded (``[query]`` settings): a memory limit shared by the
running queries, spill files only under ``<data_dir>/query-spill`` up to a cap,
a cap on result bytes (refused with a message naming the setting, where the row
limit cuts), a timeout, and a number of queries running at once, shared by
``/v1/query``, the UI and the PostgreSQL endpoint (a query waits briefly for a
slot, then is refused as busy).

A lake on S3 (``s3://bucket/prefix``) keeps that sandbox: DuckDB 1.5.5 lets
httpfs read a remote prefix listed in ``allowed_directories`` with external
access off, and refuses every other URL (other buckets and prefixes, ``http://``,
``s3a://``, ``gcs://``, local files). Its prefix check looks at the path as
written, though, and two httpfs features can step out of the prefix after the
check passed, so both are switched off before the configuration is locked:

* the default HTTP client (curl) removes ``..`` segments from the URL it sends,
  so ``s3://bucket/prefix/../../other-bucket/key`` passed the check and read
  another bucket (path-style) or another prefix; the ``httplib`` client sends
  the path as written, which S3 takes as a literal key inside the prefix;
* query parameters in S3 URLs override the secret
  (``s3://bucket/prefix/x?s3_endpoint=any-host:80`` made DuckDB connect to any
  host); ``s3_url_compatibility_mode`` treats them, and glob characters, as
  part of the key. Globs over S3 paths therefore do not work in queries; the
  views never need them.

What is left to the store: a server (or a proxy in front of it) that resolves
``..`` in request paths itself would undo the first measure, so give the query
process S3 credentials that can only read the warehouse prefix.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
import pyarrow.fs as pa_fs
import sqlalchemy as sa

from lakehose.config import Settings
from lakehose.errors import QueryBusy, QueryFailed, QueryLimit, QueryRefused
from lakehose.lake.storage import S3Options, s3_options
from lakehose.query.readonly import ReadOnlyCheck
from lakehose.registry.store import make_engine

SPILL_FOLDER = "query-spill"
_EXTENSIONS = ("avro", "iceberg")
_UNKNOWN_TABLE = re.compile(r"Catalog Error: Table with name (\S+) does not exist")


def _extension_path(name: str) -> str:
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or spec.origin is None:
        raise QueryFailed(f"the DuckDB {name} extension is not installed: pip install "
                          f"duckdb-extension-{name}=={duckdb.__version__}")
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise QueryFailed(f"{path} is missing: install duckdb-extension-{name}=={duckdb.__version__}")
    return str(path)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    truncated: bool
    elapsed_ms: float
    duckdb_types: list[str]


class QueryEngine:
    """One DuckDB database with a view per table; each query runs on its own cursor."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.namespace = settings.lake.namespace
        self._catalog_db = make_engine(settings.catalog_uri)
        self._lock = threading.Lock()
        self._locations: dict[str, str] = {}
        self._slots = threading.BoundedSemaphore(settings.query.max_concurrent)
        self.con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                          "autoload_known_extensions": False})
        s3 = s3_options(settings)
        for name in _EXTENSIONS + (("httpfs",) if s3 else ()):
            self.con.execute(f"LOAD {_literal(_extension_path(name))}")
        # GLOBAL: queries run on cursors, which are sessions of their own; a plain SET
        # would reach this connection only (a cursor saw the machine's time zone).
        self.con.execute("SET GLOBAL TimeZone = 'UTC'")
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(self.namespace)}")
        if s3 is not None:
            self._configure_s3(s3)
            root = s3.prefix
        else:
            warehouse = urlparse(settings.warehouse_uri)
            root = warehouse.path if warehouse.scheme == "file" else settings.warehouse_uri
        self._limit_work(settings)
        self.con.execute(f"SET allowed_directories = [{_literal(root.rstrip('/') + '/')}]")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")
        self.check = ReadOnlyCheck(self.con)

    def _limit_work(self, settings: Settings) -> None:
        """Memory and spill caps, set before the configuration is locked (DuckDB's defaults:
        80 % of RAM, spill to ``.tmp`` in the working folder up to 90 % of free disk)."""
        spill = Path(settings.data_dir).resolve() / SPILL_FOLDER
        spill.mkdir(parents=True, exist_ok=True)
        query = settings.query
        self.con.execute(f"SET memory_limit = '{query.memory_limit_bytes}B'")
        self.con.execute(f"SET temp_directory = {_literal(str(spill))}")
        self.con.execute(f"SET max_temp_directory_size = '{query.spill_limit_bytes}B'")

    def _configure_s3(self, s3: S3Options) -> None:
        """The S3 secret, and the two httpfs settings the module docstring explains."""
        region = s3.region
        if region is None:  # AWS itself, no region configured: ask S3 where the bucket is
            try:
                region = pa_fs.resolve_s3_region(s3.bucket)
            except (OSError, ValueError) as exc:
                raise QueryFailed(f"cannot find the region of bucket {s3.bucket!r} ({exc}); "
                                  "set [lake] s3_region or AWS_REGION") from exc
        self.con.execute("SET GLOBAL httpfs_client_implementation = 'httplib'")
        self.con.execute("SET GLOBAL s3_url_compatibility_mode = true")
        self.con.execute(s3.duckdb_secret_sql(region=region))

    def _current_locations(self) -> dict[str, str]:
        query = sa.text("SELECT table_name, metadata_location FROM iceberg_tables "
                        "WHERE catalog_name = 'lakehose' AND table_namespace = :ns")
        try:
            with self._catalog_db.connect() as conn:
                rows = conn.execute(query, {"ns": self.namespace}).all()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # no table created yet
            return {}
        return {r.table_name: r.metadata_location for r in rows if r.metadata_location}

    def refresh(self) -> None:
        """Point each view at its table's current metadata file."""
        locations = self._current_locations()
        with self._lock:
            for name, location in locations.items():
                if self._locations.get(name) == location:
                    continue
                scan = f"SELECT * FROM iceberg_scan({_literal(location)})"
                self.con.execute(f"CREATE OR REPLACE VIEW {_quote(self.namespace)}.{_quote(name)} AS {scan}")
                self.con.execute(f"CREATE OR REPLACE VIEW main.{_quote(name)} AS {scan}")
                self._locations[name] = location

    def _failure(self, exc: duckdb.Error) -> QueryFailed:
        """DuckDB's message, but an unknown table is named with the lake's tables, not with
        DuckDB's guess among its own (``sqlite_temp_schema`` when the lake has none)."""
        unknown = _UNKNOWN_TABLE.match(str(exc)) if isinstance(exc, duckdb.CatalogException) else None
        if unknown is None:
            return QueryFailed(str(exc))
        tables = ", ".join(f"{self.namespace}.{name}" for name in sorted(self._locations))
        return QueryFailed(f"no table {unknown[1]}: " + (f"the tables are {tables}" if tables else
                           "there are no tables yet (lakehose streams create makes one)"))

    def tables(self) -> list[str]:
        self.refresh()
        return sorted(self._locations)

    def _read_only_cursor(self) -> duckdb.DuckDBPyConnection:
        """A session of its own in a READ ONLY transaction: DuckDB refuses to change the shared
        database (views, macros, schemas) in it, and closing the cursor rolls back what it may
        make (temporary objects, variables)."""
        cursor = self.con.cursor()
        cursor.execute("BEGIN TRANSACTION READ ONLY")
        return cursor

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        """One of ``[query] max_concurrent`` slots, waited for up to ``queue_seconds``."""
        query = self.settings.query
        if not self._slots.acquire(timeout=query.queue_seconds):
            raise QueryBusy(f"{query.max_concurrent} queries are running, as many as [query] max_concurrent "
                            f"(LAKEHOSE_QUERY__MAX_CONCURRENT) allows; try again in a moment")
        try:
            yield
        finally:
            self._slots.release()

    def _out_of_memory(self, exc: duckdb.OutOfMemoryException) -> QueryLimit:
        query = self.settings.query
        if "max_temp_directory_size" in str(exc):
            return QueryLimit("spill_limit_bytes", f"the query needed more than {query.spill_limit_bytes} bytes "
                                                   "of spill files")
        return QueryLimit("memory_limit_bytes", f"the query needed more than {query.memory_limit_bytes} bytes "
                                                "of memory (shared by the queries running at once)")

    def run(self, sql: str, row_limit: int | None = None, timeout: float | None = None,
            params: Sequence[object] = (),
            on_cursor: Callable[[duckdb.DuckDBPyConnection], None] | None = None) -> QueryResult:
        """Run one read-only statement; ``params`` bind its ``?`` placeholders (values never become SQL).

        ``on_cursor`` gets the cursor before the query starts, so a caller can
        ``interrupt()`` it (the Postgres endpoint's CancelRequest).
        """
        self.check(sql)
        with self._slot():
            return self._run(sql, row_limit or self.settings.query.row_limit,
                             timeout or self.settings.query.timeout_seconds, params, on_cursor)

    def _run(self, sql: str, limit: int, timeout: float, params: Sequence[object],
             on_cursor: Callable[[duckdb.DuckDBPyConnection], None] | None) -> QueryResult:
        self.refresh()
        max_bytes = self.settings.query.max_result_bytes
        cursor = self._read_only_cursor()
        if on_cursor is not None:
            on_cursor(cursor)
        timer = threading.Timer(timeout, cursor.interrupt)
        started = time.perf_counter()
        timer.start()
        try:
            result = cursor.execute(sql, list(params)) if params else cursor.execute(sql)
            types = [str(d[1]) for d in result.description or []]
            reader = result.fetch_record_batch(min(limit + 1, 100_000))
            batches: list[pa.RecordBatch] = []
            rows = size = 0
            for batch in reader:
                size += batch.slice(0, limit + 1 - rows).nbytes
                if size > max_bytes:
                    raise QueryLimit("max_result_bytes", f"the result is over {max_bytes} bytes; "
                                     "select fewer rows or columns")
                batches.append(batch)
                rows += batch.num_rows
                if rows > limit:
                    break
            table = pa.Table.from_batches(batches, schema=reader.schema)
        except duckdb.InterruptException as exc:
            raise QueryFailed(f"the query ran longer than {timeout:g} s and was stopped") from exc
        except duckdb.OutOfMemoryException as exc:
            raise self._out_of_memory(exc) from exc
        except duckdb.PermissionException as exc:
            raise QueryRefused(f"reading outside the lake is not allowed: {exc}") from exc
        except duckdb.Error as exc:
            raise self._failure(exc) from exc
        finally:
            timer.cancel()
            cursor.close()
        truncated = table.num_rows > limit
        return QueryResult(table.slice(0, limit), truncated, (time.perf_counter() - started) * 1000, types)

    def describe(self, sql: str, param_count: int) -> list[tuple[str, str]]:
        """(name, DuckDB type) of each result column, binding without running the query."""
        self.check(sql)
        with self._slot():
            return self._describe(sql, param_count)

    def _describe(self, sql: str, param_count: int) -> list[tuple[str, str]]:
        self.refresh()
        cursor = self._read_only_cursor()
        try:
            relation = cursor.sql(sql, params=[None] * param_count) if param_count else cursor.sql(sql)
            return [(name, str(kind)) for name, kind in zip(relation.columns, relation.types)]
        except duckdb.Error as exc:
            raise self._failure(exc) from exc
        finally:
            cursor.close()
