"""The durable log between collector and delivery, picked by URI scheme.

``wal://DIR`` is the embedded write-ahead log; ``kafka://host:port[,host:port]``
puts it on Apache Kafka. A backend is imported only when its scheme is asked for.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

from lakehose.config import LogSettings


# The topic that carries rejected events to the ``events._rejected`` table. Stream
# names start with a letter, so no stream can take this name.
REJECTED_TOPIC = "_rejected"
UNDELIVERED_CHUNK_BYTES = 16 << 20


@dataclass(frozen=True)
class Record:
    """One appended payload (the events of one request for one stream)."""

    partition: int
    offset: int
    next_offset: int
    event_count: int
    appended_ms: int
    payload: bytes


class Log(ABC):
    """Append durably, read from an offset, release what was delivered.

    Offsets are per (stream, partition), opaque integers that only grow; the
    delivery stores "next offset to read" per partition in its table commit.
    """

    @abstractmethod
    async def append(self, batches: Sequence[tuple[str, bytes, int]]) -> None:
        """Append ``(stream, payload, event_count)`` items; returns once all are durable."""

    @abstractmethod
    def partitions(self, stream: str) -> list[int]:
        """The partitions a stream has records in."""

    @abstractmethod
    def read(self, stream: str, partition: int, offset: int, max_bytes: int) -> list[Record]:
        """Durable records from ``offset`` on, about ``max_bytes`` of payload at most."""

    @abstractmethod
    def end_offset(self, stream: str, partition: int) -> int:
        """The offset the next appended record of this partition will get."""

    @abstractmethod
    def mark_delivered(self, stream: str, offsets: Mapping[int, int]) -> None:
        """Everything before ``offsets[partition]`` is committed; release what can go."""

    @abstractmethod
    def size_bytes(self) -> int:
        """Bytes the log holds now, over every stream and partition."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release files or connections."""

    def undelivered(self, stream: str, offsets: Mapping[int, int]) -> Generator[Record, None, None]:
        """The stream's records from ``offsets`` (per partition; 0 where absent) to its end now.

        For readers other than delivery (the audit counts what is in flight): it
        moves no offset and joins no consumer group. This default goes through
        ``read``, which suits a log whose ``partitions`` lists them all (the WAL).
        """
        for partition in self.partitions(stream):
            offset = offsets.get(partition, 0)
            while records := self.read(stream, partition, offset, UNDELIVERED_CHUNK_BYTES):
                yield from records
                offset = records[-1].next_offset

    @abstractmethod
    def drop_stream(self, stream: str) -> None:
        """Delete every record of ``stream`` for good (its topic, its folder); no-op if it has none."""

    def ensure_topics(self, streams: Iterable[str]) -> None:
        """Make sure the streams can be appended to (Kafka creates their topics; files need nothing)."""

    def assignment_generation(self) -> int:
        """A number that changes whenever this reader gains or loses partitions.

        A reader that shares the log with others (a Kafka consumer group) goes back to
        the table's offsets when it changes; a sole reader's never changes.
        """
        return 0


def settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    """Resolve an append's future from the loop's thread (once: a late duplicate is ignored)."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def open_log(uri: str, *, writer: bool = False, options: LogSettings | None = None) -> Log:
    """Open the log named by ``uri``; for ``wal://`` a ``writer`` claims a partition to append to."""
    options = options or LogSettings()
    parsed = urlparse(uri)
    if parsed.scheme == "wal":
        from lakehose.log.wal import WriteAheadLog

        return WriteAheadLog(parsed.netloc + parsed.path, segment_bytes=options.segment_bytes,
                             writer=writer)
    if parsed.scheme == "kafka":
        from lakehose.log.kafka import KafkaLog, kafka_brokers

        return KafkaLog(kafka_brokers(uri.removeprefix("kafka://")), options)
    raise ValueError(f"unsupported log URI {uri!r}: expected wal://DIR or kafka://host:port[,host:port]")
