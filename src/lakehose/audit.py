"""The audit: per stream and hour, what collectors acknowledged against what became of it.

Two independent sides are compared, both by the hour (UTC) of the events'
``received_at``:

* **accepted**: events collectors made durable in the log and counted in the
  catalog database (``lakehose_accepted_counts``, see ``collector.accepted``);
* what the lake and the log hold of them:
  **landed**, rows of ``events.<stream>``, counted from the data files of the
  table's current snapshot (a file's row count when its ``received_at`` bounds
  lie in one hour, else its ``received_at`` column, read once per process);
  **replayed**, rows of those that ``lakehose rejected replay`` added (the
  collector never accepted them, or counted them as rejected at delivery);
  **rejected at delivery**, rows of ``events._rejected`` delivery wrote for
  events it could not convert;
  **in flight**, events in the log past the offsets the table's commit holds.

``discrepancy = accepted - (landed - replayed) - rejected at delivery - in flight``.
Events **rejected at the collector** are shown too; they were never accepted.

Why a shortfall (a positive discrepancy) is never a race: the accepted counts
are read first; then, per stream, the table, whose rows and log offsets come
from one metadata version; then the log from those offsets; then
``_rejected``. An event is in the log before it is counted, so by then it is in
a committed data file or past the committed offsets. Delivery rejections count
only below the table's offsets (they are committed just before the data commit
of their range, and those past it are still in flight), and replayed rows only
from the ``_rejected`` snapshot read before the tables (a replay appends rows
before it marks them). So a shortfall in any hour, closed or not, means
acknowledged events are gone: a data file deleted behind the catalog's back
(reported as rows in missing files, which are not read), log data removed
before delivery (Kafka retention), or a bug.

A surplus (a negative discrepancy: more rows than acknowledged) is judged only
in **closed** hours, which ended ``SETTLE_SECONDS`` before the counts were read:
in a current hour the last second's acknowledgements are not written yet while
their rows may be. In a closed hour it means: a collector was killed without its
graceful stop and lost up to its last second of counts; rows were written by
something else than delivery and replay; a replay was between its append and its
marking; a Kafka append failed (503) after part of it was stored, so the
client's retry lands those twice; or the hour is older than the collectors'
counting (an upgrade).

Rows removed on purpose (dedupe, forget, retention) are not told apart from lost
ones: they show as a shortfall in their hours.

Limits: the in-flight count reads at most ``IN_FLIGHT_SCAN_BYTES`` of each
stream's log; when delivery is further behind, hours from the first unread
record on (less ``STAMP_TO_APPEND_SECONDS``) show no in-flight count and are not
judged. Files with delete files (written by other engines) are read through
them. The hour of an in-flight event is its ``received_at``; of a delivery
rejection, the ``received_at`` in its payload.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pa_fs
from pyiceberg.conversions import from_bytes
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, GreaterThanOrEqual, NotNull, Reference
from pyiceberg.expressions.literals import literal
from pyiceberg.io.pyarrow import ArrowScan, PyArrowFileIO
from pyiceberg.table import FileScanTask, Table
from pyiceberg.types import TimestamptzType

from lakehose import metrics
from lakehose.collector.accepted import HOUR, hour_of, read_accepted
from lakehose.config import Settings
from lakehose.errors import LogCorrupt, NotFound
from lakehose.lake.catalog import open_catalog, table_identifier
from lakehose.lake.offsets import read_offsets
from lakehose.lake.rejected import REJECTED_TABLE, ensure_rejected_table
from lakehose.log import Log, open_log
from lakehose.logs import Logger
from lakehose.registry.store import Registry

_LOG = Logger("audit")
DEFAULT_SINCE = "24h"
# the accepted counts of an hour are final this long after it ends (flush every
# second, plus the time a request may take between stamping and its answer)
SETTLE_SECONDS = 120
STAMP_TO_APPEND_SECONDS = 60
IN_FLIGHT_SCAN_BYTES = 256 << 20
FILES_REMEMBERED = 100_000  # hour counts of files spanning hours, a few hundred bytes each
LOG_RETRIES = 3  # delivery may release the log segment the table's offsets point into meanwhile
_HOUR_US = HOUR * 1_000_000
_SINCE = re.compile(r"(\d+)([mhd])")
_UNITS = {"m": 60, "h": HOUR, "d": 24 * HOUR}


class _ReceivedAt(msgspec.Struct):
    received_at: int | None = None  # epoch microseconds, as the collector writes it to the log


_RECEIVED_AT = msgspec.json.Decoder(_ReceivedAt)


def parse_since(text: str, now: float | None = None) -> int:
    """``24h``, ``90m``, ``7d`` or an ISO 8601 time → the start of its hour (Unix seconds).

    Anything before 1970 (``99999999999d`` included) means "from the start": nothing in
    the books is older, and a time that far back is not even a date Python can print.
    """
    now = time.time() if now is None else now
    match = _SINCE.fullmatch(text.strip())
    if match:
        return max(0, hour_of(now - min(int(match[1]) * _UNITS[match[2]], now)))
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"since: expected a duration such as 24h, 90m or 7d, or an ISO 8601 "
                         f"time; got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    if when.timestamp() > now:
        raise ValueError(f"since: {text!r} is in the future")
    return max(0, hour_of(when.timestamp()))


def iso_hour(hour: int) -> str:
    return dt.datetime.fromtimestamp(hour, dt.timezone.utc).strftime("%Y-%m-%dT%H:00:00Z")


@dataclass
class HourAudit:
    """The books of one stream for one hour."""

    stream: str
    hour: int  # Unix seconds of the hour's start
    accepted: int = 0
    landed: int = 0
    replayed: int = 0
    rejected_collector: int = 0
    rejected_delivery: int = 0
    in_flight: int | None = 0  # None: delivery is too far behind to count it
    closed: bool = False

    @property
    def discrepancy(self) -> int | None:
        if self.in_flight is None:
            return None
        return self.accepted - (self.landed - self.replayed) - self.rejected_delivery - self.in_flight

    @property
    def reported(self) -> bool:
        """A shortfall in any hour; a surplus once the hour is closed (see the module docstring)."""
        d = self.discrepancy
        return d is not None and (d > 0 or (d < 0 and self.closed))

    def explanation(self) -> str:
        d = self.discrepancy or 0
        if d > 0:
            return (f"{d} acknowledged events are neither in the table, nor rejected at delivery, "
                    "nor in the log")
        return (f"{-d} more events landed than collectors acknowledged (a collector killed without "
                "its graceful stop loses up to its last second of counts)")


@dataclass
class MissingFiles:
    """Data files a table's snapshot lists that storage does not have, with their row counts."""

    table: str
    files: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.files.values())


@dataclass
class AuditReport:
    since: int
    checked_at: float
    hours: list[HourAudit]
    missing: list[MissingFiles] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def discrepancies(self) -> list[HourAudit]:
        return [h for h in self.hours if h.reported]

    @property
    def ok(self) -> bool:
        return not self.discrepancies() and not self.missing

    def problems(self) -> list[str]:
        """One line per discrepancy and per table with missing files."""
        lines = [f"events.{m.table}: {m.rows} rows in {len(m.files)} missing data files"
                 for m in self.missing]
        lines += [f"{h.stream} {iso_hour(h.hour)}: {h.explanation()}" for h in self.discrepancies()]
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "since": iso_hour(self.since),
            "checked_at": dt.datetime.fromtimestamp(self.checked_at, dt.timezone.utc).isoformat(),
            "ok": self.ok,
            "hours": [{"stream": h.stream, "hour": iso_hour(h.hour), "accepted": h.accepted,
                       "landed": h.landed, "replayed": h.replayed,
                       "rejected_collector": h.rejected_collector,
                       "rejected_delivery": h.rejected_delivery, "in_flight": h.in_flight,
                       "closed": h.closed, "discrepancy": h.discrepancy, "reported": h.reported}
                      for h in self.hours],
            "missing_files": [{"table": f"events.{m.table}", "files": len(m.files), "rows": m.rows,
                               "paths": sorted(m.files)} for m in self.missing],
            "problems": self.problems(),
            "notes": self.notes,
        }


def _received_since(since: int) -> BooleanExpression:
    return GreaterThanOrEqual(term=Reference("received_at"), value=literal(since * 1_000_000))


def _source(source: str) -> BooleanExpression:
    return EqualTo(term=Reference("source"), value=literal(source))


def _hours(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A received_at column → the start of each row's hour, in Unix seconds."""
    return pc.divide(pc.floor_temporal(column, unit="hour").cast(pa.int64()), 1_000_000)


def _by_stream_hour(rows: pa.Table) -> list[tuple[str, int, int]]:
    """(stream, hour, rows) of a table with ``stream`` and ``received_at`` columns."""
    keyed = pa.table({"stream": rows.column("stream"), "hour": _hours(rows.column("received_at"))})
    grouped = keyed.group_by(["stream", "hour"]).aggregate([([], "count_all")]).to_pylist()
    return [(g["stream"], g["hour"], g["count_all"]) for g in grouped if g["hour"] is not None]


def _missing_paths(table: Table, tasks: Iterable[FileScanTask]) -> set[str]:
    """Files the tasks need that storage lacks: one listing per folder, not a request per file."""
    io = table.io
    assert isinstance(io, PyArrowFileIO), "lakehose opens tables with pyarrow's FileIO"
    by_folder: dict[str, set[str]] = defaultdict(set)
    for task in tasks:
        for path in [task.file.file_path, *(d.file_path for d in task.delete_files)]:
            by_folder[path.rsplit("/", 1)[0]].add(path)
    missing: set[str] = set()
    for folder, paths in by_folder.items():
        scheme, netloc, local = PyArrowFileIO.parse_location(folder, io.properties)
        listing = io.fs_by_scheme(scheme, netloc).get_file_info(
            pa_fs.FileSelector(local, allow_not_found=True))
        present = {info.path for info in listing}
        missing |= {p for p in paths if PyArrowFileIO.parse_location(p, io.properties)[2] not in present}
    return missing


def _split_missing(table: Table, row_filter: BooleanExpression,
                   snapshot_id: int | None = None) -> tuple[list[FileScanTask], list[FileScanTask]]:
    """The scan's tasks whose files are all in storage, and those missing one."""
    tasks = list(table.scan(row_filter=row_filter, snapshot_id=snapshot_id).plan_files())
    missing = _missing_paths(table, tasks)
    present: list[FileScanTask] = []
    lost: list[FileScanTask] = []
    for task in tasks:
        gone = task.file.file_path in missing or any(d.file_path in missing for d in task.delete_files)
        (lost if gone else present).append(task)
    return present, lost


def _read(table: Table, tasks: list[FileScanTask], columns: tuple[str, ...],
          row_filter: BooleanExpression) -> pa.Table:
    return ArrowScan(table.metadata, table.io, table.schema().select(*columns), row_filter).to_table(tasks)


def _bound_hour(bound: bytes) -> int:
    """The hour of a ``received_at`` lower or upper bound from a manifest."""
    return int(from_bytes(TimestamptzType(), bound)) // _HOUR_US * HOUR


class _FileHours:
    """Rows per hour of the data files read so far, least recently used ones forgotten first.

    A data file never changes, so one that spans hours (compaction makes them)
    is read once per process rather than at every audit; with delete files the
    key includes them.
    """

    def __init__(self, capacity: int = FILES_REMEMBERED) -> None:
        self.capacity = capacity
        self._known: OrderedDict[tuple[str, ...], dict[int, int]] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, table: Table, task: FileScanTask) -> dict[int, int]:
        key = (task.file.file_path, *sorted(d.file_path for d in task.delete_files))
        with self._lock:
            if key in self._known:
                self._known.move_to_end(key)
                return self._known[key]
        column = _read(table, [task], ("received_at",), AlwaysTrue()).column("received_at")
        counted = pc.value_counts(_hours(column).drop_null())
        hours = dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()))
        with self._lock:
            self._known[key] = hours
            while len(self._known) > self.capacity:
                self._known.popitem(last=False)
        return hours


def _landed(table: Table, since: int, file_hours: _FileHours) -> tuple[Counter[int], list[FileScanTask]]:
    """Rows per hour of received_at from the files in storage; the tasks whose files are missing.

    A file whose ``received_at`` bounds lie in one hour counts by its row count
    from the manifest; any other is read (once: ``_FileHours``).
    """
    present, lost = _split_missing(table, _received_since(since))
    field_id = table.schema().find_field("received_at").field_id
    hours: Counter[int] = Counter()
    for task in present:
        low, high = task.file.lower_bounds.get(field_id), task.file.upper_bounds.get(field_id)
        if not task.delete_files and low is not None and high is not None \
                and _bound_hour(low) == _bound_hour(high):
            hours[_bound_hour(low)] += task.file.record_count
            continue
        hours.update({hour: n for hour, n in file_hours.of(table, task).items() if hour >= since})
    return hours, lost


def _in_flight(log: Log, stream: str, offsets: Mapping[int, int]) -> tuple[Counter[int], int | None]:
    """Events past the table's offsets per hour; and, when the scan ran out of its budget, the
    append time (Unix ms) of the first record it left unread."""
    micros: list[int] = []
    scanned = 0
    records = log.undelivered(stream, offsets)
    try:
        for record in records:
            if scanned >= IN_FLIGHT_SCAN_BYTES:
                return Counter(m // _HOUR_US * HOUR for m in micros), record.appended_ms
            scanned += len(record.payload)
            micros.extend(e.received_at for e in _RECEIVED_AT.decode_lines(record.payload)
                          if e.received_at is not None)
    finally:
        records.close()
    return Counter(m // _HOUR_US * HOUR for m in micros), None


def _payload_hour(payload: str | None, fallback_us: int) -> int:
    """The hour of the received_at the collector gave a delivery-rejected event (its row's own
    received_at is when it was appended to the log, which can fall in the next hour)."""
    try:
        stamped = _RECEIVED_AT.decode(payload or "").received_at
    except msgspec.DecodeError:
        stamped = None
    return (stamped if stamped is not None else fallback_us) // _HOUR_US * HOUR


class Auditor:
    """Runs audits for one installation; safe to call from several threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry(settings.catalog_uri)
        self.catalog = open_catalog(settings)
        self.log = open_log(settings.log_uri, options=settings.log)
        self.file_hours = _FileHours()

    def close(self) -> None:
        self.log.close()

    def run(self, since: int, stream: str | None = None) -> AuditReport:
        streams = [s.name for s in self.registry.list_streams() if stream in (None, s.name)]
        if stream is not None and not streams:
            raise NotFound(f"no stream named {stream!r}")
        rejected_table = ensure_rejected_table(self.catalog, self.settings)
        before = rejected_table.current_snapshot()  # replayed rows are counted as of now

        checked_at = time.time()  # before the counts are read: what was flushed by then is in them
        accepted = read_accepted(self.registry.engine, since, streams)
        report = AuditReport(since, checked_at, [])
        rows: dict[tuple[str, int], HourAudit] = {}

        def row(name: str, hour: int) -> HourAudit:
            if (name, hour) not in rows:
                rows[(name, hour)] = HourAudit(name, hour, closed=hour + HOUR + SETTLE_SECONDS <= checked_at)
            return rows[(name, hour)]

        for (name, hour), n in accepted.items():
            row(name, hour).accepted = n
        offsets: dict[str, dict[int, int]] = {}
        unknown_from: dict[str, int] = {}
        for name in streams:
            landed, in_flight, cut = self._stream(name, since, offsets, report)
            for hour, n in landed.items():
                row(name, hour).landed = n
            for hour, n in in_flight.items():
                if hour >= since:
                    row(name, hour).in_flight = n
            if cut is not None:
                unknown_from[name] = hour_of(cut / 1000 - STAMP_TO_APPEND_SECONDS)
                report.notes.append(
                    f"{name}: more than {IN_FLIGHT_SCAN_BYTES >> 20} MiB of its log is not delivered "
                    f"yet; hours from {iso_hour(unknown_from[name])} on are judged once delivery "
                    "catches up")

        if before is not None:
            replayed_filter = And(NotNull(term=Reference("replayed_at")), _received_since(since))
            present, lost = _split_missing(rejected_table, replayed_filter, before.snapshot_id)
            self._note_missing(report, REJECTED_TABLE, lost)
            replayed = _read(rejected_table, present, ("stream", "received_at"), replayed_filter)
            for name, hour, n in _by_stream_hour(replayed):
                if name in offsets:
                    row(name, hour).replayed = n
        rejected_table.refresh()
        self._rejections(rejected_table, since, offsets, row, report)

        for (name, hour), audit in rows.items():
            if hour >= unknown_from.get(name, hour + 1):
                audit.in_flight = None
        report.hours = sorted((r for r in rows.values() if r.hour >= since),
                              key=lambda r: (r.stream, r.hour))
        for name in streams:
            metrics.AUDIT_DISCREPANCY.labels(name).set(
                sum(abs(h.discrepancy or 0) for h in report.discrepancies() if h.stream == name))
        return report

    def _stream(self, name: str, since: int, offsets: dict[str, dict[int, int]],
                report: AuditReport) -> tuple[Counter[int], Counter[int], int | None]:
        """Landed and in-flight counts of one stream, from one version of its table."""
        for attempt in range(LOG_RETRIES):
            try:
                table: Table | None = self.catalog.load_table(table_identifier(self.settings, name))
            except NoSuchTableError:  # delivery has not created it yet: everything is in the log
                table = None
            committed = read_offsets(table) if table is not None else {}
            try:
                in_flight, cut = _in_flight(self.log, name, committed)
            except LogCorrupt:
                if attempt == LOG_RETRIES - 1:
                    raise
                continue  # the segment at the offsets was released by a newer commit: read again
            offsets[name] = committed
            if table is None:
                return Counter(), in_flight, cut
            landed, lost = _landed(table, since, self.file_hours)
            self._note_missing(report, name, lost)
            return landed, in_flight, cut
        raise AssertionError("unreachable")

    @staticmethod
    def _note_missing(report: AuditReport, table: str, lost: list[FileScanTask]) -> None:
        if not lost:
            return
        entry = next((m for m in report.missing if m.table == table), None)
        if entry is None:
            entry = MissingFiles(table)
            report.missing.append(entry)
        entry.files.update((t.file.file_path, t.file.record_count) for t in lost)

    @staticmethod
    def _rejections(table: Table, since: int, offsets: Mapping[str, Mapping[int, int]],
                    row: Callable[[str, int], HourAudit], report: AuditReport) -> None:
        """Rejected at the collector (by their row's received_at) and at delivery (below the
        table's offsets, by their event's received_at)."""
        at_collector = And(_source("collector"), _received_since(since))
        present, lost = _split_missing(table, at_collector)
        Auditor._note_missing(report, REJECTED_TABLE, lost)
        for name, hour, n in _by_stream_hour(_read(table, present, ("stream", "received_at"),
                                                   at_collector)):
            if name in offsets:
                row(name, hour).rejected_collector = n
        at_delivery = And(_source("delivery"), _received_since(since))
        present, lost = _split_missing(table, at_delivery)
        Auditor._note_missing(report, REJECTED_TABLE, lost)
        columns = ("stream", "received_at", "log_partition", "log_offset", "payload")
        rows = _read(table, present, columns, at_delivery)
        for name, at, partition, offset, payload in zip(
                *(rows.column(c).to_pylist() for c in columns[:1]),
                rows.column("received_at").cast(pa.int64()).to_pylist(),
                *(rows.column(c).to_pylist() for c in columns[2:])):
            if name not in offsets or offset >= offsets[name].get(partition, 0):
                continue  # its range is not committed to the table yet: still counted in flight
            hour = _payload_hour(payload, at)
            if hour >= since:
                row(name, hour).rejected_delivery += 1


async def audit_forever(auditor: Auditor, interval_seconds: float) -> None:
    """Audit every ``interval_seconds`` so ``lakehose_audit_discrepancy_events`` stays current."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            report = await asyncio.to_thread(auditor.run, parse_since(DEFAULT_SINCE))
        except Exception as exc:  # the next run may succeed; the gauge keeps its last value
            _LOG.error("audit_failed", f"audit failed: {exc!r}")
            continue
        if problems := report.problems():
            _LOG.warning("discrepancies", "; ".join(problems), count=len(problems))
