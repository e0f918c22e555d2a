"""Opening the Iceberg catalog and the table of each stream.

The catalog is pyiceberg's SQL catalog in the same database as the stream
registry (SQLite by default), so Iceberg's JDBC-catalog readers can attach to
it; the warehouse is a URI (``file://`` or ``s3://``) handed to pyiceberg's IO,
so no code here assumes a local path.
"""

from __future__ import annotations

import json

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.table import Table

from lakehose.config import Settings
from lakehose.lake import pyiceberg_fixes
from lakehose.lake.types import iceberg_schema, partition_spec
from lakehose.registry.schema import StreamSchema
from lakehose.registry.store import Stream

OFFSETS_PROPERTY = "lakehose.offsets"
TABLE_PROPERTIES = {
    "write.parquet.compression-codec": "zstd",
    "write.target-file-size-bytes": str(256 * 1024 * 1024),
    "format-version": "2",
}


def open_catalog(settings: Settings) -> SqlCatalog:
    pyiceberg_fixes.apply()
    catalog = SqlCatalog("lakehose", uri=settings.catalog_uri, warehouse=settings.warehouse_uri,
                         init_catalog_tables="true")
    try:
        catalog.create_namespace(settings.lake.namespace)
    except NamespaceAlreadyExistsError:
        pass
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


def committed_offsets(table: Table) -> dict[int, int]:
    """``{partition: next offset}`` that the table's data covers; empty for a new table."""
    raw = table.properties.get(OFFSETS_PROPERTY)
    return {int(k): int(v) for k, v in json.loads(raw).items()} if raw else {}


def offsets_property(offsets: dict[int, int]) -> dict[str, str]:
    return {OFFSETS_PROPERTY: json.dumps({str(k): v for k, v in sorted(offsets.items())})}
