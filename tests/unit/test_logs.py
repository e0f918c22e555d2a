"""Structured logs: the line shape, and the rate limit that bounds a flood of one event."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lakehose.logs import LineWriter, Logger, RateLimiter, capture_library_logs


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_fixed_keys_first() -> None:
    out = io.StringIO()
    Logger("delivery", LineWriter(out)).error("commit_failed", "events: commit failed", stream="s",
                                              failures=2)
    (line,) = lines(out)
    assert list(line)[:5] == ["ts", "level", "component", "event", "message"]
    assert line["level"] == "error" and line["component"] == "delivery"
    assert line["event"] == "commit_failed" and line["message"] == "events: commit failed"
    assert line["stream"] == "s" and line["failures"] == 2
    assert line["ts"].endswith("Z") and "T" in line["ts"]


def test_limiter_admits_one_per_interval_and_reports_the_rest() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock)
    key = ("collector", "log_full")
    assert limiter.admit(key, "warning", "first")
    assert not any(limiter.admit(key, "warning", f"again {n}") for n in range(99))
    clock.now += 9.9
    assert limiter.expired() == []
    clock.now += 0.1
    ((due_key, window),) = limiter.expired()
    assert due_key == key and window.suppressed == 99 and window.last_message == "again 98"
    # the flood goes on: still held back, one summary per interval
    assert not limiter.admit(key, "warning", "more")
    clock.now += 10
    assert [w.suppressed for _, w in limiter.expired()] == [1]
    # quiet for a whole interval: the window closes, and the next line goes out at once
    clock.now += 10
    assert limiter.expired() == []
    assert limiter.admit(key, "warning", "after the outage")


def test_limiter_keys_are_separate() -> None:
    limiter = RateLimiter(10, Clock())
    assert limiter.admit(("collector", "log_full"), "warning", "a")
    assert limiter.admit(("collector", "log_unavailable"), "error", "b")
    assert limiter.admit(("delivery", "log_full"), "warning", "c")


def test_a_flood_writes_one_line_then_one_summary() -> None:
    out = io.StringIO()
    clock = Clock()
    log = Logger("collector", LineWriter(out, RateLimiter(10, clock)))
    for n in range(1000):
        log.error("log_unavailable", f"refusing events (503): attempt {n}")
        clock.now += 0.001
    log.warning("topics_unavailable", "another event is not held back")
    clock.now += 10
    log.info("anything", "a later line writes the summaries that are due first")
    first, other, summary, later = lines(out)
    assert first["message"] == "refusing events (503): attempt 0" and "suppressed" not in first
    assert other["event"] == "topics_unavailable"
    assert summary["event"] == "log_unavailable" and summary["level"] == "error"
    assert summary["suppressed"] == 999
    assert summary["last_message"] == "refusing events (503): attempt 999"
    assert summary["message"] == "999 more like this suppressed in the last 11 s"
    assert later["event"] == "anything"


def test_flush_writes_pending_summaries_at_once() -> None:
    out = io.StringIO()
    writer = LineWriter(out, RateLimiter(3600, Clock()))
    log = Logger("up", writer)
    for _ in range(3):
        log.error("delivery_exited", "delivery exited with 1; restarting")
    writer.flush()
    assert [line.get("suppressed") for line in lines(out)] == [None, 2]
    writer.flush()
    assert len(lines(out)) == 2


def test_the_summary_comes_on_time_without_another_line() -> None:
    out = io.StringIO()
    log = Logger("delivery", LineWriter(out, RateLimiter(0.2)))
    for _ in range(50):
        log.error("commit_failed", "commit failed")
    deadline = time.monotonic() + 5
    while len(lines(out)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [line.get("suppressed") for line in lines(out)] == [None, 49]


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, given back as it was (the handler is process-wide)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_library_records_become_lines_with_their_traceback(
        capsys: pytest.CaptureFixture[str], root_logger: logging.Logger) -> None:
    capture_library_logs()
    capture_library_logs()  # once per process, however often asked
    assert [type(h).__name__ for h in root_logger.handlers].count("_LibraryHandler") == 1
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("uvicorn.error.test_logs").exception("Exception in ASGI application")
    logging.getLogger("uvicorn.error.test_logs").info("not at warning level: dropped")
    (line,) = [json.loads(text) for text in capsys.readouterr().err.splitlines()]
    assert line["component"] == "uvicorn" and line["event"] == "uvicorn.error.test_logs"
    assert line["level"] == "error" and line["message"] == "Exception in ASGI application"
    assert "RuntimeError: boom" in line["exception"]
