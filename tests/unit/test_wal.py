"""The write-ahead log on its own: records, offsets, segments, torn tails, release."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lakehose.errors import LogCorrupt
from lakehose.config import LogSettings
from lakehose.log import open_log
from lakehose.log.wal import HEADER_SIZE


def append_all(directory: Path, payloads: list[bytes], segment_bytes: int = 1000) -> None:
    async def run() -> None:
        log = open_log(f"wal://{directory}", writer=True, options=LogSettings(segment_bytes=segment_bytes))
        for payload in payloads:
            await log.append([("s", payload, 1)])
        log.close()

    asyncio.run(run())


def test_read_back_in_order_across_segments(tmp_path: Path) -> None:
    payloads = [b'{"n":%d}\n' % i * 20 for i in range(60)]
    append_all(tmp_path, payloads)
    reader = open_log(f"wal://{tmp_path}")
    records = reader.read("s", 0, 0, 1 << 30)
    assert [r.payload for r in records] == payloads
    assert len(list((tmp_path / "s" / "0").iterdir())) > 5
    assert all(a.next_offset == b.offset for a, b in zip(records, records[1:]))
    assert reader.end_offset("s", 0) == records[-1].next_offset
    middle = reader.read("s", 0, records[30].offset, 1)
    assert [r.payload for r in middle] == [payloads[30]]


def test_torn_tail_is_invisible_then_cut_by_the_next_writer(tmp_path: Path) -> None:
    append_all(tmp_path, [b"one\n", b"two\n"])
    segment = sorted((tmp_path / "s" / "0").iterdir())[-1]
    with segment.open("ab") as handle:
        handle.write(b"\x40\x00\x00\x00garbage")
    reader = open_log(f"wal://{tmp_path}")
    assert [r.payload for r in reader.read("s", 0, 0, 1 << 20)] == [b"one\n", b"two\n"]
    append_all(tmp_path, [b"three\n"])
    assert [r.payload for r in reader.read("s", 0, 0, 1 << 20)] == [b"one\n", b"two\n", b"three\n"]


def test_corruption_in_a_sealed_segment_is_reported(tmp_path: Path) -> None:
    append_all(tmp_path, [b"x" * 600, b"y" * 600, b"z" * 600], segment_bytes=700)
    first = sorted((tmp_path / "s" / "0").iterdir())[0]
    data = bytearray(first.read_bytes())
    data[HEADER_SIZE + 5] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(LogCorrupt):
        open_log(f"wal://{tmp_path}").read("s", 0, 0, 1 << 20)


def test_only_whole_delivered_segments_are_released(tmp_path: Path) -> None:
    append_all(tmp_path, [b"x" * 600] * 6, segment_bytes=700)
    reader = open_log(f"wal://{tmp_path}")
    records = reader.read("s", 0, 0, 1 << 20)
    reader.mark_delivered("s", {0: records[3].offset + 10})  # mid-record 3: segments 0..2 go
    remaining = sorted(p.name for p in (tmp_path / "s" / "0").iterdir())
    assert len(remaining) == 3
    assert [r.payload for r in reader.read("s", 0, records[3].offset, 1 << 20)] == [b"x" * 600] * 3
    reader.mark_delivered("s", {0: records[-1].next_offset})
    assert len(list((tmp_path / "s" / "0").iterdir())) == 1  # the newest segment always stays
    with pytest.raises(LogCorrupt, match="released"):
        reader.read("s", 0, 0, 1 << 20)


def test_two_writers_claim_different_partitions(tmp_path: Path) -> None:
    first = open_log(f"wal://{tmp_path}", writer=True)
    second = open_log(f"wal://{tmp_path}", writer=True)
    assert {first.partition, second.partition} == {0, 1}  # type: ignore[attr-defined]
    first.close()
    third = open_log(f"wal://{tmp_path}", writer=True)
    assert third.partition == 0  # type: ignore[attr-defined]
    second.close()
    third.close()


def test_a_dropped_stream_starts_anew_under_a_running_writer(tmp_path: Path) -> None:
    """`streams delete` removes the folder while a collector holds its segment open: the writer's
    next append must go to a new folder readers see, not to the unlinked file."""
    async def run() -> None:
        writer = open_log(f"wal://{tmp_path}", writer=True)
        await writer.append([("s", b"old\n", 1), ("t", b"other\n", 1)])
        open_log(f"wal://{tmp_path}").drop_stream("s")
        assert not (tmp_path / "s").exists() and (tmp_path / "t").exists()
        await writer.append([("s", b"new\n", 1)])
        writer.close()

    asyncio.run(run())
    records = open_log(f"wal://{tmp_path}").read("s", 0, 0, 1 << 30)
    assert [(r.offset, r.payload) for r in records] == [(0, b"new\n")]
