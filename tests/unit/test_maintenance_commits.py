"""Compaction, expiry and retention on a pyiceberg SQL catalog in a temp folder, writers interleaved by hand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform
from pyiceberg.types import LongType, NestedField, StringType, TimestamptzType

from lakehose.config import parse_settings
from lakehose.errors import ConfigError
from lakehose.lake.offsets import commit_with_offsets, read_offsets
from lakehose.maintenance import compact as compact_module
from lakehose.maintenance.compact import compact_table, plan_groups
from lakehose.maintenance.expire import expirable, expire_snapshots
from lakehose.maintenance.retention import cut, drop_old_partitions

DAY = dt.datetime(2025, 1, 10, 5, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def catalog(tmp_path: Path) -> SqlCatalog:
    catalog = SqlCatalog("lakehose", uri=f"sqlite:///{tmp_path}/catalog.db",
                         warehouse=f"file://{tmp_path}/warehouse")
    catalog.create_namespace("events")
    schema = Schema(NestedField(1, "event_id", StringType()), NestedField(2, "ts", TimestamptzType()),
                    NestedField(3, "n", LongType()))
    catalog.create_table(("events", "t"), schema=schema, properties={"format-version": "2"},
                         partition_spec=PartitionSpec(PartitionField(2, 1000, DayTransform(), "ts_day")))
    return catalog


def append(table: Table, tag: str, count: int = 3, day: dt.datetime = DAY) -> None:
    table.append(pa.Table.from_pylist([{"event_id": f"{tag}-{i}", "ts": day + dt.timedelta(seconds=i),
                                        "n": i} for i in range(count)], schema=table.schema().as_arrow()))


def content(table: Table) -> list[str]:
    table.refresh()
    return sorted(row["event_id"] for row in table.scan().to_arrow().to_pylist())


def files(table: Table) -> list[DataFile]:
    table.refresh()
    return [task.file for task in table.scan().plan_files()]


def sized(*sizes: int) -> list[DataFile]:
    return [DataFile.from_args(file_path=f"f{n}", file_size_in_bytes=size) for n, size in enumerate(sizes)]


def test_plan_groups_splits_small_files_evenly_and_leaves_big_ones() -> None:
    assert plan_groups(sized(10, 10, 10), target_bytes=100, min_files=4) == [], "too few to bother"
    groups = plan_groups(sized(*[10] * 25, 90), target_bytes=100, min_files=4)
    assert [len(g) for g in groups] == [8, 9, 8], "250 bytes need 3 files; the 90-byte one is big enough"
    assert all(f.file_size_in_bytes == 10 for g in groups for f in g)
    assert plan_groups(sized(60, 60, 10), target_bytes=100, min_files=2) == [sized(60, 60, 10)[1:]], \
        "130 bytes make two groups, and the one of a single file is left alone"


def test_compaction_keeps_an_append_that_lands_mid_compaction(catalog: SqlCatalog,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    table = catalog.load_table(("events", "t"))
    for tag in "abcde":
        append(table, tag)
    commit_with_offsets(table, None, {}, {0: 15})
    real = compact_module.replace_files

    def delivery_first(*args: Any) -> None:
        delivery = catalog.load_table(("events", "t"))
        commit_with_offsets(delivery, pa.Table.from_pylist(
            [{"event_id": "late-0", "ts": DAY, "n": 0}], schema=delivery.schema().as_arrow()), {0: 15}, {0: 16})
        real(*args)

    monkeypatch.setattr(compact_module, "replace_files", delivery_first)
    result = compact_table(table, target_bytes=1 << 20, min_files=2, sort="ts")
    assert (result.partitions, result.files_before, result.files_after, result.moved) == (1, 5, 1, 0)
    assert content(table) == sorted([f"{t}-{i}" for t in "abcde" for i in range(3)] + ["late-0"])
    assert len(files(table)) == 2, "the compacted file and delivery's"
    assert read_offsets(table) == {0: 16}, "the compaction left delivery's offsets alone"


def test_a_partition_whose_files_moved_meanwhile_is_skipped_cleanly(
        catalog: SqlCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = catalog.load_table(("events", "t"))
    for tag in "abc":
        append(table, tag)
    real = compact_module.replace_files

    def other_compaction_first(*args: Any) -> None:
        other = catalog.load_table(("events", "t"))
        monkeypatch.setattr(compact_module, "replace_files", real)
        assert compact_table(other, target_bytes=1 << 20, min_files=2, sort=None).partitions == 1
        real(*args)

    monkeypatch.setattr(compact_module, "replace_files", other_compaction_first)
    result = compact_table(table, target_bytes=1 << 20, min_files=2, sort=None)
    assert (result.partitions, result.moved) == (0, 1)
    assert content(table) == sorted(f"{t}-{i}" for t in "abc" for i in range(3))
    [kept] = files(table)
    on_disk = {f"file://{path}" for path in tmp_path.rglob("*.parquet")}
    assert kept.file_path in on_disk and len(on_disk) == 3 + 1, "the losing compaction deleted its file"


def test_expiry_keeps_the_newest_and_deletes_only_what_they_do_not_reference(catalog: SqlCatalog) -> None:
    table = catalog.load_table(("events", "t"))
    for tag in "abcd":
        append(table, tag)
    compact_table(table, target_bytes=1 << 20, min_files=2, sort=None)
    newest = table.current_snapshot()
    assert newest is not None
    old = expirable(table.metadata, cutoff_ms=newest.timestamp_ms + 1, keep=2)
    assert len(old) == 3 and newest.snapshot_id not in {s.snapshot_id for s in old}
    assert expirable(table.metadata, cutoff_ms=0, keep=1) == [], "none is old enough"

    snapshots, deleted, size = expire_snapshots(table, dt.timedelta(0), keep=1, now=newest.timestamp_ms / 1000 + 1)
    assert snapshots == 4 and size > 0
    assert deleted == 4 + 4 + 4, "the four small files, their manifests and manifest lists"
    assert content(table) == sorted(f"{t}-{i}" for t in "abcd" for i in range(3))


def test_retention_drops_whole_old_days_only(catalog: SqlCatalog) -> None:
    assert cut(DAY, 2) == dt.datetime(2025, 1, 8, tzinfo=dt.timezone.utc)
    table = catalog.load_table(("events", "t"))
    for age in (0, 1, 2, 3, 9):
        append(table, f"age{age}", day=DAY - dt.timedelta(days=age))
    assert drop_old_partitions(table, 2, DAY) == 2
    assert {row.split("-")[0] for row in content(table)} == {"age0", "age1", "age2"}
    assert drop_old_partitions(table, 2, DAY) == 0


def test_maintenance_settings_are_checked() -> None:
    settings = parse_settings({"maintenance": {"target_file_bytes": 1 << 20}}, {}, "/tmp/x")
    assert settings.maintenance.target_file_bytes == 1 << 20 and settings.maintenance.enabled
    bad: list[Callable[[], object]] = [
        lambda: parse_settings({"maintenance": {"orphan_grace_seconds": -1}}, {}, "/tmp/x"),
        lambda: parse_settings({"maintenance": {"sort": "score"}}, {}, "/tmp/x"),
        lambda: parse_settings({"maintenance": {"min_files": 0}}, {}, "/tmp/x"),
    ]
    for make in bad:
        with pytest.raises(ConfigError):
            make()
