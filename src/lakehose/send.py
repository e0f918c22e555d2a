"""``lakehose send --demo``: realistic game events to a running lakehose, to see data arrive."""

from __future__ import annotations

import time

import httpx

from lakehose.config import Settings
from lakehose.demo import DEMO_SCHEMAS, DemoEvents
from lakehose.errors import AlreadyExists, LakehoseError
from lakehose.registry.store import Registry
from lakehose.streams import create_stream

BATCH = 500


def ensure_demo_streams(settings: Settings) -> list[str]:
    """Create every demo stream (and its table) that does not exist yet; returns the new ones."""
    created = []
    for name, schema in DEMO_SCHEMAS.items():
        try:
            create_stream(settings, name, schema)
            created.append(name)
        except AlreadyExists:
            pass
    return created


def send_demo(settings: Settings, url: str, key: str | None, events: int, rate: float, seed: int) -> None:
    created = ensure_demo_streams(settings)
    if created:
        print(f"created demo streams: {', '.join(created)}")
    if key is None:
        key = Registry(settings.catalog_uri).credentials.create("key", f"demo-{int(time.time())}", "write")
        created.append("key")
    if created:
        time.sleep(1.5)  # running collectors pick up new streams and keys within a second
    generator = DemoEvents(seed)
    sent = accepted = 0
    started = time.monotonic()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        while sent < events:
            n = min(BATCH, events - sent)
            response = client.post("/v1/events", json=generator.batch(n))
            if response.status_code in (429, 503):
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            if response.status_code != 200:
                raise LakehoseError(f"{url} answered {response.status_code}: {response.text}")
            accepted += response.json()["accepted"]
            sent += n
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    elapsed = time.monotonic() - started
    print(f"sent {sent} demo events in {elapsed:.1f} s; {accepted} accepted")
