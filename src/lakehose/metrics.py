"""Every Prometheus metric lakehose exports, defined once with fixed names and units.

Label values are never chosen by clients: streams and write keys are created by
an admin, and an unknown stream is counted as ``_unknown``, so the number of
series stays bounded whatever is sent.

One ``/metrics`` for all of ``lakehose up``: up runs the HTTP server and
delivery in separate processes, so it sets ``PROMETHEUS_MULTIPROC_DIR`` for its
children (a folder in the data dir, emptied at every start) and every process
writes its values to files there; ``exposition`` then reads them all. This is
prometheus_client's own multiprocess mode, chosen over the HTTP process fetching
delivery's metrics from a loopback port because it has no port to pick, no
text to merge (both processes define the same families), and counters survive a
child's restart instead of going back to zero. Each gauge therefore says how
values of several processes combine (``multiprocess_mode``): the ``live*`` ones
drop a process once the supervisor marks it dead. A process run alone
(``lakehose collector``, ``lakehose deliver --metrics-port``) serves its own.
"""

from __future__ import annotations

import os

from prometheus_client import (
    REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "lakehose_http_requests_total", "HTTP requests answered, by route and status.",
    ["route", "status"])
EVENTS_ACCEPTED = Counter(
    "lakehose_events_accepted_total", "Events made durable in the log, by stream and write key.",
    ["stream", "key"])
EVENTS_REJECTED = Counter(
    "lakehose_events_rejected_total", "Events rejected by the collector, by stream, reason and "
    "write key; a request refused whole (not JSON, too large) counts once, as its one row in "
    "events._rejected.", ["stream", "reason", "key"])
REQUEST_BYTES = Counter(
    "lakehose_request_bytes_total", "Request body bytes received (as sent, before decompression).")
ACK_LATENCY = Histogram(
    "lakehose_ack_latency_seconds", "Time from a request's body being read to its answer "
    "(validation plus durable append).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
LOG_SIZE = Gauge("lakehose_log_size_bytes", "Bytes held in the log, over every stream "
                 "(0 for kafka://: the brokers hold it).", multiprocess_mode="livemax")
# livemax, not livemin: every process has these gauges at 0 until its collector sets them
DISK_FREE = Gauge("lakehose_disk_free_bytes", "Free bytes on the disk that holds the log.",
                  multiprocess_mode="livemax")

CREDENTIAL_RELOADS = Counter(
    "lakehose_credential_reloads_total", "Reads of every key and token from the catalog, by cause: "
    "the periodic refresh, or a secret the process did not know (at most one such read every "
    "0.1 s per process, however many unknown secrets arrive).", ["cause"])
UNKNOWN_STREAM_LABEL = "_unknown"

BATCHES_COMMITTED = Counter(
    "lakehose_batches_committed_total", "Iceberg commits of delivered batches, by stream.", ["stream"])
ROWS_COMMITTED = Counter(
    "lakehose_rows_committed_total", "Rows committed to tables by delivery, by stream.", ["stream"])
COMMIT_LATENCY = Histogram(
    "lakehose_commit_latency_seconds", "Time to write a batch's Parquet files and commit it.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
DELIVERY_REJECTED = Counter(
    "lakehose_delivery_rejected_total", "Events delivery could not convert, by stream.", ["stream"])
CONSUMER_LAG_SECONDS = Gauge(
    "lakehose_consumer_lag_seconds", "Age of the oldest event in the log not yet committed to the "
    "table, by stream (0 when all read is committed).", ["stream"], multiprocess_mode="livemax")
CONSUMER_LAG_EVENTS = Gauge(
    "lakehose_consumer_lag_events", "Events delivery has read from the log and not yet committed, "
    "by stream. Events not read yet are not counted (delivery reads all that is there on every "
    "poll, so they are few unless commits fail); lakehose_consumer_lag_seconds is the honest age.",
    ["stream"], multiprocess_mode="livemax")
LAST_COMMIT = Gauge(
    "lakehose_last_commit_timestamp_seconds", "Unix time of the stream's table's last change "
    "(delivery commit, or creation), by stream.", ["stream"], multiprocess_mode="max")
FILES_WRITTEN = Counter(
    "lakehose_files_written_total", "Parquet data files added to tables by delivery commits, "
    "by stream.", ["stream"])
BYTES_WRITTEN = Counter(
    "lakehose_bytes_written_total", "Bytes of Parquet data files added to tables by delivery "
    "commits, by stream.", ["stream"])
COMMIT_FAILURES = Counter(
    "lakehose_commit_failures_total", "Delivery commits that failed and will be retried, by stream.",
    ["stream"])

MAINTENANCE_RUNS = Counter(
    "lakehose_maintenance_runs_total", "Maintenance job runs, by job and outcome "
    "(success or failure).", ["job", "outcome"])
MAINTENANCE_LAST_SUCCESS = Gauge(
    "lakehose_maintenance_last_success_timestamp_seconds", "Unix time a maintenance job last "
    "succeeded, by job.", ["job"], multiprocess_mode="max")
AUDIT_DISCREPANCY = Gauge(
    "lakehose_audit_discrepancy_events", "Events by which what the last audit counted as "
    "accepted and what the stream's table holds differ, by stream; 0 when they agree. The latest "
    "value set by any process wins, also one that has exited (an audit run from the command line).",
    ["stream"],
    multiprocess_mode="mostrecent")


def registry() -> CollectorRegistry:
    """What to serve: every process's files in multiprocess mode, else this process's metrics."""
    if os.environ.get(MULTIPROCESS_ENV):
        gathered = CollectorRegistry()
        MultiProcessCollector(gathered)  # type: ignore[no-untyped-call]
        return gathered
    return REGISTRY


def exposition() -> bytes:
    """The body of a ``/metrics`` answer (Prometheus text format)."""
    return generate_latest(registry())


def serve_metrics(host: str, port: int) -> None:
    """Serve ``/metrics`` from a background thread, for a process without an HTTP server."""
    start_http_server(port, host, registry())
