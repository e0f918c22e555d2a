"""One behaviour suite for every log backend: the embedded WAL and Apache Kafka.

Whatever the backend, an append that returned is readable, in order per
partition, exactly once, with its event count; offsets only grow and a read
from any returned offset continues from there; data outlives the process
that wrote it; a reader that reports positions back keeps getting the rest.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehose.config import LogSettings
from lakehose.log import Log, Record, open_log


class LogUnderTest:
    def __init__(self, uri: str, options: LogSettings) -> None:
        self.uri = uri
        self.options = options
        self.opened: list[Log] = []

    def open(self, writer: bool = False) -> Log:
        log = open_log(self.uri, writer=writer, options=self.options)
        self.opened.append(log)
        return log

    def append(self, items: list[tuple[str, bytes, int]], concurrency: int = 1) -> None:
        """Append ``items`` from one writer, ``concurrency`` requests at a time."""
        writer = self.open(writer=True)
        writer.ensure_topics({stream for stream, _, _ in items})

        async def run() -> None:
            queue = list(items)

            async def worker() -> None:
                while queue:
                    await writer.append([queue.pop(0)])

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        asyncio.run(run())
        writer.close()

    def read_all(self, reader: Log, stream: str, records: int, start: dict[int, int] | None = None,
                 timeout: float = 60) -> dict[int, list[Record]]:
        """Read until ``records`` records came back; ``{partition: records in order}``."""
        position = dict(start or {})
        got: dict[int, list[Record]] = {}
        deadline = time.monotonic() + timeout
        while sum(map(len, got.values())) < records:
            assert time.monotonic() < deadline, f"only {sum(map(len, got.values()))} of {records} read"
            for partition in reader.partitions(stream):
                batch = reader.read(stream, partition, position.get(partition, 0), 1 << 20)
                if batch:
                    got.setdefault(partition, []).extend(batch)
                    position[partition] = batch[-1].next_offset
            time.sleep(0.02)
        return got


@pytest.fixture(params=["wal", "kafka"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogUnderTest]:
    if request.param == "wal":
        under_test = LogUnderTest(f"wal://{tmp_path / 'log'}", LogSettings(segment_bytes=64 * 1024))
    else:
        kafka = request.getfixturevalue("kafka_service")
        under_test = LogUnderTest(kafka.uri, LogSettings(topic_prefix=f"c{uuid.uuid4().hex[:8]}.",
                                                         partitions=3, kafka_timeout_seconds=10))
    yield under_test
    for opened in under_test.opened:
        opened.close()


def payload(i: int, events: int = 3) -> bytes:
    return b"".join(b'{"n":%d,"k":%d}\n' % (i, k) for k in range(events))


def test_every_append_reads_back_once_in_order_with_its_count(log: LogUnderTest) -> None:
    items = [("s", payload(i, 1 + i % 4), 1 + i % 4) for i in range(300)]
    log.append(items, concurrency=8)
    got = log.read_all(log.open(), "s", 300)
    seen = [r.payload for records in got.values() for r in records]
    assert sorted(seen) == sorted(p for _, p, _ in items)
    for records in got.values():
        assert all(a.next_offset == b.offset for a, b in zip(records, records[1:]))
        assert all(r.event_count == r.payload.count(b"\n") for r in records)
        assert all(abs(r.appended_ms / 1000 - time.time()) < 120 for r in records)


def test_appends_one_after_another_keep_their_order_in_a_partition(log: LogUnderTest) -> None:
    log.append([("s", payload(i), 3) for i in range(60)])
    got = log.read_all(log.open(), "s", 60)
    for records in got.values():
        numbers = [int(r.payload.split(b",")[0][5:]) for r in records]
        assert numbers == sorted(numbers)


def test_a_read_from_any_returned_offset_continues_from_there(log: LogUnderTest) -> None:
    log.append([("s", payload(i), 3) for i in range(40)])
    reader = log.open()
    got = log.read_all(reader, "s", 40)
    partition, records = max(got.items(), key=lambda item: len(item[1]))
    assert reader.end_offset("s", partition) == records[-1].next_offset
    reader.close()  # a Kafka reader would share the partitions with the next one (one group)
    log.opened.remove(reader)
    middle = records[len(records) // 2]
    again = log.read_all(log.open(), "s", len(records) - len(records) // 2,
                         start={p: (middle.offset if p == partition else 1 << 62) for p in got})
    assert [r.payload for r in again[partition]] == [r.payload for r in records[len(records) // 2:]]


def test_data_outlives_its_writer_and_streams_stay_apart(log: LogUnderTest) -> None:
    log.append([("a", payload(1), 3), ("b", payload(2), 3), ("a", payload(3), 3)])
    reader = log.open()
    assert sorted(r.payload for rs in log.read_all(reader, "a", 2).values() for r in rs) == \
        [payload(1), payload(3)]
    assert [r.payload for rs in log.read_all(reader, "b", 1).values() for r in rs] == [payload(2)]


def test_large_payloads_round_trip(log: LogUnderTest) -> None:
    big = b'{"blob":"' + b"x" * (8 * 1024 * 1024) + b'"}\n'
    log.append([("s", big, 1), ("s", payload(1), 3)])
    got = log.read_all(log.open(), "s", 2)
    assert sorted(len(r.payload) for rs in got.values() for r in rs) == [len(payload(1)), len(big)]


def test_a_reader_resumes_after_what_it_marked_delivered(log: LogUnderTest) -> None:
    log.append([("s", payload(i), 3) for i in range(20)])
    first = log.open()
    got = log.read_all(first, "s", 20)
    delivered = {p: records[len(records) // 2].offset for p, records in got.items()}
    first.mark_delivered("s", delivered)
    first.close()
    log.opened.remove(first)
    rest = sum(len(records) - len(records) // 2 for records in got.values())
    again = log.read_all(log.open(), "s", rest, start=delivered)
    assert sorted(r.payload for rs in again.values() for r in rs) == \
        sorted(r.payload for p, rs in got.items() for r in rs[len(rs) // 2:])
