"""Durable counts of the events each collector acknowledged, per stream and hour.

The audit (``lakehose.audit``) compares them with what the tables hold, so they
are kept apart from the data path: right after the log made a request's events
durable, and before the answer is sent, the collector adds them to counters in
memory; a background task writes the counters to ``lakehose_accepted_counts``
in the catalog database every second, and once more on a graceful stop.

Table layout, one row per collector process, stream and hour::

    stream      the stream
    hour        Unix seconds (UTC) of the start of the hour the events' received_at is in
    instance    "<host>-<pid>-<random>": one per collector process start, never reused
    events      events acknowledged so far
    updated_at  Unix time of the last write

A row is written only by its own process, as the absolute total that process
holds in memory (an upsert that sets, not adds): a flush retried after an
unclear failure never counts twice, and collectors never contend for a row.

What can be lost: a collector killed without its graceful stop (``kill -9``,
out of memory, a machine crash) loses the counts of what it acknowledged since
its last flush, at most about the last second, or longer if the database did
not answer then (counts wait in memory until it does). The events themselves
are safe in the log; the audit then finds more of them landed than counted as
acknowledged in those hours, never fewer.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from lakehose.logs import Logger
from lakehose.registry.store import schema_lock

_LOG = Logger("collector")
FLUSH_SECONDS = 1.0
HOUR = 3600
# Counters of hours older than this leave memory once written: no request takes
# that long between stamping received_at and its answer.
KEEP_SECONDS = 2 * HOUR

metadata = sa.MetaData()

accepted_counts_table = sa.Table(
    "lakehose_accepted_counts", metadata,
    sa.Column("stream", sa.String(63), primary_key=True),
    sa.Column("hour", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("instance", sa.String(128), primary_key=True),
    sa.Column("events", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)


def ensure_table(engine: sa.Engine) -> None:
    with schema_lock(engine):
        metadata.create_all(engine)


def hour_of(epoch_seconds: float) -> int:
    return int(epoch_seconds) // HOUR * HOUR


class AcceptedCounter:
    """One collector process's counters: added to per request, written every second."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.instance = f"{socket.gethostname()[:80]}-{os.getpid()}-{secrets.token_hex(4)}"
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one flush at a time, so totals are written in order
        self._failing = False
        self._totals: dict[tuple[str, int], int] = {}
        self._dirty: set[tuple[str, int]] = set()
        ensure_table(engine)

    def add(self, counts: Mapping[tuple[str, int], int]) -> None:
        """Count acknowledged events, keyed by (stream, hour of received_at)."""
        with self._lock:
            for key, n in counts.items():
                self._totals[key] = self._totals.get(key, 0) + n
                self._dirty.add(key)

    async def flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await asyncio.to_thread(self.flush_or_report)

    def flush_or_report(self) -> None:
        """Flush; on a failure the counts wait in memory for the next flush."""
        try:
            self.flush()
        except Exception as exc:
            self._failing = True
            _LOG.warning("accepted_counts_unwritten", f"could not write accepted counts (kept in "
                                                      f"memory, retried every {FLUSH_SECONDS:g} s): {exc!r}")
            return
        if self._failing:
            _LOG.info("accepted_counts_written", "accepted counts written again")
        self._failing = False

    def flush(self) -> None:
        """Write the counters that changed since the last flush (raises if the database fails)."""
        with self._flushing:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            keys, self._dirty = self._dirty, set()
            now = time.time()
            rows = [{"stream": s, "hour": h, "instance": self.instance, "events": self._totals[(s, h)],
                     "updated_at": now} for s, h in keys]
        if rows:
            try:
                with self.engine.begin() as conn:
                    conn.execute(self._upsert(), rows)
            except Exception:
                with self._lock:  # written next time, with whatever was added meanwhile
                    self._dirty |= keys
                raise
        oldest = hour_of(time.time()) - KEEP_SECONDS
        with self._lock:
            for key in [k for k in self._totals if k[1] < oldest and k not in self._dirty]:
                del self._totals[key]

    def _upsert(self) -> sa.Insert:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(accepted_counts_table)
        return insert.on_conflict_do_update(  # type: ignore[no-any-return]
            index_elements=["stream", "hour", "instance"],
            set_={"events": insert.excluded.events, "updated_at": insert.excluded.updated_at})


def read_accepted(engine: sa.Engine, since: int, streams: Iterable[str]) -> dict[tuple[str, int], int]:
    """Events acknowledged by every collector, per (stream, hour), for hours from ``since`` on."""
    ensure_table(engine)
    t = accepted_counts_table
    query = (sa.select(t.c.stream, t.c.hour, sa.func.sum(t.c.events))
             .where(t.c.hour >= since, t.c.stream.in_(list(streams)))
             .group_by(t.c.stream, t.c.hour))
    with engine.connect() as conn:
        return {(row[0], int(row[1])): int(row[2]) for row in conn.execute(query)}
