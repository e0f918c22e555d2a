"""What the scheduled maintenance jobs share: which tables a run covers, and how runs are counted.

A run covers every table of the namespace (each stream's and ``_rejected``)
or, with ``--stream``, one of them. A table that fails does not stop the run:
the others still get their turn, so one bad table cannot starve the rest. The
run then counts once in ``lakehose_maintenance_runs_total{job,outcome}``:
``failure`` if any table failed, and only a clean run moves
``lakehose_maintenance_last_success_timestamp_seconds``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table

from lakehose import metrics
from lakehose.config import Settings
from lakehose.errors import NotFound
from lakehose.lake.catalog import open_catalog

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """One table's result, or why it failed."""

    table: str
    result: T | None
    error: str | None = None


def table_name(table: Table) -> str:
    return ".".join(table.name())


def load_tables(catalog: Catalog, settings: Settings, stream: str | None) -> list[Table]:
    """Every table of the namespace, or only ``stream``'s (``NotFound`` if it has none)."""
    namespace = settings.lake.namespace
    names = sorted(name for _, name in catalog.list_tables(namespace))
    if stream is not None:
        if stream not in names:
            raise NotFound(f"no table {namespace}.{stream}: tables are {', '.join(names) or 'none yet'}")
        names = [stream]
    tables = []
    for name in names:
        try:
            tables.append(catalog.load_table((namespace, name)))
        except NoSuchTableError:
            continue  # dropped while this ran
    return tables


def record(job: str, ok: bool) -> None:
    metrics.MAINTENANCE_RUNS.labels(job, "success" if ok else "failure").inc()
    if ok:
        metrics.MAINTENANCE_LAST_SUCCESS.labels(job).set(time.time())


def run_on_tables(job: str, settings: Settings, stream: str | None, work: Callable[[Table], T],
                  stop: threading.Event | None = None) -> list[Outcome[T]]:
    """``work`` on each table in turn (until ``stop``), then count the run."""
    try:
        tables = load_tables(open_catalog(settings), settings, stream)
    except BaseException:
        record(job, ok=False)
        raise
    outcomes: list[Outcome[T]] = []
    for table in tables:
        if stop is not None and stop.is_set():
            break
        try:
            outcomes.append(Outcome(table_name(table), work(table)))
        except Exception as exc:  # reported, and the other tables still run
            outcomes.append(Outcome(table_name(table), None, f"{type(exc).__name__}: {exc}"))
    record(job, ok=all(outcome.error is None for outcome in outcomes))
    return outcomes
