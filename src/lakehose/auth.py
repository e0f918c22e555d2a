"""Who is asking: write keys for ingestion, read/admin tokens for everything else.

Secrets are looked up by hash in a table each process refreshes from the catalog
every second, so a revoked key or token stops working within a second, without
a database round trip per request. A secret the table does not hold makes the
request wait for a fresh read of the catalog before it is refused
(``lakehose.reload``), so a key or token works the moment ``keys create`` /
``tokens create`` returns, on every process; a client spraying random secrets
costs the catalog at most one read per ``MISS_RELOAD_SECONDS`` per process,
however fast it sends. Ingestion takes the key as a Bearer token, as
``X-Write-Key``, or as the user of HTTP Basic (what Segment-style SDKs do).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lakehose import metrics
from lakehose.logs import Logger
from lakehose.registry.credentials import Holder, Kind, hash_secret
from lakehose.reload import SpacedReload

MISS_RELOAD_SECONDS = 0.1
_LOG = Logger("auth")


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


class CredentialCache:
    """Every key and token by secret hash: refreshed each second, and read again on a miss."""

    def __init__(self, load: Callable[[], dict[str, Holder]]) -> None:
        self._load = load
        self.holders: dict[str, Holder] = {}
        self._on_miss = SpacedReload(lambda: self.refresh("miss"), MISS_RELOAD_SECONDS)

    def refresh(self, cause: str = "periodic") -> None:
        """Read the catalog (blocking: call it from a thread)."""
        started = time.monotonic()
        metrics.CREDENTIAL_RELOADS.labels(cause).inc()
        self.holders = self._load()
        self._on_miss.ran(started)

    async def find(self, secret: str) -> Holder | None:
        """The holder of ``secret``, read from the catalog again if the table lacks it."""
        digest = hash_secret(secret)
        if (holder := self.holders.get(digest)) is not None:
            return holder
        try:
            await self._on_miss.since(time.monotonic())
        except Exception as exc:
            _LOG.warning("credentials_reload_failed", f"reading keys and tokens failed: {exc!r}")
            raise AuthError(503, "credentials_unavailable", "the secret could not be checked: "
                            f"the catalog did not answer ({exc}); retry shortly") from exc
        return self.holders.get(digest)


def _known(holder: Holder | None, what: str, code: str) -> Holder:
    if holder is None:
        raise AuthError(403, f"unknown_{code}", f"this {what} is not known")
    return holder


def _live(holder: Holder, what: str, code: str) -> Holder:
    if holder.revoked:
        raise AuthError(403, f"revoked_{code}", f"{what} {holder.name!r} has been revoked")
    return holder


async def authenticate_write(headers: Headers, credentials: CredentialCache) -> Holder:
    """The write key that authorises an ingestion request; raises AuthError (401/403)."""
    key = presented_secret(headers, allow_write_key_header=True)
    if key is None:
        raise AuthError(401, "missing_key", "no write key: send 'Authorization: Bearer KEY', "
                        "'X-Write-Key: KEY', or the key as the Basic auth user")
    holder = _known(await credentials.find(key), "write key", "key")
    if holder.kind != "write":
        raise AuthError(403, "not_a_write_key", f"this is {holder.kind} token {holder.name!r}, "
                        "not a write key; tokens query and manage, events are sent with a write "
                        "key (create one with: lakehose keys create NAME)")
    return _live(holder, "write key", "key")


async def authenticate_token(headers: Headers, credentials: CredentialCache, need: Kind) -> Holder:
    """The token that authorises a read (``need="read"``) or management request (``"admin"``)."""
    token = presented_secret(headers, allow_write_key_header=False)
    if token is None:
        raise AuthError(401, "missing_token", "no token: send 'Authorization: Bearer TOKEN' "
                        "(create one with: lakehose tokens create NAME)")
    holder = _known(await credentials.find(token), "token", "token")
    if holder.kind == "write":
        raise AuthError(403, "not_a_token", f"this is write key {holder.name!r}, which can only "
                        "send events; reading and managing need a token (create one with: "
                        "lakehose tokens create NAME)")
    _live(holder, "token", "token")
    if need == "admin" and holder.kind != "admin":
        raise AuthError(403, "admin_required", f"token {holder.name!r} can read but not manage; "
                        "use an admin token")
    return holder


class TokenGuard:
    """Token checks for the read and management routes."""

    def __init__(self, credentials: CredentialCache) -> None:
        self.credentials = credentials

    async def check(self, request: Request, need: Kind) -> Response | None:
        """None when the request may go on, else the 401/403 answer to send."""
        try:
            await authenticate_token(request.headers, self.credentials, need)
        except AuthError as exc:
            return JSONResponse({"error": exc.code, "reason": exc.reason}, status_code=exc.status,
                                headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)
        return None
