"""Stream definitions (and, through ``credentials``, keys and tokens) in the catalog database.

Every process reads them from here (SQLite or PostgreSQL), so a stream created
or a key revoked by the CLI is seen by running processes within their refresh
interval.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lakehose.errors import AlreadyExists, LimitReached, NotFound
from lakehose.registry.credentials import Credentials, credentials_table
from lakehose.registry.schema import StreamSchema, is_valid_stream_name, parse_schema

metadata = sa.MetaData()

streams_table = sa.Table(
    "lakehose_streams", metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("schema", sa.Text, nullable=False),
    sa.Column("hints", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("unknown_fields", sa.String(8), nullable=False, server_default="reject"),
)

stream_versions_table = sa.Table(
    "lakehose_stream_versions", metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("schema", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

CREDENTIALS = credentials_table(metadata)

# buffering hints for delivery, and retention_days for maintenance (partitions older go)
HINT_NAMES = ("max_events", "max_bytes", "max_seconds", "retention_days")


@dataclass(frozen=True)
class Stream:
    name: str
    version: int
    schema: StreamSchema
    hints: dict[str, float]
    created_at: float
    unknown_fields: str = "reject"  # reject | evolve | keep: what happens to fields the schema lacks


@dataclass(frozen=True)
class SchemaVersion:
    version: int
    schema: StreamSchema
    created_at: float


UNKNOWN_FIELD_POLICIES = ("reject", "evolve", "keep")


def check_policy(policy: str) -> None:
    if policy not in UNKNOWN_FIELD_POLICIES:
        raise ValueError(f"unknown_fields must be one of {', '.join(UNKNOWN_FIELD_POLICIES)} "
                         f"(got {policy!r})")


def check_hints(hints: Mapping[str, Any]) -> dict[str, float]:
    problems = [f"unknown hint {k!r} (known: {', '.join(HINT_NAMES)})"
                for k in hints if k not in HINT_NAMES]
    problems += [f"{k} must be a positive number" for k, v in hints.items()
                 if k in HINT_NAMES and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0)]
    if problems:
        raise ValueError("; ".join(problems))
    return dict(hints)


def sqlalchemy_url(uri: str) -> str:
    """The SQLAlchemy URL for a catalog URI: ``postgresql://`` (or ``postgres://``) gets psycopg 3.

    SQLAlchemy's bare ``postgresql://`` means psycopg2, which is not installed;
    a URI that names its driver (``postgresql+...://``) is kept as it is.
    """
    scheme, sep, rest = uri.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return uri


# pg_advisory_xact_lock key: "lakehose" in ASCII, so other applications' keys are unlikely to collide.
SCHEMA_LOCK_KEY = int.from_bytes(b"lakehose", "big")
STREAMS_LOCK_KEY = SCHEMA_LOCK_KEY + 1  # serialises stream creation under max_streams


@contextmanager
def database_lock(engine: sa.Engine, key: int, file_suffix: str) -> Iterator[None]:
    """Hold an exclusive lock named by ``key`` in the catalog database, across processes.

    On PostgreSQL a transaction-level advisory lock, on a connection of its own;
    on SQLite an exclusive ``flock`` on ``<database><file_suffix>`` beside it. A
    process that dies releases it (its connection or its file closes).
    """
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            yield
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}{file_suffix}", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


@contextmanager
def schema_lock(engine: sa.Engine) -> Iterator[None]:
    """Serialise creating tables in the catalog database across processes and threads.

    ``CREATE TABLE`` races: two that both saw no table both create it, and one
    fails ("already exists").
    """
    with database_lock(engine, SCHEMA_LOCK_KEY, ".lock"):
        yield


def make_engine(uri: str) -> sa.Engine:
    """An engine for the catalog database; SQLite gets WAL mode so readers never block writers."""
    if uri.startswith("sqlite"):
        engine = sa.create_engine(uri, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(sqlalchemy_url(uri), pool_pre_ping=True)


class Registry:
    """Streams and write keys: create, list, look up."""

    def __init__(self, uri: str) -> None:
        self.engine = make_engine(uri)
        with schema_lock(self.engine):
            metadata.create_all(self.engine)
        self.credentials = Credentials(self.engine, CREDENTIALS)

    # streams -------------------------------------------------------------
    def create_stream(self, name: str, document: Any, hints: Mapping[str, Any] | None = None,
                      max_streams: int | None = None, unknown_fields: str = "reject") -> Stream:
        """Record a new stream; with ``max_streams``, refuse it if that many exist already.

        The count is taken after the insert, in the same transaction. SQLite's
        insert takes its write lock first; PostgreSQL counts in a snapshot that
        misses a concurrent create, so there the transaction first takes an
        advisory lock: two concurrent creates cannot both pass either way.
        """
        if not is_valid_stream_name(name):
            raise ValueError(f"invalid stream name {name!r}: use [a-z][a-z0-9_]{{0,62}}")
        schema = parse_schema(document)
        checked = check_hints(hints or {})
        check_policy(unknown_fields)
        now = time.time()
        try:
            with self.engine.begin() as conn:
                if max_streams is not None and conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": STREAMS_LOCK_KEY})
                conn.execute(streams_table.insert().values(
                    name=name, version=1, schema=json.dumps(document), hints=json.dumps(checked),
                    created_at=now, updated_at=now, unknown_fields=unknown_fields))
                if max_streams is not None:
                    count = conn.execute(sa.select(sa.func.count()).select_from(streams_table)).scalar_one()
                    if count > max_streams:
                        raise LimitReached([("max_streams", f"stream {name!r} refused: {count - 1} "
                                                            f"streams exist, the limit is {max_streams}")])
                conn.execute(stream_versions_table.insert().values(
                    name=name, version=1, schema=json.dumps(document), created_at=now))
        except sa.exc.IntegrityError as exc:
            raise AlreadyExists(f"stream {name!r} exists already") from exc
        return Stream(name, 1, schema, checked, now, unknown_fields)

    def add_version(self, current: Stream, document: Any) -> Stream:
        """Record ``document`` as the stream's next version (compatibility checked by the caller).

        The update is conditional on the version the caller checked against, so two
        concurrent updates cannot both pass their check against the same old schema.
        """
        schema = parse_schema(document)
        now = time.time()
        version = current.version + 1
        with self.engine.begin() as conn:
            result = conn.execute(streams_table.update()
                                  .where(streams_table.c.name == current.name)
                                  .where(streams_table.c.version == current.version)
                                  .values(version=version, schema=json.dumps(document), updated_at=now))
            if result.rowcount != 1:
                raise AlreadyExists(f"stream {current.name!r} changed meanwhile; check again")
            conn.execute(stream_versions_table.insert().values(
                name=current.name, version=version, schema=json.dumps(document), created_at=now))
        return Stream(current.name, version, schema, current.hints, current.created_at,
                      current.unknown_fields)

    def set_unknown_fields(self, name: str, policy: str) -> None:
        check_policy(policy)
        with self.engine.begin() as conn:
            result = conn.execute(streams_table.update().where(streams_table.c.name == name)
                                  .values(unknown_fields=policy, updated_at=time.time()))
        if result.rowcount == 0:
            raise NotFound(f"no stream named {name!r}")

    def set_hints(self, name: str, hints: Mapping[str, Any]) -> None:
        checked = check_hints(hints)
        with self.engine.begin() as conn:
            result = conn.execute(streams_table.update().where(streams_table.c.name == name)
                                  .values(hints=json.dumps(checked), updated_at=time.time()))
        if result.rowcount == 0:
            raise NotFound(f"no stream named {name!r}")

    def delete_stream(self, name: str) -> None:
        """Forget the stream and every version of its schema."""
        with self.engine.begin() as conn:
            result = conn.execute(streams_table.delete().where(streams_table.c.name == name))
            conn.execute(stream_versions_table.delete().where(stream_versions_table.c.name == name))
        if result.rowcount == 0:
            raise NotFound(f"no stream named {name!r}")

    def history(self, name: str) -> list[SchemaVersion]:
        if not is_valid_stream_name(name):  # never looked up: PostgreSQL refuses NUL in text (a 500)
            raise NotFound(f"no stream named {name!r}")
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(stream_versions_table)
                                .where(stream_versions_table.c.name == name)
                                .order_by(stream_versions_table.c.version)).all()
        if not rows:
            raise NotFound(f"no stream named {name!r}")
        return [SchemaVersion(r.version, parse_schema(json.loads(r.schema)), r.created_at) for r in rows]

    def list_streams(self) -> list[Stream]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(streams_table).order_by(streams_table.c.name)).all()
        return [Stream(r.name, r.version, parse_schema(json.loads(r.schema)), json.loads(r.hints),
                       r.created_at, r.unknown_fields) for r in rows]

    def get_stream(self, name: str) -> Stream:
        if not is_valid_stream_name(name):  # never looked up: PostgreSQL refuses NUL in text (a 500)
            raise NotFound(f"no stream named {name!r}")
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(streams_table).where(streams_table.c.name == name)).one_or_none()
        if r is None:
            raise NotFound(f"no stream named {name!r}")
        return Stream(r.name, r.version, parse_schema(json.loads(r.schema)), json.loads(r.hints),
                      r.created_at, r.unknown_fields)

    def streams_fingerprint(self) -> tuple[int, float]:
        """Changes whenever a stream is created or changed: cheap enough to poll each second."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sa.func.count(), sa.func.max(streams_table.c.updated_at))).one()
        return int(row[0]), float(row[1] or 0.0)
