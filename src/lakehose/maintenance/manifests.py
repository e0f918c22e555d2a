"""Merge a table's manifests, so a commit's and a query's cost stop growing with the commit count.

Every delivery commit adds one small manifest (a fast append), and the
snapshot's manifest list names them all: after thousands of commits a query
plans over thousands of tiny Avro files. pyiceberg 0.12 has no
``rewrite_manifests``; its merge-append does the same merging when told to
merge every bin of two or more, so a merge is a commit of a merge-append
that adds no file: the current manifests are packed into manifests of up to
``commit.manifest.target-size-bytes`` (8 MiB by default), their entries kept
as they were (same files, same sequence numbers).

It is an append as far as concurrency goes: losing the race to delivery makes
pyiceberg rebuild it on the new head (merging again, the new manifest
included), and nothing can conflict with it; it holds the table's commit lock,
as delivery does, so it is not starved. Table properties are untouched.
"""

from __future__ import annotations

from pyiceberg.io import FileIO
from pyiceberg.table import Table, Transaction
from pyiceberg.table.snapshots import Operation
from pyiceberg.table.update.snapshot import _MergeAppendFiles

from lakehose.lake.commit_lock import commit_lock
from lakehose.maintenance.rewrite import JOB_PROPERTY

JOB = "merge-manifests"


class _MergeManifests(_MergeAppendFiles):
    """A merge-append of no files that merges every bin of manifests it can."""

    def __init__(self, transaction: Transaction, io: FileIO) -> None:
        super().__init__(Operation.APPEND, transaction, io, snapshot_properties={JOB_PROPERTY: JOB})
        self._merge_enabled = True
        self._min_count_to_merge = 2


def merge_manifests(table: Table, max_manifests: int) -> int:
    """Merge the current snapshot's manifests if it has more than ``max_manifests``; how many it had."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0
    count = len(snapshot.manifests(table.io))
    if count <= max_manifests:
        return 0
    with commit_lock(table):  # a merge rebuilds slowly: against delivery it would seldom land
        tx = table.transaction()
        _MergeManifests(tx, table.io).commit()
        tx.commit_transaction()
    return count
