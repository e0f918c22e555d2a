"""Compaction benchmark: how close does a compacted lake get to one ideally sorted Parquet file?

A benchmark, not a test: it prints a table for a person to read. On the
embedded backends (SQLite catalog, local files), in this process:

1. Generates ``--events`` narrow game events with numpy (no per-event Python):
   ``ts`` spread over ``--days`` days in order, ``user_id`` out of ``--users``,
   ``level``, ``score``, ``country``. Generated in ``--appends`` time slices,
   each sorted by ``ts``, as delivery would commit them.
2. Makes a stream with ``lakehose.streams.create_stream`` (what
   ``lakehose streams create`` runs) and appends each slice to its Iceberg
   table with ``table.append``: one small file per slice.
3. Writes the same events to one Parquet file sorted by ``ts`` (zstd): the
   ideal layout a person would make by hand.
4. Times three queries (median of 5 after one warm-up) through
   ``QueryEngine`` before compaction, runs the CLI ``lakehose compact --sort ts``
   and ``lakehose expire``, times them again, and times the same SQL in plain
   DuckDB over the ideal file.

The target is that a compacted lake answers within 1.5x of the ideal file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehose.config import load_settings
from lakehose.lake.catalog import open_catalog, table_identifier
from lakehose.query.engine import QueryEngine
from lakehose.streams import create_stream

STREAM = "game"
SCHEMA = {"type": "object", "properties": {
    "user_id": {"type": "string"}, "level": {"type": "integer"},
    "score": {"type": "number"}, "country": {"type": "string"}}}
COUNTRIES = pa.array(["US", "DE", "FR", "GB", "BR", "JP", "IN", "CA", "ES", "IT", "MX", "KR",
                      "NL", "SE", "PL", "AU", "TR", "AR", "ID", "ZA"])
QUERIES = {
    "count by day": "SELECT date_trunc('day', ts) AS day, count(*) AS events FROM {t} "
                    "GROUP BY day ORDER BY day",
    "distinct users per day": "SELECT date_trunc('day', ts) AS day, count(DISTINCT user_id) AS users "
                              "FROM {t} GROUP BY day ORDER BY day",
    "top 10 countries": "SELECT country, count(*) AS events, count(DISTINCT user_id) AS users FROM {t} "
                        "GROUP BY country ORDER BY events DESC LIMIT 10",
}
VENV_BIN = Path(sys.executable).parent


def _uniform(n: int, seed: int) -> pa.Array:
    """Seeded, so every run writes the same lake."""
    return pc.random(n, initializer=seed)


def _ints(n: int, low: int, high: int, seed: int) -> pa.Array:
    """n integers in [low, high), from pyarrow's generator (no per-event Python)."""
    return pc.add(pc.floor(pc.multiply(_uniform(n, seed), high - low)).cast(pa.int64()), low)


def slices(schema: pa.Schema, events: int, appends: int, days: int, users: int) -> list[pa.Table]:
    """``appends`` tables of consecutive events, each covering its own slice of time in ts order."""
    start_us = int(dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc).timestamp() * 1_000_000)
    raw = _ints(events, 0, days * 86_400 * 1_000_000, 1)
    ts = raw.take(pc.array_sort_indices(raw))
    out = []
    size = -(-events // appends)
    for i, first in enumerate(range(0, events, size)):
        n = min(size, events - first)
        stamps = ts[first:first + n]
        # a skewed country mix (the square of a uniform), so the top-N query has a real order
        country = pc.floor(pc.multiply(pc.power(_uniform(n, 10 + i), 2), len(COUNTRIES))).cast(pa.int32())
        columns = {
            "event_id": pc.add(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n)), first)
                        .cast(pa.string()),
            "ts": pc.add(stamps, start_us).cast(pa.timestamp("us", "UTC")),
            "received_at": pc.add(stamps, start_us + 2_000_000).cast(pa.timestamp("us", "UTC")),
            "user_id": _ints(n, 0, users, 100_000 + i).cast(pa.string()),
            "level": _ints(n, 1, 100, 200_000 + i),
            "score": pc.multiply(_uniform(n, 300_000 + i), 1000.0),
            "country": COUNTRIES.take(country),
        }
        out.append(pa.table([columns[f.name].cast(f.type) for f in schema], schema=schema))
    return out


def timed(run: Callable[[str], object], sql: str) -> float:
    """Median of 5 runs after one warm-up, in ms."""
    run(sql)
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        run(sql)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs) * 1000


def lake_times(data_dir: str) -> dict[str, float]:
    """A fresh engine, as a new ``lakehose query`` would have: nothing cached from the layout before."""
    engine = QueryEngine(load_settings(data_dir))
    return {label: timed(engine.run, sql.format(t=f"events.{STREAM}")) for label, sql in QUERIES.items()}


def cli(data_dir: str, *args: str) -> str:
    """Run a ``lakehose`` command as an operator would, so the bench measures what they run."""
    done = subprocess.run([str(VENV_BIN / "lakehose"), *args, "--data-dir", data_dir],
                          check=True, capture_output=True, text=True)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--appends", type=int, default=400, help="small commits to write them in")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--users", type=int, default=1_000_000)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="lakehose-compaction-bench-") as folder:
        data_dir = str(Path(folder) / "data")
        settings = load_settings(data_dir)
        Path(settings.data_dir).mkdir(parents=True)
        create_stream(settings, STREAM, SCHEMA)
        table = open_catalog(settings).load_table(table_identifier(settings, STREAM))

        started = time.perf_counter()
        batches = slices(table.schema().as_arrow(), args.events, args.appends, args.days, args.users)
        generate_s = time.perf_counter() - started

        started = time.perf_counter()
        for batch in batches:
            table.append(batch)
        append_s = time.perf_counter() - started
        table.refresh()
        files_before = len(table.inspect.files())

        ideal = Path(folder) / "ideal.parquet"
        pq.write_table(pa.concat_tables(batches), ideal, compression="zstd")  # already in ts order
        del batches

        before = lake_times(data_dir)
        started = time.perf_counter()
        compacted = cli(data_dir, "compact", "--sort", "ts")
        expired = cli(data_dir, "expire", "--older-than", "0s", "--keep", "1")
        compact_s = time.perf_counter() - started
        table.refresh()
        files_after = len(table.inspect.files())
        after = lake_times(data_dir)

        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        ideal_sql = f"read_parquet('{ideal}')"
        best = {label: timed(con.execute, sql.format(t=ideal_sql)) for label, sql in QUERIES.items()}
        ideal_mb = ideal.stat().st_size / 2**20

    print(f"\ncompaction bench: {args.events:,} events over {args.days} days, {args.users:,} users, "
          f"{args.appends} appends (SQLite catalog, local files; load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after)")
    print(f"generated in {generate_s:.1f} s, appended in {append_s:.1f} s; {files_before} data files before "
          f"compaction, {files_after} after; compact + expire {compact_s:.1f} s; ideal file {ideal_mb:.0f} MiB")
    print(f"compact: {compacted}\nexpire: {expired}\n")
    print("| query | before compact | after compact | ideal file | after/ideal | target ≤ 1.5× |")
    print("|---|---:|---:|---:|---:|---|")
    for label in QUERIES:
        ratio = after[label] / best[label]
        print(f"| {label} | {before[label]:.0f} ms | {after[label]:.0f} ms | {best[label]:.0f} ms "
              f"| {ratio:.2f}× | {'met' if ratio <= 1.5 else 'missed'} |")


if __name__ == "__main__":
    main()
