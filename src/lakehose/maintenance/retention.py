"""Retention: drop a table's day partitions once they are older than its retention, whole files only.

A stream's retention is its ``retention_days`` hint (``lakehose streams
create|update --retention-days N``); ``events._rejected`` has
``[maintenance] rejected_retention_days``; without one a table keeps
everything. A day partition goes once all of that day is older than the
retention: the cut is midnight (UTC) of the day that ``now - retention`` falls
in, and the delete is ``<partition column> < cut``. On a table partitioned by
``day()`` of that column this holds for whole files only, so it is a
metadata-level delete: pyiceberg's delete producer marks the files deleted and
reads or rewrites nothing. A file whose statistics cannot prove it wholly
older is kept, never rewritten.

Concurrency: the commit holds the table's commit lock, as delivery's do; the
delete's file set is fixed when it is first planned, so files appended
meanwhile stay. Delivery's current events cannot match the
cut; a late event landing in a day being dropped makes the commit fail
(serializable isolation) and the next run drop it. The dropped files stay on
disk for older snapshots until ``expire`` deletes them (``lakehose retention``
runs it right after).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

from pyiceberg.expressions import LessThan, Reference
from pyiceberg.expressions.literals import literal
from pyiceberg.table import Table

from lakehose.config import Settings
from lakehose.errors import LakehoseError
from lakehose.lake.commit_lock import commit_lock
from lakehose.lake.rejected import REJECTED_TABLE
from lakehose.maintenance.jobs import Outcome, run_on_tables, table_name
from lakehose.maintenance.rewrite import JOB_PROPERTY
from lakehose.registry.store import Registry

JOB = "retention"
HINT = "retention_days"


@dataclass(frozen=True)
class Retained:
    days: float | None  # the table's retention (None: keeps everything)
    files_dropped: int = 0


def cut(now: dt.datetime, days: float) -> dt.datetime:
    """Midnight UTC of the day ``now - days`` falls in: every partition before it is wholly older."""
    start = now.astimezone(dt.timezone.utc) - dt.timedelta(days=days)
    return start.replace(hour=0, minute=0, second=0, microsecond=0)


def drop_old_partitions(table: Table, days: float, now: dt.datetime) -> int:
    """Drop the files of the day partitions wholly older than ``days``; how many were dropped."""
    spec = table.spec()
    column = table.schema().find_column_name(spec.fields[0].source_id) if len(spec.fields) == 1 else None
    if column is None:
        raise LakehoseError(f"{table_name(table)}: retention needs a table partitioned by one day() field")
    with commit_lock(table):
        tx = table.transaction()
        delete = tx.update_snapshot(snapshot_properties={JOB_PROPERTY: JOB}).delete()
        delete.delete_by_predicate(LessThan(term=Reference(column), value=literal(cut(now, days).isoformat())))
        delete.commit()
        tx.commit_transaction()
    snapshot = table.metadata.snapshot_by_id(delete.snapshot_id)  # None: nothing was old enough
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.get("deleted-data-files", "0"))


def retention_days(settings: Settings) -> dict[str, float]:
    """Each table's retention, by table name; tables without one are absent."""
    days = {s.name: float(s.hints[HINT]) for s in Registry(settings.catalog_uri).list_streams()
            if HINT in s.hints}
    if settings.maintenance.rejected_retention_days:
        days[REJECTED_TABLE] = settings.maintenance.rejected_retention_days
    return days


def retention(settings: Settings, stream: str | None = None,
              stop: threading.Event | None = None) -> list[Outcome[Retained]]:
    """Apply each table's retention (or ``stream``'s) now."""
    days = retention_days(settings)
    now = dt.datetime.now(dt.timezone.utc)

    def work(table: Table) -> Retained:
        keep = days.get(table.name()[-1])
        return Retained(keep, drop_old_partitions(table, keep, now) if keep else 0)

    return run_on_tables(JOB, settings, stream, work, stop)
