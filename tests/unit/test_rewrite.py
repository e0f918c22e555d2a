"""Copy-on-write row removal against a concurrent writer (pyiceberg SQL catalog on a temp folder)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.manifest import ManifestEntryStatus
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform
from pyiceberg.types import NestedField, StringType, TimestamptzType

from lakehose.errors import FilesMoved
from lakehose.lake.offsets import commit_with_offsets, read_offsets
from lakehose.maintenance.forget import Condition, JsonMatcher, forget_in_table
from lakehose.maintenance.rewrite import live_files, remove_rows

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


@pytest.fixture
def catalog(tmp_path: Path) -> SqlCatalog:
    catalog = SqlCatalog("lakehose", uri=f"sqlite:///{tmp_path}/catalog.db",
                         warehouse=f"file://{tmp_path}/warehouse")
    catalog.create_namespace("events")
    schema = Schema(NestedField(1, "event_id", StringType()), NestedField(2, "ts", TimestamptzType()),
                    NestedField(3, "user_id", StringType()))
    catalog.create_table(("events", "t"), schema=schema, properties={"format-version": "2"},
                         partition_spec=PartitionSpec(PartitionField(2, 1000, DayTransform(), "ts_day")))
    return catalog


def rows(table: Table, tag: str, *users: str) -> pa.Table:
    return pa.Table.from_pylist([{"event_id": f"{tag}{n}", "ts": NOW, "user_id": u}
                                 for n, u in enumerate(users)], schema=table.schema().as_arrow())


def content(table: Table) -> list[str]:
    table.refresh()
    return sorted(r["event_id"] for r in table.scan().to_arrow().to_pylist())


def test_an_append_landing_mid_rewrite_is_kept_and_offsets_untouched(catalog: SqlCatalog) -> None:
    table = catalog.load_table(("events", "t"))
    table.append(rows(table, "f1-", "gone", "b", "c"))
    table.append(rows(table, "f2-", "gone", "gone"))
    first, second = sorted(live_files(table), key=lambda f: f.record_count, reverse=True)
    # delivery commits rows and moves its offsets after this plan was made
    delivery = catalog.load_table(("events", "t"))
    commit_with_offsets(delivery, rows(delivery, "new-", "gone", "x"), {}, {0: 10})

    assert remove_rows(table, {first: {0}, second: {0, 1}}, "test") == 3
    assert content(table) == ["f1-1", "f1-2", "new-0", "new-1"]
    assert read_offsets(table) == {0: 10}
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert snapshot.summary["lakehose.maintenance"] == "test"
    deleted = [e for m in snapshot.manifests(table.io) for e in m.fetch_manifest_entry(table.io, False)
               if e.status == ManifestEntryStatus.DELETED]
    assert {e.data_file.file_path for e in deleted} == {first.file_path, second.file_path}
    assert all(not e.data_file.lower_bounds and not e.data_file.upper_bounds for e in deleted), \
        "bounds of deleted files may hold removed values"


def test_a_file_replaced_by_another_writer_first_fails_cleanly(catalog: SqlCatalog,
                                                               tmp_path: Path) -> None:
    table = catalog.load_table(("events", "t"))
    table.append(rows(table, "f1-", "gone", "b", "c"))
    [planned] = live_files(table)
    other = catalog.load_table(("events", "t"))
    remove_rows(other, {planned: {1}}, "other")
    parquet_before = set(tmp_path.rglob("*.parquet"))

    with pytest.raises(FilesMoved):
        remove_rows(table, {planned: {0}}, "test")
    assert content(table) == ["f1-0", "f1-2"]
    assert set(tmp_path.rglob("*.parquet")) == parquet_before, "the losing rewrite left files behind"


def test_forget_skips_files_written_before_its_column_existed(catalog: SqlCatalog) -> None:
    table = catalog.load_table(("events", "t"))
    table.append(rows(table, "old-", "a", "b"))
    with table.update_schema() as update:
        update.add_column("email", StringType())
    condition, matcher = Condition.parse("email=x@example.com"), JsonMatcher("email", ["x@example.com"])
    assert forget_in_table(duckdb.connect(), table, condition, "x@example.com", matcher) == 0

    table.append(pa.Table.from_pylist([{"event_id": "new-0", "ts": NOW, "email": "x@example.com"},
                                       {"event_id": "new-1", "ts": NOW, "email": "y@example.com"}],
                                      schema=table.schema().as_arrow()))
    assert forget_in_table(duckdb.connect(), table, condition, "x@example.com", matcher) == 1
    assert content(table) == ["new-1", "old-0", "old-1"]
