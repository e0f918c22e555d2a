"""``lakehose dedupe``: remove the extra copies of events that clients sent twice.

The pipeline never duplicates (delivery commits its log offsets with the rows),
but a client that retries after a lost answer sends the same ``event_id`` again.
A retried event keeps its ``ts``, so its copies share a ``day(ts)`` partition:
dedupe reads only the partitions of the last ``--window`` (whole UTC days),
finds the ids that occur more than once with one DuckDB GROUP BY over those
files, and keeps for each id the copy received first. Ties (copies with the
same ``received_at``) keep the copy in the lowest file path, then the lowest
row position, so two runs over the same files agree. Only the files holding a
removed copy are rewritten, in one commit per table (``rewrite.remove_rows``).
The replaced files stay readable by older snapshots until ``lakehose expire``.
"""

from __future__ import annotations

import datetime as dt
import functools

import duckdb
from pyiceberg.expressions import GreaterThanOrEqual, Reference
from pyiceberg.expressions.literals import literal
from pyiceberg.table import Table

from lakehose.config import Settings
from lakehose.lake.rejected import REJECTED_TABLE
from lakehose.maintenance.jobs import Outcome, run_on_tables
from lakehose.maintenance.rewrite import Rows, live_files, remove_rows, replanning
from lakehose.query.engine import QueryEngine

JOB = "dedupe"
# every copy but the first of each event_id that occurs more than once
_EXTRA_COPIES = """
SELECT filename, file_row_number FROM (
    SELECT filename, file_row_number, row_number() OVER (
        PARTITION BY event_id ORDER BY received_at NULLS LAST, filename, file_row_number) AS copy
    FROM rows
    WHERE event_id IN (SELECT event_id FROM rows WHERE event_id IS NOT NULL
                       GROUP BY event_id HAVING count(*) > 1))
WHERE copy > 1
"""


def window_start(window: dt.timedelta, now: dt.datetime) -> dt.datetime:
    """The start of the oldest UTC day the window reaches into: whole partitions only."""
    start = now.astimezone(dt.timezone.utc) - window
    return start.replace(hour=0, minute=0, second=0, microsecond=0)


def _dedupe_table(con: duckdb.DuckDBPyConnection, table: Table, start: dt.datetime) -> int:
    in_window = GreaterThanOrEqual(term=Reference("ts"), value=literal(start.isoformat()))
    rows = Rows(con, live_files(table, in_window))
    return remove_rows(table, rows.positions(rows.fetch(_EXTRA_COPIES)), JOB)


def dedupe(settings: Settings, stream: str | None, window: dt.timedelta) -> list[Outcome[int]]:
    """Remove extra copies by ``event_id`` in every stream's table (or ``stream``'s); rows removed."""
    if stream == REJECTED_TABLE:
        raise ValueError(f"{REJECTED_TABLE} holds rejections, not events: there is nothing to dedupe")
    start = window_start(window, dt.datetime.now(dt.timezone.utc))
    con = QueryEngine(settings).con

    def work(table: Table) -> int:
        if table.name()[-1] == REJECTED_TABLE:
            return 0
        return replanning(table, functools.partial(_dedupe_table, con, table, start))

    outcomes = run_on_tables(JOB, settings, stream, work)
    return [o for o in outcomes if o.table != f"{settings.lake.namespace}.{REJECTED_TABLE}"]
