"""Who is asking: write keys for ingestion, read/admin tokens for everything else.

Secrets are looked up by hash in tables each process refreshes from the catalog
every second, so a revoked key or token stops working within a second, without
a database round trip per request. Ingestion takes the key as a Bearer token,
as ``X-Write-Key``, or as the user of HTTP Basic (what Segment-style SDKs do).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lakehose.registry.credentials import Holder, Kind, hash_secret


class AuthError(Exception):
    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


def presented_secret(headers: Headers, *, allow_write_key_header: bool) -> str | None:
    """The secret a request carries, however the client chose to send it."""
    header = headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        secret = (user or password) if allow_write_key_header else (password or user)
        return secret or None
    if allow_write_key_header:
        key = headers.get("x-write-key", "").strip()
        return key or None
    return None


def _holder(secret: str, holders: Mapping[str, Holder], what: str, code: str) -> Holder:
    """The live holder of ``secret``; 403 when it is unknown or revoked."""
    holder = holders.get(hash_secret(secret))
    if holder is None:
        raise AuthError(403, f"unknown_{code}", f"this {what} is not known"
                        + (" (write keys cannot read)" if code == "token" else ""))
    if holder.revoked:
        raise AuthError(403, f"revoked_{code}", f"{what} {holder.name!r} has been revoked")
    return holder


def authenticate_write(headers: Headers, keys: Mapping[str, Holder]) -> Holder:
    """The write key that authorises an ingestion request; raises AuthError (401/403)."""
    key = presented_secret(headers, allow_write_key_header=True)
    if key is None:
        raise AuthError(401, "missing_key", "no write key: send 'Authorization: Bearer KEY', "
                        "'X-Write-Key: KEY', or the key as the Basic auth user")
    return _holder(key, keys, "write key", "key")


def authenticate_token(headers: Headers, tokens: Mapping[str, Holder], need: Kind) -> Holder:
    """The token that authorises a read (``need="read"``) or management request (``"admin"``)."""
    token = presented_secret(headers, allow_write_key_header=False)
    if token is None:
        raise AuthError(401, "missing_token", "no token: send 'Authorization: Bearer TOKEN' "
                        "(create one with: lakehose tokens create NAME)")
    holder = _holder(token, tokens, "token", "token")
    if need == "admin" and holder.kind != "admin":
        raise AuthError(403, "admin_required", f"token {holder.name!r} can read but not manage; "
                        "use an admin token")
    return holder


class TokenGuard:
    """Token checks for the read and management routes, from a table refreshed each second."""

    def __init__(self, holders: Callable[[], dict[str, Holder]]) -> None:
        self._load = holders
        self.tokens: dict[str, Holder] = {}

    def refresh(self) -> None:
        self.tokens = self._load()

    def check(self, request: Request, need: Kind) -> Response | None:
        """None when the request may go on, else the 401/403 answer to send."""
        try:
            authenticate_token(request.headers, self.tokens, need)
        except AuthError as exc:
            return JSONResponse({"error": exc.code, "reason": exc.reason}, status_code=exc.status,
                                headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)
        return None
