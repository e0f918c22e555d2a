"""UUIDv7 event ids (RFC 9562): time-ordered, so ids sort by arrival and index well."""

from __future__ import annotations

import os

_VARIANT = "89ab"


def uuid7_batch(count: int, unix_ms: int) -> list[str]:
    """``count`` UUIDv7 strings for one instant; random bits come from one urandom call."""
    stamp = f"{unix_ms & 0xFFFFFFFFFFFF:012x}"
    head = f"{stamp[:8]}-{stamp[8:]}-7"
    rand = os.urandom(10 * count).hex()
    ids = []
    for i in range(0, 20 * count, 20):
        ids.append(f"{head}{rand[i:i + 3]}-{_VARIANT[int(rand[i + 3], 16) & 3]}"
                   f"{rand[i + 4:i + 7]}-{rand[i + 7:i + 19]}")
    return ids
