"""Stream schema → Iceberg schema (with field ids) → Arrow schema, one mapping each way.

JSON Schema kinds map one to one: integer→long, number→double, string→string,
boolean→boolean, date-time→timestamptz (µs), array→list, object→struct. Every
table also has ``event_id`` (string), ``ts`` and ``received_at`` (timestamptz).
All columns are optional in Iceberg: ``required`` is enforced by the collector,
and optional columns keep old files readable whatever the schema becomes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    IcebergType,
    ListType,
    LongType,
    NestedField,
    StringType,
    StructType,
    TimestamptzType,
)

from lakehose.registry.schema import EXTRA_COLUMN, Field, StreamSchema

ENVELOPE = (("event_id", StringType()), ("ts", TimestamptzType()), ("received_at", TimestamptzType()))
# The log stores these as integer epoch microseconds; they are cast after parsing.
LOG_MICROS_COLUMNS = ("ts", "received_at")


def _ids() -> Iterator[int]:
    n = 0
    while True:
        n += 1
        yield n


def _iceberg_type(f: Field, ids: Iterator[int]) -> IcebergType:
    if f.kind == "integer":
        return LongType()
    if f.kind == "number":
        return DoubleType()
    if f.kind == "string":
        return StringType()
    if f.kind == "boolean":
        return BooleanType()
    if f.kind == "datetime":
        return TimestamptzType()
    if f.kind == "array":
        assert f.items is not None
        element_id = next(ids)
        return ListType(element_id=element_id, element_type=_iceberg_type(f.items, ids),
                        element_required=False)
    return StructType(*_fields(f.properties, ids))


def _fields(fields: Sequence[Field], ids: Iterator[int]) -> list[NestedField]:
    out = []
    for f in fields:
        field_id = next(ids)
        out.append(NestedField(field_id, f.name, _iceberg_type(f, ids), required=False))
    return out


def iceberg_schema(schema: StreamSchema, extra_column: bool = False) -> Schema:
    """The table schema; ``extra_column`` adds ``_extra`` (unknown fields as JSON, policy keep)."""
    ids = _ids()
    envelope = [NestedField(next(ids), name, kind, required=False) for name, kind in ENVELOPE]
    fields = _fields(schema.fields, ids)
    if extra_column:
        fields.append(NestedField(next(ids), EXTRA_COLUMN, StringType(), required=False))
    return Schema(*envelope, *fields)


def partition_spec(schema: Schema) -> PartitionSpec:
    ts_id = schema.find_field("ts").field_id
    return PartitionSpec(PartitionField(source_id=ts_id, field_id=1000, transform=DayTransform(),
                                        name="ts_day"))


def arrow_schema(schema: Schema) -> pa.Schema:
    """The Arrow schema of a table, with pyiceberg's field-id metadata."""
    return schema_to_pyarrow(schema)


def log_arrow_schema(table_schema: pa.Schema) -> pa.Schema:
    """The schema to parse log NDJSON with: the table's, but ts/received_at as int64 µs."""
    fields = [pa.field(f.name, pa.int64()) if f.name in LOG_MICROS_COLUMNS else f
              for f in table_schema]
    return pa.schema(fields)
