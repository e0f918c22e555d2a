"""End-to-end benchmark: POST → log → delivery → committed Parquet in Iceberg → queryable.

A benchmark, not a test: it prints a table for a person to read. In one run, on
one machine, with the load generator on the same box:

1. **Reference**: DuckDB's own ``COPY (SELECT * FROM read_json(...)) TO ...
   (FORMAT parquet, COMPRESSION zstd)`` over the same demo events, one NDJSON
   file per stream (14 streams of very different volumes).
2. **Delivery alone**: the same events are POSTed once to ``lakehose
   collector``; then lakehose's delivery (``Deliverer``, the code ``lakehose
   deliver`` runs, in this process) drains that log into the Iceberg tables.
   Its events/s is reported as a ratio of the reference.
3. **End to end**: ``lakehose up --max-seconds M`` as a subprocess, ``wrk``
   closed-loop for ``--seconds`` against ``POST /v1/events``; the sustained
   rate is the events accepted during the load divided by the time until the
   last of them is committed. A probe posts one event a second to a quiet
   stream and polls ``/v1/query`` to time accept → queryable. The resident
   memory of every lakehose process is sampled twice a second.

Needs ``wrk`` (Debian package).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import httpx
import msgspec

from collector_bench import accepted_total, cli, free_port, http_get, write_wrk_inputs
from lakehose.config import load_settings
from lakehose.delivery.worker import Deliverer
from lakehose.demo import DEMO_SCHEMAS, DemoEvents, demo_schema_files

LAKEHOSE = str(Path(sys.executable).parent / "lakehose")
PROBE_SCHEMA = {"type": "object", "required": ["probe"], "properties": {"probe": {"type": "string"}}}
TARGET_E2E = 150_000
TARGET_RATIO = 0.7
TARGET_MEMORY_MIB = 1536


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@contextmanager
def memory_sampler(root: int, period: float = 0.5) -> Iterator[dict[str, float]]:
    """Peak of the summed RSS of ``root``'s process tree while the block runs."""
    peak = {"mib": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(period):
            peak["mib"] = max(peak["mib"], sum(rss_mib(p) for p in tree_pids(root)))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def make_bodies(seed: int, count: int, size: int) -> tuple[list[bytes], dict[str, list[dict[str, Any]]]]:
    demo = DemoEvents(seed)
    encoder = msgspec.json.Encoder()
    bodies, by_stream = [], {}
    for _ in range(count):
        batch = demo.batch(size)
        bodies.append(encoder.encode(batch))
        for event in batch:
            by_stream.setdefault(event["type"], []).append({k: v for k, v in event.items() if k != "type"})
    return bodies, by_stream


def duckdb_reference(by_stream: dict[str, list[dict[str, Any]]], work: Path) -> float:
    """Events/s of DuckDB converting each stream's NDJSON to zstd Parquet."""
    folder = work / "reference"
    folder.mkdir()
    encoder = msgspec.json.Encoder()
    for stream, events in by_stream.items():
        (folder / f"{stream}.ndjson").write_bytes(encoder.encode_lines(events))
    con = duckdb.connect()
    started = time.perf_counter()
    for stream in by_stream:
        con.execute(f"COPY (SELECT * FROM read_json('{folder}/{stream}.ndjson', "
                    f"format='newline_delimited')) TO '{folder}/{stream}.parquet' "
                    "(FORMAT parquet, COMPRESSION zstd)")
    elapsed = time.perf_counter() - started
    return sum(len(e) for e in by_stream.values()) / elapsed


def start(args: list[str], log: Path, ready_url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 60
    while http_get(ready_url)[0] != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{args[1]} did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return process


def stop(process: subprocess.Popen[bytes], timeout: float = 300) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)


def delivery_alone(bodies: list[bytes], work: Path) -> tuple[float, int, float]:
    """POST every body once to a collector, then time the delivery of that log."""
    data_dir = work / "delivery-alone"
    for name, path in demo_schema_files(work / "schemas").items():
        cli("streams", "create", name, "--schema", str(path), data_dir=data_dir)
    key = cli("keys", "create", "bench", data_dir=data_dir).strip()
    port = free_port()
    collector = start([LAKEHOSE, "collector", "--data-dir", str(data_dir), "--port", str(port)],
                      work / "collector.log", f"http://127.0.0.1:{port}/readyz")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}",
                      headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        for body in bodies:
            assert client.post("/v1/events", content=body).json()["rejected"] == 0
    stop(collector)
    deliverer = Deliverer(load_settings(str(data_dir)))
    deliverer.refresh_streams()
    started = time.perf_counter()
    while deliverer.poll():
        pass
    events = sum(sd.buffer.events for sd in deliverer.streams.values())
    for sd in deliverer.streams.values():
        deliverer.flush(sd)
    elapsed = time.perf_counter() - started
    return events / elapsed, events, elapsed


def committed_rows(url: str, token: str) -> int:
    sql = " + ".join(f"(SELECT count(*) FROM events.{s})" for s in DEMO_SCHEMAS)
    answer = httpx.post(url + "/v1/query", json={"sql": f"SELECT {sql}"}, timeout=60,
                        headers={"Authorization": f"Bearer {token}"}).json()
    return int(answer["rows"][0][0])


class Probe:
    """One event a second to a quiet stream; the time until a query sees each one."""

    def __init__(self, url: str, key: str, token: str) -> None:
        self.url, self.key, self.token = url, key, token
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True),
                        threading.Thread(target=self._watch, daemon=True)]

    def _send(self) -> None:
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}) as c:
            n = 0
            while not self.stop.wait(1.0):
                name = f"p{n}"
                n += 1
                if c.post("/v1/streams/bench_probe/events", json={"probe": name}).status_code == 200:
                    self.sent[name] = time.monotonic()

    def _watch(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30,
                          headers={"Authorization": f"Bearer {self.token}"}) as c:
            while not self.stop.wait(0.25):
                rows = c.post("/v1/query", json={"sql": "SELECT probe FROM bench_probe",
                                                 "limit": 10000}).json().get("rows", [])
                now = time.monotonic()
                for (name,) in rows:
                    self.seen.setdefault(name, now)

    def latencies(self) -> list[float]:
        return sorted(self.seen[n] - t for n, t in self.sent.items() if n in self.seen)


def end_to_end(work: Path, bodies_list: Path, script: Path, seconds: float, max_seconds: float,
               connections: int) -> dict[str, float]:
    data_dir = work / "end-to-end"
    for name, path in demo_schema_files(work / "schemas").items():
        cli("streams", "create", name, "--schema", str(path), data_dir=data_dir)
    probe_schema = work / "probe.json"
    probe_schema.write_text(msgspec.json.encode(PROBE_SCHEMA).decode())
    cli("streams", "create", "bench_probe", "--schema", str(probe_schema), data_dir=data_dir)
    key = cli("keys", "create", "bench", data_dir=data_dir).strip()
    token = cli("tokens", "create", "bench", data_dir=data_dir).strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    up = start([LAKEHOSE, "up", "--data-dir", str(data_dir), "--port", str(port),
                "--max-seconds", str(max_seconds)], work / "up.log", url + "/readyz")
    probe = Probe(url, key, token)
    try:
        with memory_sampler(up.pid) as peak:
            for thread in probe.threads:
                thread.start()
            before = accepted_total(url)
            started = time.monotonic()
            subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--timeout", "10s",
                            "-s", str(script), url + "/v1/events", "--", str(bodies_list), key,
                            "/v1/events"], capture_output=True, check=True)
            load_seconds = time.monotonic() - started
            accepted = accepted_total(url) - before
            deadline = time.monotonic() + 600
            while committed_rows(url, token) < accepted and time.monotonic() < deadline:
                time.sleep(0.5)
            all_committed = time.monotonic() - started
            time.sleep(max_seconds + 3)  # let the last probes land
            probe.stop.set()
        lat = probe.latencies()
        return {
            "accepted": accepted, "load_seconds": load_seconds, "committed_seconds": all_committed,
            "accept_rate": accepted / load_seconds, "e2e_rate": accepted / all_committed,
            "p50": statistics.median(lat) if lat else float("nan"),
            "p95": lat[int(0.95 * (len(lat) - 1))] if lat else float("nan"),
            "probes": len(lat), "peak_mib": peak["mib"],
        }
    finally:
        stop(up)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="length of the end-to-end load")
    parser.add_argument("--max-seconds", type=float, default=10, help="delivery's max_seconds hint")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get update && apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="lakehose-pipeline-bench-"))
    try:
        bodies, by_stream = make_bodies(args.seed, args.batches, args.batch_size)
        total = sum(len(e) for e in by_stream.values())
        counts = sorted(((len(e), s) for s, e in by_stream.items()), reverse=True)
        print(f"{total:,} demo events in {len(by_stream)} streams, from {counts[0][1]} "
              f"({counts[0][0]:,}) to {counts[-1][1]} ({counts[-1][0]:,})", flush=True)
        reference = duckdb_reference(by_stream, work)
        print(f"DuckDB COPY read_json -> parquet zstd: {reference:,.0f} events/s", flush=True)
        delivery, delivered, took = delivery_alone(bodies, work)
        print(f"lakehose delivery: {delivered:,} events in {took:.2f} s = {delivery:,.0f} events/s",
              flush=True)
        bodies_list, script = write_wrk_inputs(work, bodies)
        e2e = end_to_end(work, bodies_list, script, args.seconds, args.max_seconds, args.connections)
        print(f"end to end: {e2e['accepted']:,.0f} events accepted in {e2e['load_seconds']:.1f} s "
              f"({e2e['accept_rate']:,.0f}/s), all committed after {e2e['committed_seconds']:.1f} s; "
              f"{e2e['probes']:.0f} probes", flush=True)
        rows = [
            ("end-to-end events/s (POST -> committed)", f"{e2e['e2e_rate']:,.0f}", f">= {TARGET_E2E:,}",
             e2e["e2e_rate"] >= TARGET_E2E),
            ("delivery events/s (same events)", f"{delivery:,.0f}", "", None),
            ("DuckDB COPY read_json->parquet events/s", f"{reference:,.0f}", "", None),
            ("ratio delivery / DuckDB", f"{delivery / reference:.2f}", f">= {TARGET_RATIO}",
             delivery / reference >= TARGET_RATIO),
            ("accept -> queryable p50", f"{e2e['p50']:.1f} s", "", None),
            ("accept -> queryable p95", f"{e2e['p95']:.1f} s", f"<= {args.max_seconds + 5:g} s",
             e2e["p95"] <= args.max_seconds + 5),
            ("peak memory, all lakehose processes", f"{e2e['peak_mib']:,.0f} MiB",
             f"<= {TARGET_MEMORY_MIB} MiB", e2e["peak_mib"] <= TARGET_MEMORY_MIB),
        ]
        print(f"\nlakehose pipeline bench  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  "
              f"(2 cores; up --max-seconds {args.max_seconds:g}; wrk -c{args.connections} "
              f"{args.seconds:g}s; {args.batch_size} events/request)")
        print("| metric | value | target | met |\n|---|---:|---:|---|")
        for name, value, target, met in rows:
            print(f"| {name} | {value} | {target} | {'' if met is None else ('yes' if met else 'no')} |")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
