"""Remove chosen rows from a table, copy on write, while delivery keeps appending.

dedupe and forget decide which rows go as (data file, row position) pairs,
found by DuckDB reading the Parquet files of the table's current snapshot
(``Rows``). ``remove_rows`` reads each of those files whole, writes it again
without those rows (a file left empty is simply dropped) and swaps them in one
Iceberg commit that deletes exactly those files and adds their rewritten
versions. No filter decides which files go, and table properties (delivery's
log offsets) are not part of the commit.

Why not pyiceberg's ``delete(filter)``: its commit retry keeps the files it
first planned, so it loses no concurrent append, but tables default to
serializable isolation, under which any append that *might* hold a matching
row (by its column bounds) fails the delete with ``ValidationException``; with
delivery appending every few seconds a forget would seldom get through. And
dedupe removes some copies of equal rows, which no filter can say.

Concurrency: the commit holds the table's ``commit_lock``, which delivery's
commits take too, so delivery cannot starve it. A commit that still loses the
race (to a delivery commit between this plan and the lock, or to a writer
outside lakehose) is rebuilt by pyiceberg on the new head
(``Transaction.commit_transaction`` → ``_rebuild_snapshot_updates``), and
``_ReplaceFiles`` keeps every file it was not told to delete, so appended files
stay. The one real conflict is a replaced file having been removed (or given
delete files) by another writer meanwhile: another dedupe or forget, a
compaction. Then nothing is committed, the new files are deleted and
``FilesMoved`` is raised; ``replanning`` runs the job's plan again.

Privacy: the manifest entries that record a file as deleted normally keep the
file's column bounds, which may be the very value forget removes; here they
are written without bounds.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files
from pyiceberg.manifest import DataFile, ManifestEntry
from pyiceberg.table import FileScanTask, Table
from pyiceberg.table.snapshots import Operation
from pyiceberg.table.update.snapshot import _OverwriteFiles
from pyiceberg.table.update.validate import (
    _validate_data_files_exist,
    _validate_no_new_deletes_for_data_files,
)

from lakehose.errors import FilesMoved, LakehoseError
from lakehose.lake.commit_lock import commit_lock

JOB_PROPERTY = "lakehose.maintenance"  # in the snapshot summary: which job made the snapshot
PLAN_ATTEMPTS = 3
# positions of the column bounds in pyiceberg's DataFile record (its lower_bounds/upper_bounds)
_LOWER_BOUNDS, _UPPER_BOUNDS = 10, 11


def _duckdb_name(path: str) -> str:
    """The name DuckDB reports in ``filename``: a local file loses its ``file://``."""
    parsed = urlparse(path)
    return parsed.path if parsed.scheme == "file" else path


def live_files(table: Table, row_filter: BooleanExpression = AlwaysTrue()) -> list[DataFile]:
    """The current snapshot's data files that may hold rows matching ``row_filter``.

    Row positions are only meaningful without delete files; lakehose writes
    none, so a table that has some was written by another engine and is refused.
    """
    tasks = list(table.scan(row_filter=row_filter).plan_files())
    if any(task.delete_files for task in tasks):
        raise LakehoseError(f"{'.'.join(table.name())} has delete files (written by another engine); "
                            "lakehose maintenance only rewrites tables without them")
    return [task.file for task in tasks]


class Rows:
    """Data files as the DuckDB relation ``rows``, with ``filename`` and ``file_row_number`` columns."""

    def __init__(self, con: duckdb.DuckDBPyConnection, files: Iterable[DataFile]) -> None:
        self.con = con
        self.files = {_duckdb_name(f.file_path): f for f in files}

    def fetch(self, select: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run ``select`` (which reads ``rows``); columns missing from older files read as NULL."""
        if not self.files:
            return []
        sql = ("WITH rows AS (SELECT * FROM read_parquet($files, filename = true, "
               "file_row_number = true, union_by_name = true)) " + select)
        return self.con.execute(sql, {"files": list(self.files), **(params or {})}).fetchall()

    def positions(self, found: Iterable[Sequence[Any]]) -> dict[DataFile, set[int]]:
        """``(filename, file_row_number, ...)`` rows grouped by data file."""
        out: dict[DataFile, set[int]] = {}
        for row in found:
            out.setdefault(self.files[row[0]], set()).add(int(row[1]))
        return out


def _without(rows: pa.Table, gone: Collection[int]) -> pa.Table:
    pieces, start = [], 0
    for position in sorted(gone):
        pieces.append(rows.slice(start, position - start))
        start = position + 1
    pieces.append(rows.slice(start))
    return pa.concat_tables(pieces)


def _without_bounds(data_file: DataFile) -> DataFile:
    copy = DataFile(*(data_file[i] for i in range(len(data_file))))
    copy.spec_id = data_file.spec_id
    copy[_LOWER_BOUNDS] = copy[_UPPER_BOUNDS] = None
    return copy


class _ReplaceFiles(_OverwriteFiles):
    """An overwrite of named files whose only conflict is one of those files changing."""

    def _validate_concurrency(self) -> None:
        window = self._commit_window
        if window is None or window.is_empty() or window.head is None:
            return
        table = self._transaction._table
        _validate_data_files_exist(table, window.head, self._deleted_data_files, window.base)
        _validate_no_new_deletes_for_data_files(table, window.head, None, self._deleted_data_files,
                                                window.base)

    def _deleted_entries(self) -> list[ManifestEntry]:
        entries = super()._deleted_entries()
        for entry in entries:
            entry.data_file = _without_bounds(entry.data_file)
        return entries


def _commit(table: Table, removed: Iterable[DataFile], added: Iterable[DataFile], job: str) -> None:
    with commit_lock(table):  # delivery waits; without it this slow commit lost every race
        tx = table.transaction()
        producer = _ReplaceFiles(Operation.OVERWRITE, tx, table.io, snapshot_properties={JOB_PROPERTY: job})
        for data_file in removed:
            producer.delete_data_file(data_file)
        for data_file in added:
            producer.append_data_file(data_file)
        producer.commit()
        tx.commit_transaction()


def _delete(table: Table, files: Iterable[DataFile]) -> None:
    for data_file in files:
        table.io.delete(data_file.file_path)


def remove_rows(table: Table, drops: Mapping[DataFile, Collection[int]], job: str) -> int:
    """Rewrite each file without the rows at those positions, in one commit; the rows removed."""
    drops = {data_file: gone for data_file, gone in drops.items() if gone}
    if not drops:
        return 0
    metadata, write_uuid, counter = table.metadata, uuid.uuid4(), itertools.count()
    added: list[DataFile] = []
    try:
        for data_file, gone in drops.items():
            scan = ArrowScan(metadata, table.io, metadata.schema(), AlwaysTrue())
            kept = _without(scan.to_table([FileScanTask(data_file)]), gone)
            if kept.num_rows:
                added += _dataframe_to_data_files(metadata, kept, table.io, write_uuid, counter)
    except BaseException:
        _delete(table, added)
        raise
    replace_files(table, drops, added, job)
    return sum(len(gone) for gone in drops.values())


def replace_files(table: Table, removed: Iterable[DataFile], added: Collection[DataFile],
                  job: str) -> None:
    """Swap ``removed`` for ``added`` in one commit; if it cannot land, delete ``added`` and
    raise ``FilesMoved``."""
    try:
        _commit(table, removed, added, job)
    except (ValidationException, CommitFailedException) as exc:
        # both mean the commit did not land; any other error leaves that unknown, so the
        # files stay (a commit that landed references them)
        _delete(table, added)
        cause = ("another writer removed files it was rewriting" if isinstance(exc, ValidationException)
                 else "other commits to the table kept landing first")
        raise FilesMoved(f"{'.'.join(table.name())}: the {job} commit did not land: {cause} ({exc}); "
                         "nothing was committed") from exc


def replanning(table: Table, plan_and_remove: Callable[[], int]) -> int:
    """Run ``plan_and_remove`` on the table's latest state, again if its files moved meanwhile."""
    attempt = 1
    while True:
        table.refresh()
        try:
            return plan_and_remove()
        except FilesMoved:
            if attempt == PLAN_ATTEMPTS:
                raise
            attempt += 1
