"""Write-key authentication: Bearer token, ``X-Write-Key``, or the user of HTTP Basic.

Keys are looked up by hash in a table refreshed from the catalog each second,
so a revoked key stops working within a second without a database round trip
per request.
"""

from __future__ import annotations

import base64
import binascii

from starlette.datastructures import Headers

from lakehose.registry.store import hash_key


class AuthError(Exception):
    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


def presented_key(headers: Headers) -> str | None:
    """The write key a request carries, however the client chose to send it."""
    header = headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            user = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user or None
    key = headers.get("x-write-key", "").strip()
    return key or None


def authenticate(headers: Headers, keys: dict[str, tuple[str, bool]]) -> str:
    """The name of the key that authorises this request; raises AuthError (401/403)."""
    key = presented_key(headers)
    if key is None:
        raise AuthError(401, "missing_key", "no write key: send 'Authorization: Bearer KEY', "
                        "'X-Write-Key: KEY', or the key as the Basic auth user")
    found = keys.get(hash_key(key))
    if found is None:
        raise AuthError(403, "unknown_key", "this write key is not known")
    name, revoked = found
    if revoked:
        raise AuthError(403, "revoked_key", f"write key {name!r} has been revoked")
    return name
