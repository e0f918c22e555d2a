"""Maintenance benchmark: does a commit stay as fast after thousands of commits, and what do small files cost?

A benchmark, not a test: it prints a table for a person to read. On the
embedded backends (SQLite catalog, local files), in this process:

1. **No maintenance**: ``--baseline`` small appends (10 rows each, like a
   delivery commit of a quiet stream) to a fresh table, nothing else. Commit
   time grows with the number of snapshots, so this phase stops early.
2. **With maintenance**: ``--commits`` small appends to another fresh table,
   and every ``--every`` commits what a ``lakehose maintain`` run does to it:
   ``compact_table`` then ``expire_table`` (merge manifests, expire snapshots
   but the ``--keep`` newest, delete what only they referenced). Commit times
   are compared between the first commits and the last ones.
3. **Small files**: the same DuckDB queries over the first table's small
   files, then after ``compact_table`` (the code ``lakehose compact`` runs).

Medians of windows of 50 commits, in wall time and in this process's CPU time
(which other processes on the two cores do not inflate the way they inflate
wall time); the machine's load average is printed too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from pyiceberg.table import Table

from lakehose.config import Settings, parse_settings
from lakehose.lake.catalog import ensure_table, open_catalog
from lakehose.maintenance.compact import compact_table
from lakehose.maintenance.expire import expire_table
from lakehose.query.engine import QueryEngine
from lakehose.registry.store import Registry

SCHEMA = {"type": "object", "properties": {"user_id": {"type": "string"}, "level": {"type": "integer"},
                                           "score": {"type": "number"}}}
WINDOW = 50
QUERIES = {"count(*)": "SELECT count(*) FROM events.{t}",
           "GROUP BY level": "SELECT level, count(*), sum(score) FROM events.{t} GROUP BY level"}


def make_table(settings: Settings, name: str) -> Table:
    """A stream and its table, as `lakehose streams create` makes them."""
    registry = Registry(settings.catalog_uri)
    return ensure_table(open_catalog(settings), settings, registry.create_stream(name, SCHEMA))


def small_batch(table: Table, n: int) -> pa.Table:
    """10 events spread over three days, so the table has three partitions."""
    day0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    rows = [{"event_id": f"{n}-{i}", "ts": day0 + dt.timedelta(days=(n + i) % 3, seconds=n),
             "received_at": day0, "user_id": f"u{i}", "level": i, "score": n * 0.5} for i in range(10)]
    return pa.Table.from_pylist(rows, schema=table.schema().as_arrow())


def commit_times(table: Table, commits: int, after: Callable[[int], None]) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each commit (CPU time is what other processes do not inflate)."""
    wall, cpu = [], []
    for n in range(commits):
        batch = small_batch(table, n)
        started, started_cpu = time.perf_counter(), time.process_time()
        table.append(batch)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        after(n + 1)
    return wall, cpu


def window(times: list[float], start: int) -> float:
    return statistics.median(times[start:start + WINDOW]) * 1000


def query_ms(engine: QueryEngine, sql: str) -> float:
    engine.run(sql)  # warm: views, extension state
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        engine.run(sql)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--baseline", type=int, default=300, help="commits without maintenance")
    parser.add_argument("--every", type=int, default=50, help="run compaction and expiry every N commits")
    parser.add_argument("--keep", type=int, default=10, help="snapshots the expiry keeps")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="lakehose-maintenance-bench-") as folder:
        settings = parse_settings({}, {}, str(Path(folder) / "data"))
        Path(settings.data_dir).mkdir(parents=True)

        bare = make_table(settings, "bare")
        bare_times = commit_times(bare, args.baseline, lambda n: None)

        kept = make_table(settings, "kept")
        target = settings.maintenance.target_file_bytes
        hygiene: list[float] = []

        def maintain_every(n: int) -> None:
            if n % args.every == 0:
                started = time.perf_counter()
                compact_table(kept, target, min_files=5, sort="ts")
                expire_table(kept, dt.timedelta(0), args.keep, max_manifests=16, grace_seconds=3600)
                hygiene.append(time.perf_counter() - started)

        kept_times = commit_times(kept, args.commits, maintain_every)

        engine = QueryEngine(settings)
        files_before = len(bare.inspect.files())
        small = {label: query_ms(engine, sql.format(t="bare")) for label, sql in QUERIES.items()}
        started = time.perf_counter()
        compacted = compact_table(bare, target, min_files=5, sort="ts")
        compact_s = time.perf_counter() - started
        bare.refresh()
        files_after = len(bare.inspect.files())
        big = {label: query_ms(engine, sql.format(t="bare")) for label, sql in QUERIES.items()}

    print(f"\nmaintenance bench: small appends of 10 rows, SQLite catalog, local files "
          f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)\n")
    print(f"{'commit time, median of 50 (ms), wall / CPU':<42}{'no maintenance':>16}"
          f"{'maintain every ' + str(args.every):>20}")
    for start in sorted({0, 100, args.baseline - WINDOW, 500, 1000, args.commits - WINDOW}):
        if start + WINDOW > args.commits:
            continue
        bare_cell = "-"
        if start + WINDOW <= args.baseline:
            bare_cell = f"{window(bare_times[0], start):.1f} / {window(bare_times[1], start):.1f}"
        kept_cell = f"{window(kept_times[0], start):.1f} / {window(kept_times[1], start):.1f}"
        print(f"{f'commits {start + 1}-{start + WINDOW}':<42}{bare_cell:>16}{kept_cell:>20}")

    def ratio(times: list[float], last: int) -> str:
        return f"{window(times, last - WINDOW) / window(times, 0):.2f}"

    print(f"{'last / first window':<42}"
          f"{ratio(bare_times[0], args.baseline) + ' / ' + ratio(bare_times[1], args.baseline):>16}"
          f"{ratio(kept_times[0], args.commits) + ' / ' + ratio(kept_times[1], args.commits):>20}")
    print(f"\nmaintenance (compact + expire): {len(hygiene)} runs, median "
          f"{statistics.median(hygiene) * 1000:.0f} ms, max {max(hygiene) * 1000:.0f} ms "
          f"(keeps {args.keep} snapshots)")
    print(f"\n{'DuckDB query (ms, median of 5)':<42}{f'{files_before} files':>12}{f'{files_after} files':>20}")
    for label in QUERIES:
        print(f"{label:<42}{small[label]:>12.1f}{big[label]:>20.1f}")
    print(f"\ncompaction: {compacted.files_before} files in {compacted.partitions} partitions → "
          f"{compacted.files_after} files in {compact_s:.1f} s")


if __name__ == "__main__":
    main()
