"""Table maintenance through the CLI: compact, expire, retention, and commit cost over many commits.

Many small commits are made directly with pyiceberg in the test process (over
HTTP each would wait for delivery); the jobs themselves run as ``lakehose``
subprocesses, against both backend sets where it matters.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import statistics
import time
import uuid
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow.fs import FileSelector, FileType
from pyiceberg.io.pyarrow import _dataframe_to_data_files, _determine_partitions, write_file
from pyiceberg.table import Table, WriteTask

from conftest import BOTH_BACKENDS, Lakehose
from lake_support import Load, assert_exactly_once, wait_for_count, wait_landed
from lakehose.config import load_settings
from lakehose.lake.catalog import open_catalog
from lakehose.maintenance.references import References
from lakehose.maintenance.rewrite import JOB_PROPERTY

STREAM = "level_complete"
# count, sum and a group-by in one query (the NULL level row is the total)
TOTALS = (f"SELECT level, count(*), sum(score), count(DISTINCT event_id), min(ts), max(ts) "
          f"FROM events.{STREAM} GROUP BY ROLLUP (level) ORDER BY level NULLS FIRST")
NOW = dt.datetime.now(dt.timezone.utc)


def table_of(lh: Lakehose, stream: str = STREAM) -> Table:
    settings = load_settings(str(lh.data_dir))
    return open_catalog(settings).load_table((settings.lake.namespace, stream))


def events(n: int, rows: int, day: dt.datetime) -> list[dict[str, Any]]:
    return [{"event_id": f"e{n}-{i}", "ts": day + dt.timedelta(seconds=n * rows + i), "received_at": NOW,
             "user_id": f"u{i % 7}", "level": 1 + i % 9, "score": n + i / 4} for i in range(rows)]


def small_commits(table: Table, commits: int, files_per_commit: int, rows: int,
                  days: list[dt.datetime]) -> None:
    """``commits`` commits of ``files_per_commit`` tiny files each, file n in ``days[n % len(days)]``.

    Each commit's files are written by pyiceberg's writer in one go (its thread
    pool overlaps the uploads to S3), then appended in one fast append.
    """
    metadata, schema = table.metadata, table.schema()
    for c in range(commits):
        tasks = []
        for f in range(files_per_commit):
            n = c * files_per_commit + f
            batch = pa.Table.from_pylist(events(n, rows, days[n % len(days)]), schema=schema.as_arrow())
            [partition] = _determine_partitions(metadata.spec(), schema, batch)
            tasks.append(WriteTask(write_uuid=uuid.uuid4(), task_id=n, schema=schema,
                                   record_batches=batch.to_batches(), partition_key=partition.partition_key))
        tx = table.transaction()
        with tx.update_snapshot().fast_append() as append:
            for data_file in write_file(table.io, metadata, iter(tasks)):
                append.append_data_file(data_file)
        tx.commit_transaction()


def sql(lh: Lakehose, text: str) -> list[Any]:
    return list(json.loads(lh.run("query", text, "--format", "json").stdout)["rows"])


def live(table: Table) -> list[Any]:
    table.refresh()
    return [task.file for task in table.scan().plan_files()]


def stored(table: Table) -> dict[str, int]:
    """Every file under the table's folders, as the filesystem spells its path: its size."""
    io = table.io
    scheme, netloc, root = io.parse_location(table.location())
    fs = io.fs_by_scheme(scheme, netloc)  # type: ignore[attr-defined]
    infos = fs.get_file_info(FileSelector(root, recursive=True))
    return {info.path: info.size for info in infos if info.type == FileType.File}


def stored_data(table: Table) -> set[str]:
    """The Parquet files under the table's data folder."""
    data = table.io.parse_location(table.location())[2] + "/data/"  # type: ignore[attr-defined]
    return {path for path in stored(table) if path.startswith(data)}


def referenced(table: Table) -> set[str]:
    table.refresh()
    metadata = table.metadata
    locations = [*References(table.io).reachable(metadata.snapshots, live_only=True), table.metadata_location,
                 *(entry.metadata_file for entry in metadata.metadata_log)]
    return {table.io.parse_location(location)[2] for location in locations}  # type: ignore[attr-defined]


@BOTH_BACKENDS
def test_compaction_leaves_few_files_and_the_same_answers(lh: Lakehose) -> None:
    lh.create_stream(STREAM)
    table = table_of(lh)
    days = [NOW - dt.timedelta(days=d) for d in range(3)]
    small_commits(table, commits=25, files_per_commit=20, rows=20, days=days)  # 500 small files
    files = live(table)
    assert len(files) == 500
    totals = sql(lh, TOTALS)
    assert totals[0][1] == 500 * 20 and len(totals) == 1 + 9
    per_partition: dict[Any, int] = {}
    for data_file in files:
        per_partition[data_file.partition] = per_partition.get(data_file.partition, 0) + data_file.file_size_in_bytes
    target = max(per_partition.values()) // 3  # about three files per partition

    out = lh.run("compact", "--stream", STREAM, "--target-bytes", str(target), "--sort", "ts").stdout
    assert f"events.{STREAM}: 3 partitions, 500 → " in out

    after = live(table)
    assert sql(lh, TOTALS) == totals
    for partition, size in per_partition.items():
        assert sum(1 for f in after if f.partition == partition) == math.ceil(size / target)
    with table.io.new_input(after[0].file_path).open(seekable=True) as handle:
        ts = pq.read_table(handle, columns=["ts"]).column("ts").to_pylist()
    assert ts == sorted(ts) and len(ts) > 20
    summary = table.current_snapshot().summary  # type: ignore[union-attr]
    assert summary is not None and summary[JOB_PROPERTY] == "compact"
    assert "nothing to compact" in lh.run("compact").stdout  # every partition is done


def test_compaction_racing_delivery_loses_and_repeats_nothing(lh: Lakehose) -> None:
    lh.create_stream(STREAM)
    fast = {"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.2", "LAKEHOSE_MAINTENANCE__ENABLED": "false"}
    server = lh.server("up", env=fast).start()
    with Load(server.url, lh.key, threads=2) as load:
        outputs = [lh.run("compact", "--stream", STREAM, "--min-files", "2").stdout for _ in range(3)]
    ids = wait_landed(lh, load.acked)
    assert len(load.acked) > 1000
    assert_exactly_once(ids, load.acked, load.unacked)
    table = table_of(lh)
    compactions = [s for s in table.snapshots() if s.summary is not None
                   and s.summary.get(JOB_PROPERTY) == "compact"]
    assert compactions, f"no compaction landed while delivery committed: {outputs}"
    server.stop()


@BOTH_BACKENDS
def test_expire_deletes_what_nothing_references_and_the_table_still_reads(lh: Lakehose) -> None:
    lh.create_stream(STREAM)
    table = table_of(lh)
    small_commits(table, commits=12, files_per_commit=3, rows=10, days=[NOW - dt.timedelta(days=d)
                                                                        for d in range(3)])
    lh.run("compact", "--stream", STREAM)
    snapshots = len(table_of(lh).snapshots())  # 12 appends, a compaction per partition
    totals = sql(lh, TOTALS)
    stray = next(iter(_dataframe_to_data_files(  # a file written by a commit that never landed
        table.metadata, pa.Table.from_pylist(events(999, 5, NOW), schema=table.schema().as_arrow()),
        table.io))).file_path
    stray_path = table.io.parse_location(stray)[2]  # type: ignore[attr-defined]
    before = stored(table)

    out = lh.run("expire", "--stream", STREAM, "--older-than", "0s", "--keep", "1").stdout
    expired = re.search(r"(?:merged (\d+) manifests, )?expired (\d+) snapshots", out)
    assert expired, out
    merge = 1 if expired[1] else 0  # a merge of manifests first adds a snapshot
    assert int(expired[2]) == snapshots + merge - 1 and len(table_of(lh).snapshots()) == 1, out
    after = stored(table)
    assert stored_data(table) == {table.io.parse_location(f.file_path)[2] for f in live(table)} | {stray_path}, \
        "the replaced small files are gone, the young stray file is kept"
    assert len(after) < len(before) / 3 and sum(after.values()) < sum(before.values())

    lh.run("expire", "--stream", STREAM, env={"LAKEHOSE_MAINTENANCE__ORPHAN_GRACE_SECONDS": "0"})
    assert set(stored(table)) == referenced(table), "nothing unreferenced is left"
    assert stray_path not in stored(table)
    assert sql(lh, TOTALS) == totals
    assert "expired 0 snapshots, deleted 0 files" in lh.run("expire", "--stream", STREAM).stdout


def test_retention_drops_old_partitions_and_keeps_young_ones(lh: Lakehose) -> None:
    lh.create_stream(STREAM)
    lh.run("streams", "update", STREAM, "--retention-days", "2")
    assert json.loads(lh.run("streams", "show", STREAM).stdout)["hints"]["retention_days"] == 2
    table = table_of(lh)
    ages = [0, 1, 3, 10]  # days; with 2 days of retention the last two partitions go
    small_commits(table, commits=4, files_per_commit=4, rows=5,
                  days=[NOW - dt.timedelta(days=age) for age in ages])
    assert sql(lh, f"SELECT count(*) FROM events.{STREAM}") == [[80]]

    out = lh.run("retention", env={"LAKEHOSE_MAINTENANCE__SNAPSHOT_MAX_AGE_SECONDS": "0",
                                   "LAKEHOSE_MAINTENANCE__KEEP_SNAPSHOTS": "1"}).stdout
    assert f"events.{STREAM}: retention 2 days: dropped 8 files" in out, out
    assert "events._rejected: keeps everything" in out
    days = sql(lh, f"SELECT CAST(ts AS DATE), count(*) FROM events.{STREAM} GROUP BY 1 ORDER BY 1")
    assert [count for _, count in days] == [20, 20]
    assert str(days[0][0]) == str((NOW - dt.timedelta(days=1)).date())
    assert len(stored_data(table)) == 8, "the dropped partitions' files were deleted by the expiry that followed"


def test_commit_cost_stays_flat_when_expiry_runs(lh: Lakehose) -> None:
    """200 small appends, ``lakehose expire`` every 50: the last commits cost at most 2x the first.

    Cost is the committing process's CPU time, which other processes on a
    shared machine do not inflate the way they inflate wall time.
    """
    lh.create_stream(STREAM)
    table = table_of(lh)
    schema = table.schema().as_arrow()
    costs: list[float] = []
    for n in range(200):
        batch = pa.Table.from_pylist(events(n, 10, NOW), schema=schema)
        started = time.process_time()
        table.append(batch)
        costs.append(time.process_time() - started)
        if (n + 1) % 50 == 0:
            lh.run("expire", "--older-than", "0s", "--keep", "5")
            table.refresh()
    first, last = statistics.median(costs[10:40]), statistics.median(costs[-30:])
    assert last <= 2 * first, f"first commits {first * 1000:.1f} ms of CPU, last {last * 1000:.1f} ms"
    assert len(table.snapshots()) <= 5 + 50 and len(table.metadata.metadata_log) <= 20


def test_up_runs_the_jobs_on_its_schedule_and_counts_them(lh: Lakehose) -> None:
    lh.create_stream(STREAM)
    env = {"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.2", "LAKEHOSE_MAINTENANCE__INTERVAL_SECONDS": "1",
           "LAKEHOSE_MAINTENANCE__MIN_FILES": "2"}
    server = lh.server("up", env=env).start()
    reader = lh.reader(server)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"}) as writer:
        for n in range(3):  # three commits: three small files in today's partition
            batch = [{"user_id": "u", "level": 1 + i} for i in range(5)]
            assert writer.post(f"/v1/streams/{STREAM}/events", json=batch).status_code == 200
            wait_for_count(reader, STREAM, 5 * (n + 1))
    deadline = time.monotonic() + 60
    while True:
        metrics = httpx.get(f"{server.url}/metrics").text
        compacted = len(live(table_of(lh))) == 1  # a run may come between two commits: then two runs
        if compacted and all(f'lakehose_maintenance_runs_total{{job="{job}",outcome="success"}}' in metrics
                             for job in ("retention", "compact", "expire")):
            break
        assert time.monotonic() < deadline, f"no scheduled compaction landed:\n{metrics}"
        time.sleep(0.5)
    assert 'lakehose_maintenance_last_success_timestamp_seconds{job="compact"}' in metrics
    assert any(s.summary is not None and s.summary.get(JOB_PROPERTY) == "compact"
               for s in table_of(lh).snapshots())
    wait_for_count(reader, STREAM, 15)
    server.stop()


def test_bad_arguments_are_refused_clearly(lh: Lakehose) -> None:
    result = lh.run("compact", "--stream", "nope", check=False)
    assert result.returncode == 1 and "no table events.nope" in result.stderr
    result = lh.run("expire", "--older-than", "an hour", check=False)
    assert result.returncode == 2 and "not a duration" in result.stderr
    result = lh.run("compact", "--target-bytes", "0", check=False)
    assert result.returncode == 2 and "not a whole number above 0" in result.stderr
    lh.create_stream(STREAM)
    result = lh.run("streams", "update", STREAM, "--retention-days", "-1", check=False)
    assert result.returncode == 1 and "retention_days must be a positive number" in result.stderr
    result = lh.run("compact", env={"LAKEHOSE_MAINTENANCE__MIN_FILES": "0"}, check=False)
    assert result.returncode == 1 and "min_files must be positive" in result.stderr

