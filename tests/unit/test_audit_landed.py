"""The audit's landed side, on a real local table: files counted by their bounds or their rows."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa

from lakehose.audit import Auditor, parse_since
from lakehose.collector.accepted import AcceptedCounter, hour_of
from lakehose.config import load_settings
from lakehose.lake.catalog import ensure_table, open_catalog
from lakehose.registry.store import Registry

SCHEMA = {"type": "object", "properties": {"user_id": {"type": "string"}}}


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


def test_files_in_one_hour_count_by_metadata_others_by_rows_and_missing_ones_are_named(
        tmp_path: Path) -> None:
    settings = load_settings(str(tmp_path))
    registry = Registry(settings.catalog_uri)
    registry.create_stream("s", SCHEMA)
    table = ensure_table(open_catalog(settings), settings, registry.get_stream("s"))

    def append(*stamps: str) -> None:
        table.append(pa.Table.from_pylist(
            [{"event_id": f"{stamp}-{i}", "ts": at(stamp), "received_at": at(stamp), "user_id": "u"}
             for i, stamp in enumerate(stamps)], schema=table.schema().as_arrow()))

    append("2026-03-01T10:15:00", "2026-03-01T10:45:00")  # one hour: its row count is enough
    append("2026-03-01T10:59:59.999999", "2026-03-01T11:00:00", "2026-03-01T11:30:00")  # read
    append(*["2026-03-01T12:05:00"] * 4)
    append("2026-03-01T13:10:00")  # no collector counted it: a surplus, judged as the hour is closed
    largest = table.inspect.files().sort_by([("record_count", "descending")]).to_pylist()[0]
    os.remove(urlparse(largest["file_path"]).path)

    counter = AcceptedCounter(registry.engine)
    counter.add({("s", hour_of(at(h).timestamp())): n for h, n in
                 (("2026-03-01T10:00", 3), ("2026-03-01T11:00", 2), ("2026-03-01T12:00", 4))})
    counter.flush()
    auditor = Auditor(settings)
    for _ in range(2):  # the second run counts the file spanning two hours from memory
        report = auditor.run(parse_since("2026-03-01T09:00Z"))
        books = {(h.hour, h.landed, h.discrepancy, h.closed) for h in report.hours}
        assert books == {(hour_of(at("2026-03-01T10:00").timestamp()), 3, 0, True),
                         (hour_of(at("2026-03-01T11:00").timestamp()), 2, 0, True),
                         (hour_of(at("2026-03-01T12:00").timestamp()), 0, 4, True),
                         (hour_of(at("2026-03-01T13:00").timestamp()), 1, -1, True)}
        assert report.problems() == [
            "events.s: 4 rows in 1 missing data files",
            "s 2026-03-01T12:00:00Z: 4 acknowledged events are neither in the table, nor rejected "
            "at delivery, nor in the log",
            "s 2026-03-01T13:00:00Z: 1 more events landed than collectors acknowledged (a collector "
            "killed without its graceful stop loses up to its last second of counts)"]
    assert len(auditor.file_hours._known) == 1
    auditor.close()
