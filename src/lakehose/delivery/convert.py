"""Log payloads (NDJSON of validated events) → Arrow, in bulk.

The whole chunk is parsed by Arrow's multi-threaded JSON reader against the
table's schema, so no Python object is made per event. A chunk that fails is
retried record by record and then line by line, only to find the culprits: they
become rejected rows with a reason, never silently dropped.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from lakehose.lake.types import LOG_MICROS_COLUMNS
from lakehose.log import Record

_UTC_MICROS = pa.timestamp("us", tz="UTC")
_BLOCK = 8 << 20


@dataclass(frozen=True)
class Unconvertible:
    """An event delivery could not turn into a row."""

    partition: int
    offset: int
    line: int
    reason: str
    payload: bytes
    appended_ms: int


def _parsable(data_type: pa.DataType) -> pa.DataType:
    """The type Arrow's JSON reader can produce for ``data_type`` (no large_* variants)."""
    if pa.types.is_large_string(data_type):
        return pa.string()
    if pa.types.is_large_list(data_type) or pa.types.is_list(data_type):
        return pa.list_(_parsable(data_type.value_type))
    if pa.types.is_struct(data_type):
        return pa.struct([pa.field(f.name, _parsable(f.type)) for f in data_type])
    return data_type


class Converter:
    """Parses log payloads for one table schema."""

    def __init__(self, table_schema: pa.Schema) -> None:
        self.table_schema = table_schema
        fields = [pa.field(f.name, pa.int64() if f.name in LOG_MICROS_COLUMNS else _parsable(f.type))
                  for f in table_schema]
        if "type" not in table_schema.names:  # the stream's name, as tagged by the collector
            fields.append(pa.field("type", pa.string()))
        self.parse_schema = pa.schema(fields)
        self._options = pajson.ParseOptions(explicit_schema=self.parse_schema,
                                            unexpected_field_behavior="error",
                                            newlines_in_values=False)

    def _parse(self, data: bytes) -> pa.Table:
        table = pajson.read_json(io.BytesIO(data), read_options=pajson.ReadOptions(
            use_threads=True, block_size=_BLOCK), parse_options=self._options)
        columns = []
        for field in self.table_schema:
            column = table.column(field.name)
            columns.append(pc.cast(column, _UTC_MICROS if field.name in LOG_MICROS_COLUMNS
                                   else field.type))
        return pa.Table.from_arrays(columns, schema=self.table_schema)

    def convert(self, records: Sequence[Record]) -> tuple[pa.Table, list[Unconvertible]]:
        try:
            return self._parse(b"".join(r.payload for r in records)), []
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
        tables: list[pa.Table] = []
        failed: list[Unconvertible] = []
        for record in records:
            try:
                tables.append(self._parse(record.payload))
                continue
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                pass
            for line_no, line in enumerate(record.payload.splitlines()):
                if not line.strip():
                    continue
                try:
                    tables.append(self._parse(line + b"\n"))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                    failed.append(Unconvertible(record.partition, record.offset, line_no,
                                                str(exc).splitlines()[0], line, record.appended_ms))
        table = pa.concat_tables(tables) if tables else self.table_schema.empty_table()
        return table, failed
