"""Scaled-out benchmark: Kafka + PostgreSQL + S3-API server next to the embedded default.

A benchmark, not a test: it prints a table for a person to read. In one run,
on one machine, the same demo traffic (14 streams) goes through:

1. **embedded**: ``wal://`` + SQLite + local files; ``lakehose collector`` and
   one ``lakehose deliver``.
2. **scaled, 1 worker**: ``kafka://`` (Apache Kafka 4.1 in KRaft mode) +
   ``postgresql://`` (PostgreSQL 15) + ``s3://`` (moto's S3 server), the same
   collector command and one ``lakehose deliver``.
3. **scaled, 2 workers**: the same with two ``lakehose deliver`` processes in
   one consumer group.

For each, ``wrk`` posts for ``--seconds``; the rate is the events accepted
during the load divided by the time until the last of them is queryable.
The servers are started by ``tests/services.py`` (the test suite's own), on
loopback. Everything shares the machine's cores with the load generator and
the three servers, so read the table as "what this box allows", not as a
cluster's numbers.

Needs ``wrk`` (Debian package), Java 17 and PostgreSQL's server binaries.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from collector_bench import accepted_total, cli, free_port, write_wrk_inputs  # noqa: E402
from pipeline_bench import committed_rows, make_bodies, memory_sampler, start, stop  # noqa: E402
from lakehose.demo import demo_schema_files  # noqa: E402
from tests.services import KafkaService, PostgresService, S3Service  # noqa: E402

LAKEHOSE = str(Path(sys.executable).parent / "lakehose")


def scaled_config(kafka: KafkaService, postgres: PostgresService, s3: S3Service, partitions: int) -> str:
    tag = f"b{secrets.token_hex(4)}"
    postgres.create_database(tag)
    s3.create_bucket(tag)
    return (f'[log]\nuri = "{kafka.uri}"\ntopic_prefix = "{tag}."\npartitions = {partitions}\n'
            f'[catalog]\nuri = "{postgres.uri(tag)}"\n'
            f'[lake]\nwarehouse = "s3://{tag}/warehouse"\ns3_endpoint = "{s3.endpoint}"\n'
            's3_region = "us-east-1"\ns3_access_key_id = "test"\ns3_secret_access_key = "test"\n')


def run(name: str, work: Path, config: str, workers: int, bodies_list: Path, script: Path,
        seconds: float, max_seconds: float, connections: int) -> dict[str, float]:
    data_dir = work / name
    data_dir.mkdir()
    if config:
        (data_dir / "lakehose.toml").write_text(config)
    for stream, path in demo_schema_files(work / "schemas").items():
        cli("streams", "create", stream, "--schema", str(path), data_dir=data_dir)
    key = cli("keys", "create", "bench", data_dir=data_dir).strip()
    token = cli("tokens", "create", "bench", data_dir=data_dir).strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    collector = start([LAKEHOSE, "collector", "--with-query", "--data-dir", str(data_dir), "--port",
                       str(port)], work / f"{name}-collector.log", url + "/readyz")
    delivery = [subprocess.Popen([LAKEHOSE, "deliver", "--data-dir", str(data_dir), "--max-seconds",
                                  str(max_seconds)], stdout=open(work / f"{name}-deliver-{n}.log", "ab"),
                                 stderr=subprocess.STDOUT, start_new_session=True)
                for n in range(workers)]
    try:
        time.sleep(3)  # workers join (a consumer group on Kafka)
        with memory_sampler(collector.pid) as peak:
            before = accepted_total(url)
            started = time.monotonic()
            subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--timeout", "10s",
                            "-s", str(script), url + "/v1/events", "--", str(bodies_list), key,
                            "/v1/events"], capture_output=True, check=True)
            load_seconds = time.monotonic() - started
            time.sleep(1)  # requests already received when wrk stopped are still answered
            accepted = accepted_total(url) - before
            deadline = time.monotonic() + 900
            while (rows := committed_rows(url, token)) < accepted and time.monotonic() < deadline:
                time.sleep(0.5)
            committed_seconds = time.monotonic() - started
        return {"accepted": accepted, "rows": rows, "accept_rate": accepted / load_seconds,
                "e2e_rate": accepted / committed_seconds, "committed_seconds": committed_seconds,
                "collector_mib": peak["mib"]}
    finally:
        for process in [*delivery, collector]:
            stop(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="length of each load")
    parser.add_argument("--max-seconds", type=float, default=5, help="delivery's max_seconds hint")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--partitions", type=int, default=4, help="partitions of each Kafka topic")
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get update && apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="lakehose-scaled-bench-"))
    services = [KafkaService(), PostgresService(), S3Service()]
    try:
        kafka, postgres, s3 = (service.start() for service in services)
        assert isinstance(kafka, KafkaService) and isinstance(postgres, PostgresService)
        assert isinstance(s3, S3Service)
        bodies, _ = make_bodies(1, args.batches, args.batch_size)
        bodies_list, script = write_wrk_inputs(work, bodies)
        runs: list[tuple[str, dict[str, float]]] = []
        for name, config, workers in [
            ("embedded", "", 1),
            ("scaled-1-worker", scaled_config(kafka, postgres, s3, args.partitions), 1),
            ("scaled-2-workers", scaled_config(kafka, postgres, s3, args.partitions), 2),
        ]:
            result = run(name, work, config, workers, bodies_list, script, args.seconds,
                         args.max_seconds, args.connections)
            print(f"{name}: {result['accepted']:,.0f} accepted ({result['accept_rate']:,.0f}/s), "
                  f"{result['rows']:,.0f} rows after {result['committed_seconds']:.1f} s", flush=True)
            runs.append((name, result))
        base = runs[0][1]["e2e_rate"]
        print(f"\nlakehose scaled bench  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  "
              f"(2 cores, everything on one box; wrk -c{args.connections} {args.seconds:g}s; "
              f"{args.batch_size} events/request; --max-seconds {args.max_seconds:g}; "
              f"{args.partitions} partitions/topic)")
        print("| setup | accepted/s during load | end-to-end events/s | vs embedded | collector peak RSS |")
        print("|---|---:|---:|---:|---:|")
        for name, r in runs:
            print(f"| {name} | {r['accept_rate']:,.0f} | {r['e2e_rate']:,.0f} | "
                  f"{r['e2e_rate'] / base:.2f} | {r['collector_mib']:,.0f} MiB |")
    finally:
        for service in services:
            service.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
