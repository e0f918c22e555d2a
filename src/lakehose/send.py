"""``lakehose send``: events to a running lakehose, from a file of your own or the demo generator.

Where to: ``--url``, else the address the data folder's ``lakehose up`` recorded
(``lakehose.address``), else ``[collector] host``/``port``. Events go in batches
of at most ``BATCH_EVENTS`` events and ``BATCH_BYTES`` bytes, well under the
collector's default request limits. A batch answered 429 or 503 is sent again
after its ``Retry-After``; one whose answer was lost (connection reset,
timeout) is sent again after a pause, which can land its events twice unless
they carry an ``event_id`` (the demo's do; ``lakehose dedupe`` removes such
copies). Any other refusal stops the run with the collector's reason.

The result is the collector's own count: events accepted and rejected, the
rejections by reason, and the first few reasons with the line (NDJSON) or
position (JSON array) of the event. Progress goes to stderr: a bar on a
terminal, else a line every tenth of the way or every 10 seconds.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import httpx
import msgspec

from lakehose.address import recorded
from lakehose.config import Settings
from lakehose.errors import LakehoseError

BATCH_EVENTS = 500
BATCH_BYTES = 4 * 1024 * 1024
MAX_ATTEMPTS = 8  # per batch, counting the first
MAX_WAIT_SECONDS = 30.0  # the longest single pause between attempts, whatever Retry-After says
FIRST_REASONS = 5

Event = Any


class SendFailed(LakehoseError):
    """The collector could not be reached or refused a batch for a reason that retrying will not fix."""


def target_url(settings: Settings, url: str | None) -> str:
    """``--url``, else the running ``up``'s recorded address, else the configured collector."""
    if url:
        return url.rstrip("/")
    return recorded(settings.data_dir) or f"http://{settings.collector.host}:{settings.collector.port}"


@dataclass
class Tally:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    first: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.accepted:,} accepted, {self.rejected:,} rejected"
        if self.reasons:
            text += " (" + ", ".join(f"{n:,} {code}" for code, n in self.reasons.most_common()) + ")"
        lines = [text]
        if self.first:
            lines.append(f"first rejections (of {self.rejected:,}):")
            lines += [f"  {line}" for line in self.first]
        return "\n".join(lines)


class Progress:
    """A bar redrawn in place on a terminal; elsewhere (logs, CI) a line now and then."""

    def __init__(self, total: int, out: IO[str] = sys.stderr) -> None:
        self.total, self.out = max(total, 1), out
        self.tty = out.isatty()
        self.started = self.last_line = time.monotonic()
        self.next_tenth = 1

    def update(self, tally: Tally) -> None:
        now = time.monotonic()
        rate = tally.sent / max(now - self.started, 1e-6)
        done = tally.sent / self.total
        counts = (f"{tally.sent:,}/{self.total:,} events, {tally.accepted:,} accepted, "
                  f"{tally.rejected:,} rejected, {rate:,.0f}/s")
        if self.tty:
            bar = "#" * int(30 * done)
            self.out.write(f"\r[{bar:<30}] {done:4.0%}  {counts}")
            if tally.sent >= self.total:
                self.out.write("\n")
        elif done * 10 >= self.next_tenth or now - self.last_line >= 10:
            self.out.write(f"sent {counts} ({done:.0%})\n")
            self.next_tenth = int(done * 10) + 1
            self.last_line = now
        self.out.flush()


class Sender:
    """Posts batches to one endpoint with one write key, retrying what the collector asks to retry."""

    def __init__(self, url: str, path: str, timeout: float = 60) -> None:
        self.url, self.path = url, path
        self.client = httpx.Client(base_url=url, headers={"Content-Type": "application/json"},
                                   timeout=timeout)

    def use_key(self, key: str) -> None:
        self.client.headers["Authorization"] = f"Bearer {key}"

    def close(self) -> None:
        self.client.close()

    def check(self) -> None:
        """Fail now, before anything is prepared or read, if nothing answers at the URL."""
        try:
            self.client.get("/healthz")
        except httpx.TransportError as exc:
            raise SendFailed(self._unreachable(exc)) from None

    def post(self, body: bytes, tally: Tally) -> dict[str, Any]:
        """The collector's answer to one batch; raises SendFailed when it cannot be had."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self.client.post(self.path, content=body)
            except httpx.ConnectError as exc:
                if tally.sent == 0:  # nothing answered yet: nobody is listening, say so now
                    raise SendFailed(self._unreachable(exc)) from None
                wait, why = min(2.0 ** attempt, MAX_WAIT_SECONDS), f"cannot connect ({exc})"
            except httpx.TransportError as exc:
                wait, why = min(2.0 ** attempt, MAX_WAIT_SECONDS), f"no answer ({exc!r})"
            else:
                if response.status_code == 200:
                    answer: dict[str, Any] = response.json()
                    return answer
                if response.status_code not in (429, 503):
                    raise SendFailed(self._refused(response, tally))
                wait = min(_retry_after(response), MAX_WAIT_SECONDS)
                why = f"{response.status_code} {_reason(response)}"
            if attempt < MAX_ATTEMPTS:
                print(f"lakehose send: {why}; retrying in {wait:g} s", file=sys.stderr)
                time.sleep(wait)
        raise SendFailed(f"{self.url} still refuses after {MAX_ATTEMPTS} attempts: {why}; "
                         f"stopped after {tally.sent:,} events ({tally.summary()})")

    def _unreachable(self, exc: Exception) -> str:
        return (f"cannot reach lakehose at {self.url} ({exc}). Is `lakehose up` running? send "
                f"uses --url, else the address `lakehose up` recorded in its data folder, else "
                f"[collector] host and port")

    def _refused(self, response: httpx.Response, tally: Tally) -> str:
        where = f"{self.url}{self.path} answered {response.status_code}: {_reason(response)}"
        if response.status_code == 403:
            where += " (the key of --key, $LAKEHOSE_WRITE_KEY or the demo; see lakehose keys list)"
        return where + (f"; stopped after {tally.sent:,} events ({tally.summary()})" if tally.sent else "")


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(float(response.headers.get("Retry-After", "1")), 0.1)
    except ValueError:
        return 1.0


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body['error']}: {body['reason']}"
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


def _bodies(events: Sequence[Event]) -> Iterator[tuple[int, bytes]]:
    """(events in it, JSON array) for consecutive slices, halved until each fits ``BATCH_BYTES``."""
    body = msgspec.json.encode(events)
    if len(body) <= BATCH_BYTES or len(events) == 1:
        yield len(events), body
        return
    middle = len(events) // 2
    yield from _bodies(events[:middle])
    yield from _bodies(events[middle:])


def send_events(sender: Sender, batches: Iterator[Sequence[Event]], total: int, rate: float,
                where: Callable[[int], str] = lambda i: f"event {i + 1}") -> Tally:
    """Send every batch; ``where(i)`` names the i-th event (0-based) in rejection reasons."""
    tally = Tally()
    progress = Progress(total)
    started = time.monotonic()
    for batch in batches:
        for count, body in _bodies(batch):
            answer = sender.post(body, tally)
            tally.accepted += int(answer.get("accepted", 0))
            tally.rejected += int(answer.get("rejected", 0))
            for error in answer.get("errors", []):
                tally.reasons[str(error.get("code"))] += 1
                if len(tally.first) < FIRST_REASONS:
                    tally.first.append(f"{where(tally.sent + int(error.get('index', 0)))}: "
                                       f"{error.get('code')} at {error.get('path')}: {error.get('reason')}")
            tally.sent += count
            progress.update(tally)
            if rate > 0:
                ahead = tally.sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    return tally


def read_file(name: str) -> tuple[list[Event], list[int] | None]:
    """The events of ``name`` (``-``: stdin): a JSON array, or NDJSON with their line numbers.

    The whole file is read and parsed first, so a file that is not JSON is refused
    with its line before anything is sent.
    """
    try:
        data = sys.stdin.buffer.read() if name == "-" else open(name, "rb").read()
    except OSError as exc:
        raise LakehoseError(f"cannot read {name}: {exc.strerror}") from None
    shown = "stdin" if name == "-" else name
    if data.lstrip()[:1] == b"[":
        try:
            events = json.loads(data)
        except ValueError as exc:
            raise LakehoseError(f"{shown} is not a JSON array: {exc}; nothing was sent") from None
        return list(events), None
    events, lines = [], []
    for number, line in enumerate(data.split(b"\n"), 1):
        if line.strip():
            try:
                events.append(json.loads(line))
            except ValueError as exc:
                raise LakehoseError(f"{shown} line {number} is not JSON ({exc}); it should hold a "
                                    f"JSON array or one JSON event per line (NDJSON); nothing "
                                    f"was sent") from None
            lines.append(number)
    if not events:
        raise LakehoseError(f"{shown} holds no events")
    return events, lines


def in_batches(events: Sequence[Event]) -> Iterator[Sequence[Event]]:
    for start in range(0, len(events), BATCH_EVENTS):
        yield events[start:start + BATCH_EVENTS]


def send_file(settings: Settings, name: str, url: str | None, key: str | None, stream: str | None,
              rate: float) -> Tally:
    """``lakehose send FILE``: to ``/v1/streams/STREAM/events``, or ``/v1/events`` where each
    event names its stream in ``"type"``."""
    if not key:
        raise LakehoseError("give a write key with --key or $LAKEHOSE_WRITE_KEY "
                            "(lakehose keys create NAME makes one)")
    events, lines = read_file(name)
    target = target_url(settings, url)
    sender = Sender(target, f"/v1/streams/{stream}/events" if stream else "/v1/events")
    sender.use_key(key)
    started = time.monotonic()
    try:
        sender.check()
        tally = send_events(sender, in_batches(events), len(events), rate,
                            (lambda i: f"line {lines[i]}") if lines is not None else
                            (lambda i: f"event {i + 1}"))
    finally:
        sender.close()
    print(f"sent {tally.sent:,} events to {target} in {time.monotonic() - started:.1f} s: "
          f"{tally.summary()}")
    return tally


def send_demo(settings: Settings, url: str | None, key: str | None, events: int, rate: float,
              seed: int | None, days: float) -> Tally:
    """``lakehose send --demo``: prepare the demo (``lakehose.demo_setup``), then send its events."""
    from lakehose.demo import DemoEvents
    from lakehose.demo_setup import prepare_demo

    target = target_url(settings, url)
    sender = Sender(target, "/v1/events")
    try:
        sender.check()
        setup = prepare_demo(settings, with_key=not key)
        for line in setup.lines(settings, target):
            print(line)
        sender.use_key(key or setup.key or "")
        seed = secrets.randbelow(2 ** 31) if seed is None else seed
        generator = DemoEvents(seed, days=days)
        print(f"sending {events:,} demo events over the last {days:g} days to {target} "
              f"(seed {seed}: --seed {seed} makes the same events again)", flush=True)
        started = time.monotonic()
        batches = (generator.batch(min(BATCH_EVENTS, events - start))
                   for start in range(0, events, BATCH_EVENTS))
        tally = send_events(sender, batches, events, rate)
    finally:
        sender.close()
    print(f"sent {tally.sent:,} demo events in {time.monotonic() - started:.1f} s: {tally.summary()}")
    return tally
