"""``lakehose expire``: drop old snapshots and delete the files nothing needs any more.

Without it a table only grows: every commit leaves a snapshot, a manifest
list, a manifest and a ``metadata.json`` behind, and the files a compaction or
a retention replaced stay on disk for the old snapshots. Commits also get
slower as snapshots pile up (pyiceberg copies the whole metadata several times
per commit). Per table, in this order:

1. merge manifests (``manifests``) once the current snapshot lists more than
   ``max_manifests``;
2. expire snapshots older than ``--older-than`` that are neither among the
   ``--keep`` newest of the main branch nor the head of any branch or tag
   (pyiceberg's expiry, which edits metadata only), then delete right away
   the files only the expired snapshots reached. None of those can belong to
   a commit in flight: a commit builds on the current snapshot, which is never
   expired, and re-uses only what that one references; and the set kept is
   read from the metadata the expiry committed, which holds whatever landed
   meanwhile;
3. sweep the table's folders for files no snapshot references (``orphans``),
   older than the grace period.

Nothing here changes table properties (delivery's log offsets) or rows.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from dataclasses import dataclass

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Snapshot

from lakehose.config import Settings
from lakehose.lake.offsets import COMMIT_ATTEMPTS
from lakehose.maintenance.jobs import Outcome, run_on_tables
from lakehose.maintenance.manifests import merge_manifests
from lakehose.maintenance.orphans import delete_orphans
from lakehose.maintenance.references import References

JOB = "expire"


@dataclass(frozen=True)
class Expired:
    """What an expiry did to one table."""

    manifests_merged: int = 0  # manifests the current snapshot had before a merge (0: no merge)
    snapshots: int = 0  # snapshots expired
    files_deleted: int = 0  # files only they referenced, plus orphans swept
    bytes_deleted: int = 0


def expirable(metadata: TableMetadata, cutoff_ms: int, keep: int) -> list[Snapshot]:
    """Snapshots older than ``cutoff_ms``, but never the ``keep`` newest of main nor a ref's head."""
    kept = {ref.snapshot_id for ref in metadata.refs.values()}
    snapshot = metadata.current_snapshot()
    for _ in range(keep):
        if snapshot is None:
            break
        kept.add(snapshot.snapshot_id)
        parent = snapshot.parent_snapshot_id
        snapshot = metadata.snapshot_by_id(parent) if parent is not None else None
    return [s for s in metadata.snapshots if s.timestamp_ms < cutoff_ms and s.snapshot_id not in kept]


def _commit_expiry(table: Table, cutoff_ms: int, keep: int,
                   references: References) -> tuple[int, dict[str, int]]:
    """Expire what ``expirable`` names on the latest metadata; (snapshots, files they reached)."""
    attempt = 1
    while True:
        table.refresh()
        old = expirable(table.metadata, cutoff_ms, keep)
        if not old:
            return 0, {}
        candidates = references.reachable(old, live_only=False)
        try:
            table.maintenance.expire_snapshots().by_ids([s.snapshot_id for s in old]).commit()
            return len(old), candidates
        except CommitFailedException:  # another commit won the race: look again
            if attempt == COMMIT_ATTEMPTS:
                raise
            attempt += 1


def expire_snapshots(table: Table, older_than: dt.timedelta, keep: int, now: float,
                     references: References | None = None) -> tuple[int, int, int]:
    """Expire old snapshots, then delete the files only they reached; (snapshots, files, bytes)."""
    references = references or References(table.io)
    cutoff_ms = int((now - older_than.total_seconds()) * 1000)
    expired, candidates = _commit_expiry(table, cutoff_ms, keep, references)
    if not expired:
        return 0, 0, 0
    kept = references.reachable(table.metadata.snapshots, live_only=True)  # as the expiry committed it
    deleted = size = 0
    for location in sorted(candidates.keys() - kept.keys()):
        try:
            table.io.delete(location)
        except FileNotFoundError:
            continue  # an earlier expiry deleted it (this one saw it as a removed file)
        deleted += 1
        size += candidates[location]
    return expired, deleted, size


def expire_table(table: Table, older_than: dt.timedelta, keep: int, max_manifests: int,
                 grace_seconds: float) -> Expired:
    now, references = time.time(), References(table.io)
    merged = merge_manifests(table, max_manifests)
    snapshots, files, size = expire_snapshots(table, older_than, keep, now, references)
    orphans, orphan_bytes = delete_orphans(table, grace_seconds, now, references)
    return Expired(merged, snapshots, files + orphans, size + orphan_bytes)


def expire(settings: Settings, stream: str | None = None, older_than: dt.timedelta | None = None,
           keep: int | None = None, stop: threading.Event | None = None) -> list[Outcome[Expired]]:
    """Expire every table (or ``stream``'s); options left ``None`` come from ``[maintenance]``."""
    m = settings.maintenance
    age = dt.timedelta(seconds=m.snapshot_max_age_seconds) if older_than is None else older_than
    return run_on_tables(JOB, settings, stream, functools.partial(
        expire_table, older_than=age, keep=m.keep_snapshots if keep is None else keep,
        max_manifests=m.max_manifests, grace_seconds=m.orphan_grace_seconds), stop)
