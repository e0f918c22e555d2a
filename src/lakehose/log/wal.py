"""The embedded log: segmented, checksummed, append-only files with group commit.

On-disk layout (version 1)::

    DIR/VERSION                      "1"
    DIR/_writers/<p>.lock            flock held by the process writing partition p
    DIR/<stream>/<p>/<base>.wal      segments; <base> = offset of the first byte, 20 digits

A record is a 20-byte header then the payload, all little-endian::

    u32 payload_length
    u32 crc32 of everything after this field (the 12 bytes below + payload)
    u32 event_count
    u64 appended_ms   (Unix time the collector appended it)
    payload           (NDJSON events of one stream)

Offsets are byte positions in a partition: segment base + position in segment.

Durability: every append is written at once (page cache) and the caller waits
until a background thread has fsynced every file written since its last pass;
requests that arrive during one fsync share the next (group commit). A crash
can leave a torn record at the tail of the newest segment; the next writer of
that partition cuts it off before appending. Readers stop at an incomplete
record of the newest segment (it may be in flight), fsync what they read so a
machine crash cannot take back data they go on to commit, and report a
checksum failure anywhere else as corruption. A segment is deleted only when
every record in it is delivered, and never while it is the newest one.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lakehose.errors import LogCorrupt
from lakehose.log import Log, Record, settle

FORMAT_VERSION = "1"
HEADER = struct.Struct("<IIIQ")
HEADER_SIZE = HEADER.size
SUFFIX = ".wal"
MAX_RECORD = 1 << 31


def _segment_name(base: int) -> str:
    return f"{base:020d}{SUFFIX}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_record(payload: bytes, event_count: int, appended_ms: int) -> bytes:
    tail = struct.pack("<IQ", event_count, appended_ms)
    crc = zlib.crc32(payload, zlib.crc32(tail))
    return struct.pack("<II", len(payload), crc) + tail + payload


def scan_valid_length(data: bytes) -> int:
    """Length of the prefix of ``data`` made of whole records with good checksums."""
    pos = 0
    while pos + HEADER_SIZE <= len(data):
        length, crc, _, _ = HEADER.unpack_from(data, pos)
        end = pos + HEADER_SIZE + length
        if end > len(data) or zlib.crc32(data[pos + 8:end]) != crc:
            break
        pos = end
    return pos


class _Segments:
    """The segment files of one (stream, partition)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def bases(self) -> list[int]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(int(n[: -len(SUFFIX)]) for n in names if n.endswith(SUFFIX))

    def path(self, base: int) -> Path:
        return self.directory / _segment_name(base)


class _Appender:
    """The open newest segment of one partition this process writes."""

    def __init__(self, segments: _Segments, segment_bytes: int,
                 retire: Callable[[int], None]) -> None:
        self.segments = segments
        self.segment_bytes = segment_bytes
        self.retire = retire
        segments.directory.mkdir(parents=True, exist_ok=True)
        bases = segments.bases()
        if bases:
            self.base = bases[-1]
            path = segments.path(self.base)
            data = path.read_bytes()
            valid = scan_valid_length(data)
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            if valid != len(data):  # torn tail from a crash: cut it off before appending
                os.ftruncate(self.fd, valid)
                os.fsync(self.fd)
            self.size = valid
        else:
            self.base = 0
            self.fd = self._create(0)
            self.size = 0

    def _create(self, base: int) -> int:
        fd = os.open(self.segments.path(base), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        _fsync_dir(self.segments.directory)
        return fd

    @property
    def end_offset(self) -> int:
        return self.base + self.size

    def write(self, record: bytes) -> int:
        """Write one record; returns the fd that now needs an fsync."""
        if self.size and self.size + len(record) > self.segment_bytes:
            # The sync thread may still hold the old fd in its pass: it closes it afterwards.
            self.retire(self.fd)
            self.base = self.base + self.size
            self.fd = self._create(self.base)
            self.size = 0
        written = os.write(self.fd, record)
        if written != len(record):  # disk full mid-record: cut it off, report failure
            os.ftruncate(self.fd, self.size)
            raise OSError(f"short write to the log ({written} of {len(record)} bytes)")
        self.size += len(record)
        return self.fd


class _GroupSyncer:
    """A thread that fsyncs dirty files and wakes every append waiting on them."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._dirty: set[int] = set()
        self._retired: set[int] = set()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="wal-fsync", daemon=True)
        self._thread.start()

    def request(self, fds: set[int]) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._dirty |= fds
            self._waiters.append((loop, future))
            self._lock.notify()
        return future

    def retire(self, fd: int) -> None:
        """A segment was sealed: fsync its fd in the next pass, then close it."""
        with self._lock:
            self._retired.add(fd)
            self._lock.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiters and not self._retired and not self._closed:
                    self._lock.wait()
                if self._closed and not self._waiters and not self._retired:
                    return
                dirty, self._dirty = self._dirty, set()
                retired, self._retired = self._retired, set()
                waiters, self._waiters = self._waiters, []
            error: BaseException | None = None
            for fd in dirty | retired:
                try:
                    os.fsync(fd)
                except OSError as exc:
                    error = exc
            for fd in retired:
                os.close(fd)
            for loop, future in waiters:
                loop.call_soon_threadsafe(settle, future, error)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join()


class WriteAheadLog(Log):
    """The ``wal://`` log. A writer claims one partition number for all streams."""

    def __init__(self, directory: str, *, segment_bytes: int, writer: bool) -> None:
        self.root = Path(directory)
        self.segment_bytes = segment_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        version_file = self.root / "VERSION"
        if not version_file.exists():  # written whole by a rename: a concurrent opener never sees it empty
            fresh = self.root / f".VERSION.{os.getpid()}.{threading.get_ident()}"
            fresh.write_text(FORMAT_VERSION)
            os.replace(fresh, version_file)
        found = version_file.read_text().strip()
        if found != FORMAT_VERSION:
            raise LogCorrupt(f"{self.root}: log format {found!r} is not supported")
        self._appenders: dict[str, _Appender] = {}
        self._partition: int | None = None
        self._lock_fd: int | None = None
        self._syncer: _GroupSyncer | None = None
        if writer:
            self._claim_partition()
            self._syncer = _GroupSyncer()

    @property
    def partition(self) -> int | None:
        return self._partition

    def _claim_partition(self) -> None:
        locks = self.root / "_writers"
        locks.mkdir(exist_ok=True)
        number = 0
        while True:
            fd = os.open(locks / f"{number}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                number += 1
                continue
            self._partition, self._lock_fd = number, fd
            return

    def _segments(self, stream: str, partition: int) -> _Segments:
        return _Segments(self.root / stream / str(partition))

    def _appender(self, stream: str) -> _Appender:
        appender = self._appenders.get(stream)
        if appender is not None and os.fstat(appender.fd).st_nlink == 0:
            # `streams delete` removed the stream's folder under this writer: start a new one
            # (the syncer closes the old fd), or records would go to a file no reader sees.
            assert self._syncer is not None
            self._syncer.retire(self._appenders.pop(stream).fd)
            appender = None
        if appender is None:
            if self._partition is None:
                raise RuntimeError("this log was opened for reading only")
            assert self._syncer is not None
            appender = _Appender(self._segments(stream, self._partition), self.segment_bytes,
                                 self._syncer.retire)
            self._appenders[stream] = appender
        return appender

    async def append(self, batches: Sequence[tuple[str, bytes, int]]) -> None:
        assert self._syncer is not None, "this log was opened for reading only"
        now_ms = int(time.time() * 1000)
        fds = {self._appender(stream).write(encode_record(payload, count, now_ms))
               for stream, payload, count in batches}
        if fds:
            await self._syncer.request(fds)

    def partitions(self, stream: str) -> list[int]:
        try:
            return sorted(int(p) for p in os.listdir(self.root / stream) if p.isdigit())
        except FileNotFoundError:
            return []

    def end_offset(self, stream: str, partition: int) -> int:
        segments = self._segments(stream, partition)
        bases = segments.bases()
        if not bases:
            return 0
        return bases[-1] + scan_valid_length(segments.path(bases[-1]).read_bytes())

    def read(self, stream: str, partition: int, offset: int, max_bytes: int) -> list[Record]:
        segments = self._segments(stream, partition)
        bases = segments.bases()
        records: list[Record] = []
        taken = 0
        for i, base in enumerate(bases):
            next_base = bases[i + 1] if i + 1 < len(bases) else None
            if next_base is not None and next_base <= offset:
                continue
            if offset < base:
                raise LogCorrupt(f"{segments.directory}: offset {offset} was released "
                                 f"(oldest segment starts at {base})")
            newest = next_base is None
            path = segments.path(base)
            try:
                handle = open(path, "rb")
            except FileNotFoundError:  # released between listing and opening
                continue
            with handle:
                os.fsync(handle.fileno())
                handle.seek(offset - base)
                while taken < max_bytes:
                    header = handle.read(HEADER_SIZE)
                    if len(header) < HEADER_SIZE:
                        break
                    length, crc, count, appended_ms = HEADER.unpack(header)
                    payload = handle.read(length)
                    if len(payload) < length or zlib.crc32(payload, zlib.crc32(header[8:])) != crc:
                        if newest:  # in flight, or a torn tail the next writer will cut
                            return records
                        raise LogCorrupt(f"{path}: bad record at offset {offset}")
                    end = offset + HEADER_SIZE + length
                    records.append(Record(partition, offset, end, count, appended_ms, payload))
                    taken += length
                    offset = end
            if newest or taken >= max_bytes:
                return records
            if offset != next_base:
                raise LogCorrupt(f"{path}: sealed segment ends at {offset}, next starts at {next_base}")
        return records

    def mark_delivered(self, stream: str, offsets: Mapping[int, int]) -> None:
        for partition, offset in offsets.items():
            segments = self._segments(stream, partition)
            bases = segments.bases()
            for base, next_base in zip(bases, bases[1:]):
                if next_base <= offset:
                    segments.path(base).unlink(missing_ok=True)

    def drop_stream(self, stream: str) -> None:
        """Remove the stream's folder; a writer process notices at its next append (``_appender``)."""
        shutil.rmtree(self.root / stream, ignore_errors=True)
        _fsync_dir(self.root)

    def size_bytes(self) -> int:
        total = 0
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                if name.endswith(SUFFIX):
                    try:
                        total += os.stat(os.path.join(dirpath, name)).st_size
                    except FileNotFoundError:
                        pass
        return total

    def close(self) -> None:
        if self._syncer is not None:
            self._syncer.close()
        for appender in self._appenders.values():
            os.fsync(appender.fd)
            os.close(appender.fd)
        self._appenders.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
