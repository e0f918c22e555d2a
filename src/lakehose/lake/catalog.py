"""Opening the Iceberg catalog and the table of each stream.

The catalog is pyiceberg's SQL catalog in the same database as the stream
registry: SQLite by default, or PostgreSQL (``postgresql://user:pass@host/db``,
driven by psycopg 3). Its two tables, ``iceberg_tables`` and
``iceberg_namespace_properties``, are the ones Apache Iceberg's JDBC catalog
uses, with the same columns, so Trino, Spark or Flink can attach to the same
database as a JDBC catalog named ``lakehose`` and read (or write) the same
tables; keep their names and layout.

The warehouse is a URI (``file://`` or ``s3://bucket/prefix``) handed to
pyiceberg's IO with the S3 options of ``lakehose.lake.storage``, so no code
here assumes a local path.
"""

from __future__ import annotations

import sqlalchemy as sa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.table import Table

from lakehose.config import Settings
from lakehose.lake import pyiceberg_fixes
from lakehose.lake.storage import fileio_properties
from lakehose.lake.types import iceberg_schema, partition_spec
from lakehose.registry.schema import StreamSchema
from lakehose.registry.store import Stream, schema_lock, sqlalchemy_url

TABLE_PROPERTIES = {
    "write.parquet.compression-codec": "zstd",
    "write.target-file-size-bytes": str(256 * 1024 * 1024),
    "format-version": "2",
    # pyiceberg copies the whole metadata, metadata log included, several times per commit:
    # 20 previous versions instead of 100 takes about a third off a small commit
    "write.metadata.previous-versions-max": "20",
}


CATALOG_NAME = "lakehose"  # the catalog_name column of the JDBC-catalog tables


def open_catalog(settings: Settings) -> SqlCatalog:
    """The catalog, with its tables and the namespace created if missing.

    Many processes may open a fresh PostgreSQL database at once (collectors,
    delivery workers, the query server): the creation runs under
    ``schema_lock``, so exactly one of them creates and the others find.
    """
    pyiceberg_fixes.apply()
    uri = sqlalchemy_url(settings.catalog_uri)
    properties = {"uri": uri, "warehouse": settings.warehouse_uri, "init_catalog_tables": "true",
                  **fileio_properties(settings)}
    if not uri.startswith("sqlite"):
        properties["pool_pre_ping"] = "true"
    lock_engine = sa.create_engine(uri, poolclass=sa.pool.NullPool)
    try:
        with schema_lock(lock_engine):
            catalog = SqlCatalog(CATALOG_NAME, **properties)
            try:
                catalog.create_namespace(settings.lake.namespace)
            except (NamespaceAlreadyExistsError, sa.exc.IntegrityError):  # created by another process
                pass
    finally:
        lock_engine.dispose()
    return catalog


def table_identifier(settings: Settings, stream: str) -> tuple[str, str]:
    return (settings.lake.namespace, stream)


def ensure_table(catalog: SqlCatalog, settings: Settings, stream: Stream) -> Table:
    """The stream's table, created (day(ts)-partitioned, zstd Parquet) if it is missing."""
    identifier = table_identifier(settings, stream.name)
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        pass
    schema = iceberg_schema(stream.schema, extra_column=stream.unknown_fields == "keep")
    try:
        return catalog.create_table(identifier, schema=schema, partition_spec=partition_spec(schema),
                                    properties=TABLE_PROPERTIES)
    except TableAlreadyExistsError:  # another process created it first
        return catalog.load_table(identifier)


def evolve_table(catalog: SqlCatalog, settings: Settings, stream: str, schema: StreamSchema,
                 extra_column: bool = False) -> Table:
    """Add the columns ``schema`` has and the table lacks; existing column ids are kept."""
    table = catalog.load_table(table_identifier(settings, stream))
    with table.update_schema() as update:
        update.union_by_name(iceberg_schema(schema, extra_column))
    return table
