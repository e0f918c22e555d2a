"""Helpers for tests that send events and count them in the tables."""

from __future__ import annotations

import time
from typing import Any

import httpx


def query(client: httpx.Client, sql: str) -> list[list[Any]]:
    response = client.post("/v1/query", json={"sql": sql})
    assert response.status_code == 200, response.text
    return list(response.json()["rows"])


def wait_for_count(client: httpx.Client, table: str, expected: int, timeout: float = 60) -> float:
    """Poll ``count(*)`` until it reaches ``expected``; returns the seconds it took."""
    started = time.monotonic()
    count = -1
    while time.monotonic() - started < timeout:
        count = query(client, f"SELECT count(*) FROM {table}")[0][0]
        if count >= expected:
            assert count == expected, f"{table}: {count} rows, expected {expected}"
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"{table}: {count} rows after {timeout} s, expected {expected}")
