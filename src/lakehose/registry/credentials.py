"""Write keys (for sending events) and tokens (for reading and managing), stored hashed.

A write key opens ingestion only. A read token opens queries; an admin token
also manages streams and keys. Both are random 256-bit secrets shown once;
only their SHA-256 is kept, which is enough for secrets that cannot be guessed
(a slow hash protects low-entropy passwords, not these).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from lakehose.errors import AlreadyExists, NotFound

Family = Literal["key", "token"]
Kind = Literal["write", "read", "admin"]
PREFIXES: dict[Family, str] = {"key": "lh_", "token": "lht_"}


def credentials_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "lakehose_credentials", metadata,
        sa.Column("family", sa.String(8), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.Column("auto_create", sa.Boolean, nullable=False, server_default=sa.false()),
    )


@dataclass(frozen=True)
class Credential:
    name: str
    kind: Kind
    prefix: str
    created_at: float
    revoked_at: float | None
    auto_create: bool = False


@dataclass(frozen=True)
class Holder:
    """Who presented a secret, as a request handler needs to know it (kind "write": a key)."""

    name: str
    kind: Kind
    revoked: bool
    auto_create: bool = False  # events of unknown streams may create them


def is_valid_name(name: str) -> bool:
    """1 to 128 characters and none a control character (a NUL cannot even be stored in PostgreSQL)."""
    return 0 < len(name) <= 128 and name.isprintable()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Credentials:
    def __init__(self, engine: sa.Engine, table: sa.Table) -> None:
        self.engine = engine
        self.table = table

    def create(self, family: Family, name: str, kind: Kind, auto_create: bool = False) -> str:
        """Create a secret and return it; this is the only time it is seen."""
        if not is_valid_name(name):
            raise ValueError("a name must have 1 to 128 characters, none of them control characters")
        secret = PREFIXES[family] + secrets.token_urlsafe(32)
        try:
            with self.engine.begin() as conn:
                conn.execute(self.table.insert().values(
                    family=family, name=name, kind=kind, secret_hash=hash_secret(secret),
                    prefix=secret[:10], created_at=time.time(), revoked_at=None,
                    auto_create=auto_create))
        except sa.exc.IntegrityError as exc:
            raise AlreadyExists(f"a {family} named {name!r} exists already") from exc
        return secret

    def list(self, family: Family) -> list[Credential]:
        t = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(t.c.family == family).order_by(t.c.name)).all()
        return [Credential(r.name, r.kind, r.prefix, r.created_at, r.revoked_at, r.auto_create)
                for r in rows]

    def revoke(self, family: Family, name: str) -> None:
        if not is_valid_name(name):  # never looked up: PostgreSQL refuses NUL in text (a 500)
            raise NotFound(f"no {family} named {name!r}")
        t = self.table
        with self.engine.begin() as conn:
            result = conn.execute(t.update().where(t.c.family == family).where(t.c.name == name)
                                  .values(revoked_at=time.time()))
        if result.rowcount == 0:
            raise NotFound(f"no {family} named {name!r}")

    def holders(self) -> dict[str, Holder]:
        """``{sha256: holder}`` of every key and token ever created, revoked ones too."""
        t = self.table
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.secret_hash, t.c.name, t.c.kind, t.c.revoked_at,
                                          t.c.auto_create)).all()
        return {r.secret_hash: Holder(r.name, r.kind, r.revoked_at is not None, r.auto_create)
                for r in rows}
