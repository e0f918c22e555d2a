"""One lakehose commit at a time per table, across processes, so slow commits are not starved.

Iceberg commits are optimistic: each is built on the table's current snapshot
and published with a compare-and-swap; the loser rebuilds on the new snapshot
and tries again. Delivery's appends rebuild in a moment, but a maintenance
commit (dedupe, forget, compaction) re-reads and rewrites manifests and takes
far longer; against delivery committing a few times a second it lost every
attempt (15 of 15, three times over, with ``max_seconds`` 0.3 under load). So
every lakehose writer of a table's rows holds this lock around its commit.
The optimistic check stays underneath: other engines writing the same tables
do not take the lock.

The lock lives where the catalog does: on PostgreSQL a transaction-level
advisory lock keyed by the table's name, on a connection of its own; on
SQLite an exclusive ``flock`` on a file beside the database, one per table.
A process that dies releases it (its connection or its file closes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from lakehose.registry.store import database_lock


def _key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a table name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def commit_lock(table: Table) -> Iterator[None]:
    """Hold the table's commit lock for the block (a no-op for a catalog that is not SQL)."""
    if not isinstance(table.catalog, SqlCatalog):
        yield
        return
    engine: sa.Engine = table.catalog.engine
    name = ".".join(table.name())
    with database_lock(engine, _key(f"commit {name}"), f".{name}.commit-lock"):
        yield
