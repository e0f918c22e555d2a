"""Structured, rate-limited logs: one JSON object per line on stderr.

Why JSON lines: log shippers (Vector, Promtail, Fluent Bit, ``docker logs``,
``kubectl logs``) read stderr, and a fixed shape lets them filter and count
without regular expressions. Every line is::

    {"ts": "2026-03-01T12:00:00.123Z", "level": "warning", "component": "collector",
     "event": "log_unavailable", "message": "...", <fields of the event>...}

``event`` is a fixed name per kind of happening (``commit_failed``,
``log_full``); ``message`` is for people.

Why rate limited: an outage fails every request, and a log line per request
would fill the disk that the log itself needs. So the same (component, event)
is written at most once per ``INTERVAL_SECONDS``: the first line goes out at
once, the ones after it in that interval are only counted, and when the
interval ends one summary line of the same event says how many were held back
(``"suppressed": N`` and the last one's message). A flood of any length thus
writes one line, then one summary per interval while it lasts.

Records of the libraries lakehose runs on (uvicorn, pyiceberg, ...) go through
the same writer and limiter once ``capture_library_logs`` is called, with the
logger's name as their event.

The CLI's answers to a person (``lakehose streams list``, ``up``'s banner) are
not logs: they stay plain text on stdout.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

INTERVAL_SECONDS = 10.0


@dataclass
class _Window:
    opened: float
    suppressed: int = 0
    level: str = "info"
    last_message: str = ""


class RateLimiter:
    """Admits the first of each key per interval and counts the rest (not thread safe)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}

    def admit(self, key: tuple[str, str], level: str, message: str) -> bool:
        """True if a line for ``key`` may be written now; else it is counted for the summary."""
        window = self._windows.get(key)
        if window is None:
            self._windows[key] = _Window(self.clock())
            return True
        window.suppressed += 1
        window.level, window.last_message = level, message
        return False

    def expired(self, *, everything: bool = False) -> list[tuple[tuple[str, str], _Window]]:
        """Windows whose interval is over and that held lines back (all of them if ``everything``).

        A window that held lines back starts again at once, so a flood that goes on
        stays quiet but for one summary per interval; one that held none is closed.
        """
        now = self.clock()
        due: list[tuple[tuple[str, str], _Window]] = []
        for key, window in list(self._windows.items()):
            if not everything and now - window.opened < self.interval:
                continue
            if window.suppressed:
                due.append((key, _Window(window.opened, window.suppressed, window.level,
                                         window.last_message)))
                self._windows[key] = _Window(now)
            else:
                del self._windows[key]
        return due

    def next_expiry(self) -> float | None:
        """Seconds until the earliest window with held-back lines ends; None if none holds any."""
        ends = [w.opened + self.interval for w in self._windows.values() if w.suppressed]
        return max(0.0, min(ends) - self.clock()) if ends else None


class LineWriter:
    """Where lines go: a lock, the limiter, and a thread that writes summaries on time.

    A process has one (``Logger`` uses it); ``stream`` None means the current ``sys.stderr``.
    """

    def __init__(self, stream: TextIO | None = None, limiter: RateLimiter | None = None) -> None:
        self.stream = stream
        self.limiter = limiter or RateLimiter(INTERVAL_SECONDS)
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def write(self, level: str, component: str, event: str, message: str,
              fields: dict[str, Any]) -> None:
        with self.lock:
            self._summaries(everything=False)
            if not self.limiter.admit((component, event), level, message):
                self._ensure_thread()
                return
            self._line({"level": level, "component": component, "event": event,
                        "message": message, **fields})

    def flush(self) -> None:
        """Write every pending summary now (at exit, so no count is lost)."""
        with self.lock:
            self._summaries(everything=True)

    def _summaries(self, *, everything: bool) -> None:
        for (component, event), window in self.limiter.expired(everything=everything):
            seconds = self.limiter.clock() - window.opened
            self._line({"level": window.level, "component": component, "event": event,
                        "message": f"{window.suppressed} more like this suppressed in the last "
                                   f"{seconds:.0f} s", "suppressed": window.suppressed,
                        "last_message": window.last_message})

    def _line(self, record: dict[str, Any]) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        line = json.dumps({"ts": stamp.replace("+00:00", "Z"), **record}, ensure_ascii=False,
                          default=str)
        out = self.stream or sys.stderr
        try:
            out.write(line + "\n")
            out.flush()
        except (OSError, ValueError):  # stderr closed or gone: a log line is not worth a crash
            pass

    def _ensure_thread(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="lakehose-logs", daemon=True)
            self.thread.start()
        self.wake.set()

    def _run(self) -> None:
        while True:
            with self.lock:
                wait = self.limiter.next_expiry()
            self.wake.wait(wait)
            self.wake.clear()
            with self.lock:
                self._summaries(everything=False)


_WRITER = LineWriter()
atexit.register(_WRITER.flush)


def flush() -> None:
    """Write pending summaries now: for a server stopping by a signal, which skips ``atexit``."""
    _WRITER.flush()


class Logger:
    """Lines of one component (``collector``, ``delivery``, ``up``)."""

    def __init__(self, component: str, writer: LineWriter = _WRITER) -> None:
        self.component = component
        self.writer = writer

    def info(self, event: str, message: str, **fields: Any) -> None:
        self.writer.write("info", self.component, event, message, fields)

    def warning(self, event: str, message: str, **fields: Any) -> None:
        self.writer.write("warning", self.component, event, message, fields)

    def error(self, event: str, message: str, **fields: Any) -> None:
        self.writer.write("error", self.component, event, message, fields)


class _LibraryHandler(logging.Handler):
    """Python ``logging`` records (uvicorn, pyiceberg) as lines of the same shape, same limiter."""

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = {}
        if record.exc_info:
            fields["exception"] = logging.Formatter().formatException(record.exc_info)
        _WRITER.write(record.levelname.lower(), record.name.split(".")[0], record.name,
                      record.getMessage(), fields)


def capture_library_logs(level: int = logging.WARNING) -> None:
    """Route warnings and errors of every Python logger into these lines (once per process)."""
    root = logging.getLogger()
    if not any(isinstance(h, _LibraryHandler) for h in root.handlers):
        root.addHandler(_LibraryHandler())
    root.setLevel(level)
