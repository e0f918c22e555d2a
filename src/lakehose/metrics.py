"""Every Prometheus metric lakehose exports, defined once with fixed names and units."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "lakehose_http_requests_total", "HTTP requests answered, by route and status.",
    ["route", "status"])
EVENTS_ACCEPTED = Counter(
    "lakehose_events_accepted_total", "Events made durable in the log, by stream.", ["stream"])
EVENTS_REJECTED = Counter(
    "lakehose_events_rejected_total", "Events rejected by the collector, by stream and reason.",
    ["stream", "reason"])
REQUEST_BYTES = Counter(
    "lakehose_request_bytes_total", "Request body bytes received (as sent, before decompression).")
ACK_LATENCY = Histogram(
    "lakehose_ack_latency_seconds", "Time from a request's body being read to its answer "
    "(validation plus durable append).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
LOG_SIZE = Gauge("lakehose_log_size_bytes", "Bytes held in the log, over every stream.")
DISK_FREE = Gauge("lakehose_disk_free_bytes", "Free bytes on the disk that holds the log.")

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
    "lakehose_consumer_lag_seconds", "Age of the oldest event read but not yet committed, by stream.",
    ["stream"])
