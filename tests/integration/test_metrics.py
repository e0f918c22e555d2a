"""Metrics and logs of running processes: counters equal what was sent, outages log little.

``lakehose up`` serves one ``/metrics`` for its HTTP and delivery processes
(Prometheus multiprocess mode), so delivery's counters are checked there;
``lakehose deliver --metrics-port`` serves its own. Induced outages (a disk
floor no disk meets, a table folder that cannot be written) fail every request
or commit, and the process's log must stay a handful of lines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conftest import BOTH_BACKENDS, Lakehose, Server, free_port
from lake_support import query

STREAM = "level_complete"
Samples = list[tuple[str, dict[str, str], float]]


def scrape(url: str) -> Samples:
    response = httpx.get(url + "/metrics", timeout=10)
    assert response.status_code == 200
    helps = [line.split()[2] for line in response.text.splitlines() if line.startswith("# HELP ")]
    assert len(helps) == len(set(helps)), "a metric family is served twice"
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(response.text)
            for s in family.samples]


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for n, found, v in samples
               if n == name and all(found.get(k) == want for k, want in labels.items()))


def wait_for(url: str, check: Callable[[Samples], bool], timeout: float = 60) -> Samples:
    deadline = time.monotonic() + timeout
    samples: Samples = []
    while True:
        try:
            samples = scrape(url)
        except httpx.ConnectError:  # still starting
            pass
        else:
            if check(samples):
                return samples
        assert time.monotonic() < deadline, f"metrics never got there:\n{samples}"
        time.sleep(0.2)


def log_lines(server: Server) -> list[dict[str, Any]]:
    """The JSON lines a process wrote (other output, such as up's banner, is skipped)."""
    lines = []
    for line in server.log_path.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def post(client: httpx.Client, stream: str, events: list[dict[str, Any]]) -> httpx.Response:
    return client.post(f"/v1/streams/{stream}/events", json=events)


@BOTH_BACKENDS
def test_up_serves_one_metrics_page_that_counts_what_was_sent(lh: Lakehose) -> None:
    lh.create_stream(STREAM)
    lh.create_stream("bonus")
    studio = lh.run("keys", "create", "studio").stdout.strip()
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3"}).start()
    test_key = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"},
                            timeout=30)
    studio_key = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {studio}"},
                              timeout=30)
    good = [{"user_id": "u", "level": 3}]
    missing_level = [{"user_id": "u"}]
    started = time.time()

    assert post(test_key, STREAM, good * 20 + missing_level * 3).json()["accepted"] == 20
    assert post(test_key, STREAM, good * 10 + missing_level).json()["accepted"] == 10
    assert post(studio_key, STREAM, good * 20).json()["accepted"] == 20
    assert post(studio_key, "bonus", good * 10).json()["accepted"] == 10
    assert post(studio_key, "nowhere", [{"a": 1}] * 3).status_code == 404
    refused = test_key.post(f"/v1/streams/{STREAM}/events", content=b"<html/>",
                            headers={"Content-Type": "text/html"})
    assert refused.status_code == 415
    rejected_rows = 3 + 1 + 3 + 1

    def delivered(samples: Samples) -> bool:
        return (value(samples, "lakehose_rows_committed_total", stream=STREAM) == 50
                and value(samples, "lakehose_rows_committed_total", stream="bonus") == 10
                and value(samples, "lakehose_rows_committed_total", stream="_rejected") == rejected_rows
                and value(samples, "lakehose_consumer_lag_events") == 0
                and value(samples, "lakehose_consumer_lag_seconds") == 0)

    # Only the delivery process commits: its counters on up's page show the pages are merged.
    m = wait_for(server.url, delivered)
    assert value(m, "lakehose_events_accepted_total", stream=STREAM, key="test") == 30
    assert value(m, "lakehose_events_accepted_total", stream=STREAM, key="studio") == 20
    assert value(m, "lakehose_events_accepted_total", stream="bonus", key="studio") == 10
    assert value(m, "lakehose_events_accepted_total") == 60
    assert value(m, "lakehose_events_rejected_total", stream=STREAM, reason="missing_field",
                 key="test") == 4
    assert value(m, "lakehose_events_rejected_total", stream="_unknown", reason="unknown_stream",
                 key="studio") == 3
    assert value(m, "lakehose_events_rejected_total", stream=STREAM,
                 reason="unsupported_media_type", key="test") == 1
    assert value(m, "lakehose_events_rejected_total") == rejected_rows
    assert value(m, "lakehose_http_requests_total", route="stream_events", status="200") == 4
    assert value(m, "lakehose_http_requests_total", route="stream_events", status="404") == 1
    assert value(m, "lakehose_http_requests_total", route="stream_events", status="415") == 1
    assert value(m, "lakehose_ack_latency_seconds_count") == 5
    assert value(m, "lakehose_request_bytes_total") > 0
    for stream in (STREAM, "bonus", "_rejected"):
        assert value(m, "lakehose_batches_committed_total", stream=stream) >= 1
        assert value(m, "lakehose_files_written_total", stream=stream) >= 1
        assert value(m, "lakehose_bytes_written_total", stream=stream) > 1000  # Parquet files
        assert started - 1 <= value(m, "lakehose_last_commit_timestamp_seconds", stream=stream) \
            <= time.time() + 1
    assert value(m, "lakehose_commit_latency_seconds_count") >= 3
    assert value(m, "lakehose_commit_failures_total") == 0
    assert value(m, "lakehose_disk_free_bytes") > 0
    assert query(lh.reader(server), f"SELECT count(*) FROM events.{STREAM}") == [[50]]


def test_deliver_alone_serves_its_metrics_on_metrics_port(lh: Lakehose) -> None:
    lh.create_stream(STREAM)
    collector = lh.server("collector").start()
    port = free_port()
    lh.server("deliver", "--metrics-port", str(port), env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.3"},
              port=False).start(wait_path=None)
    deliver_url = f"http://127.0.0.1:{port}"
    wait_for(deliver_url, lambda m: value(m, "lakehose_consumer_lag_seconds", stream=STREAM) == 0,
             timeout=30)
    client = httpx.Client(base_url=collector.url, headers={"Authorization": f"Bearer {lh.key}"})
    assert post(client, STREAM, [{"user_id": "u", "level": 1}] * 7).json()["accepted"] == 7
    m = wait_for(deliver_url, lambda m: value(m, "lakehose_rows_committed_total", stream=STREAM) == 7)
    assert value(m, "lakehose_files_written_total", stream=STREAM) == 1
    # run alone, the collector serves its own counters only
    assert value(scrape(collector.url), "lakehose_rows_committed_total") == 0
    assert value(scrape(collector.url), "lakehose_events_accepted_total", stream=STREAM) == 7


def test_a_full_disk_outage_logs_a_handful_of_lines(lh: Lakehose) -> None:
    """300 requests refused with 503: one line, and a summary counting the 299 others."""
    lh.create_stream(STREAM)
    server = lh.server("collector", env={"LAKEHOSE_LOG__MIN_FREE_DISK_BYTES": str(1 << 60)})
    server.start(wait_path="/healthz")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"}) as client:
        for _ in range(300):
            response = post(client, STREAM, [{"user_id": "u", "level": 1}])
            assert response.status_code == 503 and response.json()["error"] == "log_full"
    server.stop()  # a graceful stop writes the summaries still pending
    lines = log_lines(server)
    assert len(server.log_path.read_text().splitlines()) < 10, server.log_path.read_text()
    full = [line for line in lines if line["event"] == "log_full"]
    assert full[0]["component"] == "collector" and full[0]["level"] == "warning"
    assert "suppressed" not in full[0] and "under the floor" in full[0]["message"]
    summaries = [line for line in full if "suppressed" in line]
    assert summaries and len(full) == 1 + len(summaries)
    assert sum(line["suppressed"] for line in summaries) == 299
    assert "more like this suppressed" in summaries[-1]["message"]


def test_failing_commits_are_retried_in_process_and_logged_at_a_bounded_rate(lh: Lakehose) -> None:
    """The table's data folder cannot be created: commits fail, then land once it can."""
    lh.create_stream(STREAM)
    server = lh.server("up", env={"LAKEHOSE_DELIVERY__MAX_SECONDS": "0.2"}).start()
    blocker = lh.data_dir / "warehouse" / "events" / STREAM / "data"
    blocker.write_text("a file where the table's data folder goes")
    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lh.key}"})
    assert post(client, STREAM, [{"user_id": "u", "level": 1}] * 100).json()["accepted"] == 100

    stuck = wait_for(server.url, lambda m: value(m, "lakehose_commit_failures_total", stream=STREAM) >= 2)
    assert value(stuck, "lakehose_consumer_lag_events", stream=STREAM) == 100
    assert value(stuck, "lakehose_consumer_lag_seconds", stream=STREAM) > 0.5
    assert value(stuck, "lakehose_rows_committed_total", stream=STREAM) == 0
    blocker.unlink()
    landed = wait_for(server.url, lambda m: value(m, "lakehose_rows_committed_total", stream=STREAM) == 100)
    assert value(landed, "lakehose_consumer_lag_seconds", stream=STREAM) == 0
    failures = value(landed, "lakehose_commit_failures_total", stream=STREAM)
    assert query(lh.reader(server), f"SELECT count(*) FROM events.{STREAM}") == [[100]]
    assert server.stop() == 0

    lines = log_lines(server)
    failed = [line for line in lines if line["event"] == "commit_failed"]
    assert failed[0]["component"] == "delivery" and failed[0]["stream"] == STREAM
    assert "NotADirectoryError" in failed[0]["message"] or "FileExistsError" in failed[0]["message"] \
        or "Not a directory" in failed[0]["message"], failed[0]
    assert 1 + sum(line.get("suppressed", 0) for line in failed[1:]) == failures
    assert len(failed) <= 2  # the first failure, and one summary of the others
    assert [line["event"] for line in lines].count("commit_recovered") == 1
    assert not [line for line in lines if line["event"] == "delivery_exited"]
