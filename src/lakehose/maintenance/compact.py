"""``lakehose compact``: rewrite each partition's small files into a few files of the target size.

Delivery commits often, so a ``day(ts)`` partition collects one small file per
commit, and every query pays for opening each of them (DuckDB: ~10x slower
over 1,000 small files than over one). Per partition, the files smaller than
3/4 of the target size are the candidates; once there are ``min_files`` of
them they are split, oldest data first, into as many groups of about equal
size as the target size (on-disk bytes) asks for, and each group is read and
written again as one Parquet file with pyiceberg's writer (so its partition
value and column statistics are pyiceberg's own), optionally sorted by a
column (``--sort ts``). A group is held in memory while it is rewritten:
about the target size of Parquet, several times that as Arrow.

The table's manifests are merged first when there are many (see
``compact_table``). Each partition is then one commit that deletes exactly the
files it read and adds the new ones (``rewrite.replace_files``, under the
table's commit lock), never a filter: delivery keeps appending to the same
partition meanwhile, and those files are not touched. If another writer
removed one of the files first (another compaction, a dedupe or forget), or
commits kept landing first, that partition is skipped and counted as
``moved``; its new files are deleted and the next run plans it again. Table
properties (delivery's log offsets) are not part of the commit.
"""

from __future__ import annotations

import functools
import math
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pyiceberg.conversions import from_bytes
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, _determine_partitions, write_file
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table, WriteTask
from pyiceberg.typedef import Record
from pyiceberg.types import PrimitiveType

from lakehose.config import Settings
from lakehose.errors import FilesMoved, LakehoseError
from lakehose.maintenance.jobs import Outcome, run_on_tables, table_name
from lakehose.maintenance.manifests import merge_manifests
from lakehose.maintenance.rewrite import live_files, replace_files

JOB = "compact"
SMALL_FRACTION = 0.75  # a file under this share of the target size is worth rewriting


@dataclass
class Compacted:
    """What a compaction did to one table."""

    partitions: int = 0  # partitions rewritten
    files_before: int = 0  # files read (and removed) in them
    files_after: int = 0  # files written in their place
    bytes: int = 0  # bytes read
    moved: int = 0  # partitions skipped: another writer removed one of their files first


def plan_groups(files: Sequence[DataFile], target_bytes: int, min_files: int) -> list[list[DataFile]]:
    """The groups of one partition's files to rewrite, one output file each (none if too few).

    The small files' bytes need ``ceil(total / target_bytes)`` files; the files,
    in the order given, are split into that many runs of about equal size (a
    file goes where its middle byte falls), so no file comes out much smaller
    than the others. A group of one file is left as it is: rewriting it gains
    nothing.
    """
    small = [f for f in files if f.file_size_in_bytes < target_bytes * SMALL_FRACTION]
    if len(small) < min_files:
        return []
    total = sum(f.file_size_in_bytes for f in small)
    count = math.ceil(total / target_bytes)
    groups: list[list[DataFile]] = [[] for _ in range(count)]
    start = 0
    for data_file in small:
        middle = start + data_file.file_size_in_bytes / 2
        groups[min(count - 1, int(middle * count / total))].append(data_file)
        start += data_file.file_size_in_bytes
    return [group for group in groups if len(group) > 1]


def _by_partition(table: Table) -> dict[Record, list[DataFile]]:
    """Live data files of the current spec per partition, oldest data first within each.

    "Oldest" is by the lower bound of the partition's source column (``ts``), so
    a group holds neighbouring times and queries on a time range skip files.
    """
    spec = table.spec()
    source = table.schema().find_field(spec.fields[0].source_id) if spec.fields else None
    kind = source.field_type if source is not None and isinstance(source.field_type, PrimitiveType) else None

    def oldest(data_file: DataFile) -> tuple[bool, Any]:
        bound = (data_file.lower_bounds or {}).get(source.field_id) if source and kind else None
        return (True, 0) if kind is None or bound is None else (False, from_bytes(kind, bound))

    partitions: dict[Record, list[DataFile]] = {}
    for data_file in live_files(table):
        if data_file.spec_id == spec.spec_id:
            partitions.setdefault(data_file.partition, []).append(data_file)
    return {key: sorted(files, key=oldest) for key, files in partitions.items()}


def _rewrite(table: Table, group: Iterable[DataFile], sort: str | None, write_uuid: uuid.UUID,
             task_id: int) -> DataFile:
    """Read the group's rows (in the table's current schema) and write them as one data file."""
    metadata = table.metadata
    rows = ArrowScan(metadata, table.io, metadata.schema(), AlwaysTrue()).to_table(
        [FileScanTask(data_file) for data_file in group])
    if sort:
        rows = rows.sort_by(sort)
    partitions = list(_determine_partitions(metadata.spec(), metadata.schema(), rows))
    if len(partitions) != 1:
        raise LakehoseError(f"{table_name(table)}: files of one partition hold rows of "
                            f"{len(partitions)} partitions")
    task = WriteTask(write_uuid=write_uuid, task_id=task_id, schema=metadata.schema(),
                     record_batches=rows.to_batches(), partition_key=partitions[0].partition_key)
    (written,) = write_file(table.io, metadata, iter([task]))
    return written


def compact_table(table: Table, target_bytes: int, min_files: int, sort: str | None,
                  max_manifests: int = 16, stop: threading.Event | None = None) -> Compacted:
    """Compact every partition of ``table`` that needs it, one commit per partition.

    The manifests are merged first if there are more than ``max_manifests``: a
    commit that removes files rewrites every manifest listing one of them, and
    delivery leaves one manifest per commit, each listing a file of today's
    partition (150 commits: 150 manifest rewrites per partition, ~3 s, instead of one).
    """
    result = Compacted()
    merge_manifests(table, max_manifests)
    if sort and sort not in table.schema().column_names:
        sort = None  # e.g. events._rejected has no ts: compact it unsorted
    write_uuid, task_id = uuid.uuid4(), 0
    for files in _by_partition(table).values():
        if stop is not None and stop.is_set():
            break
        groups = plan_groups(files, target_bytes, min_files)
        if not groups:
            continue
        written: list[DataFile] = []
        try:
            for group in groups:
                written.append(_rewrite(table, group, sort, write_uuid, task_id))
                task_id += 1
        except BaseException:
            for data_file in written:
                table.io.delete(data_file.file_path)
            raise
        read = [data_file for group in groups for data_file in group]
        try:
            replace_files(table, read, written, JOB)
        except FilesMoved:
            result.moved += 1
            continue
        result.partitions += 1
        result.files_before += len(read)
        result.files_after += len(written)
        result.bytes += sum(data_file.file_size_in_bytes for data_file in read)
    return result


def compact(settings: Settings, stream: str | None = None, target_bytes: int | None = None,
            min_files: int | None = None, sort: str | None = None,
            stop: threading.Event | None = None) -> list[Outcome[Compacted]]:
    """Compact every table (or ``stream``'s); options left ``None`` come from ``[maintenance]``."""
    m = settings.maintenance
    return run_on_tables(JOB, settings, stream, functools.partial(
        compact_table, target_bytes=target_bytes or m.target_file_bytes,
        min_files=min_files or m.min_files, sort=m.sort if sort is None else sort,
        max_manifests=m.max_manifests, stop=stop), stop)
