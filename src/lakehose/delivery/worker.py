"""The delivery loop: read each stream's log, buffer as Arrow, commit with offsets.

Exactly once: a table's commit carries, in the same Iceberg metadata change,
the log offsets up to which its rows go (a table property per log partition,
see ``lake.offsets``). On start a stream resumes from those offsets, so a crash
before a commit re-reads what was not committed and a crash after it skips what
was. A commit also requires the offsets it starts from to be still in place, so
when workers share a Kafka log and a partition moves between them, the one
whose rows were already delivered by the other drops its buffer and goes back
to the table's offsets. Only after the commit is the log told what it may free.

A batch is committed when it reaches the stream's ``max_events`` or
``max_bytes`` (of JSON read), when its oldest event has waited ``max_seconds``,
or when all buffers together exceed the memory budget (largest first).
Only one delivery process may serve a ``wal://`` log (it holds a lock file);
any number may share a ``kafka://`` log, as one consumer group.

A commit that fails (the catalog or the object store is down) is retried with
backoff, in this process, instead of the process dying and being restarted
into the same outage: the events stay in the log until a commit takes them.
The failed batch is dropped and read again from the committed offsets at the
next try, so memory stays bounded however long the outage lasts, and the
table's offsets decide, after a commit whose outcome is unknown, whether it
landed. Failures are logged at a bounded rate (``lakehose.logs``).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from lakehose import logs, metrics
from lakehose.config import Settings
from lakehose.delivery.convert import Converter, Unconvertible
from lakehose.lake.catalog import ensure_table, open_catalog
from lakehose.lake.offsets import OffsetsMoved, commit_with_offsets, read_offsets
from lakehose.lake.rejected import append_delivery_rejections, ensure_rejected_table
from lakehose.log import REJECTED_TOPIC, Log, open_log
from lakehose.registry.store import Registry, Stream

READ_CHUNK_BYTES = 16 << 20
POLL_SECONDS = 0.1
REGISTRY_REFRESH_SECONDS = 2.0
DRAIN_SECONDS = 60.0
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
_LOG = logs.Logger("delivery")


@dataclass(frozen=True)
class Hints:
    max_events: int
    max_bytes: int
    max_seconds: float


@dataclass
class Buffer:
    tables: list[pa.Table] = field(default_factory=list)
    rejected: list[Unconvertible] = field(default_factory=list)
    events: int = 0
    json_bytes: int = 0
    arrow_bytes: int = 0
    oldest_ms: int | None = None

    def clear(self) -> None:
        self.tables, self.rejected = [], []
        self.events = self.json_bytes = self.arrow_bytes = 0
        self.oldest_ms = None


class StreamDelivery:
    """One log topic (a stream, or ``_rejected``): its table, read position and buffer."""

    def __init__(self, name: str, version: int, table: Table, hints: Hints) -> None:
        self.name = name
        self.version = version
        self.table = table
        self.hints = hints
        self.committed = read_offsets(table)
        self.position = dict(self.committed)
        self.converter = Converter(table.schema().as_arrow())
        self.buffer = Buffer()
        self.failures = 0  # commits failed in a row
        self.retry_at = 0.0  # time.monotonic() before which the stream is not read again
        self.stalled: tuple[int, int] | None = None  # (oldest_ms, events) of the last failed batch
        self.report_lag()

    def restart_from_table(self) -> None:
        """Drop what is buffered and read again from the offsets the table holds now."""
        self.table.refresh()
        self.committed = read_offsets(self.table)
        self.position = dict(self.committed)
        self.buffer.clear()
        self.failures, self.retry_at, self.stalled = 0, 0.0, None
        self.report_lag()

    def failed(self, delay: float) -> None:
        """Drop the batch that failed (it stays in the log) and read it again after ``delay``."""
        b = self.buffer
        if b.oldest_ms is not None:
            self.stalled = (b.oldest_ms, b.events)
        self.failures += 1
        self.retry_at = time.monotonic() + delay
        self.position = dict(self.committed)
        b.clear()

    def report_lag(self) -> None:
        """Lag gauges from the buffer (or the failed batch); the last-commit time from the table."""
        b = self.buffer
        oldest_ms, events = (b.oldest_ms, b.events) if b.oldest_ms is not None \
            else self.stalled or (None, 0)
        seconds = (time.time() * 1000 - oldest_ms) / 1000 if oldest_ms is not None else 0.0
        metrics.CONSUMER_LAG_SECONDS.labels(self.name).set(seconds)
        metrics.CONSUMER_LAG_EVENTS.labels(self.name).set(events)
        metrics.LAST_COMMIT.labels(self.name).set(self.table.metadata.last_updated_ms / 1000)

    def unsaved_offsets(self) -> dict[int, int]:
        """Partitions read past their committed offset, with how far."""
        return {p: o for p, o in self.position.items() if self.committed.get(p) != o}

    def due(self, now_ms: int) -> bool:
        b = self.buffer
        if b.oldest_ms is None:
            return False
        return (b.events >= self.hints.max_events or b.json_bytes >= self.hints.max_bytes
                or now_ms - b.oldest_ms >= self.hints.max_seconds * 1000)


def resolve_hints(settings: Settings, stream: Stream) -> Hints:
    d = settings.delivery
    return Hints(int(stream.hints.get("max_events", d.max_events)),
                 int(stream.hints.get("max_bytes", d.max_bytes)),
                 float(stream.hints.get("max_seconds", d.max_seconds)))


class Deliverer:
    def __init__(self, settings: Settings, stopping: threading.Event | None = None,
                 memory_budget_bytes: int = 512 << 20) -> None:
        self.settings = settings
        self.memory_budget_bytes = memory_budget_bytes
        self.registry = Registry(settings.catalog_uri)
        self.catalog: SqlCatalog = open_catalog(settings)
        self.rejected_table = ensure_rejected_table(self.catalog, settings)
        self.log: Log = open_log(settings.log_uri, options=settings.log)
        self.streams: dict[str, StreamDelivery] = {}
        self.stopping = stopping or threading.Event()
        self._registry_checked = 0.0
        self._generation = self.log.assignment_generation()

    # setup -------------------------------------------------------------------
    def refresh_streams(self) -> None:
        for stream in self.registry.list_streams():
            current = self.streams.get(stream.name)
            if current is not None and current.version == stream.version:
                current.hints = resolve_hints(self.settings, stream)
                continue
            if current is not None:
                self.flush(current)
            table = ensure_table(self.catalog, self.settings, stream)
            self.streams[stream.name] = StreamDelivery(stream.name, stream.version, table,
                                                       resolve_hints(self.settings, stream))
        if REJECTED_TOPIC not in self.streams:
            d = self.settings.delivery
            self.streams[REJECTED_TOPIC] = StreamDelivery(
                REJECTED_TOPIC, 0, self.rejected_table, Hints(d.max_events, d.max_bytes, d.max_seconds))
        self._registry_checked = time.monotonic()

    # the loop ----------------------------------------------------------------
    def poll(self) -> bool:
        """Read what is new from every stream once; True if anything was read."""
        progressed = False
        for sd in list(self.streams.values()):
            if time.monotonic() < sd.retry_at:  # its last commit failed: wait before reading again
                continue
            for partition in self.log.partitions(sd.name):
                offset = sd.position.get(partition, 0)
                records = self.log.read(sd.name, partition, offset, READ_CHUNK_BYTES)
                if not records:
                    continue
                progressed = True
                table, failed = sd.converter.convert(records)
                if failed and sd.name != REJECTED_TOPIC \
                        and self.registry.get_stream(sd.name).version != sd.version:
                    # a newer schema version: commit what was read before it, reload, read again
                    self.refresh_streams()
                    break
                b = sd.buffer
                b.tables.append(table)
                b.rejected.extend(failed)
                b.events += table.num_rows + len(failed)
                b.json_bytes += sum(len(r.payload) for r in records)
                b.arrow_bytes += table.nbytes
                first = min(r.appended_ms for r in records)
                b.oldest_ms = first if b.oldest_ms is None else min(b.oldest_ms, first)
                sd.position[partition] = records[-1].next_offset
        return progressed

    def flush_due(self) -> None:
        now_ms = int(time.time() * 1000)
        for sd in self.streams.values():
            if sd.due(now_ms):
                self.flush(sd)
            if sd.buffer.oldest_ms is not None or sd.stalled is not None:
                sd.report_lag()
        while sum(sd.buffer.arrow_bytes for sd in self.streams.values()) > self.memory_budget_bytes:
            self.flush(max(self.streams.values(), key=lambda sd: sd.buffer.arrow_bytes))

    def flush(self, sd: StreamDelivery) -> None:
        """Commit the buffer and the offsets it reaches, in one Iceberg commit."""
        b = sd.buffer
        unsaved = sd.unsaved_offsets()
        if b.oldest_ms is None and not unsaved:
            return
        started = time.perf_counter()
        data = pa.concat_tables(b.tables) if b.tables else None
        try:
            if sd.failures:  # the failed commit may have landed after all: the offsets will tell
                sd.table.refresh()
            if b.rejected:
                append_delivery_rejections(self.rejected_table, sd.name, b.rejected, unsaved)
                metrics.DELIVERY_REJECTED.labels(sd.name).inc(len(b.rejected))
            commit_with_offsets(sd.table, data, sd.committed, unsaved)
        except OffsetsMoved as exc:
            _LOG.warning("offsets_moved", f"{exc}; another worker delivered these events, reading "
                                          f"again from the table's offsets", stream=sd.name)
            sd.restart_from_table()
            return
        except Exception as exc:  # any failure is retried: the log keeps the events
            delay = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** sd.failures)
            sd.failed(delay)
            metrics.COMMIT_FAILURES.labels(sd.name).inc()
            _LOG.error("commit_failed", f"{sd.name}: commit failed ({sd.failures} in a row), "
                                        f"retrying in {delay:g} s: {exc!r}",
                       stream=sd.name, failures=sd.failures)
            return
        if sd.failures:
            _LOG.info("commit_recovered", f"{sd.name}: committed after {sd.failures} failed tries",
                      stream=sd.name)
            sd.failures, sd.stalled = 0, None
        sd.committed = dict(sd.position)
        rows = data.num_rows if data is not None else 0
        metrics.BATCHES_COMMITTED.labels(sd.name).inc()
        metrics.ROWS_COMMITTED.labels(sd.name).inc(rows)
        metrics.COMMIT_LATENCY.observe(time.perf_counter() - started)
        snapshot = sd.table.current_snapshot() if rows else None
        if snapshot is not None and snapshot.summary is not None:  # this commit's snapshot
            metrics.FILES_WRITTEN.labels(sd.name).inc(int(snapshot.summary["added-data-files"] or 0))
            metrics.BYTES_WRITTEN.labels(sd.name).inc(int(snapshot.summary["added-files-size"] or 0))
        b.clear()
        sd.report_lag()
        self.log.mark_delivered(sd.name, sd.committed)

    def follow_assignment(self) -> None:
        """After partitions moved between workers, every stream restarts from its table."""
        generation = self.log.assignment_generation()
        if generation != self._generation:
            self._generation = generation
            for sd in self.streams.values():
                sd.restart_from_table()

    def run(self) -> None:
        self.refresh_streams()
        while not self.stopping.is_set():
            if time.monotonic() - self._registry_checked > REGISTRY_REFRESH_SECONDS:
                self.refresh_streams()
            self.follow_assignment()
            progressed = self.poll()
            self.flush_due()
            if not progressed:
                self.stopping.wait(POLL_SECONDS)
        # graceful stop: take what is in the log now, commit everything, exit (bounded:
        # on a shared log, collectors may go on appending while this worker stops)
        deadline = time.monotonic() + DRAIN_SECONDS
        while self.poll() and time.monotonic() < deadline:
            self.flush_due()
        for sd in self.streams.values():
            self.flush(sd)
        self.log.close()


def acquire_delivery_lock(settings: Settings) -> int:
    """Exclusive right to deliver this data folder's WAL; exits clearly if taken."""
    path = Path(settings.log_uri.removeprefix("wal://")) / "_delivery.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"lakehose deliver: another delivery process holds {path}") from None
    return fd


def run_delivery(settings: Settings, stopping: threading.Event) -> None:
    """Deliver until ``stopping`` is set, then drain the log and commit everything."""
    logs.capture_library_logs()
    lock = acquire_delivery_lock(settings) if settings.log_uri.startswith("wal://") else None
    deliverer = Deliverer(settings, stopping)
    try:
        deliverer.run()
    finally:
        if lock is not None:
            os.close(lock)
