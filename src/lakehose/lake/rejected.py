"""The ``events._rejected`` table: every event lakehose refused, with why and the raw payload.

Collector rejections arrive through the log topic ``_rejected`` and are
delivered like any stream (offsets in the commit). Delivery's own rejections
(events it could not convert) are appended before the data commit of the same
log range, and the table records, per stream and partition, the log offsets
those rows cover; a delivery that restarts after a crash between the two
commits skips the rows already there, so a rejection is recorded exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform
from pyiceberg.types import LongType, NestedField, StringType, TimestamptzType

from lakehose.config import Settings
from lakehose.delivery.convert import Unconvertible
from lakehose.lake.catalog import TABLE_PROPERTIES
from lakehose.lake.offsets import COMMIT_ATTEMPTS, OffsetsMoved, commit_with_offsets, read_offsets

REJECTED_TABLE = "_rejected"
_COVERED_PREFIX = "lakehose.rejected-offsets."

REJECTED_SCHEMA = Schema(
    NestedField(1, "stream", StringType(), required=False),
    NestedField(2, "reason", StringType(), required=False),
    NestedField(3, "message", StringType(), required=False),
    NestedField(4, "path", StringType(), required=False),
    NestedField(5, "payload", StringType(), required=False),
    NestedField(6, "received_at", TimestamptzType(), required=False),
    NestedField(7, "key_name", StringType(), required=False),
    NestedField(8, "source", StringType(), required=False),
    NestedField(9, "log_partition", LongType(), required=False),
    NestedField(10, "log_offset", LongType(), required=False),
    NestedField(11, "rejection_id", StringType(), required=False),
    NestedField(12, "replayed_at", TimestamptzType(), required=False),
)


def ensure_rejected_table(catalog: SqlCatalog, settings: Settings) -> Table:
    identifier = (settings.lake.namespace, REJECTED_TABLE)
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        pass
    spec = PartitionSpec(PartitionField(source_id=6, field_id=1000, transform=DayTransform(),
                                        name="received_day"))
    try:
        return catalog.create_table(identifier, schema=REJECTED_SCHEMA, partition_spec=spec,
                                    properties=TABLE_PROPERTIES)
    except TableAlreadyExistsError:
        return catalog.load_table(identifier)


def append_delivery_rejections(table: Table, stream: str, rows: Sequence[Unconvertible],
                               covered: Mapping[int, int]) -> None:
    """Add rows not yet recorded, and move the stream's covered offsets up to ``covered``."""
    prefix = f"{_COVERED_PREFIX}{stream}."
    for _ in range(COMMIT_ATTEMPTS):
        table.refresh()
        already = read_offsets(table, prefix)
        moving = {p: o for p, o in covered.items() if o > already.get(p, 0)}
        if not moving:
            return
        fresh = [r for r in rows if r.offset >= already.get(r.partition, 0)]
        arrow = pa.Table.from_pylist([{
            "stream": stream, "reason": "unconvertible", "message": r.reason, "path": "$",
            "payload": r.payload.decode("utf-8", "replace"),
            "received_at": pa.scalar(r.appended_ms * 1000, pa.timestamp("us", tz="UTC")).as_py(),
            "key_name": None, "source": "delivery", "log_partition": r.partition, "log_offset": r.offset,
            "rejection_id": f"delivery-{stream}-{r.partition}-{r.offset}-{r.line}", "replayed_at": None,
        } for r in fresh], schema=table.schema().as_arrow())
        try:
            commit_with_offsets(table, arrow, already, moving, prefix)
            return
        except OffsetsMoved:
            continue  # another worker recorded some of these meanwhile: filter again
    raise OffsetsMoved(f"{table.name()}: could not record {stream}'s rejections")
